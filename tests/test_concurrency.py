"""Writers that collide, and a warehouse that is briefly unreachable (PostgreSQL)."""

import datetime as dt
import threading
import time

import pyarrow as pa
import pytest

from pipelines import warehouse as warehouse_module
from pipelines.errors import WarehouseBusy
from pipelines.warehouse import open_warehouse
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

    monkeypatch.setattr(warehouse_module, "CONNECT_WAIT_SECONDS", 1.0)
    url = f"postgresql://someone:secret-password@127.0.0.1:{free_port()}/warehouse"
    with pytest.raises(WarehouseBusy) as excinfo:
        open_warehouse(url).query("select 1")
    message = str(excinfo.value)
    assert "127.0.0.1" in message and "secret-password" not in message
