"""Backfills over a few real dates: plans, one model version, failures that stay local."""

import datetime as dt
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import mlflow_at, resources

from pipelines.domain.dates import date_range
from pipelines.domain.errors import InputError
from pipelines.usecases import backfill
from tests.conftest import AS_OF, run_log

START = AS_OF - dt.timedelta(days=2)
BATCHPRED = str(Path(sys.executable).with_name("batchpred"))



def scored_dates(warehouse):
    if warehouse.table_columns("predictions", "churn_scores") is None:
        return {}
    rows = warehouse.query(
        "select as_of_date, count(*) as n, count(distinct customer_id) as k, min(model_version) as v, max(model_version) as w "
        "from predictions.churn_scores group by 1 order by 1"
    ).to_pylist()
    assert all(r["n"] == r["k"] and r["v"] == r["w"] for r in rows), rows
    return {r["as_of_date"]: r["v"] for r in rows}


def backfill_cli(own, *options: str) -> subprocess.CompletedProcess:
    """`batchpred backfill churn` over START..AS_OF in a subprocess, on `own`'s warehouse and registry."""
    env = {
        **os.environ,
        "BATCHPRED_HOME": str(own.home),
        "BATCHPRED_WAREHOUSE_URL": own.warehouse_url,
        "MLFLOW_TRACKING_URI": own.mlflow_tracking_uri,
    }
    command = [BATCHPRED, "backfill", "churn", "--start", START.isoformat(), "--end", AS_OF.isoformat(), *options]
    return subprocess.run(command, capture_output=True, text=True, env=env)


def test_a_backfill_scores_exactly_the_range_with_one_version(own, spec, warehouse):
    planned = backfill.plan(resources(own), spec, START, AS_OF, None)
    client = resources(own).registry.client
    current = client.get_model_version("churn", str(planned.model.version))

    def move_alias_after_the_first_date(outcome):
        if outcome.as_of_date == START:
            with mlflow_at(own):  # someone registers a version by hand mid-backfill
                newer = client.create_model_version("churn", source=current.source, run_id=current.run_id)
            client.set_registered_model_alias("churn", "champion", newer.version)

    outcomes = backfill.run(resources(own), spec, planned, move_alias_after_the_first_date)
    assert [o.ok for o in outcomes] == [True, True, True]
    assert resources(own).registry.resolve("churn", "champion").version != planned.model.version
    assert scored_dates(warehouse) == {d: planned.model.version for d in date_range(START, AS_OF)}
    runs = run_log(warehouse)
    assert [(r["as_of_date"], r["status"]) for r in runs] == [(d, "succeeded") for d in date_range(START, AS_OF)]


def test_the_text_keyed_model_backfills_too(own, invoice_spec, warehouse):
    outcomes = backfill.run(resources(own), invoice_spec, backfill.plan(resources(own), invoice_spec, START, AS_OF, None))
    assert [o.ok for o in outcomes] == [True, True, True]
    rows = warehouse.query(
        "select as_of_date, count(*) as n, count(distinct invoice_number) as k, min(invoice_number) as first "
        "from predictions.payment_risk_scores group by 1 order by 1"
    ).to_pylist()
    assert [r["as_of_date"] for r in rows] == date_range(START, AS_OF)
    assert all(r["n"] == r["k"] > 0 and r["first"].startswith("INV-0") for r in rows)


def test_plans_select_missing_failed_and_stale_dates(own, spec, warehouse):
    first = backfill.plan(resources(own), spec, START, START, None)
    backfill.run(resources(own), spec, first)
    version = first.model.version
    assert backfill.plan(resources(own), spec, START, AS_OF, None).dates == date_range(START, AS_OF)
    assert backfill.plan(resources(own), spec, START, AS_OF, "missing").dates == [START + dt.timedelta(days=1), AS_OF]
    assert backfill.plan(resources(own), spec, START, AS_OF, "stale").dates == []
    assert backfill.plan(resources(own), spec, START, AS_OF, "failed").dates == []
    assert backfill.plan(resources(own), spec, START, AS_OF, None).existing == {START: {version}}
    warehouse.execute("update predictions.churn_scores set model_version = model_version + 100")
    assert backfill.plan(resources(own), spec, START, AS_OF, "stale").dates == [START]
    with pytest.raises(InputError, match="before --start"):
        backfill.plan(resources(own), spec, AS_OF, START, None)


def test_only_complete_dates_are_planned_and_the_rest_named(own, spec):
    """A range running past the data and into the first 90 days of history."""
    future = AS_OF + dt.timedelta(days=2)
    early = dt.date(2025, 5, 20)  # 13 days into the demo data
    planned = backfill.plan(resources(own), spec, AS_OF - dt.timedelta(days=1), future, None)
    assert planned.dates == [AS_OF - dt.timedelta(days=1), AS_OF]
    assert set(planned.skipped) == {AS_OF + dt.timedelta(days=1), future}
    assert all("last event in raw.usage_daily (usage_date) is on 2026-01-31" in why for why in planned.skipped.values())
    planned = backfill.plan(resources(own), spec, early, early, None)
    assert planned.dates == [] and "needs 90 days of history" in planned.skipped[early]
    dry = backfill_cli(own, "--dry-run")
    assert dry.returncode == 0 and "plan: 3 date(s)" in dry.stdout, dry.stdout + dry.stderr


def test_a_dry_run_with_an_unreachable_registry_writes_nothing(own, spec, warehouse, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own retries take minutes
    unreachable = replace(own, mlflow_tracking_uri="http://127.0.0.1:9/")
    result = backfill_cli(unreachable, "--dry-run")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the MLflow registry at http://127.0.0.1:9/ did not answer" in result.stderr
    assert warehouse.query("select count(*) as n from monitoring.scoring_runs").to_pylist() == [{"n": 0}]


def test_a_bad_date_fails_alone_and_only_failed_reruns_it(own, spec, warehouse):
    customer = warehouse.query(
        "select min(customer_id) as c from analytics.churn_features where as_of_date = $1", [AS_OF]
    ).to_pylist()[0]["c"]
    # Impossible usage on the last day: only that date's features break the suite.
    warehouse.execute("insert into raw.usage_daily values ($1, $2, 50000, 1.0)", [customer, AS_OF])
    warehouse.execute(
        "delete from raw.usage_daily where customer_id = $1 and usage_date = $2 and sessions < 50000", [customer, AS_OF]
    )
    first = backfill_cli(own)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "1 of 3 date(s) failed" in first.stderr
    assert f"{AS_OF}: validation" in first.stderr and "sessions_7d" in first.stderr
    assert set(scored_dates(warehouse)) == {START, START + dt.timedelta(days=1)}

    dry = backfill_cli(own, "--only", "failed", "--dry-run")
    assert dry.returncode == 0 and "plan: 1 date(s)" in dry.stdout and str(AS_OF) in dry.stdout

    warehouse.execute("delete from raw.usage_daily where sessions = 50000")
    again = backfill_cli(own, "--only", "failed")
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(scored_dates(warehouse)) == set(date_range(START, AS_OF))


def test_features_that_fail_their_dbt_tests_fail_only_their_date(own, spec, warehouse):
    # A customer with no plan who signs up on the last day: only that date's features
    # break the not_null test on plan. The range is built in one dbt run first; when
    # that fails, each date is built and tested on its own.
    warehouse.execute("insert into raw.customers values (999999, $1, null, 'north', 'web')", [AS_OF])
    outcomes = backfill.run(resources(own), spec, backfill.plan(resources(own), spec, START, AS_OF, None))
    assert [o.ok for o in outcomes] == [True, True, False]
    assert "not_null_churn_features_plan" in outcomes[-1].error
    assert set(scored_dates(warehouse)) == {START, START + dt.timedelta(days=1)}
    # Logged as a failed attempt of its step, so `--only failed` reruns it.
    assert run_log(warehouse)[-1]["step"] == "build_features"
    assert backfill.plan(resources(own), spec, START, AS_OF, "failed").dates == [AS_OF]


def test_dates_whose_marts_fail_are_reported_and_picked_up_by_only_failed(own, spec, warehouse):
    import pyarrow as pa

    from pipelines.adapters.warehouse import tables

    # A later date with one customer scored twice: the latest-scores mart reads that date
    # and fails its unique test, after the range was scored and published.
    later = AS_OF + dt.timedelta(days=5)
    schema = tables.predictions_schema([pa.field("customer_id", pa.int64(), nullable=False)])
    row = {"customer_id": 1, "as_of_date": later, "score": 0.5, "model_name": "churn", "model_version": 1,
           "mlflow_run_id": "r", "scoring_run_id": "s", "airflow_run_id": None, "scored_at": dt.datetime.now(dt.UTC)}  # fmt: skip
    warehouse.replace_partition("predictions", "churn_scores", later, schema, [pa.RecordBatch.from_pylist([row, row], schema)])
    done = backfill_cli(own)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 of 3 date(s) failed" in done.stderr and "marts were not rebuilt" in done.stderr
    assert "unique_churn_latest_scores_customer_id" in done.stderr
    published = warehouse.query(
        "select distinct as_of_date from predictions.churn_scores where as_of_date <= $1 order by 1", [AS_OF]
    ).to_pylist()
    assert [r["as_of_date"] for r in published] == date_range(START, AS_OF)
    assert {r["status"] for r in run_log(warehouse)} == {"marts_failed"}
    assert backfill.plan(resources(own), spec, START, AS_OF, "failed").dates == date_range(START, AS_OF)
