"""Backfills: every date of a range scored exactly once, with one model version.

The alias is resolved once for the whole range, so a backfill never mixes versions
even if the alias moves while it runs. The model is loaded once (the registry
adapter caches a pinned version), and each date is the same sequence of steps the
DAG runs. A date that fails is reported with its reason and the others carry on.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipelines import steps, transform
from pipelines.errors import BatchpredError, InputError
from pipelines.identifiers import qualified
from pipelines.runlog import TABLE as RUNS_TABLE
from pipelines.settings import Settings
from pipelines.spec import ModelSpec
from pipelines.warehouse import open_warehouse

SELECTIONS = ("missing", "failed", "stale")


@dataclass(frozen=True)
class Outcome:
    as_of_date: dt.date
    ok: bool
    rows: int = 0  # scored
    seconds: float = 0.0
    error: str | None = None
    quarantined: int = 0


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise InputError(f"--end {end} is before --start {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def plan(settings: Settings, spec: ModelSpec, start: dt.date, end: dt.date, only: str | None, version: str) -> list[dt.date]:
    """The dates of start..end to score.

    only=None: all of them. "missing": dates with no predictions. "failed": dates whose
    latest scoring attempt failed. "stale": dates scored by a model version other than
    `version` (the one the alias points to now).
    """
    dates = date_range(start, end)
    if only is None:
        return dates
    if only not in SELECTIONS:
        raise InputError(f"--only must be one of {', '.join(SELECTIONS)}; got {only!r}")
    warehouse = open_warehouse(settings.warehouse_url)
    scored: dict[dt.date, set[str]] = {}
    if warehouse.table_columns("predictions", spec.predictions_table) is not None:
        for row in warehouse.query(
            f"select distinct as_of_date, model_version from {qualified('predictions', spec.predictions_table)} "
            "where as_of_date between $1 and $2",
            [start, end],
        ).to_pylist():
            scored.setdefault(row["as_of_date"], set()).add(row["model_version"])
    if only == "missing":
        return [d for d in dates if d not in scored]
    if only == "stale":
        return [d for d in dates if d in scored and scored[d] != {version}]
    latest: dict[dt.date, str] = {}
    if warehouse.table_columns("monitoring", RUNS_TABLE) is not None:
        for row in warehouse.query(
            f"select as_of_date, status from {qualified('monitoring', RUNS_TABLE)} "
            "where model_name = $1 and as_of_date between $2 and $3 order by started_at, ended_at",
            [spec.name, start, end],
        ).to_pylist():
            latest[row["as_of_date"]] = row["status"]
    return [d for d in dates if latest.get(d) == "failed"]


def run(
    settings: Settings,
    spec: ModelSpec,
    dates: list[dt.date],
    model: dict,
    on_date: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Run every step for each date with the pinned `model` (see `steps.resolve_model`).

    The staging models the features read are rebuilt and tested once, first; if that
    fails, no date is attempted."""
    if dates:
        transform.build_upstream(settings, spec)
    outcomes = []
    for day in dates:
        started = time.perf_counter()
        try:
            result = steps.run_date(settings, spec, day, model=model, upstream=False)
            outcome = Outcome(
                day, True, result["rows_scored"], time.perf_counter() - started, quarantined=result["rows_quarantined"]
            )
        except BatchpredError as exc:
            outcome = Outcome(day, False, 0, time.perf_counter() - started, str(exc))
        outcomes.append(outcome)
        on_date(outcome)
    return outcomes
