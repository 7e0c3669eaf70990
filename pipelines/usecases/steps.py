"""One function per pipeline step: what an Airflow task and a CLI command both call.

Each step takes the settings, the model spec and the attempt (`plan` makes it: the
as-of date, the pinned model version, the run ids), does one thing to the warehouse,
and returns a small typed record (`pipelines.domain.records`). A step that fails records
the failure on the attempt's run-log row before the error goes on. None of them
imports Airflow.

Cheap checks come first: `plan` refuses a malformed alias, an incomplete date, an
alias that does not resolve and a version whose input contract disagrees with the
spec, before dbt or Great Expectations run.
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from pipelines.adapters import registry, transform
from pipelines.adapters.warehouse import catalog, open_warehouse
from pipelines.config.settings import Settings
from pipelines.config.spec import ModelSpec
from pipelines.domain.dates import date_range
from pipelines.domain.errors import BatchpredError, ContractError, InputError, ModelNotFound
from pipelines.domain.records import Attempt, PinnedModel, Published, ShardResult, ValidationRef
from pipelines.scoring import completeness, runlog

log = logging.getLogger(__name__)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def last_complete_date(settings: Settings, spec: ModelSpec, at: dt.datetime | None = None) -> dt.date:
    """The latest complete as-of date (what a run with no date scores), or IncompleteDate."""
    from pipelines.domain.errors import IncompleteDate

    cover = completeness.coverage(open_warehouse(settings.warehouse_url), spec, at or now())
    if cover.last_complete is None:
        problem = next((e.source.name + " has no rows" for e in cover.extents if e.last is None), None)
        raise IncompleteDate(f"{spec.name}: {problem or cover.describe()}")
    return cover.last_complete


# What `plan` refuses: the request itself is wrong (alias, date, model, configuration), and
# asking again gives the same answer. A registry or warehouse that does not answer is a failure.
REFUSALS = (InputError, ModelNotFound, ContractError)


@contextmanager
def recorded(
    settings: Settings, attempt: Attempt, step: str, refusals: tuple[type[BaseException], ...] = (), **fields
) -> Iterator[None]:
    """Run a step; if it fails, its attempt's run-log row says so (step and error) before the error
    goes on: `refused` for one of `refusals` (the step did no work), `failed` for anything else."""
    try:
        yield
    except BaseException as exc:
        try:
            warehouse = open_warehouse(settings.warehouse_url)
            if isinstance(exc, refusals):
                runlog.refused(warehouse, attempt, step, exc)
            else:
                runlog.failed(warehouse, attempt, step, exc, **fields)
        except Exception as logging_failed:  # noqa: BLE001 - the step's own error matters more
            log.error("could not record the failed %s of %s in the run log: %s", step, attempt.as_of_date, logging_failed)
        raise


def plan(
    settings: Settings,
    spec: ModelSpec,
    as_of_date: dt.date,
    alias: str | None = None,
    airflow_run_id: str | None = None,
    dry_run: bool = False,
    at: dt.datetime | None = None,
    model: PinnedModel | None = None,
    date_chosen_by: str = "",
    shadows: list[PinnedModel] | None = None,
    shadow_skipped: Sequence[str] = (),
) -> Attempt:
    """Start an attempt at scoring `as_of_date`: check the date is complete, pin
    models:/<model>@<alias> to one version (or use the pinned `model` of a backfill), and
    check the version's input contract against the spec. Every later step uses that version.

    Refuses, before any work: a malformed alias (InputError); a date before the spec's
    scoring.start_date or not complete (IncompleteDate); an alias that does not resolve
    (ModelNotFound); a version without a contract or whose contract the spec contradicts
    (ContractError). Unless `dry_run`, the attempt gets its run-log row: `refused` with
    the reason for those, `failed` if something else stopped it (the registry did not
    answer, say). A shadow alias at the champion's version is not scored; the attempt's
    `shadow_skipped` (and its run-log row) says so.
    """
    alias = alias or (model.alias if model else None) or spec.alias
    attempt = Attempt(
        scoring_run_id=str(uuid.uuid4()),
        model_name=spec.name,
        as_of_date=as_of_date,
        alias=str(alias),
        model_version=model.version if model else None,
        mlflow_run_id=model.run_id if model else None,
        airflow_run_id=airflow_run_id,
        started_at=at or now(),
        dry_run=dry_run,
        triggered_by="airflow" if airflow_run_id else _user(),
        date_chosen_by=date_chosen_by,
    )
    warehouse = open_warehouse(settings.warehouse_url)
    cover = completeness.coverage(warehouse, spec, attempt.started_at)  # refuses an empty home before writing
    with recorded(settings, attempt, "plan", REFUSALS):
        runlog.start(warehouse, attempt)
        registry.check_alias(alias)
        start = spec.scoring.start_date
        if start is not None and as_of_date < start:
            from pipelines.domain.errors import IncompleteDate

            raise IncompleteDate(
                f"as-of date {as_of_date} is before scoring.start_date {start} in models/{spec.name}/model.yaml; "
                "move the start date back to score it"
            )
        cover.check(as_of_date)
        pinned = model or registry.resolve(settings, spec.name, alias)
        attempt = replace(attempt, model_version=pinned.version, mlflow_run_id=pinned.run_id)
        runlog.record(warehouse, attempt, "running")
    with recorded(settings, attempt, "plan", REFUSALS):
        extra = registry.contract(settings, pinned).check_spec(spec, pinned.uri)
        if extra:
            log.info("%s does not read feature(s) %s that models/%s/model.yaml lists", pinned.uri, extra, spec.name)
        if shadows is None:
            shadows, shadow_skipped = resolve_shadows(settings, spec, pinned)
    attempt = replace(
        attempt,
        shadow=[{"alias": m.alias, "version": m.version, "run_id": m.run_id} for m in shadows],
        shadow_skipped=list(shadow_skipped),
    )
    if shadow_skipped:
        runlog.record(warehouse, attempt, "running", shadow_skipped="; ".join(shadow_skipped))
    log.info(
        "%s as-of date %s%s with %s (alias @%s)%s",
        "dry run of" if dry_run else "scoring", as_of_date, f" ({date_chosen_by})" if date_chosen_by else "",
        pinned.uri, alias, f", Airflow run {airflow_run_id}" if airflow_run_id else "",
    )  # fmt: skip
    return attempt


def resolve_shadows(settings: Settings, spec: ModelSpec, champion: PinnedModel) -> tuple[list[PinnedModel], list[str]]:
    """Pin each of the spec's shadow aliases that exists; returns (the versions to shadow-score,
    why each other existing alias is not scored). An alias at the champion's version is not
    scored (it would compare the champion with itself); one that does not exist is the normal
    state (no challenger yet), neither an error nor worth a word."""
    found, skipped = [], []
    for alias in spec.shadow_aliases:
        try:
            model = registry.resolve(settings, spec.name, alias)
        except ModelNotFound:
            continue
        if model.version == champion.version:
            skipped.append(
                f"@{alias} is version {model.version}, the version scoring the date: not shadow-scored "
                f"(point @{alias} at another version, e.g. batchpred train {spec.name} --alias {alias})"
            )
            log.warning("%s: %s", spec.name, skipped[-1])
        else:
            found.append(model)
    if found:
        log.info("shadow scoring with %s", ", ".join(f"{m.uri} (@{m.alias})" for m in found))
    return found, skipped


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "unknown"


def build_features(settings: Settings, spec: ModelSpec, attempt: Attempt) -> None:
    """Rebuild the date's feature partition and the staging models it reads with dbt (and run
    their dbt tests), then check the table has what the pinned version reads. A dry run
    builds in a scratch schema instead, leaving the warehouse's tables as they were."""
    from pipelines.scoring.score import check_features_table

    with recorded(settings, attempt, "build_features"):
        try:
            transform.build_features(settings, spec, [attempt.as_of_date], scratch=attempt.scratch_schema)
            if not attempt.dry_run:
                check_features_table(settings, spec, attempt.model)
        except BaseException:
            if attempt.scratch_schema:
                catalog.drop_scratch(open_warehouse(settings.warehouse_url), attempt.scratch_schema)
            raise


def validate(settings: Settings, spec: ModelSpec, attempt: Attempt) -> ValidationRef:
    """Run the model's expectation suite on the date's partition, in the database.

    Results go to monitoring.validation_results. Rows that break an expectation the
    suite tolerates (`mostly`) replace the date's rows in monitoring.<model>_quarantine
    and are not scored. On failure the attempt is recorded as failed and
    ValidationFailed lists every failed expectation with its column and observed value;
    nothing is scored. A dry run stores nothing, and drops its scratch schema.
    """
    from pipelines.adapters.validate import validate_partition
    from pipelines.domain.errors import ValidationFailed

    warehouse = open_warehouse(settings.warehouse_url)
    key_fields = registry.contract(settings, attempt.model).key_fields()
    schema = attempt.scratch_schema or "analytics"
    try:
        with recorded(settings, attempt, "validate", validation_outcome="failed"):
            report = validate_partition(
                settings, spec, attempt.as_of_date, schema, store=not attempt.dry_run, key_fields=key_fields
            )
            if not report.success:
                runlog.record(warehouse, attempt, "running", rows_read=report.rows, validation_id=report.validation_id)
                raise ValidationFailed(report.describe_failures())
    finally:
        if attempt.scratch_schema:
            catalog.drop_scratch(warehouse, attempt.scratch_schema)
    quarantined = len(report.quarantined)
    if quarantined:
        log.warning(
            "%d of %d rows of %s for %s break a tolerated expectation; they are in %s and will not be scored",
            quarantined, report.rows, spec.features_model, attempt.as_of_date, catalog.quarantine(spec),
        )  # fmt: skip
    runlog.record(
        warehouse, attempt, "running",
        rows_read=report.rows, rows_quarantined=quarantined, validation_outcome="passed", validation_id=report.validation_id,
    )  # fmt: skip
    return ValidationRef(report.validation_id, report.rows, quarantined)


def score_shard(settings: Settings, spec: ModelSpec, attempt: Attempt, validation: ValidationRef, shard: int) -> ShardResult:
    """Score one of the spec's shards of the date with the attempt's pinned version.

    Refuses to run unless `validation` is a passed validation of this model and date.
    """
    from pipelines.adapters.validate import check_passed
    from pipelines.scoring.score import score_partition

    with recorded(settings, attempt, f"score_shard {shard + 1} of {spec.shards}"):
        check_passed(open_warehouse(settings.warehouse_url), spec, attempt.as_of_date, validation.validation_id)
        result = score_partition(
            settings, spec, attempt.as_of_date, attempt.model, validation, attempt.scoring_run_id,
            attempt.airflow_run_id, shard, spec.shards, attempt.shadow_models,
        )  # fmt: skip
    for error in result.shadow_errors:
        log.warning("shadow scoring of %s %s: %s (the champion is not affected)", spec.name, attempt.as_of_date, error)
    return ShardResult(
        shard, result.rows_read, result.rows_scored, result.shadow_errors, result.abs_contribution, result.explained_rows
    )


def publish(
    settings: Settings, spec: ModelSpec, attempt: Attempt, validation: ValidationRef, shard_results: Sequence[ShardResult]
) -> Published:
    """Make the date's predictions visible all at once, with their shadow scores: the date's
    shadow rows are replaced in the same transaction (by none if no shadow scored), so they
    are never older than the predictions. Refuses unless every shard reported, and scored
    plus quarantined is the validated partition; the previous predictions stay until then."""
    from pipelines.scoring.score import publish_predictions

    with recorded(settings, attempt, "publish"):
        missing = sorted(set(range(spec.shards)) - {r.shard for r in shard_results})
        if missing:
            raise BatchpredError(f"shard(s) {[m + 1 for m in missing]} of {spec.shards} did not finish; nothing was published")
        rows_scored = sum(r.rows_scored for r in shard_results)
        errors = [e for r in shard_results for e in r.shadow_errors]
        failed = [m.alias for m in attempt.shadow_models if any(e.startswith(f"@{m.alias} ") for e in errors)]
        # Every documented table exists from a model's first publish, empty or not, with its comments
        # (before the rows go live: a failure here must not leave a published date logged as failed).
        key = registry.contract(settings, attempt.model).key_fields()
        catalog.ensure_model_tables(open_warehouse(settings.warehouse_url), spec, key)
        publish_predictions(
            settings, spec, attempt.as_of_date, attempt.model, attempt.scoring_run_id, spec.shards, validation, rows_scored,
            failed,
        )  # fmt: skip
        _record_attributions(settings, spec, attempt, shard_results)
        runlog.record(
            open_warehouse(settings.warehouse_url), attempt, "published",
            rows_scored=rows_scored, shadow_error="; ".join(errors) or None,
        )  # fmt: skip
    return Published(
        attempt.scoring_run_id,
        attempt.as_of_date,
        attempt.model.version,
        rows_scored,
        validation.rows_quarantined,
        str(catalog.predictions(spec)),
        errors,
        attempt.shadow_skipped,
    )


def _record_attributions(settings: Settings, spec: ModelSpec, attempt: Attempt, shard_results: Sequence[ShardResult]) -> None:
    """The date's mean |contribution| per feature (all shards), for attribution drift."""
    import numpy as np

    sums = [np.asarray(r.abs_contribution) for r in shard_results if r.abs_contribution]
    rows = sum(r.explained_rows for r in shard_results)
    if not sums or not rows:
        return
    names = registry.contract(settings, attempt.model).feature_names
    means = np.sum(sums, axis=0) / rows
    ranks = np.argsort(-means, kind="stable").argsort() + 1
    profile = [
        {"feature": n, "rank": int(r), "mean_abs_contribution": float(m), "rows": rows}
        for n, m, r in zip(names, means, ranks, strict=True)
    ]
    warehouse = open_warehouse(settings.warehouse_url)
    catalog.replace_health(warehouse, catalog.FEATURE_ATTRIBUTIONS, spec.name, attempt.model.version, attempt.as_of_date, profile)


def build_marts(settings: Settings, spec: ModelSpec, attempts: Sequence[Attempt]) -> None:
    """Rebuild the dashboards' marts for the attempts' dates (one dbt run), then mark each
    attempt succeeded; if the marts fail, each is `marts_failed` (its predictions stay published)."""
    if not attempts:
        return
    warehouse = open_warehouse(settings.warehouse_url)
    try:
        catalog.ensure_health_tables(warehouse)  # <model>_health reads monitoring.daily_health
        transform.build_marts(settings, spec, sorted({a.as_of_date for a in attempts}))
    except BaseException as exc:
        for attempt in attempts:
            runlog.record(warehouse, attempt, "marts_failed", step="build_marts", error=f"build_marts: {exc}")
        raise
    for attempt in attempts:
        runlog.record(warehouse, attempt, "succeeded")


def score(settings: Settings, spec: ModelSpec, attempt: Attempt, validation: ValidationRef) -> Published:
    """Score every shard in turn, then publish: what the DAG's scoring tasks do, in one process."""
    results = [score_shard(settings, spec, attempt, validation, shard) for shard in range(spec.shards)]
    return publish(settings, spec, attempt, validation, results)


def run_date(settings: Settings, spec: ModelSpec, attempt: Attempt) -> Published:
    """Every step for one planned date, in DAG order: features, validate, score, publish, marts."""
    build_features(settings, spec, attempt)
    validation = validate(settings, spec, attempt)
    published = score(settings, spec, attempt, validation)
    build_marts(settings, spec, [attempt])
    return published


def train(
    settings: Settings,
    spec: ModelSpec,
    as_of_date: dt.date,
    force: bool = False,
    reason: str | None = None,
    alias: str | None = None,
    progress=None,
):
    """Train on data known up to `as_of_date`, register a version, move `alias` (default: the
    spec's) to it if better, or if forced with a reason. Returns `pipelines.training.train.TrainResult`.
    `progress(stage, done)` hears each stage (see `pipelines.training.train.train_model`)."""
    from pipelines.training.train import train_model

    return train_model(settings, spec, as_of_date, force=force, reason=reason, alias=alias, progress=progress)


def monitor(settings: Settings, spec: ModelSpec, as_of_date: dt.date, version: int | None = None):
    """Compute and store the health of a scored date (`pipelines.monitoring.monitor`), for the
    version whose predictions it holds unless `version` is given. Returns its DayHealth.

    Refuses (InputError) a date with no predictions of that version: score it first.
    """
    from pipelines.adapters.warehouse import health
    from pipelines.monitoring.monitor import monitor_date

    scored = health.versions_scored(open_warehouse(settings.warehouse_url), spec, as_of_date, as_of_date).get(as_of_date, [])
    if version is None and len(scored) == 1:
        version = scored[0]
    if version is None or version not in scored:
        which = f"version {version}" if version is not None else "any version"
        raise InputError(
            f"{catalog.predictions(spec)} has no predictions of {which} for {as_of_date}"
            + (f" (it has version(s) {scored})" if scored else "")
            + f"; score it first: batchpred score {spec.name} --date {as_of_date}"
        )
    return monitor_date(settings, spec, as_of_date, registry.pin(settings, spec.name, version))


def realize(settings: Settings, spec: ModelSpec, at: dt.datetime | None = None, dates: Sequence[dt.date] = ()):
    """Realized performance of every scored date whose label horizon is over: within the spec's
    lookback (so late labels are counted), and each of `dates` however old. A date whose
    label sources are not complete yet is stored as provisional. Returns the `Realized` records."""
    from pipelines.monitoring.monitor import labelled_dates
    from pipelines.monitoring.monitor import realize as realize_dates

    return realize_dates(settings, spec, labelled_dates(settings, spec, at or now(), dates))


def unpublish(settings: Settings, spec: ModelSpec, start: dt.date, end: dt.date) -> dict[str, Any]:
    """Take published dates back: in one transaction, remove the predictions of every date of
    start..end that has them (with their shadow scores, reasons, quarantine and model-health
    rows) and write one run-log row per date, status `unpublished`, saying who removed which
    version's rows; then rebuild the marts for those dates.

    Refuses (InputError), removing nothing, when no date of the range has predictions.
    Returns {"dates": [...], "skipped": [...], "removed": {table: rows}}. If the marts
    fail to rebuild, the dates stay removed and DbtError says to rebuild them.
    """

    warehouse = open_warehouse(settings.warehouse_url)
    scored = catalog.scored_versions(warehouse, spec, start, end)
    dates = sorted(scored)
    span = f"{start}" if start == end else f"{start}..{end}"
    if not dates:
        raise InputError(
            f"{catalog.predictions(spec)} has no predictions for {span}: nothing to unpublish "
            "(batchpred backfill --dry-run lists the dates that have rows)"
        )
    counts = {d: catalog.count_partition(warehouse, catalog.predictions(spec), d) for d in dates}
    at, who = now(), _user()
    rows = [
        {
            "scoring_run_id": str(uuid.uuid4()),
            "model_name": spec.name,
            "model_version": max(scored[d]),
            "as_of_date": d,
            "rows_removed": counts[d],
            "status": "unpublished",
            "step": "unpublish",
            "started_at": at,
            "ended_at": at,
            "triggered_by": who,
        }
        for d in dates
    ]
    removed = catalog.unpublish(warehouse, spec, dates, rows)
    catalog.ensure_health_tables(warehouse)
    transform.build_marts(settings, spec, dates)
    return {"dates": dates, "skipped": [d for d in date_range(start, end) if d not in scored], "removed": removed}


def record_retrain(settings: Settings, spec: ModelSpec, requested_for: dt.date, outcome: str) -> None:
    """Say on the alerts that asked for a retrain what the retrain did."""
    from pipelines.adapters.warehouse import health

    health.record_retrain_result(open_warehouse(settings.warehouse_url), spec.name, requested_for, outcome[:2000])
