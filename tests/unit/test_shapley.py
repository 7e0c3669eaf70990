"""Exact reasons are Shapley values (the reasons batchpred writes are in tests/integration/test_reasons.py)."""

import itertools
import math

import numpy as np
import pytest

from pipelines.scoring.explanations import contributions


def _expected_value(tree: dict, x: np.ndarray, known: set[int]) -> float:
    """The tree's output given only the features in `known` (TreeSHAP's path-dependent value
    function): at a split on an unknown feature, the children are averaged by cover."""
    if "leaf" in tree:
        return tree["leaf"]
    children = {c["nodeid"]: c for c in tree["children"]}
    feature = int(tree["split"][1:]) if tree["split"].startswith("f") else int(tree["split"])
    if feature in known:
        value = x[feature]
        child = tree["missing"] if np.isnan(value) else tree["yes"] if value < tree["split_condition"] else tree["no"]
        return _expected_value(children[child], x, known)
    total = sum(c["cover"] for c in children.values())
    return sum(c["cover"] / total * _expected_value(c, x, known) for c in children.values())


def test_exact_reasons_match_brute_force_shapley_values_on_a_small_model():
    """Shapley values by enumerating every subset of 4 features, against XGBoost's TreeSHAP."""
    import json

    import xgboost as xgb

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) * np.nan_to_num(x[:, 2]) > 0).astype(np.float32)
    booster = xgb.train(
        {"max_depth": 3, "eta": 0.3, "objective": "binary:logistic", "base_score": 0.5}, xgb.DMatrix(x, label=y), 5
    )
    trees = [json.loads(t) for t in booster.get_dump(dump_format="json", with_stats=True)]
    names = ("f0", "f1", "f2", "f3")
    exact = contributions(booster, x[:8], names, exact=True)
    m = 4
    for row in range(8):
        value = {
            s: sum(_expected_value(t, x[row], set(s)) for t in trees)
            for r in range(m + 1)
            for s in itertools.combinations(range(m), r)
        }
        for i in range(m):
            phi = sum(
                math.factorial(len(s))
                * math.factorial(m - len(s) - 1)
                / math.factorial(m)
                * (value[tuple(sorted((*s, i)))] - value[s])
                for r in range(m)
                for s in itertools.combinations([j for j in range(m) if j != i], r)
            )
            assert exact[row, i] == pytest.approx(phi, abs=1e-5)
