"""Rows that break a tolerated expectation (`mostly`) are quarantined, not scored: exactly
the rows Great Expectations counted, whatever kwargs the expectation has.

The suite (expectations/churn_features.json) tolerates 1% of rows outside the range of
sessions_30d and of minutes_30d. The base partition holds about 1,000 active customers.
"""

import json
from dataclasses import replace

import pytest
from conftest import resources

from pipelines.domain.errors import ValidationFailed
from pipelines.usecases import steps
from tests.conftest import AS_OF, run_log, score_date


def break_rows(warehouse, column: str, value, n: int, table="churn_features", key="customer_id") -> list:
    """Set `column` to `value` on the `n` entities with the highest keys; return their keys."""
    ids = [
        r[key]
        for r in warehouse.query(
            f"select {key} from analytics.{table} where as_of_date = $1 order by {key} desc limit $2", [AS_OF, n]
        ).to_pylist()
    ]
    for entity in ids:
        warehouse.execute(
            f'update analytics.{table} set "{column}" = $1 where as_of_date = $2 and {key} = $3', [value, AS_OF, entity]
        )
    return ids


def count(warehouse, sql: str) -> int:
    return warehouse.query(sql, [AS_OF]).to_pylist()[0]["n"]


def quarantined(warehouse) -> int:
    if warehouse.table_columns("monitoring", "churn_quarantine") is None:
        return 0
    return count(warehouse, "select count(*) as n from monitoring.churn_quarantine where as_of_date = $1")


def total(warehouse, table="churn_features") -> int:
    return count(warehouse, f"select count(*) as n from analytics.{table} where as_of_date = $1")


def scored_keys(warehouse, table="churn_scores", key="customer_id") -> set:
    return {r[key] for r in warehouse.query(f"select {key} from predictions.{table}").to_pylist()}


def with_suite(tmp_path, spec, *extra: dict):
    """The spec's suite plus `extra` expectations, in a folder of its own."""
    suite = json.loads(spec.suite_path.read_text())
    suite["expectations"] += list(extra)
    (tmp_path / f"{spec.suite}.json").write_text(json.dumps(suite))
    return replace(spec, suites_dir=tmp_path)


def test_a_few_bad_rows_are_quarantined_and_the_rest_scored(settings, spec, warehouse):
    n = total(warehouse)
    bad_minutes = break_rows(warehouse, "minutes_30d", -1.0, 5)
    both = bad_minutes[:2]  # these two also break the sessions rule: one quarantine row each, both reasons
    for customer_id in both:
        warehouse.execute("update analytics.churn_features set sessions_30d = 99999 where customer_id = $1", [customer_id])

    attempt, validation, published = score_date(settings, spec)
    assert validation.rows_quarantined == 5 and validation.rows == n

    held = warehouse.query("select * from monitoring.churn_quarantine order by customer_id").to_pylist()
    assert sorted(r["customer_id"] for r in held) == sorted(bad_minutes)
    assert {r["validation_id"] for r in held} == {validation.validation_id}
    reasons = {r["customer_id"]: r["reasons"] for r in held}
    assert all("minutes_30d: expect_column_values_to_be_between (mostly=0.99)" in reasons[c] for c in bad_minutes)
    assert all("sessions_30d" in reasons[c] for c in both)
    assert sum("sessions_30d" in reason for reason in reasons.values()) == 2

    scored = scored_keys(warehouse)
    assert published.rows_scored == len(scored) == n - 5
    assert not scored & set(bad_minutes)
    assert len(scored) + len(held) == n

    run = run_log(warehouse)[-1]
    assert (run["rows_read"], run["rows_scored"], run["rows_quarantined"]) == (n, n - 5, 5)

    # Fixed data, validated again: the date's quarantine empties and every row is scored.
    warehouse.execute("update analytics.churn_features set minutes_30d = 10, sessions_30d = 10 where minutes_30d < 0")
    assert score_date(settings, spec)[2].rows_scored == n
    assert quarantined(warehouse) == 0


def test_more_bad_rows_than_mostly_allows_fail_the_whole_date(settings, spec, warehouse):
    score_date(settings, spec)
    before = warehouse.query("select * from predictions.churn_scores order by customer_id").to_pylist()
    n = total(warehouse)
    break_rows(warehouse, "minutes_30d", -1.0, 30)  # about 3% of the rows; the suite tolerates 1%
    attempt = steps.plan(resources(settings), spec, AS_OF)
    with pytest.raises(ValidationFailed) as excinfo:
        steps.validate(resources(settings), spec, attempt)
    assert f"minutes_30d: 30 of {n} rows unexpected" in str(excinfo.value)
    assert warehouse.query("select * from predictions.churn_scores order by customer_id").to_pylist() == before
    assert quarantined(warehouse) == 0


def test_a_value_set_holding_null_quarantines_exactly_what_gx_counted(settings, spec, warehouse, tmp_path):
    """GX leaves nulls out of the set's check: with null in value_set, an unknown plan is
    still unexpected. Re-derived SQL (`plan not in (..., null)`) matched no row at all."""
    tolerant = with_suite(
        tmp_path,
        spec,
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "channel", "value_set": ["organic", "paid_search", "referral", None], "mostly": 0.5},
        },
    )
    partners = {
        r["customer_id"]
        for r in warehouse.query(
            "select customer_id from analytics.churn_features where as_of_date = $1 and channel = 'partner'", [AS_OF]
        ).to_pylist()
    }
    assert 10 < len(partners) < total(warehouse) / 2
    validation, published = score_date(settings, tolerant)[1:]
    held = {r["customer_id"] for r in warehouse.query("select customer_id from monitoring.churn_quarantine").to_pylist()}
    assert held == partners and validation.rows_quarantined == len(partners)
    assert not scored_keys(warehouse) & partners
    assert published.rows_scored + len(partners) == total(warehouse)


def test_row_condition_and_strict_bounds_mean_what_they_mean_to_gx(settings, spec, warehouse, tmp_path):
    tolerant = with_suite(
        tmp_path,
        spec,
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {
                "column": "tenure_days",
                "min_value": 30,
                "strict_min": True,
                "mostly": 0.5,
                "row_condition": {"type": "comparison", "column": {"name": "plan"}, "operator": "==", "parameter": "premium"},
            },
        },
    )
    expected = {
        r["customer_id"]
        for r in warehouse.query(
            "select customer_id from analytics.churn_features where as_of_date = $1 and plan = 'premium' and tenure_days <= 30",
            [AS_OF],
        ).to_pylist()
    }
    assert expected
    validation = score_date(settings, tolerant)[1]
    held = {r["customer_id"] for r in warehouse.query("select customer_id from monitoring.churn_quarantine").to_pylist()}
    assert held == expected and validation.rows_quarantined == len(expected)


def test_text_keys_are_quarantined_as_they_are(settings, invoice_spec, warehouse):
    """The invoice model's suite tolerates nothing; a tolerated rule added here names text keys."""
    suite = json.loads(invoice_spec.suite_path.read_text())
    n = total(warehouse, "payment_risk_features")
    bad = break_rows(warehouse, "amount", -1.0, 3, "payment_risk_features", "invoice_number")
    suite["expectations"].append(
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0, "mostly": 0.9}}
    )
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp())
    (folder / f"{invoice_spec.suite}.json").write_text(json.dumps(suite))
    published = score_date(settings, replace(invoice_spec, suites_dir=folder))[2]
    held = {
        r["invoice_number"] for r in warehouse.query("select invoice_number from monitoring.payment_risk_quarantine").to_pylist()
    }
    assert held == set(bad) and all(k.startswith("INV-0") for k in held)
    assert published.rows_scored == n - 3
