"""Same warehouse contents and model version, same scores: whatever the column's numeric
type, the session's or the machine's time zone, or the driver. Property-style: the same
partition under each variant must give bit-identical scores."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import resources

from tests.conftest import AS_OF, score_date

BATCHPRED = str(Path(sys.executable).with_name("batchpred"))
# Numeric features the base partition holds as integers or doubles, stored again as each type.
RETYPED = ("minutes_30d", "sessions_trend", "tenure_days", "failed_payments_90d")


def scores(warehouse, table="churn_scores", key="customer_id"):
    return [(r[key], r["score"]) for r in warehouse.query(f"select {key}, score from predictions.{table} order by 1").to_pylist()]


@pytest.mark.parametrize("sql_type", ["decimal(18,2)", "numeric(12,4)", "real", "double precision", "bigint"])
def test_a_numeric_feature_of_any_type_scores_the_same(settings, spec, warehouse, sql_type):
    # Rounded first, so every type holds the same values exactly (a REAL or an integer
    # cannot hold more); the reference is the same rounded values as DOUBLE.
    digits = 0 if sql_type == "bigint" else 2
    for column in RETYPED:
        warehouse.execute(f"update analytics.churn_features set {column} = round(cast({column} as numeric), {digits})")
    if sql_type == "real":  # what a REAL holds: each value rounded to float32
        for column in RETYPED:
            warehouse.execute(f"update analytics.churn_features set {column} = cast(cast({column} as real) as double precision)")
    for column in RETYPED:
        warehouse.execute(f"alter table analytics.churn_features alter column {column} type double precision")
    score_date(settings, spec)
    reference = scores(warehouse)
    for column in RETYPED:
        warehouse.execute(f"alter table analytics.churn_features alter column {column} type {sql_type}")
    score_date(settings, spec)
    assert scores(warehouse) == reference


def _score_in_a_process(settings, model, env):
    result = subprocess.run(
        [BATCHPRED, "score", model, "--date", AS_OF.isoformat()],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "BATCHPRED_HOME": str(settings.home),
            "BATCHPRED_WAREHOUSE_URL": settings.warehouse_url,
            "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            **env,
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_time_zone_of_the_machine_or_the_database_changes_nothing(settings, invoice_spec, warehouse):
    """payment_risk reads raw.ar_payment_attempts.attempted_at, a TIMESTAMPTZ with many events
    within minutes of midnight UTC: a session in another time zone would move them across the
    as-of boundary. Every connection batchpred, dbt and GX open runs in UTC."""
    near_midnight = warehouse.query(
        "select count(*) as n from raw.ar_payment_attempts "
        "where extract(hour from attempted_at) = 23 or extract(hour from attempted_at) = 0"
    ).to_pylist()[0]["n"]
    assert near_midnight > 100
    _score_in_a_process(settings, "payment_risk", {"TZ": "UTC"})
    reference = scores(warehouse, "payment_risk_scores", "invoice_number")
    features = warehouse.query(
        "select * from analytics.payment_risk_features where as_of_date = $1 order by 1", [AS_OF]
    ).to_pylist()
    if warehouse.kind == "postgres":  # the database's own default, which a session would inherit
        database = settings.warehouse_url.rsplit("/", 1)[1]
        warehouse.execute(f"alter database \"{database}\" set timezone = 'America/Los_Angeles'")
    for zone in ("America/Los_Angeles", "Asia/Kolkata"):
        _score_in_a_process(settings, "payment_risk", {"TZ": zone, "PGTZ": zone})
        assert (
            warehouse.query("select * from analytics.payment_risk_features where as_of_date = $1 order by 1", [AS_OF]).to_pylist()
            == features
        )
        assert scores(warehouse, "payment_risk_scores", "invoice_number") == reference


def test_the_as_of_boundary_is_the_end_of_the_date_in_utc(settings, invoice_spec, warehouse):
    """An attempt one minute before midnight UTC counts for D; one minute after, for D + 1."""
    invoice = warehouse.query(
        "select invoice_number from analytics.payment_risk_features where as_of_date = $1 and failed_attempts = 0 "
        "order by 1 limit 1",
        [AS_OF],
    ).to_pylist()[0]["invoice_number"]
    warehouse.execute(
        "insert into raw.ar_payment_attempts values "
        "($1, cast('2026-01-31 23:59:00+00:00' as timestamp with time zone), 'failed')",
        [invoice],
    )
    resources(settings).dbt.build_features(invoice_spec, [AS_OF])
    row = warehouse.query(
        "select failed_attempts from analytics.payment_risk_features where as_of_date = $1 and invoice_number = $2",
        [AS_OF, invoice],
    ).to_pylist()
    assert row == [{"failed_attempts": 1}]
    warehouse.execute(
        "update raw.ar_payment_attempts set attempted_at = cast('2026-02-01 00:01:00+00:00' as timestamp with time zone) "
        "where invoice_number = $1 and attempted_at = cast('2026-01-31 23:59:00+00:00' as timestamp with time zone)",
        [invoice],
    )
    resources(settings).dbt.build_features(invoice_spec, [AS_OF])
    row = warehouse.query(
        "select failed_attempts from analytics.payment_risk_features where as_of_date = $1 and invoice_number = $2",
        [AS_OF, invoice],
    ).to_pylist()
    assert row == [{"failed_attempts": 0}]
