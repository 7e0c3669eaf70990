"""Prediction-load rate: rows/s for replacing one date of predictions.<model>_scores,
on DuckDB and on PostgreSQL (ADBC binary COPY inside the replacing transaction).

    uv run python -m bench.load_rate [ROWS]

PostgreSQL is a throwaway cluster (tests/services.py) unless BATCHPRED_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

from pipelines.adapters.resources import Resources
from pipelines.adapters.warehouse.tables import predictions_schema
from pipelines.config.settings import Settings
from pipelines.config.spec import load_spec


def prediction_batches(rows: int, batch_size: int = 100_000) -> list[pa.RecordBatch]:
    spec = load_spec("churn")
    schema = predictions_schema([pa.field(column, pa.int64(), nullable=False) for column in spec.key_columns])
    day = dt.date(2026, 1, 31)
    now = dt.datetime.now(dt.UTC)
    rng = np.random.default_rng(0)
    batches = []
    for start in range(0, rows, batch_size):
        n = min(batch_size, rows - start)
        batches.append(
            pa.RecordBatch.from_arrays(
                [
                    pa.array(np.arange(start, start + n, dtype=np.int64)),
                    pa.repeat(pa.scalar(day, pa.date32()), n),
                    pa.array(rng.random(n)),
                    pa.repeat(pa.scalar("churn"), n),
                    pa.repeat(pa.scalar(1, pa.int64()), n),
                    pa.repeat(pa.scalar("0123456789abcdef0123456789abcdef"), n),
                    pa.repeat(pa.scalar("run"), n),
                    pa.repeat(pa.scalar("scheduled__2026-02-01T00:00:00+00:00"), n),
                    pa.repeat(pa.scalar(now, pa.timestamp("us", tz="UTC")), n),
                ],
                schema=schema,
            )
        )
    return batches


def measure(url: str, batches: list[pa.RecordBatch], repeats: int = 3) -> list[float]:
    warehouse = Resources.from_settings(Settings.from_env({"BATCHPRED_WAREHOUSE_URL": url}), create=True).warehouse
    schema = batches[0].schema
    day = dt.date(2026, 1, 31)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        written = warehouse.replace_partition("predictions", "bench_scores", day, schema, iter(batches))
        rates.append(written / (time.perf_counter() - started))
    return rates


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    batches = prediction_batches(rows)
    targets = {"duckdb": f"duckdb:///{tempfile.mkdtemp()}/bench.duckdb"}
    cluster = None
    if os.environ.get("BATCHPRED_TEST_POSTGRES_URL"):
        from tests.services import create_database

        targets["postgres"] = create_database(os.environ["BATCHPRED_TEST_POSTGRES_URL"], "batchpred_bench")
    else:
        from tests.services import PostgresCluster, create_database

        cluster = PostgresCluster().start()
        targets["postgres"] = create_database(cluster.url, "batchpred_bench")
    try:
        print("| warehouse | rows | load rate, median (min–max) rows/s |\n|---|---|---|")
        for name, url in targets.items():
            rates = measure(url, batches)
            print(f"| {name} | {rows:,} | {statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f}) |")
    finally:
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    main()
