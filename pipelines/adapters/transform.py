"""Run the dbt project against the configured warehouse.

dbt reads its connection from the environment (dbt_project/profiles.yml); the
variables come from BATCHPRED_WAREHOUSE_URL (`pipelines.adapters.warehouse.url`), so the URL
stays the one switch between deployments. dbt runs in-process (no subprocess
start-up per step), with its target/ and logs/ under $BATCHPRED_HOME rather than in
the checkout. On DuckDB, dbt waits for another process's file lock the way every
batchpred connection does.

What a model's dbt project must provide (see the README's "Adding a model"):
- `models/features/<features_model>.sql`, built per as-of date from
  `requested_dates()` (vars `as_of_date` or `as_of_dates`);
- `models/labels/<labels_model>.sql`, the same for the target, reading
  var('label_horizon_days');
- marts tagged `mart` and the model name, reading the spec from var('batchpred_spec').
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from pipelines.adapters.warehouse.base import Warehouse
from pipelines.adapters.warehouse.url import parse
from pipelines.config.settings import DBT_PROJECT_DIR, Settings
from pipelines.config.spec import ModelSpec
from pipelines.domain.errors import DbtError

log = logging.getLogger(__name__)


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


def spec_vars(spec: ModelSpec) -> dict[str, object]:
    """What the generic marts read from the spec (var 'batchpred_spec')."""
    return {
        "batchpred_spec": {
            "name": spec.name,
            "key": list(spec.key_columns),
            "segment": spec.segment,
            "risk_bands": [[band, threshold] for band, threshold in spec.risk_bands],
            "action_threshold": spec.action_threshold,
        }
    }


def _args(settings: Settings, command: str, variables: dict[str, object] | None, *selection: str) -> list[str]:
    target_dir = settings.dbt_target_dir
    return [
        command,
        *selection,
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
        # Progress lines go to the log file; the terminal and task log get warnings and errors
        # (and dbt's own progress at `batchpred -vv`).
        "--log-level",
        "info" if log.isEnabledFor(logging.DEBUG) else "warn",
        "--log-level-file",
        "info",
        "--no-version-check",
    ]


def _env(settings: Settings) -> dict[str, str]:
    return parse(settings.warehouse_url).dbt_env() | {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}


def _parse(settings: Settings) -> Any:
    """The project's manifest (dbt's Manifest), parsed with no vars, for the runs that follow
    (None where it cannot be reused: a project with ephemeral models).

    dbt parses the whole project again whenever the vars change, and every run passes
    other dates: about 4 s a run. Parsed once with no vars, dbt's partial parsing
    (target/partial_parse.msgpack) makes it a fraction of a second in the next process
    too. The project's models parse the same with or without batchpred's vars (the
    macros return stand-ins while parsing), so the vars are applied when each run compiles.
    """
    from dbt.cli.main import dbtRunner

    with _environment(_env(settings)):
        result = dbtRunner().invoke(_args(settings, "parse", None))
    if not result.success:
        raise DbtError(f"dbt parse failed: {result.exception or 'see the dbt log above'}")
    manifest = cast(Any, result.result)  # `parse` returns the Manifest
    if any(getattr(node.config, "materialized", None) == "ephemeral" for node in manifest.nodes.values()):
        # dbt marks the CTEs of ephemeral models injected on the nodes it compiles, and a
        # reused manifest keeps the mark: such a project parses for every run instead.
        return None
    return manifest


def _invoke(
    settings: Settings,
    command: str,
    variables: dict[str, object] | None,
    selection: list[str],
    manifest: Any,
) -> None:
    from dbt.cli.main import dbtRunner  # dbt is slow to import: only when a step needs it

    with _environment(_env(settings)):
        try:
            runner = dbtRunner(manifest=manifest)  # None: dbt parses
            result = runner.invoke(_args(settings, command, variables, *selection))
        finally:
            _release_duckdb()
    if result.success:
        return
    select = selection[1]
    if result.exception is not None:
        raise DbtError(f"dbt {command} --select {select} failed: {result.exception}")
    # What `result.result` holds depends on the command; for build, run and test, one result per node.
    failures = [
        f"{r.node.name}: {r.status} ({r.message})"
        for r in cast("Iterable[Any]", result.result or [])
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
    cast(Any, DuckDBConnectionManager).close_all_connections()  # unannotated in dbt-duckdb


def _dates(as_of_dates: Sequence[dt.date]) -> dict[str, object]:
    """The dbt vars naming the as-of dates a run builds: one run for all of them."""
    if not as_of_dates:
        raise ValueError("no as-of dates to build")
    if len(as_of_dates) == 1:
        return {"as_of_date": as_of_dates[0].isoformat()}
    return {"as_of_dates": [d.isoformat() for d in as_of_dates]}


def _scratch(schema: str | None) -> dict[str, object]:
    return {"batchpred_scratch_schema": schema} if schema else {}


class Dbt:
    """The dbt project, run against one warehouse (built once per task or command by
    `pipelines.adapters.resources`). Every build waits, through the warehouse, for a
    DuckDB file another process holds."""

    def __init__(self, settings: Settings, warehouse: Warehouse) -> None:
        self.settings = settings
        self.warehouse = warehouse

    def run(self, command: str, select: str, variables: dict[str, object] | None = None, exclude: str | None = None) -> None:
        """Run `dbt <command> --select <select> [--exclude <exclude>]` and raise DbtError naming each failed node."""
        selection = ["--select", select, *(["--exclude", exclude] if exclude else [])]

        def invoke() -> None:
            if variables and "batchpred_scratch_schema" in variables:
                # A dry run's scratch schema is where every node is built: a parse-time
                # setting (generate_schema_name), so this run parses with it.
                _invoke(self.settings, command, variables, selection, None)
                return
            _invoke(self.settings, command, variables, selection, self._manifest)

        self.warehouse.when_free(invoke)

    @functools.cached_property
    def _manifest(self) -> Any:
        """dbt's Manifest, parsed on the first run and reused by every later one (None: parse per run)."""
        return _parse(self.settings)

    def build_features(
        self, spec: ModelSpec, as_of_dates: Sequence[dt.date], upstream: bool = True, scratch: str | None = None
    ) -> None:
        """(Re)build exactly the given dates' partitions of the spec's feature model in one
        dbt run, then test it.

        With `upstream` (the default) the models it reads from (staging), and the tests on
        the raw sources, run first; a backfill does that once for the whole range
        (`build_upstream`). With `scratch`, every model is built in that schema instead
        (a dry run), leaving analytics as it was.
        """
        select = f"+{spec.features_model}" if upstream else spec.features_model
        self.run("build", select, _dates(as_of_dates) | _scratch(scratch))

    def build_upstream(self, spec: ModelSpec) -> None:
        """Rebuild and test the models the feature model reads from, but not the feature model."""
        self.run("build", f"+{spec.features_model}", exclude=spec.features_model)

    def build_labels(self, spec: ModelSpec, as_of_dates: Sequence[dt.date], with_features: bool = False) -> None:
        """(Re)build the labels of the given dates (their feature partitions must exist, unless
        `with_features` builds those in the same run, as training does)."""
        select = f"+{spec.features_model} {spec.labels_model}" if with_features else spec.labels_model
        self.run("build", select, _dates(as_of_dates) | {"label_horizon_days": spec.training.label_horizon_days})

    def build_marts(self, spec: ModelSpec, as_of_dates: Sequence[dt.date]) -> None:
        """Rebuild the spec's marts (dbt models tagged `mart` and the model name) for the given dates."""
        self.run("build", f"tag:mart,tag:{spec.name}", _dates(as_of_dates) | spec_vars(spec))
