"""Benchmarks of the scoring path. Prints a markdown table and writes JSON results.

    uv run python -m bench [--rows 1000000 ...] [--repeats 3] [--warehouses duckdb,postgres]

Figures so far (issue 5 lists the rest):
  limit      raw booster.inplace_predict rows/s on the same rows, in memory, float32
  data_path  score_partition from reading the partition to committed rows, per warehouse,
             as rows/s and as a ratio to the limit (process start-up and model load excluded)
  peak_rss   peak resident memory of a fresh process scoring one date, per warehouse
  dag_parse  seconds each DAG file adds to a parse, beyond `import airflow`

Every figure is the median of --repeats runs with the min-max range. Results go to
bench/results/<timestamp>.json and bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipelines.settings import DAGS_DIR, Settings
from pipelines.spec import ModelSpec, Training

RESULTS = Path(__file__).resolve().parent / "results"
DAY = dt.date(2026, 1, 31)
N_FEATURES = 40
N_CATEGORICAL_CODES = 8  # integer-coded categoricals among the 40 columns


def bench_spec() -> ModelSpec:
    return ModelSpec(
        name="bench",
        description="benchmark model: 300 trees of depth 6 over 40 columns",
        entity_key="entity_id",
        target="label",
        features_model="bench_features",
        training_model="bench_features",
        suite="bench_features",
        numeric_features=tuple(f"f{i:02d}" for i in range(N_FEATURES)),
        categorical_features={},
        segment="f00",
        batch_size=100_000,
        training=Training(),
    )


def feature_batches(rows: int, batch_size: int = 200_000, seed: int = 0):
    """~40 numeric and categorical-code columns with ~5% nulls, in Arrow batches."""
    rng = np.random.default_rng(seed)
    for start in range(0, rows, batch_size):
        n = min(batch_size, rows - start)
        columns = {
            "entity_id": pa.array(np.arange(start, start + n, dtype=np.int64)),
            "as_of_date": pa.repeat(pa.scalar(DAY, pa.date32()), n),
        }
        for i in range(N_FEATURES):
            if i < N_CATEGORICAL_CODES:
                values = rng.integers(0, 12, n).astype(np.float64)
            else:
                values = rng.normal(i, 1 + i / 10, n)
            mask = rng.random(n) < 0.05
            columns[f"f{i:02d}"] = pa.array(values, mask=mask)
        yield pa.RecordBatch.from_pydict(columns)


def train_and_register(settings: Settings, spec: ModelSpec):
    import pandas as pd
    import xgboost as xgb

    from pipelines import registry
    from pipelines.matrix import feature_matrix

    sample = pa.Table.from_batches(list(feature_batches(50_000, seed=1)))
    x = feature_matrix(sample, spec)
    signal = np.nan_to_num(x[:, 10] - x[:, 20] / 3 + x[:, 0])
    y = (signal + np.random.default_rng(2).normal(0, 1, len(signal)) > np.median(signal)).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "tree_method": "hist", "seed": 0},
        xgb.DMatrix(x, label=y, feature_names=list(spec.feature_names)),
        num_boost_round=300,
    )
    example = pd.DataFrame(x[:5], columns=list(spec.feature_names))
    model = registry.log_model(settings, spec.name, booster, example, {"trees": 300, "depth": 6}, {}, {})
    registry.set_alias(settings, model, "champion")
    return registry.resolve(settings, spec.name, "champion"), booster


def measure(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


@dataclass
class Figure:
    figure: str
    warehouse: str | None
    rows: int | None
    values: list[float]
    unit: str
    ratio_to_limit: float | None = None
    note: str = ""

    def as_dict(self) -> dict:
        return {
            "figure": self.figure,
            "warehouse": self.warehouse,
            "rows": self.rows,
            "median": statistics.median(self.values),
            "min": min(self.values),
            "max": max(self.values),
            "unit": self.unit,
            "ratio_to_limit": self.ratio_to_limit,
            "runs": self.values,
            "note": self.note,
        }


SCORE_CHILD = """
import dataclasses, datetime as dt, json, resource, sys, time
from bench.__main__ import bench_spec, DAY
from pipelines import registry
from pipelines.score import score_partition
from pipelines.settings import Settings
settings = Settings.from_env()
model = registry.resolve(settings, "bench", "champion")
score_partition(settings, bench_spec(), DAY, model, "rss")
print(json.dumps({"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def dag_parse(repeats: int) -> list[Figure]:
    code_base = "import time; t=time.perf_counter(); import airflow.sdk; print(time.perf_counter()-t)"
    figures = []
    for dag_file in sorted(DAGS_DIR.glob("*.py")):
        code = (
            "import time, runpy; import airflow.sdk; t=time.perf_counter(); "
            f"runpy.run_path({str(dag_file)!r}); print(time.perf_counter()-t)"
        )
        values = [
            float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1])
            for _ in range(repeats)
        ]
        figures.append(Figure("dag_parse", None, None, values, "s", note=f"{dag_file.name}, beyond import airflow.sdk"))
    base = [
        float(subprocess.run([sys.executable, "-c", code_base], capture_output=True, text=True, check=True).stdout.split()[-1])
        for _ in range(repeats)
    ]
    figures.append(Figure("import_airflow", None, None, base, "s", note="import airflow.sdk alone, for reference"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warehouses", default="duckdb,postgres")
    args = parser.parse_args()

    from pipelines import registry
    from pipelines.matrix import feature_matrix
    from pipelines.score import score_partition
    from pipelines.warehouse import open_warehouse

    home = Path(tempfile.mkdtemp(prefix="batchpred-bench-"))
    base = Settings.from_env({"BATCHPRED_HOME": str(home)})
    spec = bench_spec()
    model, booster = train_and_register(base, spec)
    registry.load_booster(base, model)

    urls = {}
    cluster = None
    if "duckdb" in args.warehouses:
        urls["duckdb"] = f"duckdb:///{home / 'bench.duckdb'}"
    if "postgres" in args.warehouses:
        from tests.services import PostgresCluster, create_database

        server = os.environ.get("BATCHPRED_TEST_POSTGRES_URL")
        if not server:
            cluster = PostgresCluster().start()
            server = cluster.url
        urls["postgres"] = create_database(server, "batchpred_bench")

    figures: list[Figure] = []
    try:
        for rows in args.rows:
            table = pa.Table.from_batches(list(feature_batches(rows)))
            matrix = feature_matrix(table, spec)
            limit = measure(functools.partial(booster.inplace_predict, matrix), args.repeats)
            limit_rate = [rows / s for s in limit]
            figures.append(
                Figure("limit", None, rows, limit_rate, "rows/s", 1.0, "inplace_predict, float32 in memory, all cores")
            )
            del table, matrix
            for name, url in urls.items():
                settings = replace(base, warehouse_url=url)
                warehouse = open_warehouse(url)
                schema = next(feature_batches(1)).schema
                warehouse.replace_partition("analytics", "bench_features", DAY, schema, feature_batches(rows))
                path = measure(functools.partial(score_partition, settings, spec, DAY, model, "bench"), args.repeats)
                rate = [rows / s for s in path]
                figures.append(
                    Figure(
                        "data_path",
                        name,
                        rows,
                        rate,
                        "rows/s",
                        statistics.median(rate) / statistics.median(limit_rate),
                        "read partition -> inplace_predict -> committed rows",
                    )
                )
                env = {
                    **os.environ,
                    "BATCHPRED_HOME": str(home),
                    "BATCHPRED_WAREHOUSE_URL": url,
                    "MLFLOW_TRACKING_URI": base.mlflow_tracking_uri,
                    "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
                }
                rss = [
                    json.loads(
                        subprocess.run([sys.executable, "-c", SCORE_CHILD], capture_output=True, text=True, check=True, env=env)
                        .stdout.strip()
                        .splitlines()[-1]
                    )["peak_rss_bytes"]
                    / 1e9
                    for _ in range(max(1, args.repeats - 1))
                ]
                figures.append(
                    Figure("peak_rss", name, rows, rss, "GB", note="fresh process: imports, model load, scoring one date")
                )
        figures += dag_parse(args.repeats)
    finally:
        if cluster:
            cluster.stop()

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "created_at": stamp,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "measurements": [f.as_dict() for f in figures],
    }
    RESULTS.mkdir(exist_ok=True)
    for path in (RESULTS / f"{stamp}.json", RESULTS / "latest.json"):
        path.write_text(json.dumps(report, indent=2))
    print("| figure | warehouse | rows | median | min–max | unit | ratio to limit | note |\n|---|---|---|---|---|---|---|---|")
    for f in figures:
        d = f.as_dict()
        ratio = f"{d['ratio_to_limit']:.2f}" if d["ratio_to_limit"] is not None else ""
        rows = f"{d['rows']:,}" if d["rows"] else ""
        print(
            f"| {d['figure']} | {d['warehouse'] or ''} | {rows} | {d['median']:,.3f} | {d['min']:,.3f}–{d['max']:,.3f} "
            f"| {d['unit']} | {ratio} | {d['note']} |"
        )


if __name__ == "__main__":
    main()
