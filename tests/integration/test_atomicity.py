"""A dashboard polling a date while it is rewritten sees the old rows or the new rows,
never a mix and never none."""

import datetime as dt
import threading
import time

import pyarrow as pa

from pipelines.adapters.warehouse import open_warehouse

DAY = dt.date(2026, 1, 31)
SCHEMA = pa.schema([("customer_id", pa.int64()), ("as_of_date", pa.date32()), ("score", pa.float64())])


def rows(ids, score):
    return pa.RecordBatch.from_pydict(
        {"customer_id": ids, "as_of_date": [DAY] * len(ids), "score": [score] * len(ids)}, schema=SCHEMA
    )


def test_a_polling_reader_sees_the_old_pair_or_the_new_pair(settings):
    warehouse = open_warehouse(settings.warehouse_url)
    warehouse.replace_partition("predictions", "polled_scores", DAY, SCHEMA, [rows(list(range(1000)), 0.25)])
    old, new = (1000, 250.0), (1500, 1125.0)

    def slow_new_rows():
        for start in range(0, 1500, 100):
            yield rows(list(range(start, start + 100)), 0.75)
            time.sleep(0.05)  # a long rewrite: readers poll while it is half done

    seen, done = [], threading.Event()

    def poll():
        reader = open_warehouse(settings.warehouse_url)
        while not done.is_set():
            got = reader.query(
                "select count(*) as n, sum(score) as s from predictions.polled_scores where as_of_date = $1", [DAY]
            ).to_pylist()[0]
            seen.append((got["n"], float(got["s"] or 0)))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        time.sleep(0.2)
        warehouse.replace_partition("predictions", "polled_scores", DAY, SCHEMA, slow_new_rows())
        time.sleep(0.2)
    finally:
        done.set()
        poller.join()
    assert len(seen) > 10, "the poller barely ran"
    assert set(seen) == {old, new}, sorted(set(seen))
    assert seen.index(new) > 0 and seen[-1] == new
