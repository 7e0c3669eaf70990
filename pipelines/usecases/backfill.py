"""Backfills: every complete date of a range scored exactly once, with one model version.

The alias is resolved once for the whole range, so a backfill never mixes versions
even if the alias moves while it runs. Dates that are not complete (see
`pipelines.scoring.completeness`) are not planned; the plan says which were skipped and why.
The model is loaded once (the registry adapter caches a pinned version), and each
date goes through the steps the DAG runs, with the dbt ones batched for the whole
range (see `run`). A date that fails is reported with its reason and the others
carry on. Every date attempted gets its one run-log row.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.adapters import registry
from pipelines.adapters.resources import Resources
from pipelines.adapters.warehouse import queries
from pipelines.config.spec import ModelSpec
from pipelines.domain.dates import date_range
from pipelines.domain.errors import BatchpredError, InputError
from pipelines.domain.records import Attempt, PinnedModel
from pipelines.scoring import completeness, runlog
from pipelines.usecases import steps

SELECTIONS = ("missing", "failed", "stale")


@dataclass(frozen=True)
class DateOutcome:
    as_of_date: dt.date
    ok: bool
    rows: int = 0  # scored
    seconds: float = 0.0
    error: str | None = None
    quarantined: int = 0


@dataclass(frozen=True)
class Plan:
    model: PinnedModel
    dates: list[dt.date]  # to score, in order
    skipped: dict[dt.date, str] = field(default_factory=dict)  # not complete (or before scoring.start_date): why
    existing: dict[dt.date, set[int]] = field(default_factory=dict)  # dates of the range that have rows: versions
    shadows: list[PinnedModel] = field(default_factory=list)  # shadow versions, pinned once too
    shadow_skipped: list[str] = field(default_factory=list)  # shadow aliases not scored (the champion's version): why


def plan(
    res: Resources,
    spec: ModelSpec,
    start: dt.date,
    end: dt.date,
    only: str | None,
    alias: str | None = None,
) -> Plan:
    """Pin the alias once and choose the dates of start..end to score.

    Only complete dates are planned (the others are in `skipped`, with why). Then
    only=None: all of them. "missing": dates with no predictions. "failed": dates whose
    latest real attempt failed (or whose marts failed); a refused request (a mistyped
    alias, say) touched nothing and does not count. "stale": dates scored by a model
    version other than the pinned one. Writes nothing.
    """
    dates = date_range(start, end)
    if only is not None and only not in SELECTIONS:
        raise InputError(f"--only must be one of {', '.join(SELECTIONS)}; got {only!r}")
    alias = registry.check_alias(alias or spec.alias)
    warehouse = res.warehouse
    cover = completeness.coverage(warehouse, spec, res.now())
    model = res.registry.resolve(spec.name, alias)
    res.registry.contract(model).check_spec(spec, model.uri)
    complete, skipped = cover.split(dates)
    if spec.scoring.start_date:
        early = {d: f"before scoring.start_date {spec.scoring.start_date}" for d in complete if d < spec.scoring.start_date}
        skipped |= early
        complete = [d for d in complete if d not in early]
    existing = queries.scored_versions(warehouse, spec, start, end)
    if only == "missing":
        complete = [d for d in complete if d not in existing]
    elif only == "stale":
        complete = [d for d in complete if d in existing and existing[d] != {model.version}]
    elif only == "failed":
        latest = queries.latest_statuses(warehouse, spec.name, start, end)
        complete = [d for d in complete if latest.get(d) in runlog.UNFINISHED]
    shadows, shadow_skipped = steps.resolve_shadows(res, spec, model)
    return Plan(model, complete, dict(sorted(skipped.items())), existing, shadows, shadow_skipped)


def run(
    res: Resources,
    spec: ModelSpec,
    planned: Plan,
    on_date: Callable[[DateOutcome], None] = lambda outcome: None,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> list[DateOutcome]:
    """Validate, score and publish each planned date with the pinned model.

    dbt runs a few times for the whole range rather than twice per date, because each
    dbt run costs seconds of start-up however few rows it builds: the staging models (if they fail, no date is
    attempted), then the features of up to FEATURE_DATES_PER_RUN dates per run, and at
    the end the marts of the dates that were scored (even if an unexpected error ends
    the range early). If a run's features fail their build or dbt tests, each of its
    dates is built again on its own, so the failure stays with its date. `on_stage`
    hears what is happening ("building features", ...), `on_date` each date's outcome.
    """
    if not planned.dates:
        return []
    on_stage("building the staging models")
    res.dbt.build_upstream(spec)
    on_stage(f"building the features of {len(planned.dates)} date(s)")
    unbuilt = _build_features(res, spec, planned.dates)
    outcomes: list[DateOutcome] = []
    published: list[Attempt] = []
    try:
        for day in planned.dates:
            on_stage(f"scoring {day}")
            started = time.perf_counter()
            try:
                with res.warehouse.session():  # a date's steps share the open DuckDB file
                    attempt = steps.plan(
                        res, spec, day, model=planned.model, date_chosen_by="backfill",
                        shadows=planned.shadows, shadow_skipped=planned.shadow_skipped,
                    )  # fmt: skip
                    if day in unbuilt:
                        with steps.recorded(res, attempt, "build_features"):
                            raise unbuilt[day]
                    validation = steps.validate(res, spec, attempt)
                    result = steps.score(res, spec, attempt, validation)
                published.append(attempt)
                outcome = DateOutcome(
                    day, True, result.rows_scored, time.perf_counter() - started, quarantined=result.rows_quarantined
                )
            except BatchpredError as exc:
                outcome = DateOutcome(day, False, 0, time.perf_counter() - started, str(exc))
            outcomes.append(outcome)
            on_date(outcome)
    finally:
        marts_error = None
        if published:
            on_stage(f"rebuilding the marts of {len(published)} date(s)")
            try:
                steps.build_marts(res, spec, published)
            except BatchpredError as exc:
                marts_error = f"scored and published, but the marts were not rebuilt: {exc}"
    if marts_error:
        scored = {a.as_of_date for a in published}
        outcomes = [
            DateOutcome(o.as_of_date, False, o.rows, o.seconds, marts_error, o.quarantined) if o.as_of_date in scored else o
            for o in outcomes
        ]
    return outcomes


# One dbt run builds the features of this many dates at most: the feature query and
# its delete+insert grow with the dates, and a month is already most of the speed-up.
FEATURE_DATES_PER_RUN = 31


def _build_features(
    res: Resources, spec: ModelSpec, dates: list[dt.date], per_run: int = FEATURE_DATES_PER_RUN
) -> dict[dt.date, BatchpredError]:
    """Build the features of `dates` (staging already built), `per_run` dates per dbt run;
    a run that fails is built again one date at a time. Returns the dates that failed, with why."""
    unbuilt: dict[dt.date, BatchpredError] = {}
    for first in range(0, len(dates), per_run):
        chunk = dates[first : first + per_run]
        try:
            res.dbt.build_features(spec, chunk, upstream=False)
        except BatchpredError as exc:
            if len(chunk) == 1:
                unbuilt[chunk[0]] = exc
            else:
                unbuilt |= _build_features(res, spec, chunk, per_run=1)
    return unbuilt
