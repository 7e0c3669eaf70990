"""Alerts reach a person: the monitor DAG and the task-failure notifier post to the webhook of
an Airflow connection, here a real HTTP server on loopback. Exactly one message per alert."""

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import resources

from pipelines.config.settings import DAGS_DIR
from pipelines.usecases import health as model_health
from tests.conftest import AS_OF, score_date
from tests.integration.test_monitoring import drifted


class Receiver:
    """A real webhook on loopback. `received` holds each JSON body it accepted (answered 2xx);
    `failures` says what to do instead, once per request: an HTTP status to answer, or "hang"
    (answer nothing for `hang_seconds`), taken in order by a subject, or by "*" for any request."""

    def __init__(self, path: str = "/hooks/batchpred", userinfo: str = ""):
        self.received: list[dict] = []
        self.requests: list[dict] = []  # every request: path, headers, body and what it got
        self.failures: dict[str, list] = {}
        self.hang_seconds = 3.0
        receiver = self

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                plan = receiver.failures.get(body.get("subject")) or receiver.failures.get("*") or []
                outcome = plan.pop(0) if plan else 204
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body, "outcome": outcome})
                if outcome == "hang":
                    time.sleep(receiver.hang_seconds)  # then close without an answer
                    return
                if outcome < 300:
                    receiver.received.append(body)
                self.send_response(outcome)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://{userinfo}127.0.0.1:{self.server.server_port}{path}"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    hook = Receiver()
    yield hook
    hook.close()


@pytest.fixture
def webhook(receiver):
    """(URL, the JSON bodies accepted) of a webhook on loopback."""
    return receiver.url, receiver.received


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
    model_health.monitor(resources(settings), spec, days[0])  # the day before, so today's drift is its second in a row
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


# -- delivery: each alert on its own, recorded, retried ---------------------------------


def some_alerts(day=AS_OF, subjects=("tenure_days", "plan", "tickets_30d", "score")):
    return [
        {
            "model_name": "churn", "model_version": 1, "as_of_date": day, "check_name": "psi", "subject": s,
            "severity": "alert", "value": 0.3, "threshold": 0.25, "message": f"{s}: psi is 0.300 (threshold 0.25)",
        }
        for s in subjects
    ]  # fmt: skip


def deliveries(warehouse):
    rows = warehouse.query("select * from monitoring.alert_deliveries order by queued_at, subject").to_pylist()
    return {(r["as_of_date"], r["subject"]): r for r in rows}


def test_a_500_and_a_hang_stop_no_other_alert_and_the_next_run_delivers_them_once(settings, warehouse, receiver):
    from pipelines.monitoring.alerts import UndeliveredAlerts, alert_id, deliver

    receiver.failures = {"plan": [500], "tickets_30d": ["hang"]}
    receiver.hang_seconds = 2.0
    today = some_alerts()
    with pytest.raises(UndeliveredAlerts) as failed:
        deliver(warehouse, "churn", receiver.url, today, timeout=0.5)
    message = str(failed.value)
    assert message.startswith("2 of 4 alert(s) of churn not delivered to http://127.0.0.1:")
    assert "plan: the webhook answered 500 Internal Server Error" in message
    assert "tickets_30d: the webhook did not answer within 0.5s" in message and "hooks/batchpred" not in message
    assert sorted(m["subject"] for m in receiver.received) == ["score", "tenure_days"]
    rows = deliveries(warehouse)
    done, failed_500, hung = rows[AS_OF, "score"], rows[AS_OF, "plan"], rows[AS_OF, "tickets_30d"]
    assert (done["status"], done["attempts"], done["last_error"]) == ("delivered", 1, None) and done["delivered_at"]
    assert (failed_500["status"], failed_500["attempts"], failed_500["delivered_at"]) == ("pending", 1, None)
    assert failed_500["last_error"] == "the webhook answered 500 Internal Server Error"
    assert (hung["status"], hung["attempts"], hung["last_error"]) == ("pending", 1, "the webhook did not answer within 0.5s")
    assert done["destination"] == f"http://127.0.0.1:{receiver.server.server_port}/***"
    # Every request carries the alert's stable id, in the body and as the idempotency header.
    assert sorted(r["body"]["alert_id"] for r in receiver.requests) == sorted(alert_id(a) for a in today)
    assert all(r["headers"]["Idempotency-Key"] == r["body"]["alert_id"] for r in receiver.requests)

    # The next day's run delivers its own alert and the two pending ones; nothing is posted twice.
    tomorrow = some_alerts(AS_OF + dt.timedelta(days=1), ("tenure_days",))
    assert deliver(warehouse, "churn", receiver.url, tomorrow, timeout=0.5) == 3
    ids = [m["alert_id"] for m in receiver.received]
    assert len(ids) == len(set(ids)) == 5
    rows = deliveries(warehouse)
    assert len(rows) == 5 and all(r["status"] == "delivered" for r in rows.values())
    attempts = {k[1]: r["attempts"] for k, r in rows.items() if k[0] == AS_OF}
    assert attempts == {"tenure_days": 1, "plan": 2, "tickets_30d": 2, "score": 1}
    # Monitoring the same date again raises the same alerts: delivered already, so not posted again.
    assert deliver(warehouse, "churn", receiver.url, today, timeout=0.5) == 0
    assert len(receiver.received) == 5 and len(deliveries(warehouse)) == 5


def test_a_hanging_receiver_costs_one_timeout_per_alert_and_the_total_is_bounded(settings, warehouse, receiver):
    from pipelines.monitoring.alerts import UndeliveredAlerts, deliver

    receiver.failures = {"*": ["hang"] * 4}
    receiver.hang_seconds = 3.0
    started = time.monotonic()
    with pytest.raises(UndeliveredAlerts, match="4 of 4 alert"):
        deliver(warehouse, "churn", receiver.url, some_alerts(), timeout=0.4, budget=0.9)
    assert time.monotonic() - started < 6  # not four hangs of 3s (the rest is recording, on a busy machine)
    rows = list(deliveries(warehouse).values())
    untried = [r for r in rows if r["attempts"] == 0]
    assert 1 <= len(untried) <= 2 and len(receiver.requests) == 4 - len(untried)
    assert {(r["status"], r["last_error"]) for r in untried} == {("pending", "not tried: this run's 0.9s for deliveries ran out")}
    assert receiver.received == []


def test_no_webhook_records_nothing_and_says_so(settings, warehouse, caplog):
    from pipelines.monitoring.alerts import deliver

    assert deliver(warehouse, "churn", None, some_alerts(), "the webhook connection 'batchpred_alerts'") == 0
    assert "4 alert(s) are in monitoring.alerts, none sent: no webhook" in caplog.text
    if warehouse.table_columns("monitoring", "alert_deliveries") is not None:  # setup may have made it, empty
        assert deliveries(warehouse) == {}


def test_the_monitor_dag_tries_every_alert_turns_red_and_its_next_run_delivers_the_rest(
    dagbag, settings, spec, warehouse, receiver
):
    days = [AS_OF - dt.timedelta(days=1), AS_OF]
    drifted(settings, spec, days)
    for day in days:
        score_date(settings, spec, day)
    receiver.failures = {"*": [500]}  # the run's first post is refused
    dag = dagbag.dags["churn_monitor"]
    dag.get_task("notify").retries = 0  # dag.test() would wait out the retry delay: the next run stands in for it
    run = dag.test(run_conf={"as_of_date": AS_OF.isoformat()})
    assert (states(run)["monitor"], states(run)["notify"], run.state) == ("success", "failed", "failed")
    alerts = warehouse.query("select * from monitoring.alerts where as_of_date = $1", [AS_OF]).to_pylist()
    assert len(alerts) >= 3
    refused = receiver.requests[0]["body"]
    health_messages = [m for m in receiver.received if m["check_name"] != "task_failed"]
    assert len(health_messages) == len(alerts) - 1 and refused["alert_id"] not in {m["alert_id"] for m in health_messages}
    # The failed notify reached the webhook too, saying how many and why.
    [failure] = [m for m in receiver.received if m["check_name"] == "task_failed"]
    assert failure["subject"] == "churn_monitor.notify"
    assert f"1 of {len(alerts)} alert(s) of churn not delivered" in failure["message"] and "answered 500" in failure["message"]
    pending = warehouse.query("select * from monitoring.alert_deliveries where delivered_at is null").to_pylist()
    assert [(r["alert_id"], r["attempts"], r["last_error"]) for r in pending] == [
        (refused["alert_id"], 1, "the webhook answered 500 Internal Server Error")
    ]

    again = dag.test(run_conf={"as_of_date": AS_OF.isoformat()})
    assert states(again)["notify"] == "success"
    health_messages = [m for m in receiver.received if m["check_name"] != "task_failed"]
    key = ("check_name", "subject")
    assert sorted([m[k] for k in key] for m in health_messages) == sorted([a[k] for k in key] for a in alerts)
    assert len(health_messages) == len(alerts) and len({m["alert_id"] for m in health_messages}) == len(alerts)
    assert warehouse.query("select count(*) as n from monitoring.alert_deliveries where delivered_at is null").to_pylist() == [
        {"n": 0}
    ]
