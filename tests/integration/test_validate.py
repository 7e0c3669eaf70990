"""A real Great Expectations suite, executed as SQL by a real DuckDB file."""

import datetime as dt

import pytest
from conftest import resources

from pipelines.adapters.validate import load_suite
from pipelines.domain.errors import ValidationFailed
from pipelines.usecases import steps
from tests.conftest import AS_OF, run_log, score_date

BIG = dt.date(2026, 3, 1)
ROWS = 300_000


def make_big_partition(warehouse, last_row_sql: str):
    """ROWS valid feature rows for BIG, the last of which is then broken by `last_row_sql`."""
    warehouse.execute(
        """
        insert into analytics.churn_features (customer_id, as_of_date, plan, region, channel, tenure_days,
            sessions_7d, sessions_30d, minutes_30d, active_days_30d, sessions_trend, days_since_last_use,
            invoices_90d, failed_payments_30d, failed_payments_90d, tickets_30d, tickets_90d, billing_tickets_90d)
        select i as customer_id, date '2026-03-01' as as_of_date,
               (array['basic', 'standard', 'premium'])[1 + i % 3] as plan,
               (array['north', 'south', 'east', 'west'])[1 + i % 4] as region,
               (array['organic', 'paid_search', 'referral', 'partner'])[1 + i % 4] as channel,
               i % 900 as tenure_days, i % 20 as sessions_7d, i % 80 as sessions_30d,
               (i % 80) * 3.5 as minutes_30d, i % 30 as active_days_30d, 1.0 as sessions_trend,
               i % 10 as days_since_last_use, 3 as invoices_90d, 0 as failed_payments_30d,
               0 as failed_payments_90d, 0 as tickets_30d, 0 as tickets_90d, 0 as billing_tickets_90d
        from generate_series(1, $1) as t(i)
        """,
        [ROWS],
    )
    warehouse.execute(last_row_sql, [ROWS])


def test_the_real_partition_passes_and_results_are_kept(settings, spec, warehouse):
    report = resources(settings).gx.validate_partition(spec, AS_OF)
    assert report.success, report.describe_failures()
    assert (
        report.rows
        == warehouse.query("select count(*) as n from analytics.churn_features where as_of_date = $1", [AS_OF]).to_pylist()[0][
            "n"
        ]
    )
    stored = warehouse.query(
        "select count(*) as n, bool_and(success) as ok from monitoring.validation_results where validation_id = $1",
        [report.validation_id],
    ).to_pylist()[0]
    assert stored == {"n": len(load_suite(spec.suite_path).expectations), "ok": True}


def test_a_bad_value_in_the_very_last_row_is_caught(settings, spec, warehouse):
    make_big_partition(warehouse, "update analytics.churn_features set tenure_days = -5 where customer_id = $1")
    report = resources(settings).gx.validate_partition(spec, BIG)
    assert not report.success
    [failure] = report.failures
    assert failure.column == "tenure_days"
    assert failure.unexpected_count == 1
    assert failure.element_count == ROWS
    assert failure.partial_unexpected == [-5]
    assert "tenure_days" in report.describe_failures() and "-5" in report.describe_failures()


def test_a_null_and_an_unknown_category_in_the_last_row_are_caught(settings, spec, warehouse):
    make_big_partition(
        warehouse, "update analytics.churn_features set plan = 'platinum', customer_id = null where customer_id = $1"
    )
    report = resources(settings).gx.validate_partition(spec, BIG)
    failed = {(f.expectation_type, f.column) for f in report.failures}
    assert failed == {
        ("expect_column_values_to_be_in_set", "plan"),
        ("expect_column_values_to_not_be_null", "customer_id"),
    }


def test_only_the_requested_date_is_checked(settings, spec, warehouse):
    make_big_partition(warehouse, "update analytics.churn_features set tenure_days = -5 where customer_id = $1")
    assert resources(settings).gx.validate_partition(spec, AS_OF).success


def test_a_failed_validation_scores_nothing_and_logs_the_attempt(settings, spec, warehouse):
    score_date(settings, spec)
    before = warehouse.query("select * from predictions.churn_scores order by customer_id").to_pylist()

    warehouse.execute(
        "update analytics.churn_features set active_days_30d = 31 where as_of_date = $1 and customer_id = "
        "(select max(customer_id) from analytics.churn_features where as_of_date = $2)",
        [AS_OF, AS_OF],
    )
    attempt = steps.plan(resources(settings), spec, AS_OF)
    with pytest.raises(ValidationFailed) as excinfo:
        steps.validate(resources(settings), spec, attempt)
    message = str(excinfo.value)
    assert "active_days_30d" in message and "[31]" in message and str(AS_OF) in message
    assert warehouse.query("select * from predictions.churn_scores order by customer_id").to_pylist() == before
    last = run_log(warehouse)[-1]
    assert (last["status"], last["step"], last["validation_outcome"]) == ("failed", "validate", "failed")
    assert last["scoring_run_id"] == attempt.scoring_run_id and last["rows_read"] > 0


def test_a_dry_run_validates_without_writing_anything(settings, spec, warehouse):
    from dataclasses import replace

    attempt = replace(steps.plan(resources(settings), spec, AS_OF, dry_run=True))
    tables = {t: warehouse.table_columns("monitoring", t) for t in ("validation_results", "scoring_runs", "churn_quarantine")}
    steps.build_features(resources(settings), spec, attempt)
    ref = steps.validate(resources(settings), spec, attempt)
    assert ref.rows > 0
    assert {t: warehouse.table_columns("monitoring", t) for t in tables} == tables
    # The shared tables exist from setup (empty); the dry run wrote no row to any of them.
    written = [warehouse.query(f"select count(*) as n from monitoring.{t}").to_pylist() for t in tables if tables[t]]
    assert written == [[{"n": 0}], [{"n": 0}]]
    assert warehouse.table_columns(attempt.scratch_schema, "churn_features") is None  # dropped at the end
