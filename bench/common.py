"""What the benchmark figures share: the bench model's spec, input contract, data and labels,
the Figure record, and running a fresh Python process that reports JSON on its last line."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipelines.config.contract import InputContract
from pipelines.config.settings import REPO_ROOT, Settings
from pipelines.config.spec import Completeness, ModelSpec, Source, Training

BENCH_DIR = Path(__file__).resolve().parent
DAY = dt.date(2026, 1, 31)
N_FEATURES = 40
N_CATEGORICAL_CODES = 8  # integer-coded categoricals among the 40 columns


def bench_spec(features_model: str = "bench_features") -> ModelSpec:
    """The bench model, built in code (it has no models/bench/model.yaml). Its only completeness
    source is its own feature table, so a task's completeness check passes on the bench date
    (score_partition, called directly, does not check completeness)."""
    return ModelSpec(
        name="bench",
        description="benchmark model: 300 trees of depth 6 over 40 columns",
        key_columns=("entity_id",),
        target="label",
        features_model=features_model,
        labels_model="bench_labels",  # analytics.bench_labels, made by bench/__main__.py (make_labels)
        suite="bench_features",  # bench/bench_features.json
        numeric_features=tuple(f"f{i:02d}" for i in range(N_FEATURES)),
        categorical_features={},
        segment="f00",
        completeness=Completeness(lookback_days=1, sources=(Source("analytics", features_model, "as_of_date"),)),
        batch_size=100_000,
        training=Training(),
        suites_dir=BENCH_DIR,
    )


# What a scoring run of the bench does beside the champion's plain prediction: (shadow, reasons).
# "plain" is the data path the `data_path` figure has always measured: one booster, no reasons.
SCORING_MODES = {"plain": (False, False), "shadow": (True, False), "reasons": (False, True), "both": (True, True)}
CHALLENGER = "challenger"


def scoring_spec(mode: str = "plain", features_model: str = "bench_features") -> ModelSpec:
    """The bench spec for one of the SCORING_MODES: the challenger in the shadow or not
    (`shadow_aliases`), and the default reasons policy or none (`reasons.method`)."""
    shadow, reasons = SCORING_MODES[mode]
    spec = bench_spec(features_model)
    return replace(
        spec,
        shadow_aliases=(CHALLENGER,) if shadow else (),
        reasons=spec.reasons if reasons else replace(spec.reasons, method="off"),
    )


def bench_contract(spec: ModelSpec) -> InputContract:
    return InputContract.for_spec(spec, {"entity_id": pa.int64()})


def signal(x: np.ndarray) -> np.ndarray:
    """What the bench label depends on (plus unit normal noise): f10 - f20 / 3 + f00, 0 when any is missing.
    `label_select` computes the same in SQL."""
    return np.nan_to_num(x[:, 10] - x[:, 20] / 3 + x[:, 0])


def label_select(spec: ModelSpec) -> str:
    """The SELECT of the bench labels for one date ($1) of the feature table: 1 when the signal plus
    unit normal noise (Box-Muller on random()) is above $2, the training sample's median signal."""
    signal_sql = "case when t.f10 is null or t.f20 is null or t.f00 is null then 0 else t.f10 - t.f20 / 3 + t.f00 end"
    noise = "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())"
    return (
        f"select t.entity_id, t.as_of_date, cast(case when {signal_sql} + {noise} > $2 then 1 else 0 end as integer) as label "
        f"from analytics.{spec.features_model} as t where t.as_of_date = $1"
    )


LABELS_SCHEMA = pa.schema(
    [
        pa.field("entity_id", pa.int64(), nullable=False),
        pa.field("as_of_date", pa.date32(), nullable=False),
        pa.field("label", pa.int32()),
    ]
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
    # The median of each run's rate over the limit measured in its own process right after it
    # (bench.tasks.paired_limit): steadier than ratio_to_limit when the machine's load drifts.
    paired_ratio: float | None = None

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
            "paired_ratio": self.paired_ratio,
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
