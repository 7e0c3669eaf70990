"""Real dbt runs against a DuckDB file."""

import datetime as dt

import pyarrow as pa
import pytest

from pipelines import transform
from pipelines.transform import DbtError, dbt_env
from tests.conftest import AS_OF


def features(warehouse, day):
    return warehouse.query("select * from analytics.churn_features where as_of_date = $1 order by customer_id", [day]).to_pylist()


def test_rebuilding_one_date_leaves_the_others(settings, spec, warehouse):
    before = features(warehouse, AS_OF)
    earlier = AS_OF - dt.timedelta(days=1)
    transform.build_features(settings, spec, [earlier])
    transform.build_features(settings, spec, [earlier])  # a rerun replaces, never appends
    assert features(warehouse, AS_OF) == before
    counts = warehouse.query(
        "select as_of_date, count(*) as n, count(distinct customer_id) as k from analytics.churn_features group by 1 order by 1"
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
    transform.build_features(settings, spec, [AS_OF])
    assert features(warehouse, AS_OF) == before


def test_an_active_customer_disappears_from_features_once_cancelled(settings, spec, warehouse):
    customer = features(warehouse, AS_OF)[0]["customer_id"]
    warehouse.execute("delete from raw.cancellations where customer_id = $1", [customer])
    warehouse.execute("insert into raw.cancellations values ($1, $2, 'price')", [customer, AS_OF])
    transform.build_features(settings, spec, [AS_OF])
    assert customer not in {row["customer_id"] for row in features(warehouse, AS_OF)}


def test_dbt_tests_fail_the_build_on_a_duplicated_key(settings, spec, warehouse):
    warehouse.execute("insert into raw.customers select * from raw.customers limit 1")
    with pytest.raises(DbtError, match="unique"):
        transform.build_features(settings, spec, [AS_OF])


def test_training_set_has_labels_known_by_the_horizon(settings, spec, warehouse):
    dates = [AS_OF - dt.timedelta(days=60), AS_OF - dt.timedelta(days=30)]
    transform.build_training_set(settings, spec, dates)
    table = warehouse.query(
        "select as_of_date, count(*) as n, sum(churned_30d) as churned from analytics.churn_training_set group by 1 order by 1"
    ).to_pylist()
    assert [row["as_of_date"] for row in table] == dates
    assert all(0 < row["churned"] < row["n"] for row in table)


def test_a_malformed_date_var_is_refused_by_dbt(settings):
    with pytest.raises(DbtError, match="as_of_date"):
        transform.run_dbt(settings, "build", "churn_features", {"as_of_date": "2026-01-31'; drop table x; --"})


def test_marts_read_the_latest_partition(settings, spec, warehouse):
    schema = pa.schema(
        [
            ("customer_id", pa.int64()),
            ("as_of_date", pa.date32()),
            ("score", pa.float64()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("scored_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    now = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    for day, score in ((AS_OF - dt.timedelta(days=1), 0.9), (AS_OF, 0.1)):
        rows = pa.RecordBatch.from_pydict(
            {
                "customer_id": [1, 2],
                "as_of_date": [day] * 2,
                "score": [score] * 2,
                "model_name": ["churn"] * 2,
                "model_version": ["1"] * 2,
                "scored_at": [now] * 2,
            },
            schema=schema,
        )
        warehouse.replace_partition("predictions", "churn_scores", day, schema, [rows])
        transform.build_marts(settings, spec, [day])
    latest = warehouse.query("select customer_id, as_of_date, risk_band from marts.churn_latest_scores order by 1").to_pylist()
    assert latest == [
        {"customer_id": 1, "as_of_date": AS_OF, "risk_band": "low"},
        {"customer_id": 2, "as_of_date": AS_OF, "risk_band": "low"},
    ]
    summary = warehouse.query(
        "select as_of_date, cast(sum(customers) as int) as n, cast(sum(high_risk_customers) as int) as high "
        "from marts.churn_daily_summary group by 1 order by 1"
    ).to_pylist()
    assert [(r["n"], r["high"]) for r in summary] == [(2, 2), (2, 0)]


def test_dbt_env_maps_a_postgres_url_without_leaking_it_elsewhere():
    env = dbt_env("postgresql://alice:s3cret@db.internal:6432/warehouse")
    assert env["BATCHPRED_DBT_TARGET"] == "postgres"
    assert (env["BATCHPRED_PG_HOST"], env["BATCHPRED_PG_PORT"], env["BATCHPRED_PG_DATABASE"]) == (
        "db.internal",
        "6432",
        "warehouse",
    )
    assert env["BATCHPRED_PG_PASSWORD"] == "s3cret"


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
        transform.run_dbt(settings, "build", "churn_features", variables)


def test_several_dates_are_built_and_tested_in_one_run(settings, spec, warehouse):
    days = [AS_OF - dt.timedelta(days=2), AS_OF - dt.timedelta(days=1)]
    before = features(warehouse, AS_OF)
    transform.build_features(settings, spec, days)
    counts = warehouse.query("select as_of_date, count(*) as n from analytics.churn_features group by 1 order by 1").to_pylist()
    assert [c["as_of_date"] for c in counts] == [*days, AS_OF] and all(c["n"] > 0 for c in counts)
    assert features(warehouse, AS_OF) == before
