"""Shared fixtures: real parts on small data.

One session-wide "base" home is built once: a DuckDB warehouse with a small demo
business, features for AS_OF, and a model trained into a real MLflow SQLite store.
Tests that write get their own copy of the warehouse file, so they never see each
other's changes.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
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


@pytest.fixture
def settings(base_home, tmp_path):
    """Settings with a private copy of the base warehouse and the shared MLflow store."""
    shutil.copy(base_home["home"] / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    return settings_for(tmp_path, base_home["settings"].mlflow_tracking_uri)


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
