"""Backfill figure: `batchpred backfill churn` (the real CLI, in a subprocess) over 30
as-of dates of ~100k customers each, on the demo business.

    uv run python -m bench.backfill [--customers 180000] [--dates 30] [--warehouse-url URL]

The CLI runs what the DAG runs, with the dbt steps batched for the range: the staging
models once, the features of every date (and their dbt tests) in one dbt run, then per
date the GX suite, scoring and the run log, and at the end the dbt marts once. The champion is registered here directly
(an XGBoost model with churn's features and training parameters, 300 trees) rather than
by `batchpred train`, which would add minutes of training to `make bench` and nothing
to the figure: the backfill loads whatever version @champion points at.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import DAY, Figure, child_env
from pipelines.adapters.resources import Resources
from pipelines.config.settings import REPO_ROOT, Settings

ACTIVE_SHARE = 0.56  # share of customers active on a date in the demo business (checked below)


def register_churn_champion(res: Resources) -> None:
    import pandas as pd
    import pyarrow as pa
    import xgboost as xgb

    from pipelines.config.contract import InputContract
    from pipelines.config.spec import load_spec

    spec = load_spec("churn")
    contract = InputContract.for_spec(spec, {column: pa.int64() for column in spec.key_columns})  # customer_id
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, 5.0, (20_000, len(spec.feature_names))).astype(np.float32)
    y = (x[:, 0] + rng.normal(0, 5, len(x)) > np.median(x[:, 0])).astype(np.float32)
    params = {k: v for k, v in spec.training.params.items() if k != "eval_metric"}
    booster = xgb.train(params, xgb.DMatrix(x, label=y, feature_names=list(spec.feature_names)), spec.training.num_boost_round)
    example = pd.DataFrame(x[:5], columns=list(spec.feature_names))
    model = res.registry.log_model("churn", booster, contract, example, {"bench": True}, {}, {})
    res.registry.set_alias(model, "champion")


def run(settings: Settings, customers: int, dates: int, end: dt.date = DAY) -> list[Figure]:
    """Load the demo business, register a champion, time the backfill of the last `dates` days."""
    env = child_env(settings)
    batchpred = [str(Path(sys.executable).with_name("batchpred"))]
    subprocess.run(
        [*batchpred, "generate", "--customers", str(customers), "--end", end.isoformat()],
        check=True, capture_output=True, env=env, cwd=REPO_ROOT,
    )  # fmt: skip
    res = Resources.from_settings(settings)  # after `batchpred generate` made the warehouse
    register_churn_champion(res)
    start = end - dt.timedelta(days=dates - 1)
    started = time.perf_counter()
    done = subprocess.run(
        [*batchpred, "backfill", "churn", "--start", start.isoformat(), "--end", end.isoformat()],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT,
    )  # fmt: skip
    total = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"batchpred backfill exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    counts = res.warehouse.query(
        "select count(distinct as_of_date) as dates, count(*) as n from predictions.churn_scores "
        "where as_of_date between $1 and $2",
        [start, end],
    ).to_pylist()[0]
    if counts["dates"] != dates:
        raise RuntimeError(f"the backfill produced {counts['dates']} dates of predictions, not {dates}")
    kind = "postgres" if settings.warehouse_url.startswith("postgresql") else "duckdb"
    per_date = counts["n"] // dates
    what = f"`batchpred backfill churn` subprocess, {dates} dates x ~{per_date:,} rows ({customers:,} customers)"
    return [
        Figure("backfill", kind, counts["n"], [total], "s", note=f"{what}; total wall time, one run (target <= 60 s)"),
        Figure("backfill_per_date", kind, per_date, [total / dates], "s/date", note=what),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill")
    parser.add_argument("--customers", type=int, default=round(100_000 / ACTIVE_SHARE, -4))
    parser.add_argument("--dates", type=int, default=30)
    parser.add_argument("--warehouse-url", default=None)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="batchpred-bench-backfill-"))
    settings = Settings.from_env(
        {"BATCHPRED_HOME": str(home), **({"BATCHPRED_WAREHOUSE_URL": args.warehouse_url} if args.warehouse_url else {})}
    )
    for figure in run(settings, int(args.customers), args.dates):
        print(json.dumps(figure.as_dict()))


if __name__ == "__main__":
    main()
