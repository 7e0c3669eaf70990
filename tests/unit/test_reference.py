"""A version's training reference as a type: it reads the stored JSON (format 3, and 2 as
3) and writes it back key for key, so stored artifacts do not change."""

import copy
import json

import numpy as np
import pyarrow as pa
import pytest

from pipelines.config.contract import InputContract
from pipelines.domain.reference import FORMAT, TrainingReference
from pipelines.monitoring.reference import training_reference


@pytest.fixture(scope="module")
def stored(spec):
    """The JSON a small synthetic version stores (`training_reference.json`)."""
    contract = InputContract.for_spec(spec, {"customer_id": pa.int64()})
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(200, len(contract.features))).astype(np.float32)
    matrix[:5, 0] = np.nan
    matrix[5, 1] = np.inf
    categorical = {
        f.name: pa.array(rng.choice([*f.categories, "other", None], size=200).tolist())
        for f in contract.features
        if f.kind == "categorical"
    }
    scores = rng.uniform(size=100)
    labels = (rng.uniform(size=100) < scores).astype(np.float32)
    importance = {name: float(i + 1) for i, name in enumerate(contract.feature_names)}
    attribution = {name: 0.1 * i for i, name in enumerate(contract.feature_names)}
    reference = training_reference(
        contract, matrix, categorical, scores, labels, {"auc": 0.7, "logloss": 0.6}, importance, 0.5, attribution, 150, 80
    )
    return json.loads(json.dumps(reference))  # as read back from MLflow


def test_the_stored_json_round_trips_key_for_key(stored):
    reference = TrainingReference.from_dict(stored)
    assert json.dumps(reference.to_dict(), sort_keys=True) == json.dumps(stored, sort_keys=True)
    assert json.dumps(reference.to_dict()) == json.dumps(stored)  # in the same order, too
    assert "mean" not in reference.to_dict()["features"]["plan"]  # a categorical feature has none


def test_its_attributes_are_the_stored_values(stored):
    reference = TrainingReference.from_dict(stored)
    plan = reference.features["plan"]
    assert plan.kind == "categorical" and list(plan.counts) == stored["features"]["plan"]["counts"]
    assert [b.name for b in reference.feature_bins()] == list(stored["features"])
    assert reference.score.bins.cuts == tuple(stored["score"]["cuts"])
    assert reference.score.effective_rows == 80 and reference.effective_rows == 150
    assert reference.validation.auc == 0.7 and dict(reference.validation.metrics) == {"auc": 0.7, "logloss": 0.6}


def format_2(stored):
    """What batchpred stored before format 3: no infinite bin, no effective sample sizes."""
    old = copy.deepcopy(stored)
    old["format"] = 2
    del old["effective_rows"], old["score"]["effective_rows"]
    for entry in [*old["features"].values(), old["score"]]:
        if entry.get("kind") != "categorical":
            entry["counts"] = [*entry["counts"][:-2], entry["counts"][-1]]
    return old


def test_a_format_2_reference_is_read_as_format_3(stored):
    old = format_2(stored)
    kept = copy.deepcopy(old)
    reference = TrainingReference.from_dict(old)
    assert old == kept  # the stored dict is left as it was
    written = reference.to_dict()
    assert written["format"] == FORMAT
    tenure = written["features"]["tenure_days"]
    assert tenure["counts"][-2] == 0 and len(tenure["counts"]) == len(tenure["cuts"]) + 3  # an empty infinite bin
    assert written["features"]["plan"]["counts"] == stored["features"]["plan"]["counts"]
    assert reference.score.effective_rows == reference.score.rows  # its row counts as effective sample sizes
    assert reference.effective_rows == max(f["rows"] for f in stored["features"].values())


@pytest.mark.parametrize("old", [None, {}, {"format": 1, "features": {}}, {"features": {}}])
def test_an_older_format_is_refused(old):
    assert not TrainingReference.readable(old)
    with pytest.raises(ValueError, match="training reference of format"):
        TrainingReference.from_dict(old)


def test_the_current_and_the_previous_format_are_readable(stored):
    assert TrainingReference.readable(stored) and TrainingReference.readable(format_2(stored))
