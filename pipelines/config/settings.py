"""Where things live: one small, explicit settings object built from the environment.

Nothing here connects to anything. `Settings.from_env()` only reads variables, so
importing this module (from a DAG file, say) has no side effects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipelines.domain import redact
from pipelines.domain.errors import SpecError

# The folders a project holds beside the code: specs, dbt, suites (and DAG files, for Airflow).
PROJECT_FOLDERS = ("models", "dbt_project", "expectations")

# This file's repository, when the code runs from a checkout; None when it is installed from a wheel.
_checkout = Path(__file__).resolve().parents[2]
CHECKOUT: Path | None = _checkout if (_checkout / "models").is_dir() else None


def project_dir_from(env: Mapping[str, str]) -> Path:
    """$BATCHPRED_PROJECT_DIR; else the checkout the code runs from; else the current directory."""
    value = env.get("BATCHPRED_PROJECT_DIR")
    if value:
        return Path(value).expanduser().resolve()
    return CHECKOUT or Path.cwd().resolve()


# Read once, when this module is imported: set BATCHPRED_PROJECT_DIR before starting batchpred.
PROJECT_DIR = project_dir_from(os.environ)
_PROJECT_DIR_SET = bool(os.environ.get("BATCHPRED_PROJECT_DIR"))
MODELS_DIR = PROJECT_DIR / "models"
DBT_PROJECT_DIR = PROJECT_DIR / "dbt_project"
EXPECTATIONS_DIR = PROJECT_DIR / "expectations"
DAGS_DIR = PROJECT_DIR / "dags"
# The repository's own files (pipelines/, docker-compose.yml) in a checkout; an installed
# package has no repository, so there it is the project folder.
REPO_ROOT = CHECKOUT or PROJECT_DIR


def check_project_dir() -> None:
    """Refuse (SpecError) a project folder without models/, dbt_project/ or expectations/,
    naming the folders that are missing and the setting that chose it."""
    missing = ", ".join(f"{name}/" for name in PROJECT_FOLDERS if not (PROJECT_DIR / name).is_dir())
    if missing:
        where = (
            f"BATCHPRED_PROJECT_DIR={PROJECT_DIR}"
            if _PROJECT_DIR_SET
            else f"BATCHPRED_PROJECT_DIR is not set and the current directory {PROJECT_DIR}"
        )
        raise SpecError(
            f"{where} has no {missing}: set BATCHPRED_PROJECT_DIR to the folder that holds models/, dbt_project/ "
            "and expectations/ (a copy of the batchpred repository's)"
        )


@dataclass(frozen=True)
class Settings:
    """The three things that differ between the embedded default and production.

    home:                $BATCHPRED_HOME (default ./.batchpred): embedded files.
    warehouse_url:       $BATCHPRED_WAREHOUSE_URL, a SQLAlchemy-style URL
                         (default: the DuckDB file $BATCHPRED_HOME/warehouse.duckdb).
    mlflow_tracking_uri: $MLFLOW_TRACKING_URI (default: SQLite under $BATCHPRED_HOME).

    Where the project is (its models/, dbt_project/, expectations/ and dags/) is not a
    setting of this object: $BATCHPRED_PROJECT_DIR is read once, when this module is imported
    (default: the repository, when batchpred runs from a checkout; else the current
    directory), into PROJECT_DIR and the folders beside it.
    """

    home: Path
    warehouse_url: str
    mlflow_tracking_uri: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("BATCHPRED_HOME") or ".batchpred").resolve()
        warehouse_url = env.get("BATCHPRED_WAREHOUSE_URL") or f"duckdb:///{home / 'warehouse.duckdb'}"
        tracking_uri = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
        settings = cls(home=home, warehouse_url=warehouse_url, mlflow_tracking_uri=tracking_uri)
        redact.register(warehouse_url, tracking_uri)  # their secrets are scrubbed from batchpred's messages from here on
        return settings

    def secrets(self) -> list[str]:
        """The secret parts of the two URLs (passwords, tokens), for `pipelines.domain.redact` and Airflow's masker."""
        return redact.secrets_of(self.warehouse_url) + redact.secrets_of(self.mlflow_tracking_uri)

    @property
    def mlflow_artifact_root(self) -> Path:
        """Artifact store used when MLflow runs embedded (a file store beside its SQLite DB)."""
        return self.home / "mlartifacts"

    @property
    def dbt_target_dir(self) -> Path:
        """dbt's compiled output and logs go here, not into the checkout."""
        return self.home / "dbt"
