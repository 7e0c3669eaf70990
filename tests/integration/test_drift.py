"""Drift statistics that can be trusted: infinities counted (never averaged), the exact share
of scores at the version's action threshold, thresholds that allow for sampling noise, bins
that can show every change (a dominant value, a constant), and features declared to be
compared by weekday or left out. On both warehouses (what needs no warehouse is in
tests/unit/test_drift_rules.py)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import numpy as np
import pytest
from conftest import resources

from pipelines import report
from pipelines.adapters.warehouse import health, queries, tables
from pipelines.config.spec import FeatureDrift
from pipelines.faces.demo import load_demo_data
from pipelines.faces.demo_data import DemoConfig
from pipelines.monitoring import alerts
from pipelines.usecases import health as model_health
from tests.conftest import AS_OF, DEMO, score_date


def baseline(warehouse, feature, day=AS_OF, comparison="baseline"):
    [row] = warehouse.query(
        "select * from monitoring.feature_drift where as_of_date = $1 and comparison = $2 and feature = $3",
        [day, comparison, feature],
    ).to_pylist()
    return row


def assert_all_finite(warehouse, table):
    for row in warehouse.query(f"select * from monitoring.{table}").to_pylist():
        bad = {k: v for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)}
        assert not bad, (table, row.get("feature"), bad)


# -- on a real scored date, both warehouses ---------------------------------------------


def test_infinite_values_are_counted_in_their_own_share_and_the_mean_is_of_the_finite_ones(settings, spec, warehouse):
    ids = [r["customer_id"] for r in warehouse.query(
        "select customer_id from analytics.churn_features where as_of_date = $1 order by customer_id limit 4", [AS_OF]
    ).to_pylist()]  # fmt: skip
    # +inf, -inf, NaN, and a double beyond float32's range (the model reads it as +inf).
    for customer, value in zip(ids, ["Infinity", "-Infinity", "NaN", "1e39"], strict=True):
        warehouse.execute(
            "update analytics.churn_features set minutes_30d = cast($1 as double precision) "
            "where as_of_date = $2 and customer_id = $3",
            [value, AS_OF, customer],
        )
    score_date(settings, spec)
    model_health.monitor(resources(settings), spec, AS_OF)
    with np.errstate(over="ignore"):  # 1e39 becomes inf as float32, as the model reads it
        values = np.asarray(
            warehouse.query("select minutes_30d from analytics.churn_features where as_of_date = $1", [AS_OF])
            .column(0).to_numpy(zero_copy_only=False), dtype=np.float64,
        ).astype(np.float32)  # fmt: skip
    n = values.size
    row = baseline(warehouse, "minutes_30d")
    assert row["rows"] == n
    assert row["inf_share"] == pytest.approx(3 / n, abs=1e-15) and row["reference_inf_share"] == 0.0
    assert row["null_share"] == pytest.approx(np.isnan(values).sum() / n, abs=1e-15)
    finite = values[np.isfinite(values)].astype(np.float64)
    assert row["mean"] == pytest.approx(finite.mean(), rel=1e-9)
    assert row["mean_delta_std"] is not None and math.isfinite(row["psi"]) and math.isfinite(row["js_distance"])
    [inf_bin] = warehouse.query(
        "select rows, reference_rows from monitoring.feature_profiles where feature = 'minutes_30d' and label = '(±inf)'"
    ).to_pylist()
    assert inf_bin == {"rows": 3, "reference_rows": 0}
    assert_all_finite(warehouse, "feature_drift")
    assert_all_finite(warehouse, "feature_profiles")


def test_the_threshold_share_is_counted_exactly_at_the_versions_threshold(settings, spec, warehouse, base_home):
    before = AS_OF - dt.timedelta(days=1)
    resources(settings).dbt.build_features(spec, [before])
    score_date(settings, spec, before)
    score_date(settings, spec)
    # Today's spec says 0.1, but the version was trained (and is judged) at 0.5.
    model_health.monitor(resources(settings), replace(spec, action_threshold=0.1), AS_OF)

    def scores(day):
        return warehouse.query("select score from predictions.churn_scores where as_of_date = $1", [day]).column(0).to_numpy()

    reference = resources(settings).registry.training_reference(base_home["trained"].model)
    row = baseline(warehouse, "score")
    assert row["action_threshold"] == reference.score.action_threshold == 0.5
    assert row["share_above_threshold"] == pytest.approx(np.mean(scores(AS_OF).astype(np.float64) >= 0.5), abs=1e-15)
    assert row["reference_share_above_threshold"] == reference.score.share_above_threshold
    previous = baseline(warehouse, "score", comparison="previous_day")
    assert previous["share_above_threshold"] == row["share_above_threshold"]
    assert previous["reference_share_above_threshold"] == pytest.approx(
        np.mean(scores(before).astype(np.float64) >= 0.5), abs=1e-15
    )
    # Any threshold, counted from the scores: at 0.1 the binned share was 0.0835 where 0.1329 was right.
    version = base_home["trained"].model.version
    shares = health.threshold_shares(warehouse, spec, version, [AS_OF, before], 0.1)
    assert shares[AS_OF] == pytest.approx(np.mean(scores(AS_OF).astype(np.float64) >= 0.1), abs=1e-15)
    assert shares[before] == pytest.approx(np.mean(scores(before).astype(np.float64) >= 0.1), abs=1e-15)


def test_a_dominant_value_losing_its_share_alerts_and_a_long_streak_becomes_a_configuration_finding(
    settings, spec, warehouse, base_home, tmp_path
):
    reference = resources(settings).registry.training_reference(base_home["trained"].model)
    cuts = reference.features["failed_payments_30d"].cuts
    assert cuts[:2] == (0.0, float(np.nextafter(np.float32(0), np.float32(1))))  # zero has its own bin
    # A third of the customers get a failed payment: the zero bin of the scored date loses its share.
    warehouse.execute(
        "update analytics.churn_features set failed_payments_30d = 1 where as_of_date = $1 and customer_id % 3 = 0", [AS_OF]
    )
    score_date(settings, spec)
    day = model_health.monitor(resources(settings), spec, AS_OF)
    row = baseline(warehouse, "failed_payments_30d")
    assert row["status"] == "alert" and row["psi"] > row["psi_alert"] and row["decides"]
    fired = {a.subject: a for a in day.alerts}
    assert fired["failed_payments_30d"].check_name == row["reason"]
    assert fired["failed_payments_30d"].threshold == pytest.approx(row[alerts.DRIFT_CHECKS[row["reason"]]])
    # The report lists every alert that fired: its check, value and threshold.
    html = report.write(resources(settings), spec, AS_OF, days=7, out=tmp_path / "report.html").read_text()
    listed = html[html.index("Alerts of the date") :]
    listed = listed[: listed.index("</table>")]
    for a in day.alerts:
        assert all(text in listed for text in (a.subject, a.check_name, f"{a.value:.3f}", f"{a.threshold:.3f}"))

    # The same alert on the 13 dates before: today is the 14th in a row, a configuration finding, said once.
    version = base_home["trained"].model.version
    yesterday = AS_OF - dt.timedelta(days=1)

    def streak_before(days):
        queries.replace_health(warehouse, tables.ALERTS, spec.name, version, yesterday, [
            {"check_name": row["reason"], "subject": "failed_payments_30d", "severity": "alert", "value": 1.0,
             "threshold": 0.25, "consecutive_days": days, "message": "..."}
        ])  # fmt: skip
        return model_health.monitor(resources(settings), spec, AS_OF)

    day = streak_before(alerts.FINDING_STREAK - 1)
    [stored] = [a for a in health.rows_of(warehouse, tables.ALERTS, spec.name, AS_OF, AS_OF).to_pylist()
                if a["subject"] == "failed_payments_30d"]  # fmt: skip
    assert stored["severity"] == "finding" and stored["consecutive_days"] == alerts.FINDING_STREAK
    assert "monitoring.drift" in stored["message"] and "failed_payments_30d: {compare: same_weekday}" in stored["message"]
    assert [a.severity for a in day.alerts if a.subject == "failed_payments_30d"] == ["finding"]  # posted
    day = streak_before(alerts.FINDING_STREAK)  # the 15th: still a finding in the table, not posted again
    assert not [a for a in day.alerts if a.subject == "failed_payments_30d"]
    assert {a["severity"] for a in health.rows_of(warehouse, tables.ALERTS, spec.name, AS_OF, AS_OF).to_pylist()
            if a["subject"] == "failed_payments_30d"} == {"finding"}  # fmt: skip


def test_features_declared_same_weekday_or_excluded_are_judged_so(settings, spec, warehouse):
    week_before = AS_OF - dt.timedelta(days=7)
    load_demo_data(resources(settings), DemoConfig(**DEMO, drift_from=AS_OF - dt.timedelta(days=20)))  # less usage, more tickets
    resources(settings).dbt.build_features(spec, [week_before, AS_OF])
    declared = replace(
        spec,
        monitoring=replace(
            spec.monitoring,
            drift={
                "sessions_7d": FeatureDrift(compare="same_weekday"),
                "sessions_30d": FeatureDrift(exclude="a rolling 30-day aggregate; changes daily by design"),
            },
        ),
    )
    for day in (week_before, AS_OF):
        score_date(settings, spec, day)
        health_of_day = model_health.monitor(resources(settings), declared, day)
    weekly = baseline(warehouse, "sessions_7d")
    assert weekly["status"] == "excluded" and not weekly["decides"] and "same weekday" in weekly["reason"]
    assert weekly["psi"] > 0.25  # against the pooled training data it has moved ...
    same_day = baseline(warehouse, "sessions_7d", comparison="same_day_last_week")
    assert same_day["decides"] and same_day["compared_date"] == week_before
    assert same_day["status"] == "ok" and same_day["psi"] < same_day["psi_warn"]  # ... but not against its weekday
    excluded = baseline(warehouse, "sessions_30d")
    assert excluded["status"] == "excluded" and "rolling 30-day aggregate" in excluded["reason"] and excluded["psi"] > 0.1
    subjects = {a.subject for a in health_of_day.alerts}
    assert not subjects & {"sessions_7d", "sessions_30d"}
    assert "score" in subjects and subjects - {"score"}  # what is not declared still alerts
