"""One function per pipeline step: what an Airflow task and a CLI command both call.

Each step takes the resources (`pipelines.adapters.resources`), the model spec and the
attempt (`plan` makes it: the as-of date, the pinned model version, the run ids), does
one thing to the warehouse, and returns a small typed record (`pipelines.domain.records`). A step that fails records
the failure on the attempt's run-log row before the error goes on. None of them
imports Airflow.

Cheap checks come first: `plan` refuses a malformed alias, an incomplete date, an
alias that does not resolve and a version whose input contract disagrees with the
spec, before dbt or Great Expectations run.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from pipelines.adapters import registry
from pipelines.adapters.resources import Resources, current_user
from pipelines.adapters.validate import ValidationReport
from pipelines.adapters.warehouse import queries, tables
from pipelines.config.spec import ModelSpec
from pipelines.domain.errors import BatchpredError, ContractError, IncompleteDate, InputError, ModelNotFound, ValidationFailed
from pipelines.domain.records import Attempt, PinnedModel, Published, ShardResult, ValidationRef
from pipelines.domain.status import RunStatus, ValidationOutcome
from pipelines.scoring import completeness, runlog
from pipelines.scoring.score import check_features_table, publish_predictions, score_partition

log = logging.getLogger(__name__)


def last_complete_date(res: Resources, spec: ModelSpec) -> dt.date:
    """The latest complete as-of date (what a run with no date scores), or IncompleteDate."""
    cover = completeness.coverage(res.warehouse, spec, res.now())
    if cover.last_complete is None:
        problem = next((e.source.name + " has no rows" for e in cover.extents if e.last is None), None)
        raise IncompleteDate(f"{spec.name}: {problem or cover.describe()}")
    return cover.last_complete


def data_missing(res: Resources, spec: ModelSpec, as_of_date: dt.date) -> str | None:
    """Why `as_of_date` is not complete yet (what `plan` would refuse it with), or None when it
    is complete, or will never be (before scoring.start_date: `plan` says so at once)."""
    start = spec.scoring.start_date
    if start is not None and as_of_date < start:
        return None
    try:
        completeness.coverage(res.warehouse, spec, res.now()).check(as_of_date)
    except IncompleteDate as missing:
        return str(missing)
    return None


def _minutes(seconds: int) -> str:
    return f"{seconds} s" if seconds < 120 else f"{seconds / 60:.0f} min"


# What `plan` refuses: the request itself is wrong (alias, date, model, configuration), and
# asking again gives the same answer. A registry or warehouse that does not answer is a failure.
REFUSALS = (InputError, ModelNotFound, ContractError)


@contextmanager
def recorded(
    res: Resources, attempt: Attempt, step: str, refusals: tuple[type[BaseException], ...] = (), **fields: Any
) -> Iterator[None]:
    """Run a step; if it fails, its attempt's run-log row says so (step and error) before the error
    goes on: `refused` for one of `refusals` (the step did no work), `failed` for anything else."""
    try:
        yield
    except BaseException as exc:
        try:
            if isinstance(exc, refusals):
                runlog.refused(res, attempt, step, exc)
            else:
                runlog.failed(res, attempt, step, exc, **fields)
        except Exception as logging_failed:  # noqa: BLE001 - the step's own error matters more
            log.error("could not record the failed %s of %s in the run log: %s", step, attempt.as_of_date, logging_failed)
        raise


def plan(
    res: Resources,
    spec: ModelSpec,
    as_of_date: dt.date,
    alias: str | None = None,
    airflow_run_id: str | None = None,
    dry_run: bool = False,
    model: PinnedModel | None = None,
    date_chosen_by: str = "",
    shadows: list[PinnedModel] | None = None,
    shadow_skipped: Sequence[str] = (),
    waited_for_data_s: int | None = None,
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
    `shadow_skipped` (and its run-log row) says so. A scheduled run that waited for its
    date's data (`waited_for_data_s`) says so in its run-log row, and in the refusal if the
    date is still not complete.
    """
    alias = alias or (model.alias if model else None) or spec.alias
    attempt = Attempt(
        scoring_run_id=str(uuid.uuid4()),
        model_name=spec.name,
        as_of_date=as_of_date,
        alias=str(alias),
        model=model,
        airflow_run_id=airflow_run_id,
        started_at=res.now(),
        dry_run=dry_run,
        triggered_by="airflow" if airflow_run_id else current_user(),
        date_chosen_by=date_chosen_by,
        waited_for_data_s=waited_for_data_s,
    )
    cover = completeness.coverage(res.warehouse, spec, attempt.started_at)  # refuses an empty home before writing
    with recorded(res, attempt, "plan", REFUSALS):
        runlog.start(res, attempt)
        registry.check_alias(alias)
        start = spec.scoring.start_date
        if start is not None and as_of_date < start:
            raise IncompleteDate(
                f"as-of date {as_of_date} is before scoring.start_date {start} in models/{spec.name}/model.yaml; "
                "move the start date back to score it"
            )
        try:
            cover.check(as_of_date)
        except IncompleteDate as missing:
            if waited_for_data_s is None:
                raise
            raise IncompleteDate(
                f"{missing} (after waiting {_minutes(waited_for_data_s)} for it: scoring.wait_for_data_minutes "
                f"in models/{spec.name}/model.yaml)"
            ) from None
        pinned = model or res.registry.resolve(spec.name, alias)
        attempt = replace(attempt, model=pinned)
        runlog.record(res, attempt, RunStatus.RUNNING)
    with recorded(res, attempt, "plan", REFUSALS):
        extra = res.registry.contract(pinned).check_spec(spec, pinned.uri)
        if extra:
            log.info("%s does not read feature(s) %s that models/%s/model.yaml lists", pinned.uri, extra, spec.name)
        if shadows is None:
            shadows, shadow_skipped = resolve_shadows(res, spec, pinned)
    attempt = replace(
        attempt,
        shadows=tuple(shadows),
        shadow_skipped=tuple(shadow_skipped),
    )
    if shadow_skipped:
        runlog.record(res, attempt, RunStatus.RUNNING, shadow_skipped="; ".join(shadow_skipped))
    log.info(
        "%s as-of date %s%s with %s (alias @%s)%s",
        "dry run of" if dry_run else "scoring", as_of_date, f" ({date_chosen_by})" if date_chosen_by else "",
        pinned.uri, alias, f", Airflow run {airflow_run_id}" if airflow_run_id else "",
    )  # fmt: skip
    return attempt


def resolve_shadows(res: Resources, spec: ModelSpec, champion: PinnedModel) -> tuple[list[PinnedModel], list[str]]:
    """Pin each of the spec's shadow aliases that exists; returns (the versions to shadow-score,
    why each other existing alias is not scored). An alias at the champion's version is not
    scored (it would compare the champion with itself); one that does not exist is the normal
    state (no challenger yet), neither an error nor worth a word."""
    found, skipped = [], []
    for alias in spec.shadow_aliases:
        try:
            model = res.registry.resolve(spec.name, alias)
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


def build_features(res: Resources, spec: ModelSpec, attempt: Attempt) -> None:
    """Rebuild the date's feature partition and the staging models it reads with dbt (and run
    their dbt tests), then check the table has what the pinned version reads. A dry run
    builds in a scratch schema instead, leaving the warehouse's tables as they were."""
    with recorded(res, attempt, "build_features"):
        try:
            res.dbt.build_features(spec, [attempt.as_of_date], scratch=attempt.scratch_schema)
            if not attempt.dry_run:
                check_features_table(res, spec, attempt.pinned)
        except BaseException:
            if attempt.scratch_schema:
                queries.drop_scratch(res.warehouse, attempt.scratch_schema)
            raise


def validate(res: Resources, spec: ModelSpec, attempt: Attempt) -> ValidationRef:
    """Run the model's expectation suite on the date's partition, in the database.

    Results go to monitoring.validation_results. Rows that break an expectation the
    suite tolerates (`mostly`) replace the date's rows in monitoring.<model>_quarantine
    and are not scored. On failure the attempt is recorded as failed and
    ValidationFailed lists every failed expectation with its column and observed value;
    nothing is scored. A dry run stores nothing, and drops its scratch schema.
    """
    warehouse = res.warehouse
    key_fields = res.registry.contract(attempt.pinned).key_fields()
    schema = attempt.scratch_schema or "analytics"
    try:
        with recorded(res, attempt, "validate", validation_outcome=ValidationOutcome.FAILED):
            report: ValidationReport = res.gx.validate_partition(
                spec, attempt.as_of_date, schema, store=not attempt.dry_run, key_fields=key_fields
            )
            if not report.success:
                runlog.record(res, attempt, RunStatus.RUNNING, rows_read=report.rows, validation_id=report.validation_id)
                raise ValidationFailed(report.describe_failures())
    finally:
        if attempt.scratch_schema:
            queries.drop_scratch(warehouse, attempt.scratch_schema)
    quarantined = len(report.quarantined)
    if quarantined:
        log.warning(
            "%d of %d rows of %s for %s break a tolerated expectation; they are in %s and will not be scored",
            quarantined, report.rows, spec.features_model, attempt.as_of_date, tables.quarantine(spec),
        )  # fmt: skip
    runlog.record(
        res, attempt, RunStatus.RUNNING, rows_read=report.rows, rows_quarantined=quarantined,
        validation_outcome=ValidationOutcome.PASSED, validation_id=report.validation_id,
    )  # fmt: skip
    return ValidationRef(report.validation_id, report.rows, quarantined)


def score_shard(res: Resources, spec: ModelSpec, attempt: Attempt, validation: ValidationRef, shard: int) -> ShardResult:
    """Score one of the spec's shards of the date with the attempt's pinned version.

    Refuses to run unless `validation` is a passed validation of this model and date.
    """
    with recorded(res, attempt, f"score_shard {shard + 1} of {spec.shards}"):
        res.gx.check_passed(spec, attempt.as_of_date, validation.validation_id)
        result = score_partition(
            res, spec, attempt.as_of_date, attempt.pinned, validation, attempt.scoring_run_id,
            attempt.airflow_run_id, shard, spec.shards, list(attempt.shadows),
        )  # fmt: skip
    for error in result.shadow_failures:
        log.warning("shadow scoring of %s %s: %s (the champion is not affected)", spec.name, attempt.as_of_date, error)
    return ShardResult(
        shard, result.rows_read, result.rows_scored, tuple(result.shadow_failures), result.abs_contribution,
        result.explained_rows,
    )


def publish(
    res: Resources, spec: ModelSpec, attempt: Attempt, validation: ValidationRef, shard_results: Sequence[ShardResult]
) -> Published:
    """Make the date's predictions visible all at once, with their shadow scores: the date's
    shadow rows are replaced in the same transaction (by none if no shadow scored), so they
    are never older than the predictions. Refuses unless every shard reported, and scored
    plus quarantined is the validated partition; the previous predictions stay until then."""
    with recorded(res, attempt, "publish"):
        missing = sorted(set(range(spec.shards)) - {r.shard for r in shard_results})
        if missing:
            raise BatchpredError(f"shard(s) {[m + 1 for m in missing]} of {spec.shards} did not finish; nothing was published")
        rows_scored = sum(r.rows_scored for r in shard_results)
        errors = [str(f) for r in shard_results for f in r.shadow_failures]
        failed = sorted({f.alias for r in shard_results for f in r.shadow_failures})
        # Every documented table exists from a model's first publish, empty or not, with its comments
        # (before the rows go live: a failure here must not leave a published date logged as failed).
        key = res.registry.contract(attempt.pinned).key_fields()
        tables.ensure_model_tables(res.warehouse, spec, key)
        publish_predictions(
            res, spec, attempt.as_of_date, attempt.pinned, attempt.scoring_run_id, spec.shards, validation, rows_scored,
            failed,
        )  # fmt: skip
        _record_attributions(res, spec, attempt, shard_results)
        runlog.record(
            res, attempt, RunStatus.PUBLISHED,
            rows_scored=rows_scored, shadow_error="; ".join(errors) or None,
        )  # fmt: skip
    return Published(
        attempt.scoring_run_id,
        attempt.as_of_date,
        attempt.pinned.version,
        rows_scored,
        validation.rows_quarantined,
        str(tables.predictions(spec)),
        tuple(errors),
        attempt.shadow_skipped,
        attempt.alias,
    )


def _record_attributions(res: Resources, spec: ModelSpec, attempt: Attempt, shard_results: Sequence[ShardResult]) -> None:
    """The date's mean |contribution| per feature (all shards), for attribution drift."""
    import numpy as np

    sums = [np.asarray(r.abs_contribution) for r in shard_results if r.abs_contribution]
    rows = sum(r.explained_rows for r in shard_results)
    if not sums or not rows:
        return
    names = res.registry.contract(attempt.pinned).feature_names
    means = np.sum(sums, axis=0) / rows
    ranks = np.argsort(-means, kind="stable").argsort() + 1
    profile = [
        {"feature": n, "rank": int(r), "mean_abs_contribution": float(m), "rows": rows}
        for n, m, r in zip(names, means, ranks, strict=True)
    ]
    warehouse = res.warehouse
    queries.replace_health(warehouse, tables.FEATURE_ATTRIBUTIONS, spec.name, attempt.pinned.version, attempt.as_of_date, profile)


def build_marts(res: Resources, spec: ModelSpec, attempts: Sequence[Attempt]) -> None:
    """Rebuild the dashboards' marts for the attempts' dates (one dbt run), then mark each
    attempt succeeded; if the marts fail, each is `marts_failed` (its predictions stay published)."""
    if not attempts:
        return
    try:
        res.dbt.build_marts(spec, sorted({a.as_of_date for a in attempts}))
    except BaseException as exc:
        for attempt in attempts:
            runlog.record(res, attempt, RunStatus.MARTS_FAILED, step="build_marts", error=f"build_marts: {exc}")
        raise
    for attempt in attempts:
        runlog.record(res, attempt, RunStatus.SUCCEEDED)


def score(res: Resources, spec: ModelSpec, attempt: Attempt, validation: ValidationRef) -> Published:
    """Score every shard in turn, then publish: what the DAG's scoring tasks do, in one process."""
    results = [score_shard(res, spec, attempt, validation, shard) for shard in range(spec.shards)]
    return publish(res, spec, attempt, validation, results)


def run_date(res: Resources, spec: ModelSpec, attempt: Attempt) -> Published:
    """Every step for one planned date, in DAG order: features, validate, score, publish, marts."""
    build_features(res, spec, attempt)
    validation = validate(res, spec, attempt)
    published = score(res, spec, attempt, validation)
    build_marts(res, spec, [attempt])
    return published


def score_date(
    res: Resources,
    spec: ModelSpec,
    as_of_date: dt.date | None,
    alias: str | None = None,
    airflow_run_id: str | None = None,
    date_chosen_by: str = "",
) -> Published:
    """The scoring use case in one process (`batchpred score`): plan the date (the last
    complete one if None), then every step the <model>_score DAG runs as its tasks, in order."""
    with res.warehouse.session():
        if as_of_date is None:
            as_of_date, date_chosen_by = last_complete_date(res, spec), "no date given: the last complete day"
        attempt = plan(res, spec, as_of_date, alias, airflow_run_id, date_chosen_by=date_chosen_by)
        return run_date(res, spec, attempt)
