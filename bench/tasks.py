"""The fresh processes the harness times, one per figure:

    python -m bench.tasks score ROWS [MODE]
                                       score_partition for the bench date (ROWS rows, none
                                       quarantined), models, contracts and the champion's training
                                       reference loaded first: the data
                                       path's seconds, the process's peak RSS, and the limit
                                       measured right after in the same process. MODE (a key of
                                       bench.common.SCORING_MODES): plain (the default: the
                                       champion alone, reasons off), shadow (@challenger scored
                                       in the shadow), reasons (the default reasons policy), both
    python -m bench.tasks whole [TABLE] everything a scoring task does for one date, in order:
                                       imports, resolve, load, validate, score, write, run log
                                       (on analytics.TABLE instead of bench_features if given;
                                       plain: reasons off, no shadow, as the naive baseline)
    python -m bench.tasks naive TABLE  the tutorial pipeline: pandas.read_sql -> pyfunc predict
                                       -> DataFrame.to_sql, reading analytics.TABLE for the bench date
    python -m bench.tasks monitor      the whole monitor of the (scored) bench date: imports, resolve,
                                       pipelines.monitoring.monitor.monitor_date

Each prints one JSON line: time.time() stamps of its phases and its peak RSS.
Settings come from the environment (BATCHPRED_HOME, BATCHPRED_WAREHOUSE_URL, MLFLOW_TRACKING_URI).
"""

import time

STARTED = time.time()

import json  # noqa: E402
import sys  # noqa: E402


def peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that over
    from the parent the child was forked from, so a big harness inflates every child."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


class RssSampler:
    """The peaks of RssAnon and RssFile (file-backed pages: mapped files such as memory-mapped
    spools, and the libraries) of this process, sampled every 50 ms in a daemon thread, to tell
    where a peak RSS comes from. Their sum at one sample is at most VmHWM."""

    def __init__(self):
        import threading

        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for line in open("/proc/self/status"):
                key = line.split(":", 1)[0]
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], int(line.split()[1]) * 1024)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"peak_rss_anon_bytes": self.peak["RssAnon"], "peak_rss_file_bytes": self.peak["RssFile"]}


def score(rows: str, mode: str = "plain") -> dict:
    import datetime as dt
    import uuid

    from bench.common import DAY, scoring_spec
    from pipelines.adapters.resources import Resources
    from pipelines.config.settings import Settings
    from pipelines.domain.records import ValidationRef
    from pipelines.scoring.score import score_partition
    from pipelines.usecases.steps import resolve_shadows

    res = Resources.from_settings(Settings.from_env()).ready()  # as a scoring or monitor task builds them
    spec = scoring_spec(mode)
    model = res.registry.resolve("bench", "champion")
    # The shadows as a scoring task pins them (pipelines.usecases.steps.plan): each of the spec's
    # shadow_aliases that exists. None in plain and reasons modes (shadow_aliases is empty).
    shadows, _ = resolve_shadows(res, spec, model)
    if len(shadows) != len(spec.shadow_aliases):
        raise SystemExit(f"mode {mode}: shadow aliases {spec.shadow_aliases} resolved to {shadows}; register them first")
    for pinned in (model, *shadows):
        res.registry.contract(pinned)
        res.registry.load_booster(pinned)
    res.registry.training_reference(model)  # what the date's drift profile is counted against (0.2 s, cold)
    # No validation ran: nothing is quarantined (there is no quarantine table, so the read
    # excludes nothing), and the count the write is checked against is the partition's.
    validation = ValidationRef(validation_id="bench", rows=int(rows), rows_quarantined=0)
    scoring_run_id = f"bench-{mode}-{uuid.uuid4().hex[:12]}"  # the harness counts this run's shadow and reason rows
    started_at = dt.datetime.now(dt.UTC)
    sampler = RssSampler()
    started = time.perf_counter()
    result = score_partition(res, spec, DAY, model, validation, scoring_run_id, shadows=shadows)
    seconds = time.perf_counter() - started
    peak = peak_rss_bytes()
    return {
        "seconds": seconds,
        "rows": result.rows_scored,
        "peak_rss_bytes": peak,
        **sampler.stop(),
        "limit_rate": paired_limit(res, model, int(rows)),
        "mode": mode,
        "scoring_run_id": scoring_run_id,
        "started_at": started_at.isoformat(),
        "shadows": [{"alias": m.alias, "version": m.version} for m in shadows],
        "shadow_errors": [str(failure) for failure in result.shadow_failures],
        "explained_rows": result.explained_rows,
        "reasons": {"method": spec.reasons.method, "top_k": spec.reasons.top_k,
                    "exact_share": spec.reasons.exact_share, "exact_cap": spec.reasons.exact_cap},
    }  # fmt: skip


def paired_limit(res, model, rows: int) -> float:
    """The limit again, in this process right after its timed run (and after its peak RSS was read):
    booster.inplace_predict rows/s on the first min(rows, 500k) bench rows, float32 in memory. The
    machine's load drifts from minute to minute, so the harness also gives each run's rate over
    the limit measured beside it (`paired_ratio`)."""
    import numpy as np
    import pyarrow as pa

    from bench.common import feature_batches

    n = min(rows, 500_000)
    contract = res.registry.contract(model)
    matrix = np.ascontiguousarray(contract.matrix(pa.Table.from_batches(list(feature_batches(n)))))
    booster = res.registry.load_booster(model)
    started = time.perf_counter()
    booster.inplace_predict(matrix)
    return n / (time.perf_counter() - started)


def whole(table: str | None = None) -> dict:
    stamps = {"started": STARTED}
    import mlflow.xgboost  # noqa: F401
    import xgboost  # noqa: F401

    from bench.common import DAY, scoring_spec
    from pipelines.adapters.resources import Resources
    from pipelines.config.settings import Settings
    from pipelines.scoring.score import score_partition  # noqa: F401 - imported by the score step; counted here
    from pipelines.usecases import steps

    stamps["imported"] = time.time()
    import great_expectations  # noqa: F401 - the validate step's import, counted with the fixed part

    from pipelines.adapters.validate import Gx  # noqa: F401

    stamps["imported_gx"] = time.time()
    res = Resources.from_settings(Settings.from_env()).ready()  # as a scoring or monitor task builds them
    # The same plain path as the naive baseline (reasons off, no shadow), whatever the registry holds.
    spec = scoring_spec("plain", table) if table else scoring_spec("plain")
    # plan: completeness, the run log's first row, resolve the alias, check the contract.
    attempt = steps.plan(res, spec, DAY)
    stamps["resolved"] = time.time()
    res.registry.load_booster(attempt.pinned)
    stamps["loaded"] = time.time()
    validation = steps.validate(res, spec, attempt)
    stamps["validated"] = time.time()
    published = steps.score(res, spec, attempt, validation)
    stamps["scored"] = time.time()
    return {"stamps": stamps, "rows": published.rows_scored, "peak_rss_bytes": peak_rss_bytes()}


def monitor() -> dict:
    stamps = {"started": STARTED}
    from bench.common import DAY, bench_spec
    from pipelines.adapters.resources import Resources
    from pipelines.config.settings import Settings
    from pipelines.monitoring.monitor import monitor_date

    stamps["imported"] = time.time()
    res = Resources.from_settings(Settings.from_env()).ready()  # as a scoring or monitor task builds them
    model = res.registry.resolve("bench", "champion")
    stamps["resolved"] = time.time()
    health = monitor_date(res, bench_spec(), DAY, model)
    stamps["monitored"] = time.time()
    return {
        "stamps": stamps,
        "status": health.status,
        "drift_status": health.drift_status,
        "alerts": len(health.alerts),
        "summary": health.summary(),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def naive(table: str) -> dict:
    stamps = {"started": STARTED}
    import mlflow.pyfunc
    import pandas as pd
    import sqlalchemy

    from bench.common import DAY
    from pipelines.adapters.warehouse.url import parse
    from pipelines.config.settings import Settings

    stamps["imported"] = time.time()
    settings = Settings.from_env()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    model = mlflow.pyfunc.load_model("models:/bench@champion")
    version = mlflow.MlflowClient().get_model_version_by_alias("bench", "champion").version
    stamps["loaded"] = time.time()
    engine = sqlalchemy.create_engine(parse(settings.warehouse_url).sqlalchemy)
    frame = pd.read_sql(f"select * from analytics.{table} where as_of_date = '{DAY.isoformat()}'", engine)
    stamps["read"] = time.time()
    features = [f"f{i:02d}" for i in range(40)]
    frame["score"] = model.predict(frame[features].astype("float32"))  # the signature says float32
    stamps["predicted"] = time.time()
    out = frame[["entity_id", "as_of_date", "score"]].assign(
        model_name="bench", model_version=version, scored_at=pd.Timestamp.now("UTC")
    )
    out.to_sql(f"{table}_scores", engine, schema="predictions", if_exists="replace", index=False)
    stamps["written"] = time.time()
    engine.dispose()
    return {"stamps": stamps, "rows": len(frame), "peak_rss_bytes": peak_rss_bytes()}


if __name__ == "__main__":
    task, *args = sys.argv[1:]
    result = {"score": score, "whole": whole, "naive": naive, "monitor": monitor}[task](*args)
    print(json.dumps(result))
