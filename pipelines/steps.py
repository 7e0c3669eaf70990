"""One function per pipeline step: what an Airflow task and a CLI command both call.

Each step takes the settings, the model spec and the as-of date as arguments, does
one thing to the warehouse, and returns a small JSON-able reference (counts, ids)
that Airflow can keep in XCom. None of them imports Airflow.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from typing import Any

from pipelines import quarantine, registry, runlog, transform
from pipelines.errors import BatchpredError, InputError, ValidationFailed
from pipelines.settings import Settings
from pipelines.spec import ALIAS_PATTERN, ModelSpec
from pipelines.warehouse import open_warehouse

log = logging.getLogger(__name__)


def parse_date(value: object, what: str = "as_of_date") -> dt.date:
    """Accept a date, a datetime (its date) or a YYYY-MM-DD string; refuse anything else.

    Always returns a plain `datetime.date` (not a pendulum or pandas subclass).
    """
    if isinstance(value, dt.date):  # datetimes included: they are dates too
        return dt.date(value.year, value.month, value.day)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InputError(f"{what} must be a date written YYYY-MM-DD; got {value!r}")


def check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not re.match(ALIAS_PATTERN, alias):
        raise InputError(f"model_alias must be an MLflow alias name matching {ALIAS_PATTERN}; got {alias!r}")
    return alias


def build_features(settings: Settings, spec: ModelSpec, as_of_date: dt.date) -> dict[str, Any]:
    """Rebuild the feature partition for `as_of_date` and the staging models it reads
    with dbt (and run their dbt tests)."""
    transform.build_features(settings, spec, [as_of_date])
    return {"model": spec.name, "as_of_date": as_of_date.isoformat()}


def validate(settings: Settings, spec: ModelSpec, as_of_date: dt.date, airflow_run_id: str | None = None) -> dict[str, Any]:
    """Run the model's expectation suite on the `as_of_date` partition, in the database.

    Results go to monitoring.validation_results. Rows that break an expectation the
    suite tolerates (`mostly`) replace the date's rows in monitoring.<model>_quarantine
    and are not scored (see `pipelines.quarantine`). On failure a failed attempt is
    logged in monitoring.scoring_runs and ValidationFailed lists every failed
    expectation with its column and observed value; nothing is scored.
    """
    from pipelines.validate import validate_partition

    started = dt.datetime.now(dt.UTC)
    report = validate_partition(settings, spec, as_of_date)
    if not report.success:
        attempt = runlog.Attempt(str(uuid.uuid4()), spec.name, "", as_of_date, airflow_run_id, started)
        runlog.record(
            open_warehouse(settings.warehouse_url),
            attempt,
            rows_read=report.rows,
            rows_scored=0,
            rows_rejected=0,
            validation_outcome="failed",
            validation_id=report.validation_id,
            status="failed",
            error=report.describe_failures(),
            ended_at=dt.datetime.now(dt.UTC),
        )
        raise ValidationFailed(report.describe_failures())
    quarantined = quarantine.replace(open_warehouse(settings.warehouse_url), spec, as_of_date, report.validation_id)
    if quarantined:
        log.warning(
            "%d of %d rows of %s for %s break a tolerated expectation; they are in monitoring.%s and will not be scored",
            quarantined, report.rows, spec.features_model, as_of_date, quarantine.table_name(spec),
        )  # fmt: skip
    return {"validation_id": report.validation_id, "rows": report.rows, "quarantined": quarantined}


def resolve_model(
    settings: Settings,
    spec: ModelSpec,
    as_of_date: dt.date,
    alias: str | None = None,
    airflow_run_id: str | None = None,
) -> dict[str, Any]:
    """Pin models:/<model>@<alias> to one version for a whole scoring run, and name the run.

    Every shard scores with the version resolved here, even if the alias moves meanwhile.
    An alias that does not resolve is logged as a failed attempt and raised: there is
    no fallback to another version.
    """
    alias = check_alias(alias or spec.alias)
    started = dt.datetime.now(dt.UTC)
    scoring_run_id = str(uuid.uuid4())
    try:
        model = registry.resolve(settings, spec.name, alias)
    except BatchpredError as exc:
        attempt = runlog.Attempt(scoring_run_id, spec.name, alias, as_of_date, airflow_run_id, started)
        runlog.record(open_warehouse(settings.warehouse_url), attempt, status="failed", error=str(exc)[:2000], ended_at=started)
        raise
    return {
        "scoring_run_id": scoring_run_id,
        "alias": alias,
        "model_version": model.version,
        "mlflow_run_id": model.run_id,
        "started_at": started.isoformat(),
    }


def _pinned(spec: ModelSpec, model: dict[str, Any]) -> registry.ResolvedModel:
    return registry.ResolvedModel(spec.name, model["model_version"], model["mlflow_run_id"], model["alias"])


def _attempt(spec: ModelSpec, as_of_date: dt.date, model: dict[str, Any], airflow_run_id: str | None) -> runlog.Attempt:
    started = dt.datetime.fromisoformat(model["started_at"])
    return runlog.Attempt(model["scoring_run_id"], spec.name, model["alias"], as_of_date, airflow_run_id, started)


def score_shard(
    settings: Settings,
    spec: ModelSpec,
    as_of_date: dt.date,
    validation_id: str,
    model: dict[str, Any],
    shard: int,
    airflow_run_id: str | None = None,
) -> dict[str, Any]:
    """Score one of the spec's shards of `as_of_date` with the pinned model (see `resolve_model`).

    Refuses to run unless `validation_id` is a passed validation of this model and date.
    A failed shard is logged in monitoring.scoring_runs with its error.
    """
    from pipelines.score import score_partition
    from pipelines.validate import check_passed

    warehouse = open_warehouse(settings.warehouse_url)
    check_passed(warehouse, spec, as_of_date, validation_id)
    try:
        result = score_partition(
            settings, spec, as_of_date, _pinned(spec, model), model["scoring_run_id"], airflow_run_id, shard, spec.shards
        )
    except BaseException as exc:
        runlog.record(
            warehouse,
            _attempt(spec, as_of_date, model, airflow_run_id),
            model_version=model["model_version"],
            mlflow_run_id=model["mlflow_run_id"],
            validation_outcome="passed",
            validation_id=validation_id,
            status="failed",
            error=f"shard {shard + 1} of {spec.shards}: {type(exc).__name__}: {exc}"[:2000],
            ended_at=dt.datetime.now(dt.UTC),
        )
        raise
    return {"shard": shard, "rows_read": result.rows_read, "rows_scored": result.rows_scored}


def publish(
    settings: Settings,
    spec: ModelSpec,
    as_of_date: dt.date,
    validation_id: str,
    model: dict[str, Any],
    shard_results: list[dict[str, Any]],
    airflow_run_id: str | None = None,
) -> dict[str, Any]:
    """Make the date's predictions visible all at once and log the attempt.

    Refuses unless every shard reported; the previous predictions stay until then.
    """
    from pipelines.score import publish_predictions

    shard_results = list(shard_results)
    missing = sorted(set(range(spec.shards)) - {r["shard"] for r in shard_results})
    if missing:
        raise BatchpredError(f"shard(s) {[m + 1 for m in missing]} of {spec.shards} did not finish; nothing was published")
    rows_scored = sum(r["rows_scored"] for r in shard_results)
    publish_predictions(settings, spec, as_of_date, model["scoring_run_id"], spec.shards, rows_scored)
    warehouse = open_warehouse(settings.warehouse_url)
    rejected = quarantine.count(warehouse, spec, as_of_date, validation_id)
    runlog.record(
        warehouse,
        _attempt(spec, as_of_date, model, airflow_run_id),
        model_version=model["model_version"],
        mlflow_run_id=model["mlflow_run_id"],
        rows_read=sum(r["rows_read"] for r in shard_results) + rejected,
        rows_scored=rows_scored,
        rows_rejected=rejected,
        validation_outcome="passed",
        validation_id=validation_id,
        status="succeeded",
        ended_at=dt.datetime.now(dt.UTC),
    )
    return {
        "scoring_run_id": model["scoring_run_id"],
        "rows_scored": rows_scored,
        "rows_quarantined": rejected,
        "model_version": model["model_version"],
        "table": f"predictions.{spec.predictions_table}",
    }


def score(
    settings: Settings,
    spec: ModelSpec,
    as_of_date: dt.date,
    validation_id: str,
    alias: str | None = None,
    airflow_run_id: str | None = None,
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Resolve the model (unless a pinned `model` is given), score every shard in turn,
    then publish: what the DAG's scoring tasks do, in one process."""
    from pipelines.validate import check_passed

    check_passed(open_warehouse(settings.warehouse_url), spec, as_of_date, validation_id)
    model = new_attempt(model) if model else resolve_model(settings, spec, as_of_date, alias, airflow_run_id)
    results = [
        score_shard(settings, spec, as_of_date, validation_id, model, shard, airflow_run_id) for shard in range(spec.shards)
    ]
    return publish(settings, spec, as_of_date, validation_id, model, results, airflow_run_id)


def new_attempt(model: dict[str, Any]) -> dict[str, Any]:
    """The same pinned model version under a new scoring run id (one per date in a backfill)."""
    return model | {"scoring_run_id": str(uuid.uuid4()), "started_at": dt.datetime.now(dt.UTC).isoformat()}


def build_marts(settings: Settings, spec: ModelSpec, as_of_date: dt.date) -> dict[str, Any]:
    """Rebuild the dashboards' marts for `as_of_date`."""
    transform.build_marts(settings, spec, [as_of_date])
    return {"model": spec.name, "as_of_date": as_of_date.isoformat()}


def run_date(
    settings: Settings,
    spec: ModelSpec,
    as_of_date: dt.date,
    alias: str | None = None,
    airflow_run_id: str | None = None,
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every step for one date, in DAG order: features, validate, score, marts.
    A pinned `model` (from `resolve_model`) overrides `alias`."""
    build_features(settings, spec, as_of_date)
    validation = validate(settings, spec, as_of_date, airflow_run_id)
    scored = score(settings, spec, as_of_date, validation["validation_id"], alias, airflow_run_id, model)
    build_marts(settings, spec, as_of_date)
    return scored


def train(settings: Settings, spec: ModelSpec, as_of_date: dt.date) -> dict[str, Any]:
    """Train on data known up to `as_of_date`, register a version, promote it if better."""
    from pipelines.train import train_model

    result = train_model(settings, spec, as_of_date)
    return {
        "model_version": result.model.version,
        "mlflow_run_id": result.model.run_id,
        "metrics": result.metrics,
        "champion_metrics": result.champion_metrics,
        "promoted": result.promoted,
    }


RUN_PARAMETERS = ("as_of_date", "model_alias", "dry_run")


def as_of_date_for_run(
    conf: dict[str, Any] | None,
    param: object,
    logical_date: dt.datetime | None,
    run_after: dt.datetime,
) -> dt.date:
    """The as-of date a DAG run scores, from what Airflow knows about the run.

    An `as_of_date` run parameter wins. Otherwise a scheduled run or backfill for the
    daily interval [D, D+1) has logical date D, and scores D. A manual run without a
    logical date scores the last day completed before it was triggered.
    Unknown run parameters are refused (Airflow itself accepts any extra key).
    """
    unknown = sorted(set(conf or {}) - set(RUN_PARAMETERS))
    if unknown:
        raise InputError(f"unknown run parameter(s) {unknown}; allowed: {list(RUN_PARAMETERS)}")
    if param:
        return parse_date(param, "as_of_date")
    if logical_date is not None:
        return parse_date(logical_date)
    return parse_date(run_after) - dt.timedelta(days=1)
