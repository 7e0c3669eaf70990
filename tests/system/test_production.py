"""The production topology, run natively on loopback: PostgreSQL (warehouse, Airflow
metadata, MLflow backend), Redis, an MLflow tracking server, and Airflow's
api-server, scheduler and dag-processor with two Celery workers. This is what
docker-compose.yml starts; Docker itself cannot run on these machines.

`churn_score` is triggered through the REST API with a date in the run parameters,
as the UI's Trigger button does, and each worker must run its shards when it alone
consumes the queue.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from celery import Celery
from conftest import resources

from pipelines.adapters.warehouse import open_warehouse
from pipelines.config.settings import DAGS_DIR, REPO_ROOT
from pipelines.usecases import models
from tests.conftest import AS_OF, DEMO, settings_for
from tests.services import Redis, create_database, free_port, wait_for_port
from tests.services import wait_until as services_wait_until

BIN = Path(sys.executable).parent
ADMIN_PASSWORD = secrets.token_urlsafe(16)
WORKERS = ("worker-1", "worker-2")  # each reports this name as its hostname (tests/worker_identity.py)
QUEUE = "default"  # the Celery queue of every batchpred task (Airflow's [operators] default_queue)


class Stack:
    def __init__(self, root: Path, env: dict[str, str]):
        self.root, self.env, self.processes = root, env, []

    def start(self, name: str, *command: str, **extra_env: str) -> subprocess.Popen:
        log = (self.root / f"{name}.log").open("w")
        process = subprocess.Popen(
            command, env={**self.env, **extra_env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append((name, process))
        return process

    def run(self, *command: str) -> str:
        result = subprocess.run(command, env=self.env, capture_output=True, text=True)
        assert result.returncode == 0, f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        return result.stdout

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        for _, process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_until(check, timeout: float, what: str, stack: Stack):
    return services_wait_until(check, timeout, what, stack.logs)


@pytest.fixture(scope="module")
def stack(postgres, base_home, tmp_path_factory):
    from pipelines.config.spec import load_spec
    from pipelines.faces.demo import load_demo_data
    from pipelines.faces.demo_data import DemoConfig

    root = tmp_path_factory.mktemp("production")
    warehouse_url = create_database(postgres, "prod_warehouse")
    airflow_db = create_database(postgres, "prod_airflow").replace("postgresql://", "postgresql+psycopg2://")
    mlflow_db = create_database(postgres, "prod_mlflow").replace("postgresql://", "postgresql+psycopg://")
    redis = Redis()
    mlflow_port, api_port = free_port(), free_port()
    tracking_uri = f"http://127.0.0.1:{mlflow_port}"
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({"admin": ADMIN_PASSWORD}))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "BATCHPRED_", "MLFLOW_"))},
        "PYTHONPATH": str(REPO_ROOT),
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.worker_identity.hostname",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
        "AIRFLOW__CELERY__BROKER_URL": redis.url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + airflow_db.replace("+psycopg2", ""),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "BATCHPRED_HOME": str(root / "batchpred"),
        "BATCHPRED_WAREHOUSE_URL": warehouse_url,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PYTHONWARNINGS": "ignore",
    }
    stack = Stack(root, env)
    try:
        mlflow = stack.start(
            "mlflow",
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            mlflow_db,
            "--artifacts-destination",
            str(root / "mlartifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
        )
        stack.run(str(BIN / "airflow"), "db", "migrate")
        stack.run(str(BIN / "airflow"), "pools", "set", "batchpred_warehouse", "4", "warehouse writers")
        stack.start("api-server", str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(api_port))
        for name in ("worker-1", "worker-2"):
            stack.start(
                name,
                str(BIN / "airflow"),
                "celery",
                "worker",
                "--concurrency",
                "1",
                "--celery-hostname",
                f"{name}@%h",
                BATCHPRED_TEST_WORKER_NAME=name,
                AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            )

        # Meanwhile: the warehouse gets its demo data, the MLflow server a champion.
        wait_for_port(mlflow_port, timeout=120, process=mlflow)
        settings = replace(settings_for(root / "batchpred", tracking_uri), warehouse_url=warehouse_url)
        load_demo_data(resources(settings), DemoConfig(**DEMO))
        trained = models.train(resources(settings), load_spec("churn"), AS_OF)
        # Only now the scheduler: the DAGs are unpaused at creation, and a scheduled run
        # building the staging views while training builds them too collides in
        # PostgreSQL ("relation already exists"), as it did once in a fresh-clone run.
        stack.start("scheduler", str(BIN / "airflow"), "scheduler", AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()))
        stack.start("dag-processor", str(BIN / "airflow"), "dag-processor")
        wait_for_port(api_port, timeout=120)
        yield {"stack": stack, "api": f"http://127.0.0.1:{api_port}", "settings": settings, "trained": trained}
    finally:
        stack.stop()
        redis.stop()


@pytest.fixture(scope="module")
def api(stack):
    token = httpx.post(f"{stack['api']}/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=30)
    assert token.status_code in (200, 201), token.text
    client = httpx.Client(
        base_url=f"{stack['api']}/api/v2", headers={"Authorization": f"Bearer {token.json()['access_token']}"}, timeout=30
    )
    wait_until(lambda: client.get("/dags/churn_score").status_code == 200, 180, "churn_score to be parsed", stack["stack"])
    # The scheduler's run for yesterday, far past this home's data, waits for it: deferred on a
    # Celery worker, holding no slot (scoring.wait_for_data_minutes; tests/system/test_late_data.py
    # follows such a night to its end). One run at a time: the runs these tests trigger would
    # queue behind it for hours, so it is marked failed, as an operator would.
    runs = lambda: client.get("/dags/churn_score/dagRuns").json()["dag_runs"]  # noqa: E731
    scheduled = wait_until(
        lambda: next((r for r in runs() if r["run_type"] == "scheduled"), None),
        180,
        "churn_score's scheduled run",
        stack["stack"],
    )
    waiting = f"/dags/churn_score/dagRuns/{scheduled['dag_run_id']}"
    wait_until(
        lambda: client.get(f"{waiting}/taskInstances/wait_for_data").json().get("state") == "deferred",
        180,
        "the scheduled run's wait_for_data to defer",
        stack["stack"],
    )
    assert client.patch(waiting, json={"state": "failed"}).status_code == 200
    yield client
    client.close()


def test_the_api_requires_a_login(stack):
    assert httpx.get(f"{stack['api']}/api/v2/dags", timeout=30).status_code in (401, 403)
    wrong = httpx.post(f"{stack['api']}/auth/token", json={"username": "admin", "password": "admin"}, timeout=30)
    assert wrong.status_code in (401, 403)


def test_a_bad_run_parameter_is_refused_by_the_api(api):
    response = api.post("/dags/churn_score/dagRuns", json={"logical_date": None, "conf": {"as_of_date": "2026-13-45"}})
    assert response.status_code == 400
    assert "as_of_date" in response.text


def test_each_worker_runs_the_tasks_of_the_queue_it_consumes_and_the_run_lands_in_postgres(stack, api):
    """Both Celery workers answer, and each runs a triggered run's tasks, both shards included,
    when it alone consumes the queue. Which of two free workers Celery hands a task to is its
    own choice (it can leave both shards to one), so that is not asserted."""
    ping = wait_until(
        lambda: (out := _ping_workers(stack["stack"])).count("pong") >= 2 and out, 120, "two Celery workers", stack["stack"]
    )
    assert "worker-1@" in ping and "worker-2@" in ping

    control = Celery(broker=stack["stack"].env["AIRFLOW__CELERY__BROKER_URL"]).control
    nodes = {node.split("@")[0]: node for reply in control.ping(timeout=10) for node in reply}
    assert set(nodes) == set(WORKERS), nodes
    try:
        for worker in WORKERS:
            _only_consumer(control, nodes, worker, stack["stack"])
            run_id = _run_to_success(stack, api)
            instances = api.get(f"/dags/churn_score/dagRuns/{run_id}/taskInstances").json()["task_instances"]
            shards = [ti for ti in instances if ti["task_id"] == "score_shard"]
            assert len(shards) == 2
            ran = [(ti["task_id"], ti["map_index"], ti["hostname"]) for ti in instances if ti["state"] == "success"]
            assert {hostname for _, _, hostname in ran} == {worker}, ran
    finally:
        for node in nodes.values():
            control.add_consumer(QUEUE, destination=[node], reply=True, timeout=10)
        wait_until(lambda: _consumers(control) == set(WORKERS), 60, f"both workers to consume {QUEUE}", stack["stack"])

    settings, trained = stack["settings"], stack["trained"]
    warehouse = open_warehouse(settings.warehouse_url)
    features = warehouse.query("select count(*) as n from analytics.churn_features where as_of_date = $1", [AS_OF]).to_pylist()[
        0
    ]["n"]
    lineage = warehouse.query(
        "select count(*) as n, count(distinct customer_id) as k, min(airflow_run_id) as run_id, max(airflow_run_id) as run_id2, "
        "min(model_version) as version, min(mlflow_run_id) as mlflow_run_id from predictions.churn_scores where as_of_date = $1",
        [AS_OF],
    ).to_pylist()[0]
    assert lineage["n"] == lineage["k"] == features > 0
    assert lineage["run_id"] == lineage["run_id2"] == run_id
    assert (lineage["version"], lineage["mlflow_run_id"]) == (trained.model.version, trained.model.run_id)


def _run_to_success(stack, api) -> str:
    """Trigger churn_score for AS_OF as the UI's Trigger button does; wait for success; return the run id."""
    response = api.post("/dags/churn_score/dagRuns", json={"logical_date": None, "conf": {"as_of_date": AS_OF.isoformat()}})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]

    def finished():
        state = api.get(f"/dags/churn_score/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    assert wait_until(finished, 600, f"run {run_id} to finish", stack["stack"]) == "success", stack["stack"].logs()
    return run_id


def _consumers(control) -> set[str]:
    """The workers consuming QUEUE, by the name each was started with."""
    queues = control.inspect(timeout=10).active_queues() or {}
    return {node.split("@")[0] for node, consumed in queues.items() if any(q["name"] == QUEUE for q in consumed)}


def _only_consumer(control, nodes: dict[str, str], worker: str, stack: Stack) -> None:
    """Make `worker` the only consumer of QUEUE (Celery's remote control), and wait until the workers say so."""
    for name, node in nodes.items():
        if name == worker:
            control.add_consumer(QUEUE, destination=[node], reply=True, timeout=10)
        else:
            control.cancel_consumer(QUEUE, destination=[node], reply=True, timeout=10)
    wait_until(lambda: _consumers(control) == {worker}, 60, f"{worker} alone to consume {QUEUE}", stack)


def _ping_workers(stack: Stack) -> str:
    result = subprocess.run(
        [str(BIN / "celery"), "--app", "airflow.providers.celery.executors.celery_executor.app", "inspect", "ping"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout


def test_an_airflow_backfill_produces_exactly_its_dates(stack, api):
    """Airflow's own backfill of A..B (both ends included) scores exactly the dates A..B."""
    first, last = "2026-01-29", "2026-01-30"
    response = api.post(
        "/backfills",
        json={
            "dag_id": "churn_score",
            "from_date": f"{first}T00:00:00Z",
            "to_date": f"{last}T00:00:00Z",
            "max_active_runs": 1,
            "reprocess_behavior": "completed",
        },
    )
    assert response.status_code == 200, response.text
    backfill_id = response.json()["id"]

    def runs_done():
        runs = api.get("/dags/churn_score/dagRuns", params={"run_type": "backfill"}).json()["dag_runs"]
        mine = [r for r in runs if str(r.get("backfill_id")) == str(backfill_id)] or runs
        return mine if len(mine) == 2 and all(r["state"] in ("success", "failed") for r in mine) else None

    runs = wait_until(runs_done, 600, "the backfill's runs to finish", stack["stack"])
    assert {r["state"] for r in runs} == {"success"}, stack["stack"].logs()
    warehouse = open_warehouse(stack["settings"].warehouse_url)
    by_date = warehouse.query(
        "select cast(as_of_date as text) as d, min(airflow_run_id) as run_id, count(*) as n, count(distinct customer_id) as k "
        "from predictions.churn_scores where as_of_date between $1 and $2 group by 1 order by 1",
        [AS_OF.replace(day=28), AS_OF.replace(day=30)],
    ).to_pylist()
    assert [r["d"] for r in by_date] == [first, last]
    assert all(r["n"] == r["k"] > 0 for r in by_date)
    assert {r["run_id"] for r in by_date} == {r["dag_run_id"] for r in runs}


def trigger(api, stack, logical_date: str | None, conf: dict, expect: str = "success") -> str:
    """Trigger churn_score as the UI's Trigger button does; wait for the run to end in `expect`."""
    response = api.post("/dags/churn_score/dagRuns", json={"logical_date": logical_date, "conf": conf})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    assert wait_for_run(api, stack, run_id) == expect, stack["stack"].logs()
    return run_id


def wait_for_run(api, stack, run_id: str) -> str:
    def finished():
        state = api.get(f"/dags/churn_score/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    return wait_until(finished, 600, f"run {run_id} to finish", stack["stack"])


def checksum(stack, day) -> dict:
    """What a rerun must not change (the scores per key), and the lineage it must change."""
    return (
        open_warehouse(stack["settings"].warehouse_url)
        .query(
            "select count(*) as n, count(distinct customer_id) as k, "
            "md5(string_agg(customer_id::text || '=' || score::text, ',' order by customer_id)) as digest, "
            "min(airflow_run_id) as airflow_run_id, count(distinct scoring_run_id) as runs, "
            "min(scoring_run_id) as scoring_run_id "
            "from predictions.churn_scores where as_of_date = $1",
            [day],
        )
        .to_pylist()[0]
    )


def test_clearing_or_retriggering_a_date_replaces_it_with_the_same_checksum(stack, api):
    day = AS_OF.isoformat()
    first_run = trigger(api, stack, None, {"as_of_date": day})
    first = checksum(stack, AS_OF)
    assert first["n"] == first["k"] > 0 and first["runs"] == 1 and first["airflow_run_id"] == first_run

    # "Clear" in the UI: every task of the run runs again, in the same Airflow run.
    cleared = api.post(
        "/dags/churn_score/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": first_run, "only_failed": False, "reset_dag_runs": True},
    )
    assert cleared.status_code == 200, cleared.text
    assert wait_for_run(api, stack, first_run) == "success", stack["stack"].logs()
    again = checksum(stack, AS_OF)
    assert again["scoring_run_id"] != first["scoring_run_id"]  # rewritten, not left alone
    assert {k: again[k] for k in ("n", "k", "digest", "runs", "airflow_run_id")} == {
        k: first[k] for k in ("n", "k", "digest", "runs", "airflow_run_id")
    }

    # "Trigger" again with the same date: a new Airflow run replaces the date.
    second_run = trigger(api, stack, None, {"as_of_date": day})
    third = checksum(stack, AS_OF)
    assert (third["n"], third["k"], third["digest"], third["runs"]) == (first["n"], first["k"], first["digest"], 1)
    assert third["airflow_run_id"] == second_run != first_run


def test_airflow_backfill_reprocess_behaviours_pick_the_right_dates(stack, api):
    """25th: scored; 26th: its run failed (an alias that did not exist yet); 27th: never run.
    Each reprocess behaviour plans its own dates, and a "failed" backfill reruns the 26th
    and fills the 27th."""
    dates = ["2026-01-25", "2026-01-26", "2026-01-27"]
    scored_run = trigger(api, stack, f"{dates[0]}T00:00:00Z", {})
    trigger(api, stack, f"{dates[1]}T00:00:00Z", {"model_alias": "retired"}, expect="failed")
    # The cause is fixed: the alias that run asked for now exists. A rerun keeps the run's parameters.
    settings = stack["settings"]
    resources(settings).registry.set_alias(resources(settings).registry.resolve("churn", "champion"), "retired")

    window = {"dag_id": "churn_score", "from_date": f"{dates[0]}T00:00:00Z", "to_date": f"{dates[2]}T00:00:00Z"}

    def planned(behaviour):
        response = api.post("/backfills/dry_run", json={**window, "reprocess_behavior": behaviour})
        assert response.status_code == 200, response.text
        return sorted(b["logical_date"][:10] for b in response.json()["backfills"])

    assert planned("none") == dates[2:]
    assert planned("failed") == dates[1:]
    assert planned("completed") == dates

    response = api.post("/backfills", json={**window, "reprocess_behavior": "failed", "max_active_runs": 1})
    assert response.status_code == 200, response.text
    backfill_id = response.json()["id"]
    wait_until(lambda: api.get(f"/backfills/{backfill_id}").json()["completed_at"], 600, "the backfill", stack["stack"])
    # A failed date's run is cleared and run again under the backfill; a missing date gets a new run.
    runs = api.get("/dags/churn_score/dagRuns", params={"logical_date_gte": f"{dates[0]}T00:00:00Z"}).json()["dag_runs"]
    latest = {}
    for run in sorted(runs, key=lambda r: r["queued_at"] or ""):
        latest[run["logical_date"][:10]] = run
    assert [latest[d]["state"] for d in dates] == ["success"] * 3, stack["stack"].logs()
    by_date = (
        open_warehouse(stack["settings"].warehouse_url)
        .query(
            "select cast(as_of_date as text) as d, min(airflow_run_id) as run_id, count(*) as n, "
            "count(distinct customer_id) as k from predictions.churn_scores where as_of_date between $1 and $2 "
            "group by 1 order by 1",
            [dt.date.fromisoformat(dates[0]), dt.date.fromisoformat(dates[2])],
        )
        .to_pylist()
    )
    assert [r["d"] for r in by_date] == dates
    assert all(r["n"] == r["k"] > 0 for r in by_date)
    assert by_date[0]["run_id"] == scored_run  # "failed" left the scored date alone


def test_drift_after_publishing_makes_the_monitor_ask_for_a_retrain_and_train_runs(stack, api):
    """The asset chain, through the scheduler: each publish of churn_score updates the
    churn_predictions asset, churn_monitor runs on it, and drift on the most important
    features on two dates in a row updates churn_retrain, on which churn_train runs. Last in
    this module: it replaces the stack's raw data with a drifted business."""
    from pipelines.faces.demo import load_demo_data
    from pipelines.faces.demo_data import DemoConfig

    settings = stack["settings"]
    load_demo_data(resources(settings), DemoConfig(**DEMO, drift_from=AS_OF - dt.timedelta(days=20)))
    for day in (AS_OF - dt.timedelta(days=1), AS_OF):
        trigger(api, stack, None, {"as_of_date": day.isoformat()})

    def finished_runs(dag_id, run_type):
        runs = api.get(f"/dags/{dag_id}/dagRuns", params={"run_type": run_type}).json()["dag_runs"]
        return [r for r in runs if r["state"] in ("success", "failed")]

    def monitored():
        rows = (
            open_warehouse(settings.warehouse_url)
            .query("select as_of_date from monitoring.daily_health where model_name = 'churn'")
            .to_pylist()
            if open_warehouse(settings.warehouse_url).table_columns("monitoring", "daily_health")
            else []
        )
        return {r["as_of_date"] for r in rows} >= {AS_OF - dt.timedelta(days=1), AS_OF}

    wait_until(monitored, 600, "churn_monitor to monitor both published dates", stack["stack"])
    monitor_runs = finished_runs("churn_monitor", "asset_triggered")
    assert monitor_runs and {r["state"] for r in monitor_runs} == {"success"}, stack["stack"].logs()
    trained = wait_until(
        lambda: finished_runs("churn_train", "asset_triggered"), 600, "churn_train to run on the retrain asset", stack["stack"]
    )
    assert [r["state"] for r in trained] == ["success"], stack["stack"].logs()
    alerts = (
        open_warehouse(settings.warehouse_url)
        .query("select distinct as_of_date, action, action_result from monitoring.alerts where action = 'retrain requested'")
        .to_pylist()
    )
    assert [a["as_of_date"] for a in alerts] == [AS_OF]
    assert alerts[0]["action_result"].startswith("version ") and "trained on data up to 2026-01-31" in alerts[0]["action_result"]
