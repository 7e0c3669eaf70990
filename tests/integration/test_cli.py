"""The `batchpred` console script, run as a user runs it, on both warehouses (commands on a
home of their own are in tests/unit/test_cli_home.py)."""

import pytest

from tests.unit.test_cli_home import run


def test_an_unknown_alias_is_refused_and_nothing_is_scored(settings, warehouse):
    result = run(
        "score",
        "churn",
        "--date",
        "2026-01-31",
        "--alias",
        "nope",
        home=settings.home,
        MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri,
        BATCHPRED_WAREHOUSE_URL=settings.warehouse_url,
    )
    assert result.returncode == 1
    assert "no alias 'nope'" in result.stderr
    assert warehouse.table_columns("predictions", "churn_scores") is None


@pytest.mark.parametrize(
    "day, message",
    [
        ("2026-04-30", "as-of date 2026-04-30 is not complete: the last event in raw.usage_daily (usage_date) is on 2026-01-31"),
        ("2025-06-01", "as-of date 2025-06-01 needs 90 days of history"),
    ],
)
def test_a_date_the_data_does_not_cover_is_refused_naming_the_source(settings, warehouse, day, message):
    result = run(
        "score",
        "churn",
        "--date",
        day,
        home=settings.home,
        MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri,
        BATCHPRED_WAREHOUSE_URL=settings.warehouse_url,
    )
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert "complete as-of dates run from" in result.stderr
    assert warehouse.table_columns("predictions", "churn_scores") is None
    [row] = warehouse.query("select status, step from monitoring.scoring_runs").to_pylist()
    assert row == {"status": "refused", "step": "plan"}
