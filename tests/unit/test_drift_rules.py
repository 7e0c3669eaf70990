"""Drift without a warehouse: bins that can show a change, and the drift declaration in a spec.
The drift of a real scored date, on both warehouses, is in tests/integration/test_drift.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.config.spec import FeatureDrift, load_spec
from pipelines.domain.errors import SpecError
from pipelines.domain.reference import Bins, Calibration, FeatureReference, ScoreReference, TrainingReference, Validation
from pipelines.monitoring import drift
from pipelines.monitoring.reference import numeric_counts, quantile_cuts
from tests.unit.test_spec import write_spec


def _one_feature(name, reference_values, current_values, spec):
    """drift_rows of one numeric feature: reference from `reference_values`, current from `current_values`."""
    values = np.asarray(reference_values, dtype=np.float32)
    cuts = quantile_cuts(values, 10)
    finite = values[np.isfinite(values)].astype(np.float64)
    counts = tuple(numeric_counts(values, cuts))
    reference = TrainingReference(
        features={name: FeatureReference(name, "numeric", cuts, (), counts, values.size, None, finite.mean(), finite.std())},
        effective_rows=values.size,
        score=ScoreReference((), (1, 0, 0), 1, 1, 0.0, share_above_threshold=0.0, action_threshold=0.5),
        calibration=Calibration((), ()),
        validation=Validation({"auc": 0.5}, 1, 0, 0.0, 0.5, 0.0),
        importance={name: 1.0},
        attribution={},
    )
    current = np.asarray(current_values, dtype=np.float32)
    means = {name: float(current[np.isfinite(current)].mean())}
    profile = drift.Profile(current.size, {name: numeric_counts(current, cuts), drift.SCORE: [1, 0, 0]}, means)
    baseline_counts = {name: list(reference.features[name].counts), drift.SCORE: [1, 0, 0]}
    rows = drift.drift_rows(spec, reference, profile, baseline_counts, "baseline", None)
    return cuts, next(r for r in rows if r.feature == name)


def test_a_dominant_value_gets_its_own_bin_so_a_change_in_its_share_shows(spec):
    # failed_payments_30d in the demo: 96.7% zero. It had no interior cut, so PSI was 0 whatever happened.
    before = [0.0] * 967 + [1.0] * 28 + [2.0] * 5
    after = [0.0] * 700 + [1.0] * 240 + [2.0] * 60
    cuts, row = _one_feature("failed_payments_30d", before, after, spec)
    assert cuts == (0.0, float(np.nextafter(np.float32(0), np.float32(1))), 2.0)
    assert Bins("f", "numeric", cuts).labels == ["[-inf, 0)", "= 0", "[1.4013e-45, 2)", "[2, inf)", "(±inf)", "(null)"]
    # By hand: Σ (a − e) ln(a / e) over the bins that hold rows (the empty ones add 0).
    e, a = np.array([0.967, 0.028, 0.005]), np.array([0.70, 0.24, 0.06])
    assert row.psi == pytest.approx(np.sum((a - e) * np.log(a / e)), rel=1e-3)  # 0.678 (Evidently: 0.68)
    assert row.psi == pytest.approx(0.6784, abs=1e-3)
    assert row.status == "alert" and row.reason == "psi"
    # The same data undrifted is ok.
    assert _one_feature("failed_payments_30d", before, before, spec)[1].status == "ok"


def test_a_constant_reference_is_compared_by_its_value(spec):
    cuts, row = _one_feature("tickets_30d", [5.0] * 1000, [7.0] * 1000, spec)
    assert cuts == (5.0, float(np.nextafter(np.float32(5), np.float32(6))))
    # Every row moved from the "= 5" bin to the one above: with shares floored at 1e-4 (6 bins),
    # PSI = 2 (1 − 1e-4) ln(1e4) / (1 + 4e-4); Evidently reports 18.4. All mass moved: JS = 1 bit.
    assert row.psi == pytest.approx(2 * (1 - 1e-4) * math.log(1e4) / (1 + 4e-4), rel=1e-9)
    assert row.js_distance == pytest.approx(1.0, abs=1e-6)
    assert row.status == "alert"
    assert row.mean == 7.0 and row.mean_delta_std is None  # no spread to measure a move in: NULL, not inf
    assert _one_feature("tickets_30d", [5.0] * 1000, [5.0] * 1000, spec)[1].psi == 0.0


def test_infinities_are_binned_apart_and_never_averaged():
    values = np.array([1, 2, 3, 4, np.inf, -np.inf, np.nan, 5], dtype=np.float32)
    cuts = quantile_cuts(values, 10)
    counts = numeric_counts(values, cuts)
    assert counts[-2:] == [2, 1] and sum(counts[:-2]) == 5  # ±inf in their own bin, NaN in the null bin


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
