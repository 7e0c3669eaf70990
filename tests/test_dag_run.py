"""The real churn_score DAG, run by Airflow's dag.test() against a real warehouse,
MLflow store, dbt project and GX suite."""

import datetime as dt

import pytest

from pipelines.settings import DAGS_DIR
from tests.conftest import AS_OF


@pytest.fixture
def dag(airflow_db, settings, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    # Tasks read their configuration from the environment, as on a worker.
    monkeypatch.setenv("BATCHPRED_HOME", str(settings.home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    monkeypatch.setenv("BATCHPRED_WAREHOUSE_URL", settings.warehouse_url)
    return DagBag(dag_folder=str(DAGS_DIR)).dags["churn_score"]


def scores(warehouse, day):
    return warehouse.query(
        "select count(*) as n, count(distinct customer_id) as k, min(airflow_run_id) as run_id, "
        "min(model_version) as version from predictions.churn_scores where as_of_date = $1",
        [day],
    ).to_pylist()[0]


def test_the_scheduled_run_scores_its_date_end_to_end(dag, warehouse):
    run = dag.test(logical_date=dt.datetime(2026, 1, 31, tzinfo=dt.UTC))
    assert run.state == "success"
    n = warehouse.query("select count(*) as n from analytics.churn_features where as_of_date = $1", [AS_OF]).to_pylist()[0]["n"]
    got = scores(warehouse, AS_OF)
    assert got["n"] == got["k"] == n > 0
    assert got["run_id"] == run.run_id
    summary = warehouse.query(
        "select sum(customers) as n from marts.churn_daily_summary where as_of_date = $1", [AS_OF]
    ).to_pylist()
    assert summary[0]["n"] == n
    runs = warehouse.query("select status, airflow_run_id from monitoring.scoring_runs").to_pylist()
    assert runs == [{"status": "succeeded", "airflow_run_id": run.run_id}]


def test_a_manual_run_scores_the_date_in_its_parameters(dag, warehouse):
    day = AS_OF - dt.timedelta(days=3)
    run = dag.test(logical_date=dt.datetime(2026, 1, 31, tzinfo=dt.UTC), run_conf={"as_of_date": day.isoformat()})
    assert run.state == "success"
    assert scores(warehouse, day)["n"] > 0
    assert warehouse.table_columns("predictions", "churn_scores") is not None
    assert scores(warehouse, AS_OF)["n"] == 0


def test_a_malformed_parameter_is_refused_before_any_task_runs(dag, warehouse):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="as_of_date"):
        dag.test(logical_date=dt.datetime(2026, 1, 31, tzinfo=dt.UTC), run_conf={"as_of_date": "2026-13-45"})
    with pytest.raises(ParamValidationError, match="model_alias"):
        dag.test(logical_date=dt.datetime(2026, 1, 31, tzinfo=dt.UTC), run_conf={"model_alias": "champion'; --"})
    assert warehouse.table_columns("predictions", "churn_scores") is None


def test_a_dry_run_validates_but_publishes_nothing(dag, warehouse):
    run = dag.test(logical_date=dt.datetime(2026, 1, 31, tzinfo=dt.UTC), run_conf={"dry_run": True})
    assert run.state == "success"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["validate"] == "success" and states["resolve_model"] == "success"
    assert {states["score_shard"], states["publish"], states["build_marts"]} == {"skipped"}
    assert warehouse.table_columns("predictions", "churn_scores") is None
