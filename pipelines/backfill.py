"""Backfills: every date of a range scored exactly once, with one model version.

The alias is resolved once for the whole range, so a backfill never mixes versions
even if the alias moves while it runs. The model is loaded once (the registry
adapter caches a pinned version), and each date goes through the steps the DAG runs,
with the dbt ones batched for the whole range (see `run`). A date that fails is
reported with its reason and the others carry on.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from pipelines import runlog, steps, transform
from pipelines.errors import BatchpredError, InputError
from pipelines.identifiers import qualified
from pipelines.settings import Settings
from pipelines.spec import ModelSpec
from pipelines.warehouse import open_warehouse

SELECTIONS = ("missing", "failed", "stale")
# A date's error when it was scored and published but the marts' rebuild failed. The
# run log says it succeeded, so `--only failed` does not pick it up again.
MARTS_NOT_REBUILT = "scored and published, but the marts were not rebuilt"


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
    if warehouse.table_columns("monitoring", runlog.TABLE) is not None:
        for row in warehouse.query(
            f"select as_of_date, status from {qualified('monitoring', runlog.TABLE)} "
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
    """Validate, score and publish each date with the pinned `model` (see `steps.resolve_model`).

    dbt runs a few times for the whole range rather than twice per date, because each
    dbt run parses the project again: the staging models (if they fail, no date is
    attempted), then the features of up to FEATURE_DATES_PER_RUN dates per run, and at
    the end the marts of the dates that were scored (even if an unexpected error ends
    the range early). If a run's features fail their build or dbt tests, each of its
    dates is built again on its own, so the failure stays with its date; such a date
    is logged as a failed attempt, and `--only failed` picks it up.
    """
    if not dates:
        return []
    transform.build_upstream(settings, spec)
    unbuilt = _build_features(settings, spec, dates)
    outcomes: list[Outcome] = []
    try:
        for day in dates:
            started = time.perf_counter()
            try:
                if day in unbuilt:
                    _log_failure(settings, spec, day, model, unbuilt[day])
                    raise unbuilt[day]
                validation = steps.validate(settings, spec, day)
                result = steps.score(settings, spec, day, validation["validation_id"], model=model)
                outcome = Outcome(
                    day, True, result["rows_scored"], time.perf_counter() - started, quarantined=result["rows_quarantined"]
                )
            except BatchpredError as exc:
                outcome = Outcome(day, False, 0, time.perf_counter() - started, str(exc))
            outcomes.append(outcome)
            on_date(outcome)
    finally:
        scored = [o.as_of_date for o in outcomes if o.ok]
        marts_error = None
        if scored:
            try:
                transform.build_marts(settings, spec, scored)
            except BatchpredError as exc:
                marts_error = f"{MARTS_NOT_REBUILT}: {exc}"
    if marts_error:
        outcomes = [o if not o.ok else replace(o, ok=False, error=marts_error) for o in outcomes]
    return outcomes


# One dbt run builds the features of this many dates at most: the feature query and
# its delete+insert grow with the dates, and a month is already most of the speed-up.
FEATURE_DATES_PER_RUN = 31


def _build_features(
    settings: Settings, spec: ModelSpec, dates: list[dt.date], per_run: int = FEATURE_DATES_PER_RUN
) -> dict[dt.date, BatchpredError]:
    """Build the features of `dates` (staging already built), `per_run` dates per dbt run;
    a run that fails is built again one date at a time. Returns the dates that failed, with why."""
    unbuilt: dict[dt.date, BatchpredError] = {}
    for first in range(0, len(dates), per_run):
        chunk = dates[first : first + per_run]
        try:
            transform.build_features(settings, spec, chunk, upstream=False)
        except BatchpredError as exc:
            if len(chunk) == 1:
                unbuilt[chunk[0]] = exc
            else:
                unbuilt |= _build_features(settings, spec, chunk, per_run=1)
    return unbuilt


def _log_failure(settings: Settings, spec: ModelSpec, day: dt.date, model: dict, error: BatchpredError) -> None:
    """A date whose features could not be built gets a failed attempt in the run log."""
    now = dt.datetime.now(dt.UTC)
    attempt = runlog.Attempt(str(uuid.uuid4()), spec.name, model["alias"], day, None, now)
    runlog.record(
        open_warehouse(settings.warehouse_url),
        attempt,
        model_version=model["model_version"],
        mlflow_run_id=model["mlflow_run_id"],
        status="failed",
        error=f"features: {error}"[:2000],
        ended_at=now,
    )
