"""The run log tells a refusal from a failure: a request refused before any work is `refused`,
and what reads a date's latest attempt (`backfill --only failed`, the failure counts) looks at
its latest real attempt. Real warehouses (both), the real MLflow store, the real CLI."""

import datetime as dt
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import resources

from pipelines.adapters.warehouse import queries
from pipelines.domain.errors import (
    BatchpredError,
    ContractError,
    IncompleteDate,
    InputError,
    ModelNotFound,
    RegistryUnavailable,
    ValidationFailed,
)
from pipelines.scoring import runlog
from pipelines.usecases import backfill, steps
from tests.conftest import AS_OF, run_log, score_date

BATCHPRED = str(Path(sys.executable).with_name("batchpred"))


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "BATCHPRED_HOME": str(settings.home),
        "BATCHPRED_WAREHOUSE_URL": settings.warehouse_url,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    return subprocess.run([BATCHPRED, *args], capture_output=True, text=True, env=env)


def attempts(warehouse) -> list[dict]:
    """The run log's rows (none if setup has not created it yet)."""
    return [] if warehouse.table_columns("monitoring", "scoring_runs") is None else run_log(warehouse)


def test_a_mistyped_alias_on_a_healthy_date_is_refused_and_only_failed_plans_nothing(settings, spec, warehouse):
    """The issue's case: `score --alias staging` (a typo) on a date already scored and healthy."""
    score_date(settings, spec)
    before = warehouse.query("select count(*) as n, sum(score) as s from predictions.churn_scores").to_pylist()
    result = cli(settings, "score", "churn", "--date", AS_OF.isoformat(), "--alias", "staging")
    assert result.returncode == 1 and "Traceback" not in result.stderr and "staging" in result.stderr, result.stderr
    assert warehouse.query("select count(*) as n, sum(score) as s from predictions.churn_scores").to_pylist() == before
    published, refused = run_log(warehouse)
    assert published["status"] == "published"
    assert (refused["status"], refused["step"], refused["model_alias"]) == ("refused", "plan", "staging")
    assert "staging" in refused["error"] and refused["ended_at"] is not None and refused["model_version"] is None
    assert queries.latest_statuses(warehouse, "churn", AS_OF, AS_OF) == {AS_OF: "published"}
    assert backfill.plan(resources(settings), spec, AS_OF, AS_OF, "failed").dates == []
    assert backfill.plan(resources(settings), spec, AS_OF, AS_OF, "stale").dates == []
    dry = cli(settings, "backfill", "churn", "--start", AS_OF.isoformat(), "--end", AS_OF.isoformat(), "--only", "failed",
              "--dry-run")  # fmt: skip
    assert dry.returncode == 0 and "plan: 0 date(s)" in dry.stdout, dry.stdout + dry.stderr


def test_a_refusal_after_a_real_failure_leaves_the_date_failed(settings, spec, warehouse):
    """The latest *real* attempt decides: a refusal does not hide the failure before it."""
    attempt = steps.plan(resources(settings), spec, AS_OF)
    runlog.failed(resources(settings), attempt, "validate", ValidationFailed("active_days_30d: 3 values above 31"))
    with pytest.raises(ModelNotFound):
        steps.plan(resources(settings), spec, AS_OF, alias="staging")
    assert [r["status"] for r in run_log(warehouse)] == ["failed", "refused"]
    assert queries.latest_statuses(warehouse, "churn", AS_OF, AS_OF) == {AS_OF: "failed"}
    assert backfill.plan(resources(settings), spec, AS_OF, AS_OF, "failed").dates == [AS_OF]


@pytest.mark.parametrize(
    "problem, error, message",
    [
        ("unknown alias", ModelNotFound, "no alias 'staging'"),
        ("malformed alias", InputError, "model_alias must be an MLflow alias name"),
        ("future date", IncompleteDate, "is in the future"),
        ("date past the data", IncompleteDate, "the last event in raw.usage_daily (usage_date) is on 2026-01-31"),
        ("date without its history", IncompleteDate, "needs 90 days of history"),
        ("date before scoring.start_date", IncompleteDate, "is before scoring.start_date 2026-01-15"),
        ("spec the version contradicts", ContractError, "order"),
    ],
)
def test_each_request_refused_before_any_work_is_recorded_as_refused(settings, spec, warehouse, problem, error, message):
    day, alias = AS_OF, None
    if problem == "unknown alias":
        alias = "staging"
    elif problem == "malformed alias":
        alias = "staging; drop"
    elif problem == "future date":
        day = dt.date(2099, 12, 25)
    elif problem == "date past the data":
        day = AS_OF + dt.timedelta(days=30)
    elif problem == "date without its history":
        day = dt.date(2025, 6, 1)
    elif problem == "date before scoring.start_date":
        day, spec = AS_OF - dt.timedelta(days=30), replace(spec, scoring=replace(spec.scoring, start_date=dt.date(2026, 1, 15)))
    else:
        spec = replace(spec, numeric_features=tuple(reversed(spec.numeric_features)))
    with pytest.raises(error) as refused:
        steps.plan(resources(settings), spec, day, alias)
    assert message in str(refused.value)
    [row] = run_log(warehouse)
    assert (row["status"], row["step"], row["as_of_date"]) == ("refused", "plan", day)
    assert message in row["error"] and row["ended_at"] is not None
    assert warehouse.table_columns("predictions", "churn_scores") is None
    assert queries.latest_statuses(warehouse, "churn", day, day) == {}


def test_a_registry_that_does_not_answer_is_a_failure_not_a_refusal(settings, spec, warehouse, monkeypatch):
    """Asking again can succeed, so it is an attempt that failed (and Airflow retries it)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own retries take minutes
    with pytest.raises(RegistryUnavailable):
        steps.plan(resources(replace(settings, mlflow_tracking_uri="http://127.0.0.1:9/")), spec, AS_OF)
    [row] = run_log(warehouse)
    assert (row["status"], row["step"]) == ("failed", "plan") and "127.0.0.1:9" in row["error"]
    assert queries.latest_statuses(warehouse, "churn", AS_OF, AS_OF) == {AS_OF: "failed"}


def test_an_unknown_model_is_refused_by_name_and_writes_nothing(settings, warehouse):
    """No spec, so nothing to key a run-log row by: the error names the model and the known ones."""
    result = cli(settings, "score", "churm", "--date", AS_OF.isoformat())
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "models/churm/model.yaml" in result.stderr and "known models: churn" in result.stderr
    assert attempts(warehouse) == []


def test_a_dry_run_that_is_refused_writes_nothing(settings, spec, warehouse):
    with pytest.raises(BatchpredError, match="staging"):
        steps.plan(resources(settings), spec, AS_OF, alias="staging", dry_run=True)
    assert attempts(warehouse) == []
