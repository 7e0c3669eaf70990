"""The small typed records that cross from one step to the next (and through Airflow's XCom).

One spelling per concept: `model_version` (an integer), `rows_quarantined`,
`scoring_run_id`. `to_xcom` and `from_xcom` turn a record into plain JSON-able values
and back, so XCom never needs to import this module's classes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pipelines.domain.names import scratch_schema

R = TypeVar("R")


def to_xcom(record: Any) -> dict[str, Any]:
    """A record as JSON-able values (dates as YYYY-MM-DD, datetimes as ISO 8601)."""
    out = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        out[f.name] = value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value
    return out


def from_xcom(cls: type[R], values: dict[str, Any]) -> R:
    """The record `to_xcom` made; unknown keys are refused."""
    hints = {f.name: f.type for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - set(hints)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    parsed = {}
    for name, value in values.items():
        kind = str(hints[name])
        if isinstance(value, str) and kind.startswith("dt.datetime"):
            value = dt.datetime.fromisoformat(value)
        elif isinstance(value, str) and kind.startswith("dt.date"):
            value = dt.date.fromisoformat(value)
        parsed[name] = value
    return cls(**parsed)


@dataclass(frozen=True)
class PinnedModel:
    """One registered model version, pinned for a whole run: every shard and date uses it."""

    name: str
    version: int
    run_id: str
    alias: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class Attempt:
    """One attempt at scoring one as-of date: what the run log records, one row per attempt."""

    scoring_run_id: str
    model_name: str
    as_of_date: dt.date
    alias: str
    model_version: int | None
    mlflow_run_id: str | None
    airflow_run_id: str | None
    started_at: dt.datetime
    dry_run: bool = False
    triggered_by: str | None = None  # who asked: the OS user at a terminal, "airflow" in a DAG
    date_chosen_by: str = ""  # how the as-of date was chosen (a parameter, the logical date, ...)
    shadow: list = field(default_factory=list)  # shadow versions, pinned too: [{"alias", "version", "run_id"}]
    shadow_skipped: list = field(default_factory=list)  # why a shadow alias is not scored (it is the champion's version)

    @property
    def model(self) -> PinnedModel:
        if self.model_version is None or self.mlflow_run_id is None:
            raise ValueError("the attempt has no pinned model version yet")
        return PinnedModel(self.model_name, self.model_version, self.mlflow_run_id, self.alias)

    @property
    def shadow_models(self) -> list[PinnedModel]:
        return [PinnedModel(self.model_name, s["version"], s["run_id"], s["alias"]) for s in self.shadow]

    @property
    def scratch_schema(self) -> str | None:
        """Where a dry run builds its features (nothing else is written)."""
        if not self.dry_run:
            return None
        return scratch_schema(self.scoring_run_id)


@dataclass(frozen=True)
class ValidationRef:
    """A validation of one date: the id scoring must present, and what it counted."""

    validation_id: str
    rows: int  # rows in the partition when it was validated
    rows_quarantined: int  # of those, rows that broke a tolerated expectation


@dataclass(frozen=True)
class ShardResult:
    shard: int
    rows_read: int
    rows_scored: int
    shadow_errors: list = field(default_factory=list)  # why a shadow version did not score (it never fails the shard)
    abs_contribution: list = field(default_factory=list)  # sum of |contribution| per feature, for the attribution profile
    explained_rows: int = 0


@dataclass(frozen=True)
class Published:
    scoring_run_id: str
    as_of_date: dt.date
    model_version: int
    rows_scored: int
    rows_quarantined: int
    table: str
    shadow_errors: list = field(default_factory=list)
    shadow_skipped: list = field(default_factory=list)
