"""Run the dbt project against the configured warehouse.

dbt reads its connection from the environment (dbt_project/profiles.yml); this
module derives those variables from BATCHPRED_WAREHOUSE_URL, so the URL stays the
one switch between deployments. dbt runs in-process (no subprocess start-up per
step), with its target/ and logs/ kept under $BATCHPRED_HOME rather than in the
checkout.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy.engine import make_url

from pipelines.errors import BatchpredError
from pipelines.settings import DBT_PROJECT_DIR, Settings
from pipelines.spec import ModelSpec


class DbtError(BatchpredError):
    """A dbt model or test failed; the message lists which and why."""


def dbt_env(warehouse_url: str) -> dict[str, str]:
    """The variables profiles.yml reads, for the warehouse at `warehouse_url`."""
    url = make_url(warehouse_url)
    backend = url.get_backend_name()
    if backend == "duckdb":
        return {"BATCHPRED_DBT_TARGET": "duckdb", "BATCHPRED_DUCKDB_PATH": str(url.database)}
    if backend == "postgresql":
        return {
            "BATCHPRED_DBT_TARGET": "postgres",
            "BATCHPRED_PG_HOST": url.host or "localhost",
            "BATCHPRED_PG_PORT": str(url.port or 5432),
            "BATCHPRED_PG_USER": url.username or "",
            "BATCHPRED_PG_PASSWORD": url.password or "",
            "BATCHPRED_PG_DATABASE": url.database or "",
        }
    raise BatchpredError(f"dbt has no target for warehouse URL scheme {url.drivername!r}")


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def run_dbt(
    settings: Settings, command: str, select: str, variables: dict[str, object] | None = None, exclude: str | None = None
) -> None:
    """Run `dbt <command> --select <select> [--exclude <exclude>]` and raise DbtError naming each failed node."""
    from dbt.cli.main import dbtRunner  # dbt is slow to import: only when a step needs it

    target_dir = settings.dbt_target_dir
    args = [
        command,
        "--select",
        select,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(target_dir / "target"),
        "--log-path",
        str(target_dir / "logs"),
        "--vars",
        json.dumps(variables or {}),
        "--no-use-colors",
        # Progress lines go to the log file; the terminal and task log get warnings and errors.
        "--log-level",
        "warn",
        "--log-level-file",
        "info",
        "--no-version-check",
        *(["--exclude", exclude] if exclude else []),
    ]
    env = dbt_env(settings.warehouse_url) | {
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }
    with _environment(env):
        try:
            result = dbtRunner().invoke(args)
        finally:
            _release_duckdb()
    if result.success:
        return
    if result.exception is not None:
        raise DbtError(f"dbt {command} --select {select} failed: {result.exception}")
    failures = [
        f"{r.node.name}: {r.status} ({r.message})"
        for r in (result.result or [])
        if str(r.status) not in ("success", "pass", "skipped")
    ]
    raise DbtError(f"dbt {command} --select {select} failed: " + "; ".join(failures or ["see the dbt log above"]))


def _release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after a run.

    Otherwise the file stays locked against other processes, and this process cannot
    open it with another configuration (GX's SQLAlchemy engine, say). dbt-duckdb has
    no public call that closes it, so this reaches for its environment directly.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()


def _dates(as_of_dates: Sequence[dt.date]) -> dict[str, object]:
    """The dbt vars naming the as-of dates a run builds: one run for all of them."""
    if not as_of_dates:
        raise ValueError("no as-of dates to build")
    if len(as_of_dates) == 1:
        return {"as_of_date": as_of_dates[0].isoformat()}
    return {"as_of_dates": [d.isoformat() for d in as_of_dates]}


def build_features(settings: Settings, spec: ModelSpec, as_of_dates: Sequence[dt.date], upstream: bool = True) -> None:
    """(Re)build exactly the given dates' partitions of the spec's feature model in one
    dbt run, then test it.

    With `upstream` (the default) the models it reads from (staging) are rebuilt and
    tested first; a backfill does that once for the whole range (`build_upstream`).
    """
    select = f"+{spec.features_model}" if upstream else spec.features_model
    run_dbt(settings, "build", select, _dates(as_of_dates))


def build_upstream(settings: Settings, spec: ModelSpec) -> None:
    """Rebuild and test the models the feature model reads from, but not the feature model."""
    run_dbt(settings, "build", f"+{spec.features_model}", exclude=spec.features_model)


def build_training_set(settings: Settings, spec: ModelSpec, dates: list[dt.date]) -> None:
    """Rebuild the spec's training-set model for the given snapshot dates."""
    run_dbt(
        settings,
        "build",
        f"+{spec.training_model}",
        {
            "training_dates": [d.isoformat() for d in dates],
            "label_horizon_days": spec.training.label_horizon_days,
        },
    )


def build_marts(settings: Settings, spec: ModelSpec, as_of_dates: Sequence[dt.date]) -> None:
    """Rebuild the spec's marts (dbt models tagged `mart` and the model name) for the given dates."""
    run_dbt(settings, "build", f"tag:mart,tag:{spec.name}", _dates(as_of_dates))
