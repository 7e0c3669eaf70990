"""No realized metric before its labels are complete (issue 18, kind 3), on both warehouses:
the tables the labels model reads are part of the label-completeness rule, a date whose
label sources lag is `provisional` (never alerted on, never shown as final), training
waits for them too, and `monitor --date D` realizes D however old it is."""

import datetime as dt
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import resources

from pipelines import report
from pipelines.adapters.warehouse import health, tables
from pipelines.domain.errors import IncompleteDate, SpecError
from pipelines.faces.demo import load_demo_data
from pipelines.faces.demo_data import DemoConfig
from pipelines.scoring.completeness import unlisted_label_sources
from pipelines.training.train import plan_snapshots
from pipelines.usecases import health as model_health
from pipelines.usecases import models
from tests.conftest import AS_OF, DEMO, score_date
from tests.unit.test_label_sources import LABELLED, LAG

OLD = AS_OF - dt.timedelta(days=120)  # beyond realized_lookback_days (60) of the last labelled day (AS_OF - 30)
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def sklearn_auc(warehouse, day):
    from sklearn.metrics import roc_auc_score

    pairs = warehouse.query(
        "select p.score, l.churned_30d as y from predictions.churn_scores p join analytics.churn_labels l "
        "on l.customer_id = p.customer_id and l.as_of_date = p.as_of_date where p.as_of_date = $1",
        [day],
    )
    return roc_auc_score(pairs.column("y").to_numpy(), pairs.column("score").to_numpy()), len(pairs)


def realized_rows(warehouse, day):
    return health.rows_of(warehouse, tables.REALIZED_PERFORMANCE, "churn", day, day).to_pylist()  # none before any


def test_the_tables_a_labels_model_reads_are_found_in_dbts_manifest(base_home, spec, invoice_spec):
    import json

    manifest = json.loads((base_home["settings"].dbt_target_dir / "target" / "manifest.json").read_text())
    assert unlisted_label_sources(spec, manifest) == []
    assert unlisted_label_sources(invoice_spec, manifest) == []  # its labels read raw.ar_payment_attempts, a source
    unlisted = replace(spec, completeness=replace(spec.completeness, label_sources=()))
    assert unlisted_label_sources(unlisted, manifest) == ["raw.cancellations"]  # not the features' own sources


def test_a_date_whose_label_sources_lag_is_provisional_until_they_complete(settings, spec, warehouse):
    # Every final realized row alerts at this threshold, so the provisional one not alerting is the rule's doing.
    spec = replace(spec, monitoring=replace(spec.monitoring, realized_auc_drop_alert=-1.0))
    resources(settings).dbt.build_features(spec, [LABELLED])
    score_date(settings, spec, LABELLED)
    model_health.monitor(resources(settings), spec, LABELLED)

    # A spec that does not list the table its labels read is refused by name, before anything is written.
    unlisted = replace(spec, completeness=replace(spec.completeness, label_sources=()))
    with pytest.raises(SpecError, match=r"raw\.cancellations.*completeness\.label_sources"):
        model_health.realize(resources(settings, now=NOW), unlisted)
    assert realized_rows(warehouse, LABELLED) == []

    warehouse.execute("delete from raw.cancellations where cancelled_at > $1", [LAG])
    through = warehouse.query("select max(cancelled_at) as d from raw.cancellations").to_pylist()[0]["d"]
    [early] = model_health.realize(resources(settings, now=NOW), spec)
    assert early.as_of_date == LABELLED and "raw.cancellations" in early.provisional and early.alerts == []
    [row] = realized_rows(warehouse, LABELLED)
    assert row["status"] == "provisional" and row["labels_complete_through"] == through <= LAG
    partial_auc, _ = sklearn_auc(warehouse, LABELLED)
    assert row["roc_auc"] == pytest.approx(partial_auc, abs=1e-12)  # computed on the labels known so far
    assert warehouse.query("select * from monitoring.alerts where check_name = 'realized_auc'").num_rows == 0
    assert warehouse.query("select * from monitoring.calibration_bins").num_rows == 0
    daily = warehouse.query("select realized_auc from monitoring.daily_health where as_of_date = $1", [LABELLED])
    assert daily.to_pylist() == [{"realized_auc": None}]
    tile = next(
        t for t in report._tiles(spec, report._read(resources(settings), spec, LABELLED, 60)) if t["label"] == "Realized AUC"
    )
    assert tile["value"] == "–" and f"{LABELLED} provisional (labels complete through {through})" in tile["detail"]

    load_demo_data(resources(settings), DemoConfig(**DEMO))  # the rest of raw.cancellations lands
    [final] = model_health.realize(resources(settings, now=NOW), spec)
    assert final.provisional is None
    [row] = realized_rows(warehouse, LABELLED)
    auc, n = sklearn_auc(warehouse, LABELLED)
    assert row["status"] == "alert" and row["roc_auc"] == pytest.approx(auc, abs=1e-12) and row["rows_labelled"] == n
    assert row["labels_complete_through"] >= LABELLED + dt.timedelta(days=30)
    assert row["positives"] > early.performance.positives  # the late cancellations count
    assert [a.check_name for a in final.alerts] == ["realized_auc"]
    daily = warehouse.query("select realized_auc from monitoring.daily_health where as_of_date = $1", [LABELLED])
    assert daily.to_pylist() == [{"realized_auc": pytest.approx(auc)}]
    tile = next(
        t for t in report._tiles(spec, report._read(resources(settings), spec, LABELLED, 60)) if t["label"] == "Realized AUC"
    )
    assert tile["value"] == f"{auc:.3f}" and "provisional" not in tile["detail"]


def test_training_waits_for_the_tables_its_labels_read(settings, spec, warehouse):
    plan_snapshots(resources(settings), spec, AS_OF, NOW)  # complete: the session's models were trained on it
    warehouse.execute("delete from raw.cancellations where cancelled_at > $1", [AS_OF - dt.timedelta(days=3)])
    with pytest.raises(IncompleteDate, match=r"validation snapshot\(s\) .*raw\.cancellations \(cancelled_at\)"):
        plan_snapshots(resources(settings), spec, AS_OF, NOW)


def test_monitor_date_realizes_an_old_date_whose_labels_are_complete(settings, spec, warehouse):
    resources(settings).dbt.build_features(spec, [OLD])
    score_date(settings, spec, OLD)
    assert model_health.realize(resources(settings, now=NOW), spec) == []  # outside the lookback: the daily run leaves it
    env = {
        **os.environ,
        "BATCHPRED_HOME": str(settings.home),
        "BATCHPRED_WAREHOUSE_URL": settings.warehouse_url,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    batchpred = str(Path(sys.executable).with_name("batchpred"))
    result = subprocess.run(
        [batchpred, "monitor", "churn", "--date", OLD.isoformat()], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    [row] = realized_rows(warehouse, OLD)
    auc, n = sklearn_auc(warehouse, OLD)
    assert row["status"] in ("ok", "alert") and row["roc_auc"] == pytest.approx(auc, abs=1e-12) and row["rows_labelled"] == n
    assert f"AUC {auc:.3f}" in result.stdout


def test_shadow_realized_aucs_are_taken_back_when_the_dates_labels_turn_out_incomplete(own, spec, warehouse):
    """A date realized as final (labels looked complete), then reloaded short: the realized AUCs of
    the champion and the challenger, which `promote` weighs, are NULL again, with why."""
    models.train(resources(own), spec, AS_OF - dt.timedelta(days=14), alias="challenger")
    resources(own).dbt.build_features(spec, [LABELLED])
    score_date(own, spec, LABELLED)
    model_health.monitor(resources(own), spec, LABELLED)
    model_health.realize(resources(own, now=NOW), spec)
    [before] = warehouse.query("select * from monitoring.shadow_comparison").to_pylist()
    assert before["champion_realized_auc"] is not None and before["delong_p_value"] is not None

    warehouse.execute("delete from raw.cancellations where cancelled_at > $1", [LAG])  # reloaded short
    [early] = model_health.realize(resources(own, now=NOW), spec)
    assert early.provisional
    [after] = warehouse.query("select * from monitoring.shadow_comparison").to_pylist()
    realized = ("champion_realized_auc", "challenger_realized_auc", "delong_z", "delong_p_value")
    assert [after[c] for c in realized] == [None] * 4
    assert after["delong_null_reason"].startswith("provisional: ") and "raw.cancellations" in after["delong_null_reason"]
    assert after["pearson"] == before["pearson"]  # the label-free comparison stays


def test_a_label_source_with_no_rows_gives_a_provisional_row_that_says_so(settings, spec, warehouse):
    resources(settings).dbt.build_features(spec, [LABELLED])
    score_date(settings, spec, LABELLED)
    model_health.monitor(resources(settings), spec, LABELLED)
    warehouse.execute("delete from raw.cancellations")
    [early] = model_health.realize(resources(settings, now=NOW), spec)
    assert "raw.cancellations has no rows" in early.provisional and early.alerts == []
    [row] = realized_rows(warehouse, LABELLED)
    assert (row["status"], row["labels_complete_through"]) == ("provisional", None)  # not known, and marked so
    tile = next(
        t for t in report._tiles(spec, report._read(resources(settings), spec, LABELLED, 60)) if t["label"] == "Realized AUC"
    )
    assert tile["value"] == "–" and f"{LABELLED} provisional (a label source has no rows yet)" in tile["detail"]
