"""What the benchmark figures share: the bench model's spec and data, the Figure record,
and running a fresh Python process that reports JSON on its last line."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipelines.settings import REPO_ROOT, Settings
from pipelines.spec import ModelSpec, Training

BENCH_DIR = Path(__file__).resolve().parent
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
        suite="bench_features",  # bench/bench_features.json
        numeric_features=tuple(f"f{i:02d}" for i in range(N_FEATURES)),
        categorical_features={},
        segment="f00",
        batch_size=100_000,
        training=Training(),
        suites_dir=BENCH_DIR,
    )


def feature_batches(rows: int, batch_size: int = 200_000, seed: int = 0, day: dt.date = DAY):
    """~40 numeric and categorical-code columns with ~5% nulls, in Arrow batches.
    For a seed, the first k rows are the same for every `rows` >= k when k is a multiple of batch_size."""
    rng = np.random.default_rng(seed)
    for start in range(0, rows, batch_size):
        n = min(batch_size, rows - start)
        columns = {
            "entity_id": pa.array(np.arange(start, start + n, dtype=np.int64)),
            "as_of_date": pa.repeat(pa.scalar(day, pa.date32()), n),
        }
        for i in range(N_FEATURES):
            if i < N_CATEGORICAL_CODES:
                values = rng.integers(0, 12, n).astype(np.float64)
            else:
                values = rng.normal(i, 1 + i / 10, n)
            mask = rng.random(n) < 0.05
            columns[f"f{i:02d}"] = pa.array(values, mask=mask)
        yield pa.RecordBatch.from_pydict(columns)


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


def measure(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def child_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "BATCHPRED_HOME": str(settings.home),
        "BATCHPRED_WAREHOUSE_URL": settings.warehouse_url,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "PYTHONPATH": str(REPO_ROOT),
        "GX_ANALYTICS_ENABLED": "false",
    }


def run_child(module: str, settings: Settings, *args: str) -> dict:
    """Run `python -m <module> args` in a fresh process; return the JSON on its last stdout
    line, plus `wall_s` (launch to exit) and `launched_at` (time.time() just before launch)."""
    launched_at = time.time()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=child_env(settings), cwd=REPO_ROOT
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": wall, "launched_at": launched_at}
