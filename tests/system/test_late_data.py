"""A night whose data lands late, through `batchpred ui`'s real scheduler, triggerer and
LocalExecutor on loopback (SQLite metadata, a DuckDB warehouse).

The home's data ends the day before yesterday. Unpausing a score DAG (what the Trigger
form's "unpause" box, on by default, does) makes the scheduler create the run for
yesterday, which is not complete: its `wait_for_data` task defers, holding no worker
slot, and the triggerer wakes it to check again. churn's run goes on once the data lands;
payment_risk's, with a two-minute deadline, is refused as incomplete when it passes; a
run a person triggers for an incomplete date is refused at once. The run log says which
waited, and for how long.
"""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from pipelines.adapters.resources import Resources
from pipelines.adapters.warehouse import open_warehouse
from pipelines.config.settings import PROJECT_FOLDERS, REPO_ROOT
from pipelines.config.spec import load_spec
from pipelines.faces.demo import load_demo_data
from pipelines.faces.demo_data import DemoConfig
from pipelines.usecases import models
from tests.conftest import run_log, settings_for
from tests.services import free_port, wait_until
from tests.system.test_ui import clean_env, running_ui

TODAY = dt.datetime.now(dt.UTC).date()
YESTERDAY, LAST_DAY = TODAY - dt.timedelta(days=1), TODAY - dt.timedelta(days=2)
WAITS = {"churn": (30, 1), "payment_risk": (2, 1)}  # wait_for_data_minutes, check_data_every_minutes


def _project(folder):
    """The repository's project folders, each model waiting as WAITS says."""
    for name in (*PROJECT_FOLDERS, "dags"):
        shutil.copytree(REPO_ROOT / name, folder / name, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    for model, (wait, every) in WAITS.items():
        path = folder / "models" / model / "model.yaml"
        shipped = "  wait_for_data_minutes: 360\n  check_data_every_minutes: 10\n"  # edited as text: the order of keys matters
        assert shipped in path.read_text()
        path.write_text(
            path.read_text().replace(shipped, f"  wait_for_data_minutes: {wait}\n  check_data_every_minutes: {every}\n")
        )
        assert load_spec(model, folder / "models").scoring.wait_for_data_minutes == wait
    return folder


def _business(end: dt.date) -> DemoConfig:
    return DemoConfig(customers=1500, end_date=end)  # the README's quick demo business


@pytest.fixture
def home(tmp_path):
    settings = settings_for(tmp_path / "home")
    settings.home.mkdir()
    load_demo_data(Resources.from_settings(settings, create=True), _business(LAST_DAY))
    models.train(Resources.from_settings(settings).ready(), load_spec("churn"), LAST_DAY)
    env = clean_env(settings.home) | {"BATCHPRED_PROJECT_DIR": str(_project(tmp_path / "project"))}
    return settings, env


def _runs(api, dag_id):
    return api.get(f"/dags/{dag_id}/dagRuns").json()["dag_runs"]


def _task(api, dag_id, run_id, task_id):
    return api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}").json()


def _scheduled_run(api, dag_id) -> str:
    return wait_until(
        lambda: next((r["dag_run_id"] for r in _runs(api, dag_id) if r["run_type"] == "scheduled"), None),
        120,
        f"the scheduler to create {dag_id}'s scheduled run",
    )


def _finished(api, dag_id, run_id, timeout: float) -> str:
    return wait_until(
        lambda: (s := api.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]) in ("success", "failed") and s,
        timeout,
        f"{dag_id} run {run_id} to finish",
    )


def _log_rows(settings, model, day):
    warehouse = open_warehouse(settings.warehouse_url)
    return [r for r in run_log(warehouse, model) if r["as_of_date"] == day]


def test_a_scheduled_run_waits_deferred_for_late_data_and_a_manual_run_does_not(home):
    settings, env = home
    with running_ui(settings.home, free_port(), env=env) as (_, api, _):
        # The UI's health badge: every component, the triggerer included, is healthy.
        health = wait_until(
            lambda: (h := api.get("/monitor/health").json()).get("triggerer", {}).get("status") == "healthy" and h,
            120,
            "the triggerer's heartbeat",
        )
        assert {k: v["status"] for k, v in health.items()} == {k: "healthy" for k in health}, health

        for dag_id in ("churn_score", "payment_risk_score"):
            assert api.patch(f"/dags/{dag_id}", json={"is_paused": False}).status_code == 200
        churn, risk = _scheduled_run(api, "churn_score"), _scheduled_run(api, "payment_risk_score")
        for dag_id, run_id in (("churn_score", churn), ("payment_risk_score", risk)):
            run = api.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()
            assert run["logical_date"].startswith(YESTERDAY.isoformat())
            deferred = lambda d=dag_id, r=run_id: _task(api, d, r, "wait_for_data")["state"] == "deferred"  # noqa: E731
            wait_until(deferred, 120, f"{dag_id}'s wait_for_data to defer")
        assert _log_rows(settings, "churn", YESTERDAY) == []  # waiting is not an attempt yet

        # payment_risk's deadline passes first: refused as today, saying it waited.
        assert _finished(api, "payment_risk_score", risk, 300) == "failed"
        [refused] = _log_rows(settings, "payment_risk", YESTERDAY)
        assert (refused["status"], refused["step"]) == ("refused", "plan")
        assert refused["waited_for_data_s"] >= 120
        assert f"{YESTERDAY}" in refused["error"] and "after waiting" in refused["error"]
        waited = _task(api, "payment_risk_score", risk, "wait_for_data")
        assert (waited["state"], waited["try_number"]) == ("success", 1)  # woken by the triggerer, never retried

        # churn's data lands (the business regenerated up to yesterday): its run goes on.
        assert _task(api, "churn_score", churn, "wait_for_data")["state"] in ("deferred", "scheduled", "queued", "running")
        load_demo_data(Resources.from_settings(settings), _business(YESTERDAY))
        assert _finished(api, "churn_score", churn, 600) == "success"
        [scored] = _log_rows(settings, "churn", YESTERDAY)
        assert scored["status"] == "succeeded" and scored["waited_for_data_s"] >= 60 and scored["rows_scored"] > 0
        assert _task(api, "churn_score", churn, "wait_for_data")["try_number"] == 1

        # A person triggers today, which is not over: refused at once, no waiting.
        manual = api.post("/dags/churn_score/dagRuns", json={"logical_date": None, "conf": {"as_of_date": TODAY.isoformat()}})
        assert manual.status_code == 200, manual.text
        assert _finished(api, "churn_score", manual.json()["dag_run_id"], 180) == "failed"
        [today] = _log_rows(settings, "churn", TODAY)
        assert (today["status"], today["waited_for_data_s"]) == ("refused", None)  # within 180 s: churn waits 30 min
