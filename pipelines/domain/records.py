"""The small typed records that cross from one step to the next (and through Airflow's XCom).

One spelling per concept: `model_version` (an integer), `rows_quarantined`,
`scoring_run_id`. `to_xcom` and `from_xcom` turn a record into plain JSON-able values
and back, so XCom never needs to import this module's classes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pipelines.domain.names import scratch_schema

R = TypeVar("R")


def to_xcom(record: Any) -> dict[str, Any]:
    """A record as JSON-able values (dates as YYYY-MM-DD, datetimes as ISO 8601, nested records
    as mappings, tuples as lists)."""
    return {f.name: _plain(getattr(record, f.name)) for f in dataclasses.fields(record)}


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_xcom(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def from_xcom(cls: type[R], values: dict[str, Any]) -> R:
    """The record `to_xcom` made, each field decoded by its type hint; unknown keys are refused."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - fields
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    return cls(**{name: _decode(hints[name], value) for name, value in values.items()})


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return _decode(options[0], value) if len(options) == 1 else value
    if origin in (tuple, list):
        item = args[0] if args else Any
        decoded = [_decode(item, v) for v in value]
        return tuple(decoded) if origin is tuple else decoded
    if hint is dt.datetime and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    if hint is dt.date and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_xcom(typing.cast(type[Any], hint), value)
    return value


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
    model: PinnedModel | None  # the version every step uses, once `plan` has pinned it
    airflow_run_id: str | None
    started_at: dt.datetime
    dry_run: bool = False
    triggered_by: str | None = None  # who asked: the OS user at a terminal, "airflow" in a DAG
    date_chosen_by: str = ""  # how the as-of date was chosen (a parameter, the logical date, ...)
    waited_for_data_s: int | None = None  # a scheduled run: how long it waited for its date to be complete
    shadows: tuple[PinnedModel, ...] = ()  # shadow versions, pinned too
    shadow_skipped: tuple[str, ...] = ()  # why a shadow alias is not scored (it is the champion's version)

    @property
    def pinned(self) -> PinnedModel:
        """The pinned version (ValueError before `plan` pinned one)."""
        if self.model is None:
            raise ValueError("the attempt has no pinned model version yet")
        return self.model

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
    shadow_failures: tuple[ShadowFailure, ...] = ()  # shadow versions that did not score (they never fail the shard)
    abs_contribution: list[float] = field(default_factory=list)  # sum of |contribution| per feature, for the attribution profile
    explained_rows: int = 0


@dataclass(frozen=True)
class Published:
    scoring_run_id: str
    as_of_date: dt.date
    model_version: int
    rows_scored: int
    rows_quarantined: int
    table: str
    shadow_errors: tuple[str, ...] = ()
    shadow_skipped: tuple[str, ...] = ()
    alias: str = ""  # the alias the version was pinned by


@dataclass(frozen=True)
class ShadowFailure:
    """A shadow version that did not score a date (it never fails the champion): which alias,
    which version, and why. Its text is what the run log and the logs show."""

    alias: str
    version: int
    error: str

    def __str__(self) -> str:
        return f"@{self.alias} (version {self.version}): {self.error}"
