"""`batchpred unpublish`: a published date taken back in one transaction, logged, marts rebuilt.
Both warehouses, a real dbt run for the marts."""

import datetime as dt

import pytest
from conftest import resources

from pipelines.domain.errors import InputError
from pipelines.usecases import health as model_health
from pipelines.usecases import steps
from pipelines.usecases.unpublish import unpublish
from tests.conftest import AS_OF, run_log, score_date
from tests.unit.test_cli_home import run

EARLIER = AS_OF - dt.timedelta(days=1)


def counts(warehouse, day):
    tables = ["predictions.churn_scores", "predictions.churn_reasons", "monitoring.daily_health", "monitoring.feature_drift"]
    return {t: warehouse.query(f"select count(*) as n from {t} where as_of_date = $1", [day]).to_pylist()[0]["n"] for t in tables}


@pytest.fixture
def published(settings, spec, warehouse):
    """AS_OF and the day before scored (with reasons) and in the marts; AS_OF monitored."""
    resources(settings).dbt.build_features(spec, [EARLIER])
    attempts = [score_date(settings, spec, day)[0] for day in (EARLIER, AS_OF)]
    model_health.monitor(resources(settings), spec, AS_OF)
    steps.build_marts(resources(settings), spec, attempts)
    assert all(n > 0 for n in counts(warehouse, AS_OF).values())
    return attempts


def test_unpublish_removes_the_date_everywhere_logs_it_and_rebuilds_the_marts(settings, spec, warehouse, published):
    before = counts(warehouse, EARLIER)
    scored = counts(warehouse, AS_OF)["predictions.churn_scores"]
    result = unpublish(resources(settings), spec, AS_OF, AS_OF)
    assert result.dates == [AS_OF] and result.skipped == []
    assert result.removed["predictions.churn_scores"] == scored
    assert counts(warehouse, AS_OF) == dict.fromkeys(before, 0)
    assert counts(warehouse, EARLIER) == before  # the other date is untouched
    latest = warehouse.query("select distinct as_of_date from marts.churn_latest_scores").to_pylist()
    assert latest == [{"as_of_date": EARLIER}]  # "latest" moved back
    summary = warehouse.query("select count(*) as n from marts.churn_daily_summary where as_of_date = $1", [AS_OF])
    assert summary.to_pylist() == [{"n": 0}]
    last = run_log(warehouse)[-1]
    assert (last["status"], last["as_of_date"], last["rows_removed"], last["model_version"]) == (
        "unpublished",
        AS_OF,
        scored,
        published[1].pinned.version,
    )
    assert last["triggered_by"] and last["ended_at"] is not None


def test_a_date_without_predictions_is_refused_and_a_range_says_which_it_skipped(settings, spec, warehouse, published):
    never = AS_OF - dt.timedelta(days=10)
    log = run_log(warehouse)
    with pytest.raises(InputError, match=f"no predictions for {never}: nothing to unpublish"):
        unpublish(resources(settings), spec, never, never)
    assert run_log(warehouse) == log and counts(warehouse, AS_OF)["predictions.churn_scores"] > 0

    start = AS_OF - dt.timedelta(days=3)
    result = unpublish(resources(settings), spec, start, AS_OF)
    assert result.dates == [EARLIER, AS_OF] and result.skipped == [start, start + dt.timedelta(days=1)]
    assert warehouse.query("select count(*) as n from predictions.churn_scores").to_pylist() == [{"n": 0}]
    assert [r["as_of_date"] for r in run_log(warehouse) if r["status"] == "unpublished"] == [EARLIER, AS_OF]


def test_a_failure_inside_the_transaction_leaves_everything_as_it_was(settings, spec, warehouse, published, monkeypatch):
    before = counts(warehouse, AS_OF)
    log = run_log(warehouse)
    cls = type(warehouse)

    def failing_load(self, con, schema, table, batches):
        raise RuntimeError("the run-log write failed")

    monkeypatch.setattr(cls, "_load", failing_load)  # the last statement of the transaction
    with pytest.raises(RuntimeError, match="run-log write failed"):
        unpublish(resources(settings), spec, AS_OF, AS_OF)
    monkeypatch.undo()
    assert counts(warehouse, AS_OF) == before and run_log(warehouse) == log


@pytest.mark.parametrize("backend", ["duckdb"])  # the command line is the same on both
def test_the_command_line_says_what_it_removed(settings, spec, warehouse, published):
    env = {"MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri, "BATCHPRED_WAREHOUSE_URL": settings.warehouse_url}
    result = run("unpublish", "churn", "--date", str(AS_OF), home=settings.home, **env)
    assert result.returncode == 0, result.stderr
    assert f"unpublished churn for {AS_OF}: removed predictions.churn_scores:" in result.stdout
    assert "--only missing" in result.stdout and result.stderr == ""
    again = run("unpublish", "churn", "--date", str(AS_OF), home=settings.home, **env)
    assert again.returncode == 1 and "nothing to unpublish" in again.stderr and "Traceback" not in again.stderr
