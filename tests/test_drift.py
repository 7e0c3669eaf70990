"""Drift statistics that can be trusted: infinities counted (never averaged), the exact share
of scores at the version's action threshold, thresholds that allow for sampling noise, bins
that can show every change (a dominant value, a constant), and features declared to be
compared by weekday or left out. On both warehouses where a warehouse is involved."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import numpy as np
import pytest

from pipelines import report
from pipelines.adapters import registry, transform
from pipelines.adapters.warehouse import catalog, health
from pipelines.config.spec import FeatureDrift, load_spec
from pipelines.domain.errors import SpecError
from pipelines.domain.reference import Bins
from pipelines.faces.demo import load_demo_data
from pipelines.faces.demo_data import DemoConfig
from pipelines.monitoring import alerts, drift
from pipelines.monitoring.reference import numeric_counts, quantile_cuts
from pipelines.usecases import steps
from tests.conftest import AS_OF, DEMO, score_date
from tests.test_spec import write_spec


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


# -- bins that can show a change (pure) -------------------------------------------------


def _one_feature(name, reference_values, current_values, spec):
    """drift_rows of one numeric feature: reference from `reference_values`, current from `current_values`."""
    values = np.asarray(reference_values, dtype=np.float32)
    cuts = quantile_cuts(values, 10)
    finite = values[np.isfinite(values)].astype(np.float64)
    reference = {
        "features": {
            name: {"kind": "numeric", "cuts": list(cuts), "categories": [], "counts": numeric_counts(values, cuts),
                   "rows": values.size, "mean": finite.mean(), "std": finite.std()},
        },
        "effective_rows": values.size,
        "score": {"cuts": [], "counts": [1, 0, 0], "rows": 1, "action_threshold": 0.5, "share_above_threshold": 0.0},
        "importance": {name: 1.0},
    }  # fmt: skip
    current = np.asarray(current_values, dtype=np.float32)
    means = {name: float(current[np.isfinite(current)].mean())}
    profile = drift.Profile(current.size, {name: numeric_counts(current, cuts), drift.SCORE: [1, 0, 0]}, means)
    baseline_counts = {name: reference["features"][name]["counts"], drift.SCORE: [1, 0, 0]}
    rows = drift.drift_rows(spec, reference, profile, baseline_counts, "baseline", None)
    return cuts, next(r for r in rows if r["feature"] == name)


def test_a_dominant_value_gets_its_own_bin_so_a_change_in_its_share_shows(spec):
    # failed_payments_30d in the demo: 96.7% zero. It had no interior cut, so PSI was 0 whatever happened.
    before = [0.0] * 967 + [1.0] * 28 + [2.0] * 5
    after = [0.0] * 700 + [1.0] * 240 + [2.0] * 60
    cuts, row = _one_feature("failed_payments_30d", before, after, spec)
    assert cuts == (0.0, float(np.nextafter(np.float32(0), np.float32(1))), 2.0)
    assert Bins("f", "numeric", cuts).labels == ["[-inf, 0)", "= 0", "[1.4013e-45, 2)", "[2, inf)", "(±inf)", "(null)"]
    # By hand: Σ (a − e) ln(a / e) over the bins that hold rows (the empty ones add 0).
    e, a = np.array([0.967, 0.028, 0.005]), np.array([0.70, 0.24, 0.06])
    assert row["psi"] == pytest.approx(np.sum((a - e) * np.log(a / e)), rel=1e-3)  # 0.678 (Evidently: 0.68)
    assert row["psi"] == pytest.approx(0.6784, abs=1e-3)
    assert row["status"] == "alert" and row["reason"] == "psi"
    # The same data undrifted is ok.
    assert _one_feature("failed_payments_30d", before, before, spec)[1]["status"] == "ok"


def test_a_constant_reference_is_compared_by_its_value(spec):
    cuts, row = _one_feature("tickets_30d", [5.0] * 1000, [7.0] * 1000, spec)
    assert cuts == (5.0, float(np.nextafter(np.float32(5), np.float32(6))))
    # Every row moved from the "= 5" bin to the one above: with shares floored at 1e-4 (6 bins),
    # PSI = 2 (1 − 1e-4) ln(1e4) / (1 + 4e-4); Evidently reports 18.4. All mass moved: JS = 1 bit.
    assert row["psi"] == pytest.approx(2 * (1 - 1e-4) * math.log(1e4) / (1 + 4e-4), rel=1e-9)
    assert row["js_distance"] == pytest.approx(1.0, abs=1e-6)
    assert row["status"] == "alert"
    assert row["mean"] == 7.0 and row.get("mean_delta_std") is None  # no spread to measure a move in: NULL, not inf
    assert _one_feature("tickets_30d", [5.0] * 1000, [5.0] * 1000, spec)[1]["psi"] == 0.0


def test_infinities_are_binned_apart_and_never_averaged():
    values = np.array([1, 2, 3, 4, np.inf, -np.inf, np.nan, 5], dtype=np.float32)
    cuts = quantile_cuts(values, 10)
    counts = numeric_counts(values, cuts)
    assert counts[-2:] == [2, 1] and sum(counts[:-2]) == 5  # ±inf in their own bin, NaN in the null bin


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
    steps.monitor(settings, spec, AS_OF)
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
    transform.build_features(settings, spec, [before])
    score_date(settings, spec, before)
    score_date(settings, spec)
    # Today's spec says 0.1, but the version was trained (and is judged) at 0.5.
    steps.monitor(settings, replace(spec, action_threshold=0.1), AS_OF)

    def scores(day):
        return warehouse.query("select score from predictions.churn_scores where as_of_date = $1", [day]).column(0).to_numpy()

    reference = registry.training_reference(settings, base_home["trained"].model)
    row = baseline(warehouse, "score")
    assert row["action_threshold"] == reference["score"]["action_threshold"] == 0.5
    assert row["share_above_threshold"] == pytest.approx(np.mean(scores(AS_OF).astype(np.float64) >= 0.5), abs=1e-15)
    assert row["reference_share_above_threshold"] == reference["score"]["share_above_threshold"]
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
    reference = registry.training_reference(settings, base_home["trained"].model)
    cuts = reference["features"]["failed_payments_30d"]["cuts"]
    assert cuts[:2] == [0.0, float(np.nextafter(np.float32(0), np.float32(1)))]  # zero has its own bin
    score_date(settings, spec)
    # A third of the customers get a failed payment: the zero bin loses its share.
    warehouse.execute(
        "update analytics.churn_features set failed_payments_30d = 1 where as_of_date = $1 and customer_id % 3 = 0", [AS_OF]
    )
    day = steps.monitor(settings, spec, AS_OF)
    row = baseline(warehouse, "failed_payments_30d")
    assert row["status"] == "alert" and row["psi"] > row["psi_alert"] and row["decides"]
    fired = {a["subject"]: a for a in day.alerts}
    assert fired["failed_payments_30d"]["check_name"] == row["reason"]
    assert fired["failed_payments_30d"]["threshold"] == pytest.approx(row[alerts.DRIFT_CHECKS[row["reason"]]])
    # The report lists every alert that fired: its check, value and threshold.
    html = report.write(settings, spec, AS_OF, days=7, out=tmp_path / "report.html").read_text()
    listed = html[html.index("Alerts of the date") :]
    listed = listed[: listed.index("</table>")]
    for a in day.alerts:
        assert all(text in listed for text in (a["subject"], a["check_name"], f"{a['value']:.3f}", f"{a['threshold']:.3f}"))

    # The same alert on the 13 dates before: today is the 14th in a row, a configuration finding, said once.
    version = base_home["trained"].model.version
    yesterday = AS_OF - dt.timedelta(days=1)

    def streak_before(days):
        catalog.replace_health(warehouse, catalog.ALERTS, spec.name, version, yesterday, [
            {"check_name": row["reason"], "subject": "failed_payments_30d", "severity": "alert", "value": 1.0,
             "threshold": 0.25, "consecutive_days": days, "message": "..."}
        ])  # fmt: skip
        return steps.monitor(settings, spec, AS_OF)

    day = streak_before(alerts.FINDING_STREAK - 1)
    [stored] = [a for a in health.rows_of(warehouse, catalog.ALERTS, spec.name, AS_OF, AS_OF).to_pylist()
                if a["subject"] == "failed_payments_30d"]  # fmt: skip
    assert stored["severity"] == "finding" and stored["consecutive_days"] == alerts.FINDING_STREAK
    assert "monitoring.drift" in stored["message"] and "failed_payments_30d: {compare: same_weekday}" in stored["message"]
    assert [a["severity"] for a in day.alerts if a["subject"] == "failed_payments_30d"] == ["finding"]  # posted
    day = streak_before(alerts.FINDING_STREAK)  # the 15th: still a finding in the table, not posted again
    assert not [a for a in day.alerts if a["subject"] == "failed_payments_30d"]
    assert {a["severity"] for a in health.rows_of(warehouse, catalog.ALERTS, spec.name, AS_OF, AS_OF).to_pylist()
            if a["subject"] == "failed_payments_30d"} == {"finding"}  # fmt: skip


def test_features_declared_same_weekday_or_excluded_are_judged_so(settings, spec, warehouse):
    week_before = AS_OF - dt.timedelta(days=7)
    load_demo_data(settings, DemoConfig(**DEMO, drift_from=AS_OF - dt.timedelta(days=20)))  # less usage, more tickets
    transform.build_features(settings, spec, [week_before, AS_OF])
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
        health_of_day = steps.monitor(settings, declared, day)
    weekly = baseline(warehouse, "sessions_7d")
    assert weekly["status"] == "excluded" and not weekly["decides"] and "same weekday" in weekly["reason"]
    assert weekly["psi"] > 0.25  # against the pooled training data it has moved ...
    same_day = baseline(warehouse, "sessions_7d", comparison="same_day_last_week")
    assert same_day["decides"] and same_day["compared_date"] == week_before
    assert same_day["status"] == "ok" and same_day["psi"] < same_day["psi_warn"]  # ... but not against its weekday
    excluded = baseline(warehouse, "sessions_30d")
    assert excluded["status"] == "excluded" and "rolling 30-day aggregate" in excluded["reason"] and excluded["psi"] > 0.1
    subjects = {a["subject"] for a in health_of_day.alerts}
    assert not subjects & {"sessions_7d", "sessions_30d"}
    assert "score" in subjects and subjects - {"score"}  # what is not declared still alerts


# -- the spec -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drift_section", "message"),
    [
        ({"dep_weekday": {"compare": "same_weekday"}}, r"monitoring.drift.dep_weekday: 'dep_weekday' is not a feature"),
        ({"tenure_days": {"compare": "weekly"}}, r"monitoring.drift.tenure_days.compare must be reference or same_weekday"),
        ({"tenure_days": {"exclude": " "}}, r"monitoring.drift.tenure_days.exclude must say why"),
        ({"tenure_days": {"exclude": "x", "compare": "same_weekday"}}, r"monitoring.drift.tenure_days needs exactly one"),
        ({"tenure_days": {"skip": True}}, r"unknown monitoring.drift.tenure_days key"),
        (["tenure_days"], r"monitoring.drift must map features"),
    ],
)
def test_a_bad_drift_declaration_is_refused_naming_the_key(tmp_path, drift_section, message):
    with pytest.raises(SpecError, match=message):
        load_spec("churn", write_spec(tmp_path, monitoring={"drift": drift_section}))


def test_a_drift_declaration_loads(tmp_path):
    declared = {"sessions_7d": {"compare": "same_weekday"}, "tenure_days": {"exclude": "age"}}
    spec = load_spec("churn", write_spec(tmp_path, monitoring={"drift": declared}))
    assert spec.monitoring.drift == {"sessions_7d": FeatureDrift("same_weekday"), "tenure_days": FeatureDrift(exclude="age")}

