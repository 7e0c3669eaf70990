"""Each use case of `pipelines/usecases/` on a DuckDB file in a temporary folder, with real
dbt, Great Expectations and MLflow (a SQLite store, no server): the smallest demo business
churn trains and scores on.

One home is built for the module: demo data, churn trained once (its first version becomes
the champion) and AS_OF scored with `steps.score_date`. The home is read-only; a test that
writes works on its own copy of the warehouse file (and of the MLflow store if it moves an
alias), which costs a file copy, not a dbt run.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import replace

import pytest

from pipelines.adapters.resources import Resources
from pipelines.adapters.warehouse import tables
from pipelines.config.spec import load_spec
from pipelines.domain.errors import IncompleteDate, InputError
from pipelines.domain.status import RunStatus
from pipelines.faces.demo import load_demo_data
from pipelines.faces.demo_data import DemoConfig
from pipelines.usecases import backfill, health, models, setup, steps, unpublish
from tests.conftest import run_log, settings_for

AS_OF = dt.date(2026, 1, 31)
# About the least data churn trains on (models/churn/model.yaml). 148 days: training on AS_OF
# takes snapshots 7 days apart from AS_OF - 30 back and holds out the last 28 days, so the
# newest training snapshot is AS_OF - 58, which needs 90 days of history
# (completeness.lookback_days); with 147 days no training snapshot is complete and training
# refuses. 400 customers: the validation labels need raw.cancellations to reach AS_OF; with
# 300 (seed 7) its last event is on AS_OF - 4 and training refuses. Most of the time goes to
# dbt (seven runs), not to the data.
SMALL = DemoConfig(customers=400, days=148, end_date=AS_OF, seed=7)


def ready(settings) -> Resources:
    """Resources as a CLI command or Airflow task builds them."""
    return Resources.from_settings(settings).ready()


def count(res: Resources, table: str, day: dt.date) -> int:
    return res.warehouse.query(f"select count(*) as n from {table} where as_of_date = $1", [day]).to_pylist()[0]["n"]


@pytest.fixture(scope="module")
def spec():
    return load_spec("churn")


@pytest.fixture(scope="module")
def home(tmp_path_factory, spec):
    """The module's home: demo data, churn trained on AS_OF, and AS_OF scored. Read-only."""
    path = tmp_path_factory.mktemp("usecases")
    settings = settings_for(path)
    load_demo_data(Resources.from_settings(settings, create=True), SMALL)
    trained = models.train(ready(settings), spec, AS_OF)
    published = steps.score_date(ready(settings), spec, AS_OF)
    return {"settings": settings, "trained": trained, "published": published}


@pytest.fixture
def private(home, tmp_path):
    """Settings with a private copy of the home's warehouse, and the home's MLflow store."""
    own = settings_for(tmp_path, home["settings"].mlflow_tracking_uri)
    shutil.copy(home["settings"].home / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    return own


def test_train_registers_the_first_version_as_champion(home, spec):
    trained = home["trained"]
    # Snapshots every 7 days from AS_OF - 30 back: four held out, one to train on, and the 13
    # older candidates skipped as incomplete (they would need data before the first day).
    assert trained.snapshots == [AS_OF - dt.timedelta(days=30 + 7 * k) for k in (4, 3, 2, 1, 0)]
    assert sorted(trained.skipped) == [AS_OF - dt.timedelta(days=30 + 7 * k) for k in range(17, 4, -1)]
    assert trained.promoted and trained.champion is None and trained.train_rows > 0 and trained.validation_rows > 0
    assert 0.5 < trained.metrics["auc"] <= 1
    assert ready(home["settings"]).registry.resolve("churn", "champion").version == trained.model.version


def test_score_date_publishes_the_partition_with_the_pinned_version_and_logs_success(home, spec):
    res, published = ready(home["settings"]), home["published"]
    version = home["trained"].model.version
    partition = count(res, "analytics.churn_features", AS_OF)
    assert partition > 0
    assert (published.as_of_date, published.model_version, published.alias) == (AS_OF, version, "champion")
    assert published.rows_scored + published.rows_quarantined == partition

    scores = res.warehouse.query(
        "select count(*) as n, count(distinct customer_id) as customers, min(model_version) as low,"
        " max(model_version) as high, min(scoring_run_id) as run from predictions.churn_scores where as_of_date = $1",
        [AS_OF],
    ).to_pylist()[0]
    assert scores == {
        "n": published.rows_scored,
        "customers": published.rows_scored,
        "low": version,
        "high": version,
        "run": published.scoring_run_id,
    }
    assert count(res, "marts.churn_latest_scores", AS_OF) == published.rows_scored

    [logged] = [r for r in run_log(res.warehouse) if r["scoring_run_id"] == published.scoring_run_id]
    assert (logged["status"], logged["as_of_date"], logged["model_version"], logged["model_alias"]) == (
        RunStatus.SUCCEEDED.value,
        AS_OF,
        version,
        "champion",
    )
    assert (logged["rows_read"], logged["rows_scored"], logged["validation_outcome"]) == (
        partition,
        published.rows_scored,
        "passed",
    )
    assert logged["error"] is None and logged["ended_at"] is not None


def test_monitor_dates_stores_the_dates_health_and_writes_its_report(home, private, spec):
    res = ready(private)
    monitored = health.monitor_dates(res, spec, {AS_OF: None})

    [day] = monitored.health
    assert (day.as_of_date, day.version) == (AS_OF, home["trained"].model.version)
    [row] = res.warehouse.query(
        "select model_version, status, rows_scored from monitoring.daily_health where model_name = 'churn' and as_of_date = $1",
        [AS_OF],
    ).to_pylist()
    assert row == {"model_version": day.version, "status": str(day.status), "rows_scored": home["published"].rows_scored}
    assert monitored.realized == []  # AS_OF's labels are 30 days away
    assert monitored.report_failures == {}
    assert monitored.reports == [private.home / "reports" / "churn" / f"{AS_OF}.html"]
    page = monitored.reports[0].read_text(encoding="utf-8")
    assert page.startswith("<!") and str(AS_OF) in page


def test_unpublish_removes_the_dates_predictions_and_logs_it(home, private, spec):
    res, published = ready(private), home["published"]
    result = unpublish.unpublish(res, spec, AS_OF - dt.timedelta(days=1), AS_OF)

    assert (result.dates, result.skipped) == ([AS_OF], [AS_OF - dt.timedelta(days=1)])
    assert result.removed["predictions.churn_scores"] == published.rows_scored
    assert count(res, "predictions.churn_scores", AS_OF) == 0
    assert count(res, "predictions.churn_reasons", AS_OF) == 0
    assert count(res, "marts.churn_latest_scores", AS_OF) == 0  # the marts were rebuilt
    last = run_log(res.warehouse)[-1]
    assert (last["status"], last["as_of_date"], last["rows_removed"], last["model_version"], last["step"]) == (
        RunStatus.UNPUBLISHED.value,
        AS_OF,
        published.rows_scored,
        published.model_version,
        "unpublish",
    )
    logged = run_log(res.warehouse)
    with pytest.raises(InputError, match=f"no predictions for {AS_OF}: nothing to unpublish"):
        unpublish.unpublish(res, spec, AS_OF, AS_OF)
    assert run_log(res.warehouse) == logged


def test_backfill_scores_both_dates_with_one_version(home, private, spec):
    res = ready(private)
    days = [AS_OF - dt.timedelta(days=2), AS_OF - dt.timedelta(days=1)]
    planned = backfill.plan(res, spec, days[0], days[1], None)
    assert (planned.dates, planned.skipped, planned.existing) == (days, {}, {})
    assert planned.model.version == home["trained"].model.version

    outcomes = backfill.run(res, spec, planned)
    assert [(o.as_of_date, o.ok, o.error) for o in outcomes] == [(d, True, None) for d in days]
    for outcome in outcomes:
        partition = count(res, "analytics.churn_features", outcome.as_of_date)
        assert outcome.rows + outcome.quarantined == partition > 0
        assert count(res, "predictions.churn_scores", outcome.as_of_date) == outcome.rows
    versions = res.warehouse.query(
        "select distinct model_version from predictions.churn_scores where as_of_date in ($1, $2)", days
    ).to_pylist()
    assert versions == [{"model_version": planned.model.version}]
    logged = [r for r in run_log(res.warehouse) if r["as_of_date"] in days]
    assert sorted((r["as_of_date"], r["status"], r["model_version"], r["rows_scored"]) for r in logged) == [
        (o.as_of_date, RunStatus.SUCCEEDED.value, planned.model.version, o.rows) for o in outcomes
    ]


def test_promote_refuses_a_version_without_shadow_history_unless_forced(home, private, spec, tmp_path):
    # A private MLflow store, so the alias moves only here. The second version is the first one's
    # model (its artifacts, its run) registered again: a version that never scored in the shadow.
    shutil.copy(home["settings"].mlflow_tracking_uri.removeprefix("sqlite:///"), tmp_path / "own-mlflow.db")
    res = ready(replace(private, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'own-mlflow.db'}"))
    client = res.registry.client
    first = client.get_model_version("churn", str(home["trained"].model.version))
    artifacts = client.get_model_version_download_uri("churn", first.version)
    second = int(client.create_model_version("churn", artifacts, run_id=first.run_id).version)
    assert second == int(first.version) + 1

    with pytest.raises(InputError, match=f"version {second} has no shadow history"):
        models.promote(res, spec, "champion", second, "looks better")
    assert res.registry.resolve("churn", "champion").version == int(first.version)

    promotion = models.promote(res, spec, "champion", second, "the same model, moved by hand", force=True)
    assert (promotion.before.version, promotion.after.version) == (int(first.version), second)
    assert promotion.record.dates == []
    assert ready(res.settings).registry.resolve("churn", "champion").version == second  # a fresh client sees it
    [row] = res.warehouse.query("select from_version, to_version, forced from monitoring.promotions").to_pylist()
    assert row == {"from_version": int(first.version), "to_version": second, "forced": True}


def test_realize_on_a_date_whose_labels_are_not_over_returns_nothing(private, spec):
    res = ready(private)
    assert health.realize(res, spec, [AS_OF]) == []
    assert res.warehouse.query("select count(*) as n from monitoring.realized_performance").to_pylist() == [{"n": 0}]


def test_setup_warehouse_creates_the_shared_tables_on_a_fresh_file(tmp_path):
    settings = settings_for(tmp_path)
    assert not (tmp_path / "warehouse.duckdb").exists()
    setup.setup_warehouse(Resources.from_settings(settings, create=True))

    def catalogue(res: Resources) -> tuple[set[str], set[tuple[str, str]]]:
        schemas = res.warehouse.query("select schema_name from information_schema.schemata").to_pylist()
        found = res.warehouse.query("select table_schema, table_name from information_schema.tables").to_pylist()
        return {r["schema_name"] for r in schemas}, {(r["table_schema"], r["table_name"]) for r in found}

    res = Resources.from_settings(settings)  # the file exists now: no `create`
    schemas, found = catalogue(res)
    assert {"raw", "analytics", "predictions", "monitoring", "marts"} <= schemas
    assert {(t.schema, t.name) for t in tables.SHARED} <= found
    for table in tables.SHARED:
        assert res.warehouse.query(f"select count(*) as n from {table}").to_pylist() == [{"n": 0}]
    setup.setup_warehouse(res)  # again: nothing changes
    assert catalogue(res) == (schemas, found)


def _wait_for_data(settings, spec, run_type: str, day: dt.date, now: dt.datetime, started: dt.datetime | None = None):
    """One check of <model>_score's wait_for_data task (`pipelines.faces.tasks`) at `now`, in a
    run that started at `started` (None: the first check, now)."""
    from pipelines.faces import tasks

    logical = dt.datetime.combine(day, dt.time(0), dt.UTC)
    ctx = tasks.RunContext("scheduled__x", run_type, logical, started_at=started or now)
    res = Resources.from_settings(settings, clock=lambda: now).ready()
    return tasks.TASKS["wait_for_data"](res, spec, ctx, {"resumed": started is not None})


def test_a_scheduled_run_waits_for_its_data_until_the_deadline_then_plan_refuses_saying_it_waited(private, spec):
    """The home's data ends on AS_OF: a scheduled run for AS_OF + 1 waits (checks every 10 min,
    deferred in between) until 360 min after the run started (models/churn/model.yaml), then
    `plan` refuses the date as incomplete, and its run-log row says how long it waited."""
    late = AS_OF + dt.timedelta(days=1)
    started = dt.datetime.combine(AS_OF + dt.timedelta(days=2), dt.time(1), dt.UTC)

    assert _wait_for_data(private, spec, "scheduled", late, started) == {"done": False, "check_in_s": 600.0}
    later = started + dt.timedelta(minutes=355)  # 5 min before the deadline: the next check is at it
    assert _wait_for_data(private, spec, "scheduled", late, later, started) == {"done": False, "check_in_s": 300.0}
    deadline = started + dt.timedelta(minutes=360)
    assert _wait_for_data(private, spec, "scheduled", late, deadline, started) == {"done": True, "waited_s": 360 * 60}

    res = Resources.from_settings(private, clock=lambda: deadline).ready()
    with pytest.raises(IncompleteDate, match=rf"{late}.*\(after waiting 360 min for it: scoring.wait_for_data_minutes"):
        steps.plan(res, spec, late, airflow_run_id="scheduled__x", waited_for_data_s=360 * 60)
    [row] = [r for r in run_log(res.warehouse) if r["as_of_date"] == late]
    assert (row["status"], row["step"], row["waited_for_data_s"]) == ("refused", "plan", 360 * 60)


def test_a_complete_date_a_manual_run_or_no_wait_in_the_spec_goes_straight_to_plan(private, spec):
    now = dt.datetime.combine(AS_OF + dt.timedelta(days=2), dt.time(1), dt.UTC)
    late = AS_OF + dt.timedelta(days=1)
    assert _wait_for_data(private, spec, "scheduled", AS_OF, now) == {"done": True, "waited_s": None}  # complete
    # complete at a later check: how long the run waited goes to plan
    assert _wait_for_data(private, spec, "scheduled", AS_OF, now, now - dt.timedelta(minutes=20)) == {
        "done": True,
        "waited_s": 1200,
    }
    for run_type in ("manual", "backfill", "asset_triggered"):  # a person asked for the date: refused at once if incomplete
        assert _wait_for_data(private, spec, run_type, late, now) == {"done": True, "waited_s": None}
    no_wait = replace(spec, scoring=replace(spec.scoring, wait_for_data_minutes=0))
    assert _wait_for_data(private, no_wait, "scheduled", late, now) == {"done": True, "waited_s": None}
    # a date before scoring.start_date will never be scored: no waiting, plan says why
    started = replace(spec, scoring=replace(spec.scoring, start_date=AS_OF + dt.timedelta(days=5)))
    assert _wait_for_data(private, started, "scheduled", late, now) == {"done": True, "waited_s": None}
