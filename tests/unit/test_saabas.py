"""SaabasForest gives XGBoost's approximate (Saabas) contributions, the reference, in one prediction."""

import json

import numpy as np
import pytest

from pipelines.scoring.explanations import SaabasForest, contributions


def _data(rows: int = 2000, features: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    x[rng.random(x.shape) < 0.15] = np.nan
    signal = np.nan_to_num(x[:, 0]) - 0.7 * np.nan_to_num(x[:, 1]) * np.nan_to_num(x[:, 2]) + 0.3 * np.isnan(x[:, 3])
    y = (signal + rng.normal(scale=0.5, size=rows) > 0).astype(np.float32)
    return x, y


MODELS = {
    "shallow": ({"max_depth": 2, "eta": 0.3}, 20),
    "deep, many trees": ({"max_depth": 7, "eta": 0.05, "min_child_weight": 0.5}, 150),
    "imbalanced base score": ({"max_depth": 4, "base_score": 0.03, "scale_pos_weight": 3.0}, 40),
    "exact method, pruned by gamma": ({"tree_method": "exact", "max_depth": 6, "gamma": 2.0}, 30),
    "random forest rounds": ({"max_depth": 4, "num_parallel_tree": 3, "subsample": 0.7, "colsample_bynode": 0.7}, 10),
    "logit raw": ({"objective": "binary:logitraw", "max_depth": 3}, 25),
}


@pytest.mark.parametrize("name", MODELS)
def test_the_forest_gives_xgboosts_approximate_contributions(name):
    import xgboost as xgb

    params, rounds = MODELS[name]
    x, y = _data()
    booster = xgb.train({"objective": "binary:logistic", **params}, xgb.DMatrix(x, label=y, missing=np.nan), rounds)
    names = tuple(f"f{i}" for i in range(x.shape[1]))
    forest = SaabasForest.of(booster)
    assert forest is not None
    held_out, _ = _data(seed=1)
    assert forest.check(booster, held_out[:256], names)
    reference = contributions(booster, held_out, names, exact=False)
    ours = forest(held_out)
    assert ours.shape == reference.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(reference).max()))
    # The base value and the contributions still add up to the margin.
    margin = booster.predict(xgb.DMatrix(held_out, missing=np.nan), output_margin=True)
    np.testing.assert_allclose(ours.sum(axis=1), margin, rtol=1e-4, atol=1e-4)


def test_the_check_refuses_a_forest_of_another_model():
    import xgboost as xgb

    x, y = _data()
    one = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(x, label=y), 10)
    other = xgb.train({"objective": "binary:logistic", "max_depth": 3, "seed": 7, "subsample": 0.5}, xgb.DMatrix(x, label=y), 10)
    forest = SaabasForest.of(other)
    assert forest is not None
    assert not forest.check(one, x[:256], tuple(f"f{i}" for i in range(x.shape[1])))


@pytest.mark.parametrize(
    "params",
    [
        {"booster": "dart", "objective": "binary:logistic", "rate_drop": 0.1},  # trees carry drop weights
        {"objective": "multi:softprob", "num_class": 3},  # one output per class
    ],
)
def test_models_it_does_not_cover_get_none(params):
    import xgboost as xgb

    x, y = _data()
    label = y if params.get("num_class") is None else (y + (x[:, 4] > 0)).astype(np.float32)
    booster = xgb.train({"max_depth": 3, **params}, xgb.DMatrix(x, label=label), 5)
    assert SaabasForest.of(booster) is None


def test_categorical_splits_get_none():
    import pandas as pd
    import xgboost as xgb

    x, y = _data()
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    colour = np.random.default_rng(2).choice(["a", "b", "c"], size=len(y))
    frame["colour"] = pd.Categorical(colour)
    y = ((colour == "b") ^ (y > 0)).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(frame, label=y, enable_categorical=True), 5)
    trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    assert any(any(t["split_type"]) for t in trees)
    assert SaabasForest.of(booster) is None


def test_a_forest_too_large_to_build_gets_none(monkeypatch):
    import xgboost as xgb

    from pipelines.scoring import explanations

    x, y = _data()
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(x, label=y), 10)
    trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    nodes = sum(len(t["left_children"]) for t in trees)
    monkeypatch.setattr(explanations, "MAX_FOREST_VALUES", nodes * x.shape[1])
    assert SaabasForest.of(booster) is not None
    monkeypatch.setattr(explanations, "MAX_FOREST_VALUES", nodes * x.shape[1] - 1)
    assert SaabasForest.of(booster) is None
