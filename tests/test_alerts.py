"""Alerts reach a person: the monitor DAG and the task-failure notifier post to the webhook of
an Airflow connection, here a real HTTP server on loopback. Exactly one message per alert."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines import steps
from pipelines.settings import DAGS_DIR
from tests.conftest import AS_OF, score_date
from tests.test_monitoring import drifted


@pytest.fixture
def webhook():
    """An HTTP server that records every JSON body posted to it."""
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/batchpred", received
    server.shutdown()


@pytest.fixture
def dagbag(airflow_db, settings, monkeypatch, webhook):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("BATCHPRED_HOME", str(settings.home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    monkeypatch.setenv("BATCHPRED_WAREHOUSE_URL", settings.warehouse_url)
    monkeypatch.setenv("AIRFLOW_CONN_BATCHPRED_ALERTS", webhook[0])
    return DagBag(dag_folder=str(DAGS_DIR))


def states(run):
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_the_monitor_dag_posts_each_alert_once_and_asks_for_a_retrain(dagbag, settings, spec, warehouse, webhook):
    _, received = webhook
    days = [AS_OF - dt.timedelta(days=1), AS_OF]
    drifted(settings, spec, days)
    for day in days:
        score_date(settings, spec, day)
    steps.monitor(settings, spec, days[0])  # the day before, so today's drift is its second in a row
    run = dagbag.dags["churn_monitor"].test(run_conf={"as_of_date": AS_OF.isoformat()})
    assert run.state == "success", states(run)
    assert states(run) == {"monitor": "success", "notify": "success", "request_retrain": "success"}
    alerts = warehouse.query("select * from monitoring.alerts where as_of_date = $1", [AS_OF]).to_pylist()
    assert len(alerts) >= 3
    assert len(received) == len(alerts)
    assert sorted((m["check_name"], m["subject"]) for m in received) == sorted((a["check_name"], a["subject"]) for a in alerts)
    assert all(m["text"].startswith("[batchpred] ") and m["as_of_date"] == AS_OF.isoformat() for m in received)
    report = settings.home / "reports" / "churn" / f"{AS_OF}.html"  # the monitor writes the date's report
    assert report.exists() and "tenure_days" in report.read_text()


def test_an_undrifted_date_posts_nothing_and_asks_for_nothing(dagbag, settings, spec, webhook):
    _, received = webhook
    score_date(settings, spec)
    run = dagbag.dags["churn_monitor"].test(run_conf={"as_of_date": AS_OF.isoformat()})
    assert run.state == "success" and states(run)["request_retrain"] == "skipped"
    assert received == []


def test_a_failed_task_reaches_the_webhook_once(dagbag, webhook):
    _, received = webhook
    run = dagbag.dags["churn_score"].test(run_conf={"as_of_date": AS_OF.isoformat(), "model_alias": "nope"})
    assert run.state == "failed" and states(run)["plan"] == "failed"
    assert len(received) == 1
    [message] = received
    assert message["check_name"] == "task_failed" and message["subject"] == "churn_score.plan" and "nope" in message["message"]
