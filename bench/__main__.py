"""Benchmarks of the scoring path (issue 5) and of model health. Prints markdown tables and writes JSON results.

    uv run python -m bench [--rows 1000000 5000000] [--duckdb-rows 10000000] [--repeats 3]
                           [--warehouses duckdb,postgres] [--naive-rows 1000000] [--backfill duckdb]
                           [--only drift|scoring]

`--only drift` measures the drift figures alone (drift, drift_sql, drift_scorer) at each --rows N:
each N's date is scored once, untimed, to have predictions and a stored profile, e.g.
    python -m bench --only drift --rows 1000000
`--only scoring` measures the limit, the data_path figures and the two peak RSS figures alone, e.g.
    python -m bench --only scoring --rows 5000000 --duckdb-rows 10000000 --warehouses duckdb

Figures, per row count N and warehouse:
  limit            raw booster.inplace_predict rows/s on the same rows, in memory, float32, all cores
  data_path        score_partition from reading the partition to committed rows, as rows/s and as a
                   ratio to the limit (fresh process; start-up and model load excluded): the champion
                   alone, reasons off (`reasons.method: off`, no `shadow_aliases`). Each scoring run
                   also measures the limit again in its own process right after (on up to 500k
                   rows): `paired_ratio` is the median of each run's rate over that, steadier than
                   the ratio when the machine's load drifts; the targets use the ratio
  data_path_shadow the same with bench@challenger (a second version, trained the same way with
                   another seed) scored in the shadow, in the same read; ratio to the single-model
                   limit, so two predictions per row make 0.5 the ceiling (target >= 0.42 at 5M, DuckDB)
  data_path_reasons the same with the default reasons policy (approximate contributions for every
                   row, exact TreeSHAP for the top 2%, at most 2,000) and no shadow (target >= 0.25
                   of the limit at 5M, DuckDB)
  data_path_both   the same with the shadow and the reasons (one run per N; no target). At
                   --duckdb-rows only data_path, data_path_both and the two peak RSS figures run
  peak_rss         peak resident memory of the data_path process (imports, model load, scoring one date)
  peak_rss_both    peak resident memory of the data_path_both process (target <= 1 GB at 10M, DuckDB);
                   both notes give the peaks of its anonymous and file-backed parts (sampled)
                   Every scoring run is checked before it counts: N rows scored; with the shadow, N
                   rows of @challenger written by that run; with the reasons, N x top_k reason rows
                   (exact TreeSHAP for the policy's share); without either, none. A run that
                   skipped its work fails the bench.
  validation       the GX suite (bench/bench_features.json) on the date, in seconds per 1M rows
  validation_sql   the same checks as one hand-written aggregate query, in seconds per 1M rows
  drift            what drift of a monitored date costs: its profile (every feature's and the score's
                   rows per reference bin), which the scorer stored with the publish, read back
                   (pipelines.monitoring.drift.profile), and compared (drift.compare), s per 1M rows.
                   Checked: the profile read is the stored one, and equals the warehouse's (drift_sql)
  drift_sql        the same for a date with no stored profile (scored before, or by another route):
                   the warehouse bins the 40 features and the scores (drift.binned: one scan of
                   the partition, one of the predictions), then drift.compare, s per 1M rows
  drift_scorer     what counting the profile adds to scoring: ProfileCounter.add_features and
                   add_scores over the date's batches (as score_partition calls them; the batches,
                   their matrices and scores made untimed beforehand), s per 1M rows, once per N
  estimated_performance   pipelines.monitoring.performance.estimate on the date, s per 1M rows
  realized_performance    pipelines.monitoring.performance.measure on the date once its labels
                   exist (analytics.bench_labels, drawn from the bench signal), s per 1M rows
  monitor_peak_rss peak RSS of a fresh process monitoring the date, at the first N and at each
                   --duckdb-rows N (target < 1 GB at 10M, DuckDB); the other model-health
                   figures are not measured at --duckdb-rows
At the first N only (a fresh process each):
  whole_task       wall time of everything a scoring task does for one date: imports, model
                   resolve and load, validation, scoring, write, run log (the data_path's spec:
                   reasons off, no shadow, as the naive baseline)
  fixed_cost       its fixed part: interpreter start, imports, model resolve and load
  naive_baseline   pandas.read_sql -> pyfunc predict -> DataFrame.to_sql, rows/s and peak RSS
  whole_task_vs_naive
  monitor_task     wall time of the whole monitor of one date: imports, registry resolve and
                   pipelines.monitoring.monitor.monitor_date, launch to exit
Once:
  dag_parse        seconds each DAG file adds to a parse, beyond `import airflow`
  backfill         `batchpred backfill churn` over 30 dates x ~100k rows (bench/backfill.py)

Every figure is the median of its runs with the min-max range. The heavy ones run fewer times
at large N (see `repeats_for`); each figure's `runs` in the JSON says how many. Results go to
bench/results/<timestamp>.json and bench/results/latest.json. The table is printed twice: one row per
measurement, then a summary in the README's layout (figure | DuckDB | PostgreSQL | target, met or missed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench import backfill, summary
from bench.common import (
    CHALLENGER,
    DAY,
    LABELS_SCHEMA,
    SCORING_MODES,
    Figure,
    bench_contract,
    bench_spec,
    feature_batches,
    label_select,
    measure,
    run_child,
    scoring_spec,
    signal,
)
from bench.validation_sql import validate_sql
from pipelines.adapters.resources import Resources
from pipelines.adapters.warehouse import Warehouse, tables
from pipelines.config.settings import DAGS_DIR, Settings
from pipelines.config.spec import ModelSpec
from pipelines.domain.reference import TrainingReference

RESULTS = Path(__file__).resolve().parent / "results"
NAIVE_TABLE = "bench_naive_features"
# The naive baseline's row cap: its to_sql inserts ~50k rows/s into PostgreSQL (so 1M, the
# size the target compares at, takes about a minute) and ~15k into DuckDB.
NAIVE_ROWS = {"postgres": 1_000_000, "duckdb": 100_000}


def repeats_for(rows: int, repeats: int) -> int:
    """Fewer runs at large N, to keep `make bench` reasonable: 3, 2 and 1 at 1M, 5M and 10M
    by default, for each of data_path, data_path_shadow and data_path_reasons (data_path_both and
    peak_rss_both run once per N). The GX validation runs once above 1M; the whole task, the monitor task and the drift
    at most twice, and the drift once above the first N (see main)."""
    return repeats if rows <= 1_000_000 else min(repeats, 2) if rows <= 5_000_000 else 1


def train_and_register(
    res: Resources,
    spec: ModelSpec,
    alias: str = "champion",
    seed: int = 0,
    sample_seeds: tuple[int, int] = (1, 2),
    threshold: float | None = None,
):
    """Train the bench booster on 50k rows, validate it on 50k more, and register it as
    bench@<alias> with its input contract and training reference. Returns the pinned version,
    the booster, the reference and the label threshold (the training sample's median signal,
    unless given). The challenger is trained the same way on other rows with another seed."""
    import pandas as pd
    import xgboost as xgb

    from pipelines.monitoring.reference import training_reference
    from pipelines.training.train import metrics_for

    contract = bench_contract(spec)

    def sample(seed: int, noise_seed: int, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        x = contract.matrix(pa.Table.from_batches(list(feature_batches(50_000, seed=seed))))
        s = signal(x)
        threshold = float(np.median(s)) if threshold is None else threshold
        y = (s + np.random.default_rng(noise_seed).normal(0, 1, len(s)) > threshold).astype(np.float32)
        return x, y, threshold

    x, y, threshold = sample(*sample_seeds, threshold=threshold)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "tree_method": "hist", "seed": seed},
        xgb.DMatrix(x, label=y, feature_names=list(contract.feature_names)),
        num_boost_round=300,
    )
    x_valid, y_valid, _ = sample(seed=3, noise_seed=4, threshold=threshold)
    valid_scores = booster.inplace_predict(x_valid)
    metrics = metrics_for(y_valid, valid_scores)
    reference = training_reference(
        contract, x, {}, valid_scores, y_valid, metrics, booster.get_score(importance_type="total_gain"), spec.action_threshold
    )
    example = pd.DataFrame(x[:5], columns=list(contract.feature_names))
    model = res.registry.log_model(
        spec.name, booster, contract, example, {"trees": 300, "depth": 6},
        {f"val_{k}": v for k, v in metrics.items()}, {"training_reference.json": reference},
    )  # fmt: skip
    res.registry.set_alias(model, alias)
    return res.registry.resolve(spec.name, alias), booster, TrainingReference.from_dict(reference), threshold


def load_partition(res: Resources, rows: int, table: str = "bench_features") -> None:
    """Replace the bench date of analytics.TABLE (`res` may create the DuckDB file)."""
    schema = next(feature_batches(1)).schema
    res.warehouse.replace_partition("analytics", table, DAY, schema, feature_batches(rows))


def scoring(
    res: Resources, name: str, rows: int, runs: int, limit_rate: float, challenger: int, separate: bool = True
) -> list[Figure]:
    """data_path, data_path_shadow, data_path_reasons, data_path_both, peak_rss and peak_rss_both,
    each from fresh processes (bench.tasks score ROWS MODE). The plain, shadow and reasons runs
    alternate, `runs` of each, so a change in the machine's load falls on all three alike;
    both runs once. Without `separate` (at --duckdb-rows) only plain and both run: the shadow's
    and the reasons' targets are at 5M, and a reasons run at 10M takes minutes. Every run's work
    is checked (check_scoring) before its time counts."""
    modes = ["plain", "shadow", "reasons"] if separate else ["plain"]
    results: dict[str, list[dict]] = {mode: [] for mode in [*modes, "both"]}
    for mode in [*modes * runs, "both"]:
        r = run_child("bench.tasks", res.settings, "score", str(rows), mode)
        check_scoring(res, rows, r, challenger)
        results[mode].append(r)

    def rate(mode: str) -> list[float]:
        return [rows / r["seconds"] for r in results[mode]]

    def ratio(mode: str) -> float:
        return statistics.median(rate(mode)) / limit_rate

    def paired(mode: str) -> float:
        return statistics.median(rows / r["seconds"] / r["limit_rate"] for r in results[mode])

    def rss(mode: str) -> list[float]:
        return [r["peak_rss_bytes"] / 1e9 for r in results[mode]]

    def split(mode: str) -> str:
        anon = statistics.median(r["peak_rss_anon_bytes"] / 1e9 for r in results[mode])
        file = statistics.median(r["peak_rss_file_bytes"] / 1e9 for r in results[mode])
        return f"peaks sampled every 50 ms: anonymous {anon:.2f} GB, file-backed {file:.2f} GB"

    exact = results["both"][0]["exact_rows"]
    k = results["both"][0]["reasons"]["top_k"]
    policy = f"reasons: approximate for every row, exact TreeSHAP for the top {exact:,} ({k} per row)"
    shadow = f"@challenger (version {challenger}) in the shadow"
    figures = [
        Figure("data_path", name, rows, rate("plain"), "rows/s", ratio("plain"),
               "read partition -> inplace_predict -> committed rows (fresh process, after model load; one booster, "
               "reasons off)", paired("plain")),
    ]  # fmt: skip
    if separate:
        figures += [
            Figure("data_path_shadow", name, rows, rate("shadow"), "rows/s", ratio("shadow"),
                   f"the same with {shadow}: two predictions per row, so 0.5 of the single-model limit is the ceiling; "
                   f"{rows:,} shadow rows written, checked; reasons off (target DuckDB >= 0.42 at 5M)", paired("shadow")),
            Figure("data_path_reasons", name, rows, rate("reasons"), "rows/s", ratio("reasons"),
                   f"the same with the default {policy}; {rows * k:,} reason rows written, checked; no shadow "
                   "(target DuckDB >= 0.25 at 5M)", paired("reasons")),
        ]  # fmt: skip
    return figures + [
        Figure("data_path_both", name, rows, rate("both"), "rows/s", ratio("both"),
               f"the same with {shadow} and the default reasons (the run peak_rss_both measures)", paired("both")),
        Figure("peak_rss", name, rows, rss("plain"), "GB",
               note="fresh process: imports, model load, scoring one date, one booster, reasons off; "
               f"{split('plain')} (target <= 1.0 GB at 10M)"),
        Figure("peak_rss_both", name, rows, rss("both"), "GB",
               note=f"the same with {shadow} and the default {policy}; {rows:,} shadow rows and {rows * k:,} "
               f"reason rows, checked; {split('both')} (target <= 1.0 GB at 10M on DuckDB)"),
    ]  # fmt: skip


def check_scoring(res: Resources, rows: int, r: dict, challenger: int) -> None:
    """Refuse (AssertionError) a scoring run that skipped any of its mode's work: every row scored;
    with the shadow, `rows` rows of @challenger written by this run and no shadow error; with the
    reasons, top_k reason rows per row written by this run, exact TreeSHAP for exactly the policy's
    share; without them, none. Untimed."""
    from pipelines.adapters.warehouse import tables
    from pipelines.domain.identifiers import qualified

    shadow, reasons = SCORING_MODES[r["mode"]]
    what = f"score {rows} {r['mode']} ({r['scoring_run_id']})"
    if r["rows"] != rows:
        raise AssertionError(f"{what} scored {r['rows']} rows, not {rows}")
    if r["shadow_errors"]:
        raise AssertionError(f"{what}: the shadow failed: {r['shadow_errors']}")
    expected_shadows = [{"alias": CHALLENGER, "version": challenger}] if shadow else []
    if r["shadows"] != expected_shadows:
        raise AssertionError(f"{what} scored the shadows {r['shadows']}, not {expected_shadows}")
    spec = scoring_spec(r["mode"])
    warehouse = res.warehouse
    params = [DAY, r["scoring_run_id"]]

    def count(table, extra: str = "", by: str | None = None) -> dict:
        if warehouse.table_columns(table.schema, table.name) is None:
            return {}
        group = f", {by} as g" if by else ", '' as g"
        sql = (
            f"select count(*) as n{group} from {qualified(table.schema, table.name)} "
            f"where as_of_date = $1 and scoring_run_id = $2{extra}{f' group by {by}' if by else ''}"
        )
        return {row["g"]: int(row["n"]) for row in warehouse.query(sql, params).to_pylist() if row["n"]}

    shadowed = count(tables.shadow(spec), f" and alias = '{CHALLENGER}' and model_version = {int(challenger)}")
    if shadowed.get("", 0) != (rows if shadow else 0):
        raise AssertionError(f"{what} wrote {shadowed.get('', 0)} shadow rows of @{CHALLENGER}, not {rows if shadow else 0}")

    # Every row gets exactly top_k reasons; under the default policy the highest-scored
    # min(exact_cap, ceil(exact_share * rows)) rows get exact TreeSHAP. score_partition sizes that
    # share on `expected // shards + 1` rows, so one row more is accepted below the cap.
    k = r["reasons"]["top_k"]
    written = count(tables.reasons(spec), by="reason_method")
    exact = written.get("tree_shap", 0) // k
    share = min(r["reasons"]["exact_cap"], math.ceil(r["reasons"]["exact_share"] * rows)) if reasons else 0
    bad = (
        sum(written.values()) != (rows * k if reasons else 0)
        or set(written) - {"approximate", "tree_shap"}
        or written.get("tree_shap", 0) % k
        or not share <= exact <= min(r["reasons"]["exact_cap"], share + 1)
        or r["explained_rows"] != (rows if reasons else 0)
    )
    if bad:
        raise AssertionError(
            f"{what} wrote the reason rows {written} for {r['explained_rows']} explained rows; expected "
            f"{rows if reasons else 0} rows x {k} reasons, {share} of them (or one more) exact"
        )
    r["exact_rows"] = exact


def validation(res: Resources, spec: ModelSpec, name: str, rows: int, runs: int, plant: bool) -> list[Figure]:
    """The GX suite and the single aggregate query over the date's rows, in seconds per 1M rows.
    With `plant`, first show that both catch a violation in the partition's last row."""
    import great_expectations  # noqa: F401 - its import is part of the fixed cost, not of validating

    checked = ""
    warehouse = res.warehouse
    if plant:
        last_row = "where as_of_date = $1 and entity_id = $2"
        before = warehouse.query(f"select f00 from analytics.bench_features {last_row}", [DAY, rows - 1]).to_pylist()[0]["f00"]
        warehouse.execute(f"update analytics.bench_features set f00 = 99 {last_row}", [DAY, rows - 1])
        caught = (not res.gx.validate_partition(spec, DAY).success, not validate_sql(warehouse, spec, DAY)["success"])
        warehouse.execute(f"update analytics.bench_features set f00 = $3 {last_row}", [DAY, rows - 1, before])
        if caught != (True, True):
            raise AssertionError(f"a violation in the last row went unnoticed (GX caught it: {caught[0]}, SQL: {caught[1]})")
        checked = "; a violation planted in the last row was caught"
    per_1m = 1e6 / rows

    def gx_suite() -> None:
        if not res.gx.validate_partition(spec, DAY).success:
            raise AssertionError("the bench partition fails its own suite; see monitoring.validation_results")

    def one_query() -> None:
        if not validate_sql(warehouse, spec, DAY)["success"]:
            raise AssertionError("the bench partition fails the aggregate query's checks")

    gx, sql = measure(gx_suite, runs), measure(one_query, runs)
    n = len(json.loads(spec.suite_path.read_text())["expectations"])
    return [
        Figure("validation", name, rows, [s * per_1m for s in gx], "s/1M rows",
               note=f"GX validate_partition, {n} expectations, every row (target DuckDB <= 0.25, PostgreSQL <= 1.0){checked}"),
        Figure("validation_sql", name, rows, [s * per_1m for s in sql], "s/1M rows",
               note="the same checks as one aggregate query over every row"),
    ]  # fmt: skip


def model_health(
    res: Resources,
    spec: ModelSpec,
    name: str,
    rows: int,
    runs: int,
    drift_runs: int,
    version: int,
    reference: TrainingReference,
    threshold: float,
) -> list[Figure]:
    """drift, drift_sql, estimated_performance and realized_performance of the scored date, in seconds
    per 1M rows. The labels are written (untimed) between the estimate and the realized performance.
    The drift figures (drift_sql is slow) run at most twice at the first N and once above it (see main)."""
    from pipelines.monitoring import performance

    warehouse = res.warehouse
    per_1m = 1e6 / rows
    found: dict = {}

    def estimated() -> None:
        found["estimated"] = performance.estimate(warehouse, spec, reference, version, DAY)

    figures = drift_figures(res, spec, name, rows, drift_runs, version, reference)
    estimate_s = measure(estimated, runs)
    est = found["estimated"]
    if est is None or est.rows != rows:
        raise AssertionError(f"the estimated performance counted {est and est.rows} scores, not {rows}")

    started = time.perf_counter()
    labelled = warehouse.replace_partition_select(
        "analytics", spec.labels_model, DAY, LABELS_SCHEMA, label_select(spec), [DAY, threshold]
    )
    labels_s = time.perf_counter() - started
    if labelled != rows:
        raise AssertionError(f"{labelled} labels written for {rows} rows")
    labels_through = DAY + dt.timedelta(days=spec.training.label_horizon_days)

    def realized() -> None:
        found["realized"] = performance.measure(warehouse, spec, reference, version, DAY, labels_through, est.expected_auc)

    realize_s = measure(realized, runs)
    realized_row = found["realized"]
    if realized_row.rows_labelled != rows:
        raise AssertionError(f"the realized performance joined {realized_row.rows_labelled} labels, not {rows}")
    band = f"[{est.expected_auc_lower:.4f}, {est.expected_auc_upper:.4f}]" if est.expected_auc is not None else ""
    return figures + [
        Figure("estimated_performance", name, rows, [s * per_1m for s in estimate_s], "s/1M rows",
               note=f"performance.estimate (score buckets + CBPE): expected AUC {est.expected_auc or 0:.4f} {band}, "
               f"validation AUC {est.validation_auc:.4f}, status {est.status} (target <= 0.5)"),
        Figure("realized_performance", name, rows, [s * per_1m for s in realize_s], "s/1M rows",
               note=f"performance.measure over {rows:,} labels (written in {labels_s:.1f} s, untimed): ROC AUC "
               f"{realized_row.roc_auc or 0:.4f}, PR AUC {realized_row.pr_auc or 0:.4f}, status {realized_row.status} "
               "(target <= 0.5)"),
    ]  # fmt: skip


def drift_figures(
    res: Resources, spec: ModelSpec, name: str, rows: int, runs: int, version: int, reference: TrainingReference
) -> list[Figure]:
    """drift (the stored profile read and compared) and drift_sql (the date binned by the warehouse
    and compared) of the scored date, in seconds per 1M rows. Refuses (AssertionError) a date
    whose profile was not stored with its predictions, or whose stored profile differs from
    the warehouse's by a row, or that did not count every row."""
    from pipelines.adapters.warehouse import health, tables
    from pipelines.monitoring import drift

    warehouse = res.warehouse
    per_1m = 1e6 / rows
    found: dict = {}
    run = health.scoring_run(warehouse, spec, version, DAY)

    def monitored() -> None:  # what monitoring a date costs now: its stored profile, read and compared
        current = drift.profile(warehouse, spec, reference, version, DAY)
        found["drift"] = current, drift.compare(warehouse, spec, reference, version, DAY, current)

    def binned() -> None:  # a date without one: the warehouse bins it
        current = drift.binned(warehouse, spec, reference, version, DAY, run)
        found["drift_sql"] = current, drift.compare(warehouse, spec, reference, version, DAY, current)

    drift_s, sql_s = measure(monitored, runs), measure(binned, runs)
    # The scores' histogram, the fallback's second scan, once more on its own: the rest is the features'.
    predictions = tables.predictions(spec)
    (score_s,) = measure(lambda: health.histogram(warehouse, predictions, DAY, [drift.score_bins(reference)], version), 1)
    (current, compared), (scanned, _) = found["drift"], found["drift_sql"]
    if run is None or drift.stored_profile(warehouse, spec, reference, version, DAY, run) is None:
        raise AssertionError(f"the bench date has no stored profile of its predictions (scoring run {run})")
    if current.counts != scanned.counts or current.rows != scanned.rows:
        raise AssertionError("the profile the scorer stored differs from the one the warehouse bins")
    bad = [n for n, v in scanned.means.items() if v is not None and not math.isclose(current.means[n], v, rel_tol=1e-9)]
    if bad:
        raise AssertionError(f"the stored means of {bad} differ from the warehouse's beyond a relative 1e-9")
    scored = sum(current.counts[drift.SCORE])
    if current.rows != rows or scored != rows:
        raise AssertionError(f"the drift profile counted {current.rows} feature rows and {scored} scores, not {rows}")
    statuses = {s: sum(1 for r in compared if r.status == s) for s in ("ok", "warn", "alert")}
    worst = max((r for r in compared if r.feature != drift.SCORE), key=lambda r: r.psi)
    return [
        Figure("drift", name, rows, [s * per_1m for s in drift_s], "s/1M rows",
               note=f"drift.profile (the profile of {len(reference.features)} features + the score the scorer stored "
               f"with the predictions, read back) + drift.compare (exact threshold shares, comparisons); equal to the "
               f"warehouse's to the row (checked); statuses {statuses}, worst PSI {worst.psi:.4f} ({worst.feature}) "
               "(target DuckDB <= 0.5, PostgreSQL <= 2.0)"),
        Figure("drift_sql", name, rows, [s * per_1m for s in sql_s], "s/1M rows",
               note=f"drift.binned (one scan for the histogram of {len(reference.features)} features over the reference "
               f"bins, one for the scores': {score_s * per_1m:.2f} s/1M rows of it) + drift.compare: a date with no "
               "stored profile (target DuckDB <= 0.5, PostgreSQL <= 2.0, the drift target before the scorer counted)"),
    ]  # fmt: skip


def scorer_binning(res: Resources, model, reference: TrainingReference, rows: int, runs: int) -> Figure:
    """drift_scorer: seconds per 1M rows that counting the profile adds to scoring, on the bench's
    batches (spec.batch_size rows each), their matrices and scores made untimed beforehand."""
    from pipelines.scoring.profile import ProfileCounter

    contract = res.registry.contract(model)
    booster = res.registry.load_booster(model)
    batch_size = bench_spec().batch_size
    seconds = [0.0] * runs
    counters = [ProfileCounter(reference, contract) for _ in range(runs)]
    for batch in feature_batches(rows, batch_size):  # one batch in memory at a time, as the scorer holds them
        matrix = contract.matrix(batch)
        scores = booster.inplace_predict(matrix)
        for i, counter in enumerate(counters):
            started = time.perf_counter()
            counter.add_features(batch, matrix)
            counter.add_scores(scores)
            seconds[i] += time.perf_counter() - started
    if any(c.rows != rows or sum(c.counts["score"]) != rows for c in counters):
        raise AssertionError("the profile counter did not count every row")
    what = f"ProfileCounter.add_features + add_scores over {batch_size:,}-row batches of {len(reference.features)} features"
    return Figure("drift_scorer", None, rows, [s * 1e6 / rows for s in seconds], "s/1M rows",
                  note=f"{what}, in-process (the data_path figures include it) (target <= 0.2)")  # fmt: skip


def monitor_task(settings: Settings, name: str, rows: int, runs: int, whole_wall: float | None) -> list[Figure]:
    """The whole monitor of the scored date in fresh processes: monitor_task (with `whole_wall`,
    the whole scoring task's median wall time, to compare with) and monitor_peak_rss."""
    results = [run_child("bench.tasks", settings, "monitor") for _ in range(runs)]
    bad = [r["summary"] for r in results if r["status"] in ("no_reference", "no_predictions", "empty_partition")]
    if bad:
        raise AssertionError(f"the monitor did not monitor the bench date: {bad[0]}")
    what = "fresh process: imports, resolve, monitor_date of one date (target < 1 GB at 10M rows on DuckDB)"
    rss = Figure("monitor_peak_rss", name, rows, [r["peak_rss_bytes"] / 1e9 for r in results], "GB", note=what)
    if whole_wall is None:
        return [rss]
    walls = [r["wall_s"] for r in results]

    def phase(a: str, b: str) -> float:
        return statistics.median(r["stamps"][b] - r["stamps"][a] for r in results)

    startup = statistics.median(r["stamps"]["started"] - r["launched_at"] for r in results)
    share = statistics.median(walls) / whole_wall
    return [
        Figure("monitor_task", name, rows, walls, "s",
               note=f"fresh process, launch to exit: interpreter {startup:.2f} s, imports {phase('started', 'imported'):.2f} s, "
               f"resolve {phase('imported', 'resolved'):.2f} s, monitor_date {phase('resolved', 'monitored'):.2f} s; "
               f"{share:.2f} of the whole scoring task ({whole_wall:.1f} s); {results[-1]['summary']}"),
        rss,
    ]  # fmt: skip


def whole_task(settings: Settings, name: str, rows: int, runs: int) -> tuple[list[Figure], float]:
    """Returns the figures and the median whole-task wall time."""
    results = [run_child("bench.tasks", settings, "whole") for _ in range(runs)]
    assert all(r["rows"] == rows for r in results), results
    walls = [r["wall_s"] for r in results]

    def phase(a: str, b: str) -> float:
        return statistics.median(r["stamps"][b] - r["stamps"][a] for r in results)

    fixed = [r["stamps"]["loaded"] - r["launched_at"] for r in results]
    startup = statistics.median(r["stamps"]["started"] - r["launched_at"] for r in results)
    breakdown = (
        f"interpreter {startup:.2f} s, imports {phase('started', 'imported'):.2f} s + great_expectations "
        f"{phase('imported', 'imported_gx'):.2f} s, resolve {phase('imported_gx', 'resolved'):.2f} s, "
        f"load {phase('resolved', 'loaded'):.2f} s"
    )
    rate = rows / statistics.median(walls)
    figures = [
        Figure("whole_task", name, rows, walls, "s",
               note=f"fresh process, launch to exit: fixed part, validation {phase('loaded', 'validated'):.2f} s "
               f"(with quarantine), scoring + write + run log {phase('validated', 'scored'):.2f} s; {rate:,.0f} rows/s"),
        Figure("fixed_cost", name, None, fixed, "s", note=f"target <= 6 s: {breakdown}"),
        Figure("whole_task_peak_rss", name, rows, [r["peak_rss_bytes"] / 1e9 for r in results], "GB",
               note="peak RSS of that process (GX included)"),
    ]  # fmt: skip
    return figures, statistics.median(walls)


def naive(res: Resources, name: str, rows: int, cap: int, ours: float | None) -> list[Figure]:
    """The tutorial pipeline on the first min(rows, cap) rows of the same data, in a fresh process.
    `ours` is the whole task's rows/s. Its whole task on the capped table replaces the bench date's
    predictions with that table's, so this runs last at its N."""
    n = min(rows, cap)
    load_partition(res, n, NAIVE_TABLE)
    r = run_child("bench.tasks", res.settings, "naive", NAIVE_TABLE)
    assert r["rows"] == n, r
    s = r["stamps"]
    wall_rate = n / r["wall_s"]
    work_rate = n / (s["written"] - s["loaded"])  # read + predict + write, without imports and model load
    capped = f"capped at {n:,} of {rows:,} rows (it would run too long); " if n < rows else ""
    figures = [
        Figure("naive_baseline", name, n, [wall_rate], "rows/s",
               note=f"{capped}one run; fresh process launch to exit. Phases: imports {s['imported'] - s['started']:.1f} s, "
               f"pyfunc load {s['loaded'] - s['imported']:.1f} s, read_sql {s['read'] - s['loaded']:.1f} s, "
               f"predict {s['predicted'] - s['read']:.1f} s, to_sql {s['written'] - s['predicted']:.1f} s; "
               f"without imports and load {work_rate:,.0f} rows/s"),
        Figure("naive_peak_rss", name, n, [r["peak_rss_bytes"] / 1e9 for _ in (0,)], "GB", note=f"{capped}same process"),
    ]  # fmt: skip
    if ours is not None:
        # On the same rows both run launch to exit. A capped naive would pay its fixed cost on
        # fewer rows, which flatters us, so then it is compared without its imports and model load.
        naive_rate = wall_rate if n == rows else work_rate
        what = (
            f"whole_task rows/s at {rows:,} rows ({ours:,.0f}) / naive rows/s at {n:,} rows ({naive_rate:,.0f}, "
            + ("both fresh processes launch to exit" if n == rows else "without its imports and model load, as it is capped")
            + f"); the naive without imports and load: {work_rate:,.0f} rows/s. Target >= 8x at 1M on PostgreSQL"
        )
        figures.append(Figure("whole_task_vs_naive", name, rows, [ours / naive_rate], "x faster", note=what))
    if n < rows:
        same = run_child("bench.tasks", res.settings, "whole", NAIVE_TABLE)
        assert same["rows"] == n, same
        figures.append(
            Figure("whole_task_vs_naive_same_rows", name, n, [r["wall_s"] / same["wall_s"]], "x faster",
                   note=f"naive wall / whole_task wall ({same['wall_s']:.1f} s), both fresh processes launch to exit, "
                   f"on the same {n:,} rows: fixed costs weigh heavily at this size")
        )  # fmt: skip
    return figures


def dag_parse(repeats: int) -> list[Figure]:
    code_base = "import time; t=time.perf_counter(); import airflow.sdk; print(time.perf_counter()-t)"
    figures = []
    ignored = set((DAGS_DIR / ".airflowignore").read_text().split())  # not DAG files (airflow_commands.py)
    for dag_file in sorted(f for f in DAGS_DIR.glob("*.py") if f.name not in ignored):
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
    parser.add_argument("--duckdb-rows", type=int, nargs="*", default=[10_000_000], help="row counts run on DuckDB only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warehouses", default="duckdb,postgres")
    parser.add_argument("--naive-rows", type=int, default=None, help=f"cap on the naive baseline's rows {NAIVE_ROWS}")
    parser.add_argument("--backfill", default="duckdb", help="warehouses for the backfill figure, or 'none'")
    parser.add_argument("--backfill-customers", type=int, default=180_000)
    parser.add_argument(
        "--only",
        choices=["drift", "scoring"],
        help="measure only the drift figures (drift, drift_sql, drift_scorer), at each --rows N; or only the limit, "
        "the data paths and their peak RSS",
    )
    args = parser.parse_args()
    only_drift, only_scoring = args.only == "drift", args.only == "scoring"
    began = time.perf_counter()

    home = Path(tempfile.mkdtemp(prefix="batchpred-bench-"))
    base = Settings.from_env({"BATCHPRED_HOME": str(home)})
    registered = Resources.from_settings(base)  # the registry all the figures share
    spec = bench_spec()
    contract = bench_contract(spec)
    model, booster, reference, threshold = train_and_register(registered, spec)
    registered.registry.load_booster(model)
    # The challenger the shadow figures score beside the champion: the same training on other rows, another seed.
    challenger, *_ = train_and_register(registered, spec, CHALLENGER, seed=1, sample_seeds=(5, 6), threshold=threshold)

    warehouses = args.warehouses.split(",")
    urls = {}
    cluster = None
    postgres = "PostgreSQL"
    if "duckdb" in warehouses or "duckdb" in args.backfill:
        urls["duckdb"] = f"duckdb:///{home / 'bench.duckdb'}"
    if "postgres" in warehouses or "postgres" in args.backfill:
        from tests.services import PostgresCluster, create_database

        server = os.environ.get("BATCHPRED_TEST_POSTGRES_URL")
        if not server:
            cluster = PostgresCluster().start()
            server = cluster.url
        urls["postgres"] = create_database(server, "batchpred_bench")
        postgres = postgres_label(Resources.from_settings(replace(base, warehouse_url=urls["postgres"])).warehouse)

    plan = [(rows, [w for w in warehouses if w in urls]) for rows in args.rows]
    plan += [(rows, ["duckdb"]) for rows in args.duckdb_rows if "duckdb" in urls]
    figures: list[Figure] = []
    errors: list[str] = []
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        for rows, names in plan:
            if only_drift and rows not in args.rows:
                continue
            runs = repeats_for(rows, args.repeats)
            first = rows == args.rows[0]
            drift_runs = min(runs, 2) if first else 1
            if not only_drift:
                # Row-major, as inplace_predict likes it best: the limit is not tied to our matrix layout.
                matrix = np.ascontiguousarray(contract.matrix(pa.Table.from_batches(list(feature_batches(rows)))))
                limit_rate = [rows / s for s in measure(functools.partial(booster.inplace_predict, matrix), runs)]
                del matrix
                figures.append(
                    Figure("limit", None, rows, limit_rate, "rows/s", 1.0, "inplace_predict, float32 in memory, all cores")
                )
            if rows in args.rows and not only_scoring:
                figures.append(scorer_binning(registered, model, reference, rows, drift_runs))
            for name in names:
                done = len(figures)
                # The bench makes the warehouse (a new DuckDB file or database), and sets it up as
                # `batchpred generate` does.
                res = Resources.from_settings(replace(base, warehouse_url=urls[name]), create=True)
                tables.ensure_shared_tables(res.warehouse)
                settings = res.settings
                load_partition(res, rows)
                if only_drift:  # the date scored once, untimed, for its predictions and stored profile
                    check_scoring(res, rows, run_child("bench.tasks", settings, "score", str(rows), "plain"), challenger.version)
                    figures += drift_figures(res, spec, name, rows, drift_runs, model.version, reference)
                    print_table(figures[done:], header=False, file=sys.stderr)
                    save(figures, args, began, stamp)
                    continue
                figures += scoring(res, name, rows, runs, statistics.median(limit_rate), challenger.version, rows in args.rows)
                if only_scoring:
                    print_table(figures[done:], header=False, file=sys.stderr)
                    save(figures, args, began, stamp)
                    continue
                figures += validation(res, spec, name, rows, runs if rows <= 1_000_000 else 1, plant=first)
                if rows in args.rows:  # the model-health figures at each N; at --duckdb-rows only the monitor's peak RSS
                    figures += model_health(res, spec, name, rows, runs, drift_runs, model.version, reference, threshold)
                if first:
                    task_figures, whole_wall = whole_task(settings, name, rows, min(runs, 2))
                    figures += task_figures
                    figures += monitor_task(settings, name, rows, min(runs, 2), whole_wall)
                    figures += naive(res, name, rows, args.naive_rows or NAIVE_ROWS[name], rows / whole_wall)
                elif rows not in args.rows:
                    figures += monitor_task(settings, name, rows, 1, None)
                print_table(figures[done:], header=False, file=sys.stderr)
                save(figures, args, began, stamp)  # a run cut short still leaves what it measured
        if not args.only:
            figures += dag_parse(args.repeats)
        save(figures, args, began, stamp)
        for name in [w for w in args.backfill.split(",") if w in urls and not args.only]:
            backfill_home = home / f"backfill-{name}"
            backfill_url = urls[name] if name == "postgres" else f"duckdb:///{backfill_home / 'warehouse.duckdb'}"
            settings = Settings.from_env({"BATCHPRED_HOME": str(backfill_home), "BATCHPRED_WAREHOUSE_URL": backfill_url})
            try:
                figures += backfill.run(settings, args.backfill_customers, 30)
            except RuntimeError as exc:  # report it after the table rather than lose the other figures
                errors.append(f"backfill on {name}: {exc}")
    finally:
        if cluster:
            cluster.stop()
        shutil.rmtree(home, ignore_errors=True)  # the partitions run to gigabytes

    save(figures, args, began, stamp, errors)
    print_table(figures)
    print("\n" + summary.table(figures, postgres))
    print(f"\n{len(figures)} figures in {time.perf_counter() - began:.0f} s; results in {RESULTS / (stamp + '.json')}")
    if errors:
        sys.exit("\n".join(["failed:", *errors]))


def postgres_label(warehouse: Warehouse) -> str:
    """'PostgreSQL 15', from the server."""
    version = warehouse.query("select current_setting('server_version') as v").to_pylist()[0]["v"]
    return f"PostgreSQL {version.split('.')[0]}"


def machine() -> dict:
    """What the figures were measured on."""
    info = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    for path, key, field in (("/proc/cpuinfo", "cpu", "model name"), ("/proc/meminfo", "memory", "MemTotal")):
        try:
            line = next(line for line in open(path) if line.startswith(field))
            info[key] = line.split(":", 1)[1].strip()
        except (OSError, StopIteration):
            pass
    return info


def save(figures: list[Figure], args: argparse.Namespace, began: float, stamp: str, errors: list[str] = ()) -> None:
    report = {
        "created_at": stamp,
        "machine": machine(),
        "arguments": vars(args),
        "elapsed_s": time.perf_counter() - began,
        "measurements": [f.as_dict() for f in figures],
        "targets": summary.verdicts(figures),
        "errors": list(errors),
    }
    RESULTS.mkdir(exist_ok=True)
    for path in (RESULTS / f"{stamp}.json", RESULTS / "latest.json"):
        path.write_text(json.dumps(report, indent=2))


def print_table(figures: list[Figure], header: bool = True, file=sys.stdout) -> None:
    if header:
        print("| figure | warehouse | rows | median | min–max | unit | ratio to limit | runs | note |", file=file)
        print("|---|---|---|---|---|---|---|---|---|", file=file)
    for f in figures:
        d = f.as_dict()
        ratio = f"{d['ratio_to_limit']:.2f}" if d["ratio_to_limit"] is not None else ""
        ratio += f" (paired {d['paired_ratio']:.2f})" if d["paired_ratio"] is not None else ""
        rows = f"{d['rows']:,}" if d["rows"] else ""
        print(
            f"| {d['figure']} | {d['warehouse'] or ''} | {rows} | {d['median']:,.3f} | {d['min']:,.3f}–{d['max']:,.3f} "
            f"| {d['unit']} | {ratio} | {len(d['runs'])} | {d['note']} |",
            file=file,
            flush=True,
        )


if __name__ == "__main__":
    main()
