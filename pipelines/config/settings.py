"""Where things live: one small, explicit settings object built from the environment.

Nothing here connects to anything. `Settings.from_env()` only reads variables, so
importing this module (from a DAG file, say) has no side effects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.domain import redact

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
DAGS_DIR = REPO_ROOT / "dags"


@dataclass(frozen=True)
class Settings:
    """The three things that differ between the embedded default and production.

    home:                $BATCHPRED_HOME (default ./.batchpred): embedded files.
    warehouse_url:       $BATCHPRED_WAREHOUSE_URL, a SQLAlchemy-style URL
                         (default: the DuckDB file $BATCHPRED_HOME/warehouse.duckdb).
    mlflow_tracking_uri: $MLFLOW_TRACKING_URI (default: SQLite under $BATCHPRED_HOME).
    """

    home: Path
    warehouse_url: str
    mlflow_tracking_uri: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
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
