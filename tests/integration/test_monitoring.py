"""Model health on real scored dates, on both warehouses: drift against the training
reference, estimated (CBPE) and realized performance, alerts, the retrain policy, and a
clear status for every date that cannot be monitored."""

import datetime as dt
from dataclasses import replace

import numpy as np
import pytest
from conftest import mlflow_at, resources

from pipelines.domain.errors import InputError
from pipelines.faces.demo import load_demo_data
from pipelines.faces.demo_data import DemoConfig
from pipelines.usecases import health as model_health
from tests.conftest import AS_OF, DEMO, score_date

LABELLED = AS_OF - dt.timedelta(days=32)  # its 30-day labels are complete by AS_OF; not a training snapshot


def drift_rows(warehouse, day=AS_OF, comparison="baseline"):
    return {
        r["feature"]: r
        for r in warehouse.query(
            "select * from monitoring.feature_drift where as_of_date = $1 and comparison = $2", [day, comparison]
        ).to_pylist()
    }


def drifted(settings, spec, days):
    """The demo business with `batchpred generate --drift-from AS_OF - 20`: less usage, more tickets."""
    load_demo_data(resources(settings), DemoConfig(**DEMO, drift_from=AS_OF - dt.timedelta(days=20)))
    resources(settings).dbt.build_features(spec, days)


def test_an_undrifted_date_is_ok_and_the_estimate_is_there(settings, spec, warehouse):
    score_date(settings, spec)
    health = model_health.monitor(resources(settings), spec, AS_OF)
    assert health.status == "ok" and health.drift_status == "ok" and health.alerts == []
    rows = drift_rows(warehouse)
    assert set(rows) == {*spec.feature_names, "score"}
    assert all(r["status"] == "ok" and r["psi"] < 0.1 for r in rows.values()), {f: r["psi"] for f, r in rows.items()}
    assert rows["plan"]["linf_distance"] is not None and rows["tenure_days"]["mean_delta_std"] is not None
    estimated = warehouse.query("select * from monitoring.estimated_performance").to_pylist()[0]
    assert estimated["expected_auc_lower"] < estimated["expected_auc"] < estimated["expected_auc_upper"]
    assert 0.6 < estimated["expected_auc"] < 0.9 and estimated["status"] == "ok"
    profiles = warehouse.query(
        "select feature, cast(sum(rows) as bigint) as n from monitoring.feature_profiles where as_of_date = $1 group by 1",
        [AS_OF],
    ).to_pylist()
    assert {r["n"] for r in profiles} == {health_rows := rows["score"]["rows"]} and health_rows > 0


def test_a_drifted_date_alerts_on_the_features_that_moved_and_only_those(settings, spec, warehouse):
    days = [AS_OF - dt.timedelta(days=1), AS_OF]
    drifted(settings, spec, days)
    for day in days:
        score_date(settings, spec, day)
    first = model_health.monitor(resources(settings), spec, days[0])
    second = model_health.monitor(resources(settings), spec, days[1])
    rows = drift_rows(warehouse)
    assert rows["sessions_7d"]["status"] == "alert" and rows["sessions_7d"]["psi"] > 0.25
    assert rows["sessions_7d"]["mean_delta_std"] < -0.2  # less usage
    assert {rows[f]["status"] for f in ("plan", "region")} == {"ok"}
    assert rows["score"]["status"] == "alert"  # prediction drift
    assert second.status == "alert" and second.drift_status == "alert"
    # The day before is compared too, now that it was monitored: barely any change between them.
    previous = drift_rows(warehouse, comparison="previous_day")
    assert previous["sessions_7d"]["compared_date"] == days[0] and previous["sessions_7d"]["psi"] < 0.1
    # Two dates in a row with the top features drifted: the policy asks for a retrain, once.
    assert not first.retrain and second.retrain and "most important features" in second.retrain_reason
    alerts = warehouse.query("select * from monitoring.alerts where as_of_date = $1", [AS_OF]).to_pylist()
    streaks = {a["subject"]: a["consecutive_days"] for a in alerts}
    assert streaks["sessions_7d"] == 2
    assert {a["action"] for a in alerts if a["severity"] == "alert"} == {"retrain requested"}
    third = model_health.monitor(resources(settings), spec, AS_OF)  # again: within the cool-down now
    assert not third.retrain


def test_realized_performance_matches_scikit_learn_and_the_estimate_holds(settings, spec, warehouse):
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    resources(settings).dbt.build_features(spec, [LABELLED])
    score_date(settings, spec, LABELLED)
    model_health.monitor(resources(settings), spec, LABELLED)
    [realized] = model_health.realize(resources(settings), spec)
    assert realized.as_of_date == LABELLED
    row = realized.performance.row()
    pairs = warehouse.query(
        "select p.score, l.churned_30d as y from predictions.churn_scores p join analytics.churn_labels l "
        "on l.customer_id = p.customer_id and l.as_of_date = p.as_of_date where p.as_of_date = $1",
        [LABELLED],
    )
    scores, labels = pairs.column("score").to_numpy(), pairs.column("y").to_numpy()
    assert row["rows_labelled"] == len(labels) and row["positives"] == labels.sum() > 0
    assert row["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert row["pr_auc"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert row["log_loss"] == pytest.approx(log_loss(labels, scores), abs=1e-9)
    assert row["brier_score"] == pytest.approx(brier_score_loss(labels, scores), abs=1e-12)
    top = np.argsort(-scores, kind="stable")[: int(np.ceil(len(scores) / 10))]
    assert row["precision_top_decile"] == pytest.approx(labels[top].mean())
    # CBPE: the realized AUC lands inside the estimate's band.
    estimated = warehouse.query("select * from monitoring.estimated_performance where as_of_date = $1", [LABELLED]).to_pylist()[0]
    assert estimated["expected_auc_lower"] <= row["roc_auc"] <= estimated["expected_auc_upper"]
    assert row["estimation_error"] == pytest.approx(row["roc_auc"] - estimated["expected_auc"])
    bins = warehouse.query(
        "select cast(sum(rows) as bigint) as n from monitoring.calibration_bins where as_of_date = $1", [LABELLED]
    ).to_pylist()
    assert bins == [{"n": len(labels)}] and 0 <= row["expected_calibration_error"] < 0.2
    health = warehouse.query("select realized_auc from monitoring.daily_health where as_of_date = $1", [LABELLED]).to_pylist()
    assert health == [{"realized_auc": pytest.approx(row["roc_auc"])}]


def test_a_date_whose_labels_are_not_in_yet_is_not_realized(settings, spec, warehouse):
    score_date(settings, spec)
    health = model_health.monitor(resources(settings), spec, AS_OF)
    assert model_health.realize(resources(settings), spec) == []
    [row] = warehouse.query("select realized_auc, labels_due from monitoring.daily_health").to_pylist()
    assert row == {"realized_auc": None, "labels_due": AS_OF + dt.timedelta(days=30)}
    assert health.status == "ok"


def test_a_version_without_a_training_reference_gets_a_clear_status(settings, spec, warehouse, tmp_path, base_home):
    import shutil

    import mlflow

    source = base_home["settings"].mlflow_tracking_uri.removeprefix("sqlite:///")
    shutil.copy(source, tmp_path / "mlflow.db")
    own = replace(settings, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    champion = resources(own).registry.resolve("churn", "champion")
    client = resources(own).registry.client
    with mlflow_at(own):  # registered by hand, as a user would, not through batchpred
        with mlflow.start_run() as run:  # a run with the model but no training_reference.json
            pass
        old = client.create_model_version(
            "churn", client.get_model_version("churn", str(champion.version)).source, run_id=run.info.run_id
        )
    client.set_registered_model_alias("churn", "old", old.version)
    score_date(own, spec, alias="old")
    health = model_health.monitor(resources(own), spec, AS_OF)
    assert health.status == "no_reference" and "retrain it" in health.message
    assert warehouse.query("select status from monitoring.daily_health").to_pylist() == [{"status": "no_reference"}]


def test_an_empty_partition_and_an_unscored_date_get_clear_statuses(settings, spec, warehouse):
    score_date(settings, spec)
    warehouse.execute("delete from analytics.churn_features where as_of_date = $1", [AS_OF])
    assert model_health.monitor(resources(settings), spec, AS_OF).status == "empty_partition"
    with pytest.raises(InputError, match="no predictions of any version for 2026-01-30.*batchpred score churn --date 2026-01-30"):
        model_health.monitor(resources(settings), spec, AS_OF - dt.timedelta(days=1))


def test_a_feature_that_is_entirely_null_alerts_on_its_null_share(settings, spec, warehouse):
    warehouse.execute("update analytics.churn_features set sessions_trend = null where as_of_date = $1", [AS_OF])
    score_date(settings, spec)
    health = model_health.monitor(resources(settings), spec, AS_OF)
    row = drift_rows(warehouse)["sessions_trend"]
    assert row["null_share"] == 1.0 and row["status"] == "alert" and row["reason"] == "null_share"
    assert any(a.subject == "sessions_trend" and a.check_name == "null_share" for a in health.alerts)
    assert row["mean"] is None


def test_the_text_keyed_model_is_monitored_too(settings, invoice_spec, warehouse):
    score_date(settings, invoice_spec)
    health = model_health.monitor(resources(settings), invoice_spec, AS_OF)
    assert health.status in ("ok", "warn") and health.expected_auc is not None
    assert {r["feature"] for r in drift_rows(warehouse).values()} == {*invoice_spec.feature_names, "score"}
