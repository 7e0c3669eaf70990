"""No secret reaches a log line, an error message, a table or a report: a webhook token in the
URL's path and in its query, a webhook user:password, a warehouse password (PostgreSQL) and an
MLflow tracking URI with user:password."""

import dataclasses
import datetime as dt

import pytest
from conftest import resources

from pipelines.config.settings import DAGS_DIR
from pipelines.usecases import steps
from tests.conftest import _AIRFLOW_HOME, AS_OF, score_date
from tests.integration.test_monitoring import drifted
from tests.system.test_alerts import Receiver
from tests.unit.test_redact import HOOK_PASSWORD, PATH_TOKEN, QUERY_TOKEN, SECRETS, WAREHOUSE_PASSWORD


def everything_written(warehouse, home) -> str:
    """Every monitoring and predictions table, and every report, as text."""
    tables = warehouse.query(
        "select table_schema as s, table_name as t from information_schema.tables where table_schema in ('monitoring', 'marts')"
    ).to_pylist()
    dumps = [str(warehouse.query(f'select * from "{r["s"]}"."{r["t"]}"').to_pylist()) for r in tables]
    reports = [p.read_text() for p in (home / "reports").rglob("*.html")] if (home / "reports").exists() else []
    return "\n".join(dumps + reports)


def airflow_logs() -> str:
    return "\n".join(p.read_text(errors="replace") for p in (_AIRFLOW_HOME / "logs").rglob("*") if p.is_file())


def test_a_failing_webhook_with_secrets_leaks_none_through_the_monitor_dag(
    airflow_db, settings, spec, backend, monkeypatch, caplog, capsys
):
    from airflow.dag_processing.dagbag import DagBag

    from pipelines.adapters.warehouse import open_warehouse

    if backend == "postgres":  # the test cluster trusts loopback, so the password is carried and ignored
        settings = dataclasses.replace(
            settings, warehouse_url=settings.warehouse_url.replace("://postgres@", f"://postgres:{WAREHOUSE_PASSWORD}@")
        )
        assert WAREHOUSE_PASSWORD in settings.warehouse_url
    hook = Receiver(path=f"/hooks/{PATH_TOKEN}?token={QUERY_TOKEN}", userinfo=f"hookuser:{HOOK_PASSWORD}@")
    hook.failures = {"*": [500] * 100}  # every post is refused: error messages are where URLs leak
    days = [AS_OF - dt.timedelta(days=1), AS_OF]
    drifted(settings, spec, days)
    for day in days:
        score_date(settings, spec, day)
    monkeypatch.setenv("BATCHPRED_HOME", str(settings.home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    monkeypatch.setenv("BATCHPRED_WAREHOUSE_URL", settings.warehouse_url)
    monkeypatch.setenv("AIRFLOW_CONN_BATCHPRED_ALERTS", hook.url)
    try:
        dag = DagBag(dag_folder=str(DAGS_DIR)).dags["churn_monitor"]
        dag.get_task("notify").retries = 0
        run = dag.test(run_conf={"as_of_date": AS_OF.isoformat()})
    finally:
        hook.close()
    assert {ti.task_id: ti.state for ti in run.get_task_instances()}["notify"] == "failed"
    # The webhook was reached with its secrets (they were used), and refused every alert.
    assert hook.requests and all(r["path"] == f"/hooks/{PATH_TOKEN}?token={QUERY_TOKEN}" for r in hook.requests)
    assert all(r["headers"]["Authorization"].startswith("Basic ") for r in hook.requests)

    logs = caplog.text + "\n".join(capsys.readouterr()) + airflow_logs()
    written = everything_written(open_warehouse(settings.warehouse_url), settings.home)
    assert "answered 500 Internal Server Error" in logs  # the failures were logged, and captured here
    assert "the webhook answered 500 Internal Server Error" in written  # and recorded
    for secret in SECRETS:
        assert secret not in logs, secret
        assert secret not in written, secret
    assert "hooks/T0PATHSECRET" not in logs + written


def test_an_mlflow_password_reaches_neither_the_error_nor_the_run_log(settings, spec, warehouse, monkeypatch):
    from pipelines.domain.errors import RegistryUnavailable

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    hook = Receiver(path="/")
    hook.failures = {"*": [500] * 100}
    # A tracking server that answers 500, at a URL with a password and a token.
    uri = hook.url.replace("http://", f"http://mluser:{HOOK_PASSWORD}@").rstrip("/") + f"/?token={QUERY_TOKEN}"
    try:
        with pytest.raises(RegistryUnavailable) as failed:
            steps.plan(resources(dataclasses.replace(settings, mlflow_tracking_uri=uri)), spec, AS_OF)
    finally:
        hook.close()
    assert "did not answer" in str(failed.value)
    runs = str(warehouse.query("select * from monitoring.scoring_runs").to_pylist())
    assert "did not answer" in runs
    for secret in (HOOK_PASSWORD, QUERY_TOKEN):
        assert secret not in str(failed.value) and secret not in runs
