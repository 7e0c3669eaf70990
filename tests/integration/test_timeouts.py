"""A scoring step that hangs inside the database times out, and its transaction rolls back.

Airflow enforces execution_timeout with SIGALRM, which Python only handles between
bytecodes: a statement blocked in the PostgreSQL driver would never see it, and the
task would hang for good. Here the hang is real: a trigger on the predictions table
makes the publishing INSERT sleep for ten minutes, after the date's old rows were
deleted in the same transaction. The DAG runs under dag.test in a child process
(SIGALRM needs the main thread) with a 5 s timeout on `publish` and no retries.
"""

import json
import os
import subprocess
import sys
import textwrap
import time

from pipelines.adapters.warehouse import open_warehouse
from tests.conftest import score_date

CHILD = textwrap.dedent(
    """
    import datetime as dt, json
    from airflow.dag_processing.dagbag import DagBag
    from pipelines.config.settings import DAGS_DIR

    dag = DagBag(dag_folder=str(DAGS_DIR)).dags["churn_score"]
    for task in dag.tasks:
        task.retries = 0
        if task.task_id == "publish":
            task.execution_timeout = dt.timedelta(seconds=5)
    run = dag.test(logical_date=dt.datetime(2026, 1, 31, tzinfo=dt.UTC))
    print(json.dumps({ti.task_id: ti.state for ti in run.get_task_instances()}))
    """
)


def predictions(warehouse):
    return warehouse.query("select customer_id, score, scoring_run_id from predictions.churn_scores order by 1").to_pylist()


def test_a_publish_hung_in_the_database_times_out_and_rolls_back(postgres, airflow_db, spec, request, tmp_path):
    from dataclasses import replace

    from tests.conftest import settings_for

    request.getfixturevalue("pg_base")
    from tests.services import create_database

    url = create_database(postgres, "hung_publish", template="batchpred_base")
    settings = replace(
        settings_for(tmp_path, request.getfixturevalue("base_home")["settings"].mlflow_tracking_uri), warehouse_url=url
    )
    warehouse = open_warehouse(url)
    score_date(settings, spec)
    before = predictions(warehouse)
    assert before

    warehouse.execute(
        "create function predictions.hang() returns trigger language plpgsql as "
        "$$ begin perform pg_sleep(600); return null; end $$"
    )
    warehouse.execute(
        "create trigger hang before insert on predictions.churn_scores for each statement execute function predictions.hang()"
    )
    env = {
        **os.environ,
        "BATCHPRED_HOME": str(settings.home),
        "BATCHPRED_WAREHOUSE_URL": url,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    # Without the cancellation the child would sleep with the trigger for ten minutes.
    child = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    states = json.loads(child.stdout.strip().splitlines()[-1])
    assert states["score_shard"] == "success"
    assert states["publish"] == "failed", child.stderr[-3000:]
    assert "Timeout" in child.stdout + child.stderr

    # Rolled back, not merely invisible: no session is left inside the transaction
    # holding the date's lock, and the old rows are all there.
    def leftovers():
        return (
            warehouse.query(
                "select count(*) as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() "
                "and (state <> 'idle' or query like '%pg_sleep%')"
            ).to_pylist()[0]["n"]
            + warehouse.query("select count(*) as n from pg_locks where locktype = 'advisory'").to_pylist()[0]["n"]
        )

    for _ in range(50):
        if leftovers() == 0:
            break
        time.sleep(0.2)
    assert leftovers() == 0
    assert predictions(warehouse) == before

    warehouse.execute("drop trigger hang on predictions.churn_scores")
    rerun = score_date(settings, spec)[2]
    assert rerun.rows_scored == len(before) == len(predictions(warehouse))
