"""Shared fixtures: real parts on small data.

One session-wide "base" is built once per backend: a warehouse with a small demo
business and features for AS_OF (a DuckDB file; a PostgreSQL template database),
plus a model trained into a real MLflow SQLite store. Tests that take `settings`
run on both backends, each with its own copy of the warehouse (a copied file; a
database cloned from the template), so they never see each other's changes.

PostgreSQL is a throwaway cluster started for the session (tests/services.py), or
the server at BATCHPRED_TEST_POSTGRES_URL. It is never skipped: if it cannot start,
the tests fail.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

AS_OF = dt.date(2026, 1, 31)
DEMO = {"customers": 2_000, "days": 270, "end_date": AS_OF, "seed": 7}
MODELS = ("churn", "payment_risk")

# Airflow reads its configuration when first imported, so point it at a throwaway
# home before any test module imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="batchpred-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parent.parent / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
)


def settings_for(home: Path, tracking_uri: str | None = None):
    from pipelines.config.settings import Settings

    return Settings.from_env(
        {
            "BATCHPRED_HOME": str(home),
            **({"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {}),
        }
    )


def resources(settings, now: dt.datetime | None = None):
    """The resources a use case takes, for these settings (with a fixed clock, if `now`)."""
    from pipelines.adapters.resources import Resources

    return Resources.from_settings(settings, clock=(lambda: now) if now else None)


@contextmanager
def mlflow_at(settings):
    """MLflow's own API pointed at these settings' registry for the duration (a user logging or
    registering by hand, outside batchpred), then put back as it was."""
    with resources(settings).registry._pointed():
        yield


@pytest.fixture(scope="session")
def base_home(tmp_path_factory):
    """A home with raw data, features for AS_OF and a champion version of each demo model.
    Treat as read-only. `trained` holds churn's TrainResult, `trained_by_model` each model's."""
    from pipelines.adapters.resources import Resources
    from pipelines.config.spec import load_spec
    from pipelines.faces.demo import load_demo_data
    from pipelines.faces.demo_data import DemoConfig
    from pipelines.usecases import models

    home = tmp_path_factory.mktemp("base")
    settings = settings_for(home)
    load_demo_data(Resources.from_settings(settings, create=True), DemoConfig(**DEMO))
    res, trained = resources(settings), {}
    for model in MODELS:
        spec = load_spec(model)
        trained[model] = models.train(res, spec, AS_OF)
        res.dbt.build_features(spec, [AS_OF])
    return {"home": home, "settings": settings, "trained": trained["churn"], "trained_by_model": trained}


PG_TEMPLATE = "batchpred_base"


@pytest.fixture(scope="session")
def postgres():
    """The URL of a PostgreSQL server the tests may create databases on."""
    from tests.services import PostgresCluster

    if os.environ.get("BATCHPRED_TEST_POSTGRES_URL"):
        yield os.environ["BATCHPRED_TEST_POSTGRES_URL"]
        return
    cluster = PostgresCluster().start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_base(postgres, base_home, tmp_path_factory):
    """A template database holding the same raw data and features as the DuckDB base."""
    from pipelines.config.spec import load_spec
    from pipelines.faces.demo import load_demo_data
    from pipelines.faces.demo_data import DemoConfig
    from tests.services import create_database

    settings = replace(
        settings_for(tmp_path_factory.mktemp("pg-base"), base_home["settings"].mlflow_tracking_uri),
        warehouse_url=create_database(postgres, PG_TEMPLATE),
    )
    load_demo_data(resources(settings), DemoConfig(**DEMO))
    for model in MODELS:
        resources(settings).dbt.build_features(load_spec(model), [AS_OF])
    return settings


@pytest.fixture(params=["duckdb", "postgres"])
def backend(request):
    return request.param


@pytest.fixture
def settings(request, backend, base_home, tmp_path):
    """Settings with a private copy of the base warehouse and the shared MLflow store."""
    own = settings_for(tmp_path, base_home["settings"].mlflow_tracking_uri)
    if backend == "duckdb":
        shutil.copy(base_home["home"] / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
        return own
    from tests.services import create_database

    request.getfixturevalue("pg_base")
    url = create_database(request.getfixturevalue("postgres"), f"test_{uuid.uuid4().hex[:12]}", template=PG_TEMPLATE)
    return replace(own, warehouse_url=url)


@pytest.fixture
def own(settings, base_home, tmp_path):
    """`settings` with a private copy of the MLflow store, so aliases can move."""
    source = base_home["settings"].mlflow_tracking_uri.removeprefix("sqlite:///")
    shutil.copy(source, tmp_path / "own-mlflow.db")
    return replace(settings, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'own-mlflow.db'}")


@pytest.fixture
def duckdb_settings(base_home, tmp_path):
    """Settings with a private copy of the base DuckDB warehouse, for what only DuckDB has (its file lock)."""
    own = settings_for(tmp_path, base_home["settings"].mlflow_tracking_uri)
    shutil.copy(base_home["home"] / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    return own


@pytest.fixture
def warehouse(settings):
    from pipelines.adapters.warehouse import open_warehouse

    return open_warehouse(settings.warehouse_url)


@pytest.fixture(scope="session")
def spec():
    from pipelines.config.spec import load_spec

    return load_spec("churn")


@pytest.fixture(scope="session")
def invoice_spec():
    """The second demo model: text entity keys ('INV-00001234')."""
    from pipelines.config.spec import load_spec

    return load_spec("payment_risk")


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata database (SQLite under the throwaway AIRFLOW_HOME)."""
    import subprocess
    import sys

    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
    return _AIRFLOW_HOME


def score_date(settings, spec, day=AS_OF, alias=None, airflow_run_id=None):
    """Plan, validate, score and publish one date whose features are built, as the DAG's
    tasks do (without the marts). Returns (attempt, validation, published)."""
    from pipelines.usecases import steps

    res = resources(settings)
    attempt = steps.plan(res, spec, day, alias, airflow_run_id)
    validation = steps.validate(res, spec, attempt)
    return attempt, validation, steps.score(res, spec, attempt, validation)


def run_log(warehouse, model="churn"):
    return warehouse.query("select * from monitoring.scoring_runs where model_name = $1 order by started_at", [model]).to_pylist()


# The longest modules go first, so that with `pytest -n 2 --dist loadfile` (make test) no
# worker is left running one of them alone at the end. Matched by file name (names are unique
# across the tiers).
LONGEST_FIRST = ("test_production.py", "test_demo.py", "test_same_scores.py", "test_backfill.py", "test_report.py")

# Each test is marked with its tier, the folder it is in (pyproject.toml declares the markers):
# unit needs no service (its use-case tests train one small model in a temporary folder);
# integration uses real warehouses, dbt, GX and MLflow; system runs whole DAGs, the demo,
# the UI and the report in Chromium.
TIERS = ("unit", "integration", "system")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    tests = Path(__file__).resolve().parent
    for item in items:
        tier = item.path.resolve().relative_to(tests).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test module lives in tests/unit, tests/integration or tests/system")
        item.add_marker(tier)
    items.sort(key=rank)  # stable: the order within a module is kept
