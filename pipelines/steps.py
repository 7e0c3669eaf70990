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

from pipelines import registry, runlog, transform
from pipelines.errors import InputError, ValidationFailed
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
    """Rebuild the feature partition for `as_of_date` with dbt (and run its dbt tests)."""
    transform.build_features(settings, spec, as_of_date)
    return {"model": spec.name, "as_of_date": as_of_date.isoformat()}


def validate(settings: Settings, spec: ModelSpec, as_of_date: dt.date, airflow_run_id: str | None = None) -> dict[str, Any]:
    """Run the model's expectation suite on the `as_of_date` partition, in the database.

    Results go to monitoring.validation_results. On failure a failed attempt is
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
    return {"validation_id": report.validation_id, "rows": report.rows}


def score(
    settings: Settings,
    spec: ModelSpec,
    as_of_date: dt.date,
    validation_id: str,
    alias: str | None = None,
    airflow_run_id: str | None = None,
) -> dict[str, Any]:
    """Score the `as_of_date` partition with models:/<model>@<alias> and replace its predictions.

    Refuses to run unless `validation_id` is a passed validation of this model and date.
    Every attempt is logged in monitoring.scoring_runs, failed ones with their error.
    """
    from pipelines.score import score_partition
    from pipelines.validate import check_passed

    alias = check_alias(alias or spec.alias)
    warehouse = open_warehouse(settings.warehouse_url)
    check_passed(warehouse, spec, as_of_date, validation_id)
    attempt = runlog.Attempt(str(uuid.uuid4()), spec.name, alias, as_of_date, airflow_run_id, dt.datetime.now(dt.UTC))
    runlog.start(warehouse, attempt, validation_outcome="passed", validation_id=validation_id)
    try:
        model = registry.resolve(settings, spec.name, alias)
        result = score_partition(settings, spec, as_of_date, model, attempt.scoring_run_id, airflow_run_id)
    except BaseException as exc:
        runlog.finish(warehouse, attempt, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    runlog.finish(
        warehouse,
        attempt,
        status="succeeded",
        model_version=model.version,
        mlflow_run_id=model.run_id,
        rows_read=result.rows_read,
        rows_scored=result.rows_scored,
        rows_rejected=0,
    )
    return {
        "scoring_run_id": attempt.scoring_run_id,
        "rows_scored": result.rows_scored,
        "model_version": model.version,
        "table": f"predictions.{spec.predictions_table}",
    }


def build_marts(settings: Settings, spec: ModelSpec, as_of_date: dt.date) -> dict[str, Any]:
    """Rebuild the dashboards' marts for `as_of_date`."""
    transform.build_marts(settings, spec, as_of_date)
    return {"model": spec.name, "as_of_date": as_of_date.isoformat()}


def run_date(
    settings: Settings,
    spec: ModelSpec,
    as_of_date: dt.date,
    alias: str | None = None,
    airflow_run_id: str | None = None,
) -> dict[str, Any]:
    """Every step for one date, in DAG order: features, validate, score, marts."""
    build_features(settings, spec, as_of_date)
    validation = validate(settings, spec, as_of_date, airflow_run_id)
    scored = score(settings, spec, as_of_date, validation["validation_id"], alias, airflow_run_id)
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


RUN_PARAMETERS = ("as_of_date", "model_alias")


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
