"""Real dbt runs against a DuckDB file."""

import datetime as dt

import pyarrow as pa
import pytest
from conftest import resources

from pipelines.domain import names
from pipelines.domain.errors import DbtError
from tests.conftest import AS_OF


def features(warehouse, day):
    return warehouse.query("select * from analytics.churn_features where as_of_date = $1 order by customer_id", [day]).to_pylist()


def test_rebuilding_one_date_leaves_the_others(settings, spec, warehouse):
    before = features(warehouse, AS_OF)
    earlier = AS_OF - dt.timedelta(days=1)
    resources(settings).dbt.build_features(spec, [earlier])
    resources(settings).dbt.build_features(spec, [earlier])  # a rerun replaces, never appends
    assert features(warehouse, AS_OF) == before
    counts = warehouse.query(
        "select as_of_date, count(*) as n, count(distinct customer_id) as k from analytics.churn_features "
        "where as_of_date >= $1 group by 1 order by 1",
        [earlier],
    ).to_pylist()
    assert [c["as_of_date"] for c in counts] == [earlier, AS_OF]
    assert all(c["n"] == c["k"] > 0 for c in counts)


def test_features_are_point_in_time_correct(settings, spec, warehouse):
    """Events dated after D must not change the features of D."""
    before = features(warehouse, AS_OF)
    later = AS_OF + dt.timedelta(days=1)
    customer = before[0]["customer_id"]
    warehouse.execute("insert into raw.usage_daily values ($1, $2, 500, 999.0)", [customer, later])
    warehouse.execute("insert into raw.support_tickets values (999999, $1, $2, 'billing', 'high')", [customer, later])
    warehouse.execute("insert into raw.cancellations values ($1, $2, 'price')", [before[1]["customer_id"], later])
    resources(settings).dbt.build_features(spec, [AS_OF])
    assert features(warehouse, AS_OF) == before


def test_an_active_customer_disappears_from_features_once_cancelled(settings, spec, warehouse):
    customer = features(warehouse, AS_OF)[0]["customer_id"]
    warehouse.execute("delete from raw.cancellations where customer_id = $1", [customer])
    warehouse.execute("insert into raw.cancellations values ($1, $2, 'price')", [customer, AS_OF])
    resources(settings).dbt.build_features(spec, [AS_OF])
    assert customer not in {row["customer_id"] for row in features(warehouse, AS_OF)}


def test_dbt_tests_fail_the_build_on_a_duplicated_key(settings, spec, warehouse):
    warehouse.execute("insert into raw.customers select * from raw.customers limit 1")
    with pytest.raises(DbtError, match="unique"):
        resources(settings).dbt.build_features(spec, [AS_OF])


def test_labels_are_known_by_the_horizon(settings, spec, warehouse):
    dates = [AS_OF - dt.timedelta(days=61), AS_OF - dt.timedelta(days=33)]  # not training snapshots of the base
    resources(settings).dbt.build_labels(spec, dates, with_features=True)
    table = warehouse.query(
        "select as_of_date, count(*) as n, sum(churned_30d) as churned from analytics.churn_labels "
        "where as_of_date in ($1, $2) group by 1 order by 1",
        dates,
    ).to_pylist()
    assert [row["as_of_date"] for row in table] == dates
    assert all(0 < row["churned"] < row["n"] for row in table)
    # One label per customer with features on the date, and no other.
    mismatch = warehouse.query(
        "select count(*) as n from (select * from analytics.churn_labels where as_of_date in ($1, $2)) l full outer join "
        "(select * from analytics.churn_features where as_of_date in ($1, $2)) f "
        "on f.customer_id = l.customer_id and f.as_of_date = l.as_of_date where f.customer_id is null or l.customer_id is null",
        dates,
    ).to_pylist()
    assert mismatch == [{"n": 0}]


def test_a_nan_in_a_raw_column_is_reported_at_that_column(settings, spec, warehouse):
    """Not as a cast error in some feature far downstream: the raw table and column are named."""
    warehouse.execute("update raw.usage_daily set minutes = cast('NaN' as double precision) where usage_date = $1", [AS_OF])
    with pytest.raises(DbtError, match="raw_usage_daily_minutes_is_a_number"):
        resources(settings).dbt.build_features(spec, [AS_OF])


def test_a_malformed_date_var_is_refused_by_dbt(settings):
    with pytest.raises(DbtError, match="as_of_date"):
        resources(settings).dbt.run("build", "churn_features", {"as_of_date": "2026-01-31'; drop table x; --"})


def _fake_scores(warehouse, day, scores, version=1):
    from pipelines.adapters.warehouse import tables

    schema = tables.predictions_schema([pa.field("customer_id", pa.int64(), nullable=False)])
    ids = sorted(scores)
    rows = pa.RecordBatch.from_pydict(
        {
            "customer_id": ids,
            "as_of_date": [day] * len(ids),
            "score": [scores[i] for i in ids],
            "model_name": ["churn"] * len(ids),
            "model_version": [version] * len(ids),
            "mlflow_run_id": ["run"] * len(ids),
            "scoring_run_id": ["s"] * len(ids),
            "airflow_run_id": [None] * len(ids),
            "scored_at": [dt.datetime(2026, 2, 1, tzinfo=dt.UTC)] * len(ids),
        },
        schema=schema,
    )
    warehouse.replace_partition("predictions", "churn_scores", day, schema, [rows])
    tables.prepare(warehouse)  # as every command does: <model>_health reads monitoring.daily_health


def test_marts_show_the_latest_date_with_bands_changes_and_an_all_segments_row(settings, spec, warehouse):
    earlier = AS_OF - dt.timedelta(days=1)
    resources(settings).dbt.build_features(spec, [earlier])
    ids = [r["customer_id"] for r in features(warehouse, AS_OF)[:4]]
    _fake_scores(warehouse, earlier, {ids[0]: 0.9, ids[1]: 0.1, ids[2]: 0.3})
    _fake_scores(warehouse, AS_OF, {ids[0]: 0.95, ids[1]: 0.6, ids[2]: 0.25, ids[3]: 0.7}, version=10)
    resources(settings).dbt.build_marts(spec, [earlier, AS_OF])
    latest = {
        r["customer_id"]: r
        for r in warehouse.query(
            "select customer_id, as_of_date, risk_band, previous_score, newly_high_risk, model_version, plan, hours_since_scored "
            "from marts.churn_latest_scores"
        ).to_pylist()
    }
    assert set(latest) == set(ids) and {r["as_of_date"] for r in latest.values()} == {AS_OF}
    assert [latest[i]["risk_band"] for i in ids] == ["high", "high", "medium", "high"]  # thresholds 0.5 and 0.2 from model.yaml
    assert [latest[i]["newly_high_risk"] for i in ids] == [False, True, False, True]  # ids[3] was not scored before
    assert latest[ids[0]]["previous_score"] == pytest.approx(0.9)
    assert latest[ids[0]]["model_version"] == 10 and latest[ids[0]]["hours_since_scored"] > 0
    plans = {r["customer_id"]: r["plan"] for r in features(warehouse, AS_OF)}
    assert all(latest[i]["plan"] == plans[i] for i in ids)  # the segment as of the date, from its features

    summary = warehouse.query(
        "select as_of_date, plan, entities, high_risk, entities_high, entities_medium, entities_low, model_version "
        "from marts.churn_daily_summary order by as_of_date, plan"
    ).to_pylist()
    totals = {r["as_of_date"]: r for r in summary if r["plan"] == "(all)"}
    assert (totals[earlier]["entities"], totals[earlier]["high_risk"]) == (3, 1)
    assert [totals[AS_OF][k] for k in ("entities", "high_risk", "entities_high", "entities_medium", "entities_low")] == [
        4,
        3,
        3,
        1,
        0,
    ]
    assert totals[AS_OF]["model_version"] == 10
    per_plan = [r for r in summary if r["as_of_date"] == AS_OF and r["plan"] != "(all)"]
    assert sum(r["entities"] for r in per_plan) == 4


def test_a_date_without_predictions_loses_its_summary_rows(settings, spec, warehouse):
    ids = [r["customer_id"] for r in features(warehouse, AS_OF)[:2]]
    _fake_scores(warehouse, AS_OF, {ids[0]: 0.9, ids[1]: 0.1})
    resources(settings).dbt.build_marts(spec, [AS_OF])
    warehouse.execute("delete from predictions.churn_scores where as_of_date = $1", [AS_OF])
    resources(settings).dbt.build_marts(spec, [AS_OF])
    assert warehouse.query("select count(*) as n from marts.churn_daily_summary").to_pylist() == [{"n": 0}]


def test_a_dry_run_builds_in_a_scratch_schema_and_leaves_analytics_alone(settings, spec, warehouse):
    from pipelines.adapters.warehouse import queries

    before = features(warehouse, AS_OF)
    scratch = names.scratch_schema("0123456789abcdef")
    warehouse.execute("update raw.usage_daily set minutes = minutes + 1")
    resources(settings).dbt.build_features(spec, [AS_OF], scratch=scratch)
    built = warehouse.query(f"select count(*) as n from {scratch}.churn_features").to_pylist()[0]["n"]
    assert built == len(before)
    assert features(warehouse, AS_OF) == before
    queries.drop_scratch(warehouse, scratch)
    assert warehouse.table_columns(scratch, "churn_features") is None


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"as_of_date": "2026-01-31", "as_of_dates": ["2026-01-30"]}, "not both"),
        ({"as_of_dates": "2026-01-31"}, "'as_of_dates' must be a list"),
        ({"as_of_dates": ["2026-01-31", "31/01/2026"]}, "'as_of_dates' must be a date"),
    ],
)
def test_malformed_as_of_dates_are_refused_by_dbt_naming_the_var(settings, variables, message):
    with pytest.raises(DbtError, match=message):
        resources(settings).dbt.run("build", "churn_features", variables)


def test_several_dates_are_built_and_tested_in_one_run(settings, spec, warehouse):
    days = [AS_OF - dt.timedelta(days=2), AS_OF - dt.timedelta(days=1)]
    before = features(warehouse, AS_OF)
    resources(settings).dbt.build_features(spec, days)
    counts = warehouse.query(
        "select as_of_date, count(*) as n from analytics.churn_features where as_of_date >= $1 group by 1 order by 1", [days[0]]
    ).to_pylist()
    assert [c["as_of_date"] for c in counts] == [*days, AS_OF] and all(c["n"] > 0 for c in counts)
    assert features(warehouse, AS_OF) == before
