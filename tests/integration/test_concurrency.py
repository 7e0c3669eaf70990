"""Writers that collide, and a warehouse that is briefly unreachable or locked."""

import datetime as dt
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pytest
from conftest import resources

from pipelines.adapters.warehouse import duckdb as duckdb_module
from pipelines.adapters.warehouse import open_warehouse
from pipelines.adapters.warehouse import postgres as postgres_module
from pipelines.domain.errors import WarehouseBusy
from tests.services import PostgresCluster, create_database

DAY = dt.date(2026, 1, 31)
SCHEMA = pa.schema([("customer_id", pa.int64()), ("as_of_date", pa.date32()), ("score", pa.float64())])


def slow_rows(n, score, pause=0.02):
    for start in range(0, n, 50):
        yield pa.RecordBatch.from_pydict(
            {
                "customer_id": list(range(start, min(start + 50, n))),
                "as_of_date": [DAY] * min(50, n - start),
                "score": [score] * min(50, n - start),
            },
            schema=SCHEMA,
        )
        time.sleep(pause)


def test_two_writers_of_one_date_never_interleave(postgres):
    url = create_database(postgres, "concurrent_writers")
    warehouse = open_warehouse(url)
    errors = []

    def write(n, score):
        try:
            open_warehouse(url).replace_partition("predictions", "scores", DAY, SCHEMA, slow_rows(n, score))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(800, 0.1)), threading.Thread(target=write, args=(500, 0.9))]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert errors == []
    final = warehouse.query(
        "select count(*) as n, count(distinct customer_id) as k, min(score) as lo, max(score) as hi "
        "from predictions.scores where as_of_date = $1",
        [DAY],
    ).to_pylist()[0]
    # One complete set remains: the second writer waited for the first, then replaced it.
    assert final["n"] == final["k"]
    assert (final["n"], final["lo"], final["hi"]) in {(800, 0.1, 0.1), (500, 0.9, 0.9)}


def test_an_unreachable_warehouse_is_retried_until_it_answers():
    cluster = PostgresCluster()  # its port is chosen now; the server starts in 2 s
    url = f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
    starter = threading.Timer(2.0, cluster.start)
    starter.start()
    try:
        written = open_warehouse(url).replace_partition("predictions", "scores", DAY, SCHEMA, slow_rows(120, 0.5, 0))
        assert written == 120
        assert open_warehouse(url).query("select count(*) as n from predictions.scores").to_pylist() == [{"n": 120}]
    finally:
        starter.join()
        cluster.stop()


def test_a_warehouse_that_stays_unreachable_fails_with_its_address(monkeypatch):
    from tests.services import free_port

    monkeypatch.setattr(postgres_module, "CONNECT_WAIT_SECONDS", 1.0)
    url = f"postgresql://someone:secret-password@127.0.0.1:{free_port()}/warehouse"
    with pytest.raises(WarehouseBusy) as excinfo:
        open_warehouse(url).query("select 1")
    message = str(excinfo.value)
    assert "127.0.0.1" in message and "secret-password" not in message


HOLD_FILE = (
    "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(float(sys.argv[2]))"
)


def hold(path, seconds):
    """Another process (a task, a person's duckdb shell) opens the DuckDB file for `seconds`."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FILE, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_duckdb_writer_waits_for_the_file_then_gives_up_naming_it(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    warehouse = open_warehouse(f"duckdb:///{path}", create=True)
    warehouse.replace_partition("predictions", "scores", DAY, SCHEMA, slow_rows(50, 0.1, 0))

    holder = hold(path, 2)
    try:  # DuckDB refuses a second process at once; the writer waits for the holder instead
        assert warehouse.replace_partition("predictions", "scores", DAY, SCHEMA, slow_rows(100, 0.5, 0)) == 100
    finally:
        holder.wait()
    assert warehouse.query("select count(*) as n, min(score) as s from predictions.scores").to_pylist() == [{"n": 100, "s": 0.5}]

    monkeypatch.setattr(duckdb_module, "LOCK_WAIT_SECONDS", 1.0)
    holder = hold(path, 60)
    try:
        with pytest.raises(WarehouseBusy, match=str(path)) as excinfo:
            warehouse.replace_partition("predictions", "scores", DAY, SCHEMA, slow_rows(10, 0.9, 0))
        assert excinfo.value.retryable  # Airflow retries it
        assert f"PID {holder.pid}" in str(excinfo.value)
    finally:
        holder.kill()
        holder.wait()
    assert warehouse.query("select count(*) as n, min(score) as s from predictions.scores").to_pylist() == [{"n": 100, "s": 0.5}]


def test_two_score_commands_on_one_duckdb_file_both_succeed(duckdb_settings, spec):
    """The second command waits for the first, in batchpred's own connections and in dbt's and
    GX's alike, saying once which process holds the file; each attempt's run-log row is the truth.
    (PostgreSQL has no file lock: its writers serialise per date, see the advisory-lock test.)"""
    import os
    from pathlib import Path

    settings = duckdb_settings
    warehouse = open_warehouse(settings.warehouse_url)
    batchpred = str(Path(sys.executable).with_name("batchpred"))
    env = {**os.environ, "BATCHPRED_HOME": str(settings.home), "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri}
    command = [batchpred, "score", "churn", "--date", "2026-01-31"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    second = subprocess.run(command, env=env, capture_output=True, text=True)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Traceback" not in second.stderr + err
    # Each wait is one line naming the file and the process that holds it; no retry repeats it.
    waits = [line for line in (second.stderr + err).splitlines() if "waiting for the warehouse file" in line]
    assert waits and all(str(settings.home / "warehouse.duckdb") in line and "held by PID" in line for line in waits)
    assert len(waits) <= 8, waits  # at most one per step of either command
    runs = warehouse.query("select status from monitoring.scoring_runs order by started_at").to_pylist()
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]


def test_dbt_and_gx_wait_for_a_held_file_then_give_up_naming_the_holder(duckdb_settings, spec, monkeypatch):
    from pipelines.usecases import steps

    settings = duckdb_settings
    attempt = steps.plan(resources(settings), spec, DAY)
    holder = hold(settings.home / "warehouse.duckdb", 3)
    try:
        steps.build_features(resources(settings), spec, attempt)  # dbt waits the holder out
    finally:
        holder.wait()
    holder = hold(settings.home / "warehouse.duckdb", 3)
    try:
        assert steps.validate(resources(settings), spec, attempt).rows > 0  # and so does GX
    finally:
        holder.wait()
    monkeypatch.setattr(duckdb_module, "LOCK_WAIT_SECONDS", 1.0)
    holder = hold(settings.home / "warehouse.duckdb", 60)
    try:
        with pytest.raises(WarehouseBusy, match=f"held by PID {holder.pid}"):
            steps.build_features(resources(settings), spec, attempt)
    finally:
        holder.kill()
        holder.wait()


def other_process_can_open(path):
    """Whether a second process can open the DuckDB file now (DuckDB allows one at a time)."""
    probe = subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(path)!r}).close()"], capture_output=True)
    return probe.returncode == 0


def test_a_duckdb_session_keeps_the_file_open_until_it_ends_and_lets_go_for_dbt_and_gx(tmp_path):
    import duckdb

    path = tmp_path / "warehouse.duckdb"
    warehouse = open_warehouse(f"duckdb:///{path}", create=True)
    warehouse.replace_partition("predictions", "scores", DAY, SCHEMA, slow_rows(50, 0.1, 0))
    assert other_process_can_open(path)  # between writes the file is free

    def foreign_open():
        # What dbt-duckdb and GX's SQLAlchemy engine do: open the file with a configuration
        # of their own, which DuckDB refuses while this process holds it with another.
        con = duckdb.connect(str(path), config={"custom_user_agent": "not-batchpred"})
        try:
            return con.execute("select count(*) from predictions.scores").fetchone()[0]
        finally:
            con.close()

    with warehouse.session():
        assert warehouse.query("select count(*) as n from predictions.scores").to_pylist() == [{"n": 50}]
        assert not other_process_can_open(path)  # held between the session's statements
        with pytest.raises(duckdb.ConnectionException, match="different configuration"):
            foreign_open()
        assert warehouse.when_free(foreign_open) == 50  # let go for dbt and GX
        assert other_process_can_open(path)
        warehouse.replace_partition("predictions", "scores", DAY, SCHEMA, slow_rows(20, 0.2, 0))  # taken again
        assert not other_process_can_open(path)
    assert other_process_can_open(path)  # and let go when it ends
    assert warehouse.query("select count(*) as n, min(score) as s from predictions.scores").to_pylist() == [{"n": 20, "s": 0.2}]
