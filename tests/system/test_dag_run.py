"""The real score DAGs, run by Airflow's dag.test() against a real warehouse, MLflow store,
dbt project and GX suite, on both warehouses."""

import datetime as dt

import pytest

from pipelines.config.settings import DAGS_DIR
from tests.conftest import AS_OF, run_log


@pytest.fixture
def dagbag(airflow_db, settings, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    # Tasks read their configuration from the environment, as on a worker.
    monkeypatch.setenv("BATCHPRED_HOME", str(settings.home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    monkeypatch.setenv("BATCHPRED_WAREHOUSE_URL", settings.warehouse_url)
    return DagBag(dag_folder=str(DAGS_DIR))


@pytest.fixture
def dag(dagbag):
    return dagbag.dags["churn_score"]


def scores(warehouse, day, table="churn_scores", key="customer_id"):
    if warehouse.table_columns("predictions", table) is None:
        return {"n": 0}
    return warehouse.query(
        f"select count(*) as n, count(distinct {key}) as k, min(airflow_run_id) as run_id, "
        f"min(model_version) as version from predictions.{table} where as_of_date = $1",
        [day],
    ).to_pylist()[0]


def states(run):
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_a_run_for_day_d_scores_it_end_to_end(dag, warehouse):
    run = dag.test(logical_date=dt.datetime(2026, 1, 31, tzinfo=dt.UTC))
    assert run.state == "success", states(run)
    n = warehouse.query("select count(*) as n from analytics.churn_features where as_of_date = $1", [AS_OF]).to_pylist()[0]["n"]
    got = scores(warehouse, AS_OF)
    assert got["n"] == got["k"] == n > 0
    assert got["run_id"] == run.run_id
    summary = warehouse.query(
        "select entities from marts.churn_daily_summary where as_of_date = $1 and plan = '(all)'", [AS_OF]
    ).to_pylist()
    assert summary == [{"entities": n}]
    runs = run_log(warehouse)
    assert [(r["status"], r["airflow_run_id"], r["triggered_by"]) for r in runs] == [("succeeded", run.run_id, "airflow")]


def test_the_text_keyed_model_runs_through_its_dag(dagbag, warehouse):
    run = dagbag.dags["payment_risk_score"].test(run_conf={"as_of_date": AS_OF.isoformat()})
    assert run.state == "success", states(run)
    got = scores(warehouse, AS_OF, "payment_risk_scores", "invoice_number")
    assert got["n"] == got["k"] > 0 and got["run_id"] == run.run_id


def test_a_manual_run_scores_the_date_in_its_parameters(dag, warehouse):
    day = AS_OF - dt.timedelta(days=3)
    run = dag.test(run_conf={"as_of_date": day.isoformat()})
    assert run.state == "success", states(run)
    assert scores(warehouse, day)["n"] > 0
    assert scores(warehouse, AS_OF)["n"] == 0


def test_a_manual_run_without_a_date_scores_the_last_complete_day(dag, warehouse):
    """The Trigger form pre-fills the logical date with "now"; `airflow dags test` with no
    date does the same. Neither scores today: they score the last complete day."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=123)
    run = dag.test(logical_date=now)
    assert run.state == "success", states(run)
    assert scores(warehouse, AS_OF)["n"] > 0  # the demo data ends on AS_OF
    assert scores(warehouse, now.date())["n"] == 0


def test_a_malformed_parameter_is_refused_before_any_task_runs(dag, warehouse):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="as_of_date"):
        dag.test(run_conf={"as_of_date": "2026-13-45"})
    with pytest.raises(ParamValidationError, match="model_alias"):
        dag.test(run_conf={"model_alias": "champion'; --"})
    assert warehouse.table_columns("predictions", "churn_scores") is None


@pytest.mark.parametrize(
    "conf, message",
    [
        ({"as_of_date": "2026-02-30"}, "2026-02-30 is not a date that exists"),
        ({"as_of_date": "2026-06-15"}, "is not complete: the last event in raw.usage_daily (usage_date) is on 2026-01-31"),
        ({"as_of_date": "2099-12-25"}, "is in the future"),
        ({"as_of_date": "2013-10-08"}, "needs 90 days of history"),
        ({"as_of_dte": "2026-01-31"}, "as_of_dte"),
    ],
)
def test_a_date_that_cannot_be_scored_fails_the_first_task_saying_why(dag, warehouse, conf, message):
    run = dag.test(run_conf=conf)
    assert run.state == "failed"
    assert states(run)["plan"] == "failed"
    assert warehouse.table_columns("predictions", "churn_scores") is None
    if "as_of_date" in conf and "02-30" not in conf["as_of_date"]:
        [row] = run_log(warehouse)
        assert row["status"] == "refused" and message in row["error"]  # refused before any work: not a failure


def test_a_run_dated_long_before_the_data_says_so(dag, warehouse):
    """A logical date Airflow would not have scheduled (no start date hides it): the plan says why."""
    run = dag.test(logical_date=dt.datetime(2013, 10, 8, tzinfo=dt.UTC))
    assert run.state == "failed" and states(run)["plan"] == "failed"
    [row] = run_log(warehouse)
    assert row["as_of_date"] == dt.date(2013, 10, 8) and "needs 90 days of history" in row["error"]


def test_a_dry_run_validates_but_writes_nothing(dag, warehouse):
    before = {s: warehouse.table_columns("monitoring", s) for s in ("scoring_runs", "validation_results", "churn_quarantine")}
    run = dag.test(run_conf={"dry_run": True, "as_of_date": AS_OF.isoformat()})
    assert run.state == "success", states(run)
    got = states(run)
    assert got["plan"] == got["build_features"] == got["validate"] == "success"
    assert {got["score_shard"], got["publish"], got["build_marts"]} == {"skipped"}
    assert warehouse.table_columns("predictions", "churn_scores") is None
    assert {s: warehouse.table_columns("monitoring", s) for s in before} == before
    schemas = warehouse.query("select schema_name from information_schema.schemata").column("schema_name").to_pylist()
    assert not [s for s in schemas if s.startswith("batchpred_dry_run_")]


def test_a_failed_build_is_in_the_run_log(dag, warehouse):
    warehouse.execute("insert into raw.customers select * from raw.customers limit 1")  # breaks a dbt unique test
    run = dag.test(run_conf={"as_of_date": AS_OF.isoformat()})
    assert run.state == "failed" and states(run)["build_features"] == "failed"
    [row] = run_log(warehouse)
    assert (row["status"], row["step"]) == ("failed", "build_features") and "unique" in row["error"]
