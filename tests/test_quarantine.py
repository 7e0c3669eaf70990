"""Rows that break a tolerated expectation (`mostly`) are quarantined, not scored.

The suite (expectations/churn_features.json) tolerates 1% of rows outside the range of
sessions_30d and of minutes_30d. The base partition holds about 1,100 active customers.
"""

import json

import pytest

from pipelines import quarantine, steps
from pipelines.errors import SpecError, ValidationFailed
from tests.conftest import AS_OF


def break_rows(warehouse, column: str, value: float, n: int) -> list[int]:
    """Set `column` to `value` on the `n` customers with the highest ids; return their ids."""
    ids = [
        r["customer_id"]
        for r in warehouse.query(
            "select customer_id from analytics.churn_features where as_of_date = $1 order by customer_id desc limit $2",
            [AS_OF, n],
        ).to_pylist()
    ]
    for customer_id in ids:
        warehouse.execute(
            f'update analytics.churn_features set "{column}" = $1 where as_of_date = $2 and customer_id = $3',
            [value, AS_OF, customer_id],
        )
    return ids


def count(warehouse, sql: str) -> int:
    return warehouse.query(sql, [AS_OF]).to_pylist()[0]["n"]


def test_a_few_bad_rows_are_quarantined_and_the_rest_scored(settings, spec, warehouse):
    total = count(warehouse, "select count(*) as n from analytics.churn_features where as_of_date = $1")
    bad_minutes = break_rows(warehouse, "minutes_30d", -1.0, 5)
    both = bad_minutes[:2]  # these two also break the sessions rule: one quarantine row each, both reasons
    for customer_id in both:
        warehouse.execute("update analytics.churn_features set sessions_30d = 99999 where customer_id = $1", [customer_id])

    validation = steps.validate(settings, spec, AS_OF)
    assert validation["quarantined"] == 5
    published = steps.score(settings, spec, AS_OF, validation["validation_id"])

    held = warehouse.query("select * from monitoring.churn_quarantine order by customer_id").to_pylist()
    assert sorted(r["customer_id"] for r in held) == sorted(bad_minutes)
    assert {r["validation_id"] for r in held} == {validation["validation_id"]}
    reasons = {r["customer_id"]: r["reasons"] for r in held}
    assert all("minutes_30d outside [0, 43200]" in reasons[c] for c in bad_minutes)
    assert all("sessions_30d outside [0, 40000]" in reasons[c] for c in both)
    assert sum("sessions_30d" in reason for reason in reasons.values()) == 2

    scored = {r["customer_id"] for r in warehouse.query("select customer_id from predictions.churn_scores").to_pylist()}
    assert published["rows_scored"] == len(scored) == total - 5
    assert not scored & set(bad_minutes)
    assert len(scored) + len(held) == total

    run = warehouse.query("select * from monitoring.scoring_runs where status = 'succeeded'").to_pylist()[0]
    assert (run["rows_read"], run["rows_scored"], run["rows_rejected"]) == (total, total - 5, 5)

    # Fixed data, validated again: the date's quarantine empties and every row is scored.
    warehouse.execute("update analytics.churn_features set minutes_30d = 10, sessions_30d = 10 where minutes_30d < 0")
    validation = steps.validate(settings, spec, AS_OF)
    assert validation["quarantined"] == 0
    assert steps.score(settings, spec, AS_OF, validation["validation_id"])["rows_scored"] == total
    assert count(warehouse, "select count(*) as n from monitoring.churn_quarantine where as_of_date = $1") == 0


def test_more_bad_rows_than_mostly_allows_fail_the_whole_date(settings, spec, warehouse):
    validation = steps.validate(settings, spec, AS_OF)
    steps.score(settings, spec, AS_OF, validation["validation_id"])
    before = warehouse.query("select * from predictions.churn_scores order by customer_id").to_pylist()

    total = count(warehouse, "select count(*) as n from analytics.churn_features where as_of_date = $1")
    break_rows(warehouse, "minutes_30d", -1.0, 30)  # over 2.5% of the rows; the suite tolerates 1%
    with pytest.raises(ValidationFailed) as excinfo:
        steps.validate(settings, spec, AS_OF)
    assert f"minutes_30d: 30 of {total} rows unexpected" in str(excinfo.value)
    assert warehouse.query("select * from predictions.churn_scores order by customer_id").to_pylist() == before
    assert count(warehouse, "select count(*) as n from monitoring.churn_quarantine where as_of_date = $1") == 0


def test_mostly_on_an_expectation_that_cannot_name_its_rows_is_refused(tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(
        json.dumps(
            {"expectations": [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "customer_id", "mostly": 0.9}}]}
        )
    )
    with pytest.raises(SpecError, match=r"expectation #1 \(expect_column_values_to_be_unique\) sets mostly=0.9"):
        quarantine.rules(suite)


def test_rule_values_are_bound_not_pasted(tmp_path):
    suite = tmp_path / "suite.json"
    evil = "x'); drop table raw.customers; --"
    suite.write_text(
        json.dumps(
            {
                "expectations": [
                    {
                        "type": "expect_column_values_to_be_in_set",
                        "kwargs": {"column": "plan", "value_set": [evil], "mostly": 0.5},
                    }
                ]
            }
        )
    )
    [rule] = quarantine.rules(suite)
    sql, params = quarantine.condition([rule], first_param=2)
    assert evil not in sql and params == [evil]
    assert sql == 'coalesce("plan" is not null and "plan" not in ($2), false)'
