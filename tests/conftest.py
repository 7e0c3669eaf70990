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
from dataclasses import replace
from pathlib import Path

import pytest

AS_OF = dt.date(2026, 1, 31)
DEMO = {"customers": 2_000, "days": 180, "end_date": AS_OF, "seed": 7}

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
    from pipelines.settings import Settings

    return Settings.from_env(
        {
            "BATCHPRED_HOME": str(home),
            **({"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {}),
        }
    )


@pytest.fixture(scope="session")
def base_home(tmp_path_factory):
    """A home with raw data, features for AS_OF and a champion model. Treat as read-only."""
    from pipelines import steps
    from pipelines.demo import load_demo_data
    from pipelines.demo_data import DemoConfig
    from pipelines.spec import load_spec

    home = tmp_path_factory.mktemp("base")
    settings = settings_for(home)
    load_demo_data(settings, DemoConfig(**DEMO))
    spec = load_spec("churn")
    trained = steps.train(settings, spec, AS_OF)
    steps.build_features(settings, spec, AS_OF)
    return {"home": home, "settings": settings, "trained": trained}


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
    from pipelines import steps
    from pipelines.demo import load_demo_data
    from pipelines.demo_data import DemoConfig
    from pipelines.spec import load_spec
    from tests.services import create_database

    settings = replace(
        settings_for(tmp_path_factory.mktemp("pg-base"), base_home["settings"].mlflow_tracking_uri),
        warehouse_url=create_database(postgres, PG_TEMPLATE),
    )
    load_demo_data(settings, DemoConfig(**DEMO))
    steps.build_features(settings, load_spec("churn"), AS_OF)
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
def warehouse(settings):
    from pipelines.warehouse import open_warehouse

    return open_warehouse(settings.warehouse_url)


@pytest.fixture(scope="session")
def spec():
    from pipelines.spec import load_spec

    return load_spec("churn")


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata database (SQLite under the throwaway AIRFLOW_HOME)."""
    import subprocess
    import sys

    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
    return _AIRFLOW_HOME


def pytest_unconfigure(config):
    """duckdb 2.0's bindings print a "nanobind: leaked ..." report to stderr as the
    interpreter exits (harmless, and not something Python can turn off). Silence
    stderr once pytest has printed its summary, so the summary stays the last line."""
    import atexit

    # atexit: pytest restores its own capture of fd 2 after this hook returns.
    atexit.register(lambda: os.dup2(os.open(os.devnull, os.O_WRONLY), 2))
