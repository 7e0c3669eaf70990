"""`batchpred demo` end to end, through `airflow dags test`, twice: the second run
must leave the same tables, with nothing duplicated. A short history (`--history`) is
scored and monitored before the last date, with the business drifting over its end."""

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from pipelines.adapters.warehouse import open_warehouse
from tests.services import free_port, wait_until
from tests.system.test_ui import running_ui

BATCHPRED = str(Path(sys.executable).with_name("batchpred"))


def snapshot(warehouse):
    return {
        "predictions": warehouse.query(
            "select customer_id, as_of_date, score, model_name, model_version, mlflow_run_id "
            "from predictions.churn_scores order by customer_id, as_of_date"
        ).to_pylist(),
        "latest": warehouse.query("select customer_id, score, risk_band from marts.churn_latest_scores order by 1").to_pylist(),
        "summary": warehouse.query("select * from marts.churn_daily_summary order by as_of_date, plan").to_pylist(),
        "invoices": warehouse.query(
            "select invoice_number, as_of_date, score, model_version from predictions.payment_risk_scores order by 1, 2"
        ).to_pylist(),
        "features": warehouse.query("select count(*) as n from analytics.churn_features").to_pylist(),
        "raw": warehouse.query("select count(*) as n from raw.usage_daily").to_pylist(),
    }


def drift_alerts(warehouse):
    """The drift checks that fired, for every model and date the demo monitored."""
    return warehouse.query(
        "select model_name, as_of_date, check_name, subject, value, threshold from monitoring.alerts "
        "where check_name in ('psi', 'js_distance', 'linf_distance', 'null_share')"
    ).to_pylist()


def test_demo_twice_gives_the_same_tables(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "BATCHPRED_"))}
    env["BATCHPRED_HOME"] = str(tmp_path)
    drift_from = dt.date(2026, 1, 28)
    command = [BATCHPRED, "demo", "--customers", "1500", "--end", "2026-01-31", "--history", "8", "--drift-from", f"{drift_from}"]

    first = subprocess.run(command, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "marts.churn_latest_scores" in first.stdout and "churn_daily_summary" in first.stdout
    assert "marts.payment_risk_latest_scores" in first.stdout and "INV-0" in first.stdout
    assert first.stderr.strip() == "", first.stderr[-3000:]  # nothing on stderr: no warnings, no leak reports
    # The DAG runs' log (the four runs, in one Airflow process): a warning or error line there must mean something.
    lines = (tmp_path / "logs" / "airflow-dag-runs-2026-01-31.log").read_text(errors="replace").splitlines()
    ran = [line.split()[4] for line in lines if line.startswith("==> airflow dags test ")]
    assert ran == ["churn_score", "churn_monitor", "payment_risk_score", "payment_risk_monitor"], ran
    noise = [
        line
        for line in lines
        if re.search(r"\[(warning|error)\s*\]|\bERROR\b|Traceback|leaked|Skipping registering|XCom not found|failed", line)
        and "none sent: no webhook" not in line  # signal: alerts exist and nobody was told
    ]
    assert noise == [], noise[:5]
    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    # Drift is flagged once the business shifts, and sampling noise before that is not an alert.
    alerts = drift_alerts(warehouse)
    assert [a for a in alerts if a["as_of_date"] < drift_from] == [] and alerts, alerts
    # The history: 8 dates before the last scored as a backfill scores them, all 9 monitored,
    # and realized performance where the labels are complete (payment_risk's 7-day horizon).
    health = warehouse.query(
        "select model_name, count(distinct as_of_date) as dates, min(as_of_date) as first from monitoring.daily_health "
        "group by 1 order by 1"
    ).to_pylist()
    assert health == [{"model_name": m, "dates": 9, "first": dt.date(2026, 1, 23)} for m in ("churn", "payment_risk")]
    realized = warehouse.query("select as_of_date from monitoring.realized_performance where model_name = 'payment_risk'")
    assert sorted(realized.column("as_of_date").to_pylist()) == [dt.date(2026, 1, 23), dt.date(2026, 1, 24)]
    assert "scored 8/8 dates" in first.stdout and "monitored 8/8 dates" in first.stdout  # progress
    assert "batchpred backfill churn --start 2026-01-23 --end 2026-01-31" in first.stdout  # what to do next
    before = snapshot(warehouse)
    keys = [(r["customer_id"], r["as_of_date"]) for r in before["predictions"]]
    assert len(keys) == len(set(keys)) > 0

    second = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert second.stderr.count("not promoted, @champion stays on version 1") == 2  # the lines for people
    made = json.loads(second.stdout)  # and the result, for scripts
    assert made["as_of_date"] == "2026-01-31" and set(made["models"]) == {"churn", "payment_risk"}
    assert made["models"]["churn"]["report"] == str(tmp_path / "reports" / "churn" / "2026-01-31.html")
    assert made["models"]["churn"]["predictions"] == "predictions.churn_scores"
    assert made["models"]["churn"]["history"] | {"rows": 0} == {
        "dates": 8, "first": "2026-01-23", "last": "2026-01-30", "rows": 0, "realized": 0, "alerts": 0
    }  # fmt: skip
    assert made["where"]["warehouse"] == f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    assert snapshot(warehouse) == before
    runs = warehouse.query(
        "select model_name, count(*) as n, count(distinct airflow_run_id) as k, min(status) as status "
        "from monitoring.scoring_runs group by 1 order by 1"
    ).to_pylist()
    # Per run of the demo: 8 dates of history (backfill runs, no Airflow run id) and the DAG run.
    assert runs == [{"model_name": m, "n": 18, "k": 2, "status": "succeeded"} for m in ("churn", "payment_risk")]
    assert "shadow challenger (version 2) beside version 1" in first.stdout  # the demo's challenger, compared
    # on the last date only: it learned from the history's dates, where it would look better than it is
    shadowed = warehouse.query("select distinct as_of_date from predictions.churn_shadow_scores").to_pylist()
    assert shadowed == [{"as_of_date": dt.date(2026, 1, 31)}]
    report = tmp_path / "reports" / "churn" / "2026-01-31.html"
    assert report.as_uri() in first.stdout and report.stat().st_size > 0  # written by the monitor DAG
    top = warehouse.query("select top_reason from marts.churn_latest_scores order by score desc limit 5").to_pylist()
    assert all(re.fullmatch(r"\w+ = [\w.\-]+, (raises|lowers) risk", r["top_reason"]) for r in top), top

    # Unpausing the DAG afterwards just works: the scheduler creates the next scheduled run
    # (the demo's runs are dated when they ran, so they never take a scheduled run's date).
    with running_ui(tmp_path, free_port(), as_json=True) as (_, api, _):
        demo_runs = api.get("/dags/churn_score/dagRuns").json()["dag_runs"]
        assert len(demo_runs) == 2 and all(r["run_type"] == "manual" for r in demo_runs)
        for r in demo_runs:  # the grid shows the run's real length, not days
            took = dt.datetime.fromisoformat(r["end_date"]) - dt.datetime.fromisoformat(r["start_date"])
            assert took < dt.timedelta(minutes=10), r
        assert api.patch("/dags/churn_score", json={"is_paused": False}).status_code == 200
        wait_until(
            lambda: any(r["run_type"] == "scheduled" for r in api.get("/dags/churn_score/dagRuns").json()["dag_runs"]),
            120,
            "the scheduler to create churn_score's next scheduled run",
        )
        assert api.patch("/dags/churn_score", json={"is_paused": True}).status_code == 200
    assert "already exists" not in (tmp_path / "logs" / "ui-scheduler.log").read_text()


def test_demo_on_postgres_with_a_url_as_users_write_it(tmp_path, postgres):
    """BATCHPRED_WAREHOUSE_URL=postgresql://user:password@host:port/db works as given,
    and the password never reaches the output."""
    from sqlalchemy.engine import make_url

    from tests.services import create_database

    url = make_url(create_database(postgres, "demo_warehouse")).set(password="not-printed-anywhere")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "BATCHPRED_"))}
    env |= {"BATCHPRED_HOME": str(tmp_path), "BATCHPRED_WAREHOUSE_URL": url.render_as_string(hide_password=False)}
    result = subprocess.run(
        [BATCHPRED, "demo", "--customers", "1500", "--end", "2026-01-31", "--history", "0", "--drift-from", "2026-02-01"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "not-printed-anywhere" not in result.stdout + result.stderr
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*.log"))
    assert "not-printed-anywhere" not in logs
    warehouse = open_warehouse(url.render_as_string(hide_password=False))
    rows = snapshot(warehouse)["predictions"]
    assert len(rows) == len({r["customer_id"] for r in rows}) > 0
    assert drift_alerts(warehouse) == []
