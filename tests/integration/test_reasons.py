"""Per-row reasons: the top features by contribution to each row's margin, approximate for
every row and exact TreeSHAP for the highest scores, written with the predictions."""

import math
import re
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
from conftest import resources

from pipelines.scoring.explanations import contributions
from pipelines.usecases import health as model_health
from pipelines.usecases import steps
from tests.conftest import AS_OF, score_date


def champion(settings):
    model = resources(settings).registry.resolve("churn", "champion")
    return resources(settings).registry.load_booster(model), resources(settings).registry.contract(model)


def partition(warehouse, contract):
    table = warehouse.query("select * from analytics.churn_features where as_of_date = $1 order by customer_id", [AS_OF])
    return table, contract.matrix(table)


@pytest.mark.parametrize("exact", [False, True])
def test_contributions_plus_the_base_value_are_the_margin_for_every_row(settings, warehouse, exact):
    import xgboost as xgb

    booster, contract = champion(settings)
    _, matrix = partition(warehouse, contract)
    contrib = contributions(booster, matrix, contract.feature_names, exact)
    margin = booster.predict(xgb.DMatrix(matrix, missing=np.nan, feature_names=list(contract.feature_names)), output_margin=True)
    assert contrib.shape == (len(matrix), len(contract.feature_names) + 1)
    np.testing.assert_allclose(contrib.sum(axis=1), margin, rtol=1e-5, atol=1e-4)


def test_the_default_policy_writes_top_k_reasons_and_exact_ones_for_the_highest_scores(settings, spec, warehouse):
    one = replace(spec, shards=1)
    published = score_date(settings, one)[2]
    reasons = warehouse.query("select * from predictions.churn_reasons order by customer_id, rank").to_pylist()
    assert len(reasons) == 3 * published.rows_scored
    by_customer = {}
    for r in reasons:
        by_customer.setdefault(r["customer_id"], []).append(r)
    assert all([r["rank"] for r in rows] == [1, 2, 3] for rows in by_customer.values())
    assert all(
        abs(rows[0]["contribution"]) >= abs(rows[1]["contribution"]) >= abs(rows[2]["contribution"])
        for rows in by_customer.values()
    )
    exact = {c for c, rows in by_customer.items() if rows[0]["reason_method"] == "tree_shap"}
    scores = warehouse.query(
        "select customer_id, score from predictions.churn_scores order by score desc, customer_id"
    ).to_pylist()
    keep = min(spec.reasons.exact_cap, math.ceil(spec.reasons.exact_share * published.rows_scored))
    assert exact == {r["customer_id"] for r in scores[:keep]}
    # A categorical reason carries its category; every row knows its base value and scoring run.
    labelled = [r for r in reasons if r["feature"] in spec.categorical_features]
    assert labelled and all(r["value_label"] in spec.categorical_features[r["feature"]] for r in labelled)
    assert {r["scoring_run_id"] for r in reasons} == {published.scoring_run_id}
    # The dashboards' view: the top reason in words.
    steps.build_marts(resources(settings), one, [steps.plan(resources(settings), one, AS_OF)])
    top = warehouse.query("select top_reason from marts.churn_latest_scores order by score desc limit 20").to_pylist()
    assert all(re.fullmatch(r"[a-z_0-9]+ = [^,]+, (raises|lowers) risk", r["top_reason"]) for r in top), top


@pytest.mark.parametrize("method", ["approximate", "exact", "off"])
def test_each_policy(settings, spec, warehouse, method):
    chosen = replace(spec, shards=1, reasons=replace(spec.reasons, method=method))
    attempt, _, published = score_date(settings, chosen)
    if method == "off":
        assert warehouse.table_columns("predictions", "churn_reasons") is None
        steps.build_marts(resources(settings), chosen, [attempt])  # the latest-scores mart leaves its reason column out
        assert "top_reason" not in warehouse.table_columns("marts", "churn_latest_scores")
        return
    methods = warehouse.query("select distinct reason_method from predictions.churn_reasons").column("reason_method").to_pylist()
    assert methods == ["approximate" if method == "approximate" else "tree_shap"]


def test_reasons_and_predictions_are_replaced_together_with_shards(settings, spec, warehouse):
    first = score_date(settings, spec)[2]
    second = score_date(settings, spec)[2]
    runs = warehouse.query("select distinct scoring_run_id from predictions.churn_reasons").column("scoring_run_id").to_pylist()
    assert runs == [second.scoring_run_id] != [first.scoring_run_id]
    n = warehouse.query("select count(*) as n from predictions.churn_reasons").to_pylist()[0]["n"]
    assert n == 3 * second.rows_scored
    assert warehouse.query("select count(*) as n from analytics.churn_reasons_staging").to_pylist() == [{"n": 0}]


def test_the_attribution_profile_and_its_drift(settings, spec, warehouse):
    score_date(settings, spec)
    health = model_health.monitor(resources(settings), spec, AS_OF)
    profile = warehouse.query(
        "select feature, rank, mean_abs_contribution from monitoring.feature_attributions order by rank"
    ).to_pylist()
    assert [r["rank"] for r in profile] == list(range(1, len(spec.feature_names) + 1))
    assert sorted(r["feature"] for r in profile) == sorted(spec.feature_names)
    means = [r["mean_abs_contribution"] for r in profile]
    assert means == sorted(means, reverse=True) and means[0] > 0
    [day] = warehouse.query("select attribution_ndcg from monitoring.daily_health").to_pylist()
    assert day["attribution_ndcg"] > 0.9 and not any(a.check_name == "attribution_ndcg" for a in health.alerts)


def test_text_keys_in_reasons(settings, invoice_spec, warehouse):
    published = score_date(settings, invoice_spec)[2]
    keys = (
        warehouse.query("select distinct invoice_number from predictions.payment_risk_reasons")
        .column("invoice_number")
        .to_pylist()
    )
    assert len(keys) == published.rows_scored and all(k.startswith("INV-0") for k in keys)
    assert isinstance(pa.array(keys).type, pa.DataType)


def test_the_fast_contributions_write_the_reasons_xgboost_gives(settings, spec, warehouse, monkeypatch):
    """A date large enough for SaabasForest (lowered here to the test's few rows) gets the
    approximate reasons XGBoost's own contributions give, rank for rank."""
    from pipelines.scoring import explanations

    chosen = replace(spec, shards=1, reasons=replace(spec.reasons, method="approximate"))
    order = "select customer_id, rank, feature, contribution, base_value from predictions.churn_reasons order by 1, 2"
    monkeypatch.setattr(explanations, "SAABAS_FROM_ROWS", 10**12)
    score_date(settings, chosen)
    slow = warehouse.query(order).to_pylist()
    forests = []

    def built(booster):
        forests.append(explanations.SaabasForest.of(booster))
        return forests[-1]

    monkeypatch.setattr(explanations, "SAABAS_FROM_ROWS", 0)
    monkeypatch.setattr(explanations, "_saabas", built)
    score_date(settings, chosen)
    fast = warehouse.query(order).to_pylist()
    assert forests and forests[0] is not None and forests[0].base_value is not None  # the fast path ran and passed its check
    assert len(fast) == len(slow) > 0
    for a, b in zip(fast, slow, strict=True):
        assert (a["customer_id"], a["rank"], a["feature"]) == (b["customer_id"], b["rank"], b["feature"])
        assert a["contribution"] == pytest.approx(b["contribution"], rel=1e-4, abs=1e-5)
        assert a["base_value"] == pytest.approx(b["base_value"], rel=1e-6)


def test_a_forest_failing_mid_run_falls_back_to_xgboosts_contributions(settings, spec, warehouse, monkeypatch, caplog):
    """Past its check, a forest that fails (here: on the second batch) leaves the rest of the
    date to XGBoost's own contributions: the same reasons, a warning, no failed run."""
    from pipelines.scoring import explanations

    chosen = replace(spec, shards=1, batch_size=500, reasons=replace(spec.reasons, method="approximate"))
    order = "select customer_id, rank, feature, contribution from predictions.churn_reasons order by 1, 2"
    monkeypatch.setattr(explanations, "SAABAS_FROM_ROWS", 10**12)
    score_date(settings, chosen)
    slow = warehouse.query(order).to_pylist()
    calls = []
    real = explanations.SaabasForest.__call__

    def flaky(self, matrix):
        calls.append(len(matrix))
        if len(calls) > 2:  # the check's call, then the first batch's; the second batch's fails
            raise RuntimeError("simulated failure inside XGBoost")
        return real(self, matrix)

    monkeypatch.setattr(explanations, "SAABAS_FROM_ROWS", 0)
    monkeypatch.setattr(explanations.SaabasForest, "__call__", flaky)
    score_date(settings, chosen)
    fast = warehouse.query(order).to_pylist()
    assert len(calls) == 3 and "simulated failure inside XGBoost" in caplog.text
    def ranked(rows):
        return [(r["customer_id"], r["rank"], r["feature"]) for r in rows]

    assert ranked(fast) == ranked(slow)
    assert [r["contribution"] for r in fast] == pytest.approx([r["contribution"] for r in slow], rel=1e-4, abs=1e-5)
