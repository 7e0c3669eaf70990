"""Model health of degenerate models and data has a defined answer, and a monitor run stores
all of a date's health rows or none. Real MLflow stores (a private copy each), both warehouses."""

import math
from dataclasses import replace

import pytest
from conftest import resources

from pipelines.adapters.warehouse import tables
from pipelines.monitoring import alerts as alerting
from pipelines.usecases import health as model_health
from pipelines.usecases import models, steps
from tests.conftest import AS_OF, score_date

# No split is ever worth this much hessian: every tree is one leaf, every score the same.
ONE_LEAF = {"min_child_weight": 1e12}



def one_leaf(spec):
    training = replace(spec.training, num_boost_round=5, params={**spec.training.params, **ONE_LEAF})
    return replace(spec, training=training)


def health_values(warehouse):
    """Every float in every model-health table, with where it is."""
    found = []
    for table in tables.HEALTH_TABLES:
        if warehouse.table_columns(table.schema, table.name) is None:
            continue
        for row in warehouse.query(f"select * from {table}").to_pylist():
            found += [(str(table), k, v) for k, v in row.items() if isinstance(v, float)]
    return found


def assert_all_finite(warehouse):
    values = health_values(warehouse)
    assert values and all(math.isfinite(v) for _, _, v in values), [x for x in values if not math.isfinite(x[2])]


def stored(warehouse):
    """Every model-health row of AS_OF (with its computed_at), comparable across backends."""
    return {
        str(t): sorted(map(repr, warehouse.query(f"select * from {t} where as_of_date = $1", [AS_OF]).to_pylist()))
        for t in tables.HEALTH_TABLES
        if warehouse.table_columns(t.schema, t.name) is not None
    }


def test_a_champion_of_one_leaf_trees_is_monitored_with_defined_values(own, spec, warehouse):
    trained = models.train(resources(own), one_leaf(spec), AS_OF, force=True, reason="a constant model, on purpose")
    assert trained.promoted
    score_date(own, spec)
    scores = warehouse.query("select distinct score from predictions.churn_scores").column("score").to_pylist()
    assert len(scores) == 1  # the premise: every score is the same
    health = model_health.monitor(resources(own), spec, AS_OF)
    daily = warehouse.query("select * from monitoring.daily_health where as_of_date = $1", [AS_OF]).to_pylist()
    assert len(daily) == 1 and daily[0]["status"] == health.status
    # Tied scores rank nobody above anybody: the expected AUC of a constant model is exactly 0.5.
    estimated = warehouse.query("select * from monitoring.estimated_performance").to_pylist()[0]
    assert estimated["expected_auc"] == pytest.approx(0.5)
    # Its trees attribute nothing, so there is no ranking to compare: NULL, and the row says why.
    assert daily[0]["attribution_ndcg"] is None and "attribut" in daily[0]["null_reason"]
    assert_all_finite(warehouse)


def test_a_constant_challenger_gets_null_correlations_with_the_reason(own, spec, warehouse):
    models.train(resources(own), one_leaf(spec), AS_OF, force=True, reason="a constant challenger", alias="challenger")
    score_date(own, spec)
    model_health.monitor(resources(own), spec, AS_OF)
    [row] = warehouse.query("select * from monitoring.shadow_comparison").to_pylist()
    assert row["pearson"] is None and row["spearman"] is None
    assert row["null_reason"] == "pearson, spearman: undefined, the challenger scores are all one value"
    # The rest of the comparison is defined and right: the mean difference of a constant from the champion's scores.
    pairs = warehouse.query(
        "select avg(abs(c.score - s.score)) as d from predictions.churn_scores c "
        "join predictions.churn_shadow_scores s using (customer_id, as_of_date)"
    ).to_pylist()[0]
    assert row["mean_abs_difference"] == pytest.approx(pairs["d"])
    assert_all_finite(warehouse)


def test_a_monitor_run_that_fails_part_way_keeps_the_dates_previous_health(settings, spec, warehouse, monkeypatch):
    score_date(settings, spec)
    model_health.monitor(resources(settings), spec, AS_OF)
    before = stored(warehouse)
    assert before["monitoring.feature_drift"] and before["monitoring.daily_health"]

    # Injected failure (a stand-in for any late calculation failing): the last step before the write.
    def broken(*args, **kwargs):
        raise RuntimeError("injected: the retrain policy failed")

    monkeypatch.setattr(alerting, "retrain_decision", broken)
    with pytest.raises(RuntimeError, match="injected"):
        model_health.monitor(resources(settings), spec, AS_OF)
    after = stored(warehouse)
    assert after == before


def test_a_one_row_partition_is_monitored_with_defined_values(settings, spec, warehouse):
    warehouse.execute(
        "delete from analytics.churn_features where as_of_date = $1 and customer_id <> "
        "(select min(customer_id) from analytics.churn_features where as_of_date = $1)",
        [AS_OF],
    )
    score_date(settings, spec)
    health = model_health.monitor(resources(settings), spec, AS_OF)
    rows = warehouse.query("select * from monitoring.feature_drift where as_of_date = $1", [AS_OF]).to_pylist()
    assert rows and {r["rows"] for r in rows} == {1}
    # What one row says about a distribution is within what sampling noise explains: no drift.
    assert health.drift_status == "ok" and {r["status"] for r in rows if r["decides"]} <= {"ok", "excluded"}
    # One score is one tied bucket: the expected AUC is exactly 0.5, its band defined.
    [estimated] = warehouse.query("select * from monitoring.estimated_performance").to_pylist()
    assert estimated["rows"] == 1 and estimated["expected_auc"] == pytest.approx(0.5)
    assert_all_finite(warehouse)


def test_the_training_reference_of_a_one_leaf_model_is_usable(own, spec):
    trained = models.train(resources(own), one_leaf(spec), AS_OF, force=True, reason="a constant model, on purpose")
    reference = resources(own).registry.training_reference(trained.model)
    counts = reference.score.counts
    assert [c for c in counts if c] == [reference.score.rows]  # one value, one bin
    assert sum(reference.importance.values()) == 0
    assert all(math.isfinite(v) for v in reference.validation.to_dict().values() if isinstance(v, float))


def test_a_date_monitored_again_without_predictions_keeps_no_stale_rows(settings, spec, warehouse):
    score_date(settings, spec)
    model_health.monitor(resources(settings), spec, AS_OF)
    version = warehouse.query("select max(model_version) as v from predictions.churn_scores").to_pylist()[0]["v"]
    warehouse.execute("delete from analytics.churn_features where as_of_date = $1", [AS_OF])
    from pipelines.monitoring.monitor import monitor_date

    res = resources(settings)
    health = monitor_date(res, spec, AS_OF, res.registry.pin(spec.name, version))
    assert health.status == "empty_partition"
    assert warehouse.query("select count(*) as n from monitoring.feature_drift where as_of_date = $1", [AS_OF]).to_pylist() == [
        {"n": 0}
    ]
    daily = warehouse.query("select status from monitoring.daily_health where as_of_date = $1", [AS_OF]).to_pylist()
    assert daily == [{"status": "empty_partition"}]


def test_validation_results_hold_strict_json(settings, spec, warehouse):
    """Infinities a date's features hold reach validation_results as JSON strings, never as bare
    NaN/Infinity tokens (no JSON reader accepts those) or a NaN percent."""
    import json


    warehouse.execute(
        "update analytics.churn_features "
        "set minutes_30d = cast(case when customer_id % 2 = 0 then 'inf' else '-inf' end as double precision) "
        "where as_of_date = $1 and customer_id in (select customer_id from analytics.churn_features "
        "where as_of_date = $1 order by customer_id limit 4)",
        [AS_OF],
    )
    attempt = steps.plan(resources(settings), spec, AS_OF)
    steps.validate(resources(settings), spec, attempt)
    rows = warehouse.query(
        "select * from monitoring.validation_results where column_name = 'minutes_30d' and unexpected_count > 0"
    ).to_pylist()

    def refuse(token):
        raise AssertionError(f"bare {token} in stored JSON")

    [row] = rows
    unexpected = json.loads(row["partial_unexpected"], parse_constant=refuse)
    assert sorted(unexpected) == ["-Infinity", "-Infinity", "Infinity", "Infinity"]
    assert row["unexpected_count"] == 4
    json.loads(row["observed_value"], parse_constant=refuse)
    for r in warehouse.query("select * from monitoring.validation_results").to_pylist():
        json.loads(r["observed_value"], parse_constant=refuse)
        assert r["unexpected_percent"] is None or math.isfinite(r["unexpected_percent"])
