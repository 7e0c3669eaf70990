"""Validate one as-of date of a feature table with its Great Expectations suite.

The suite is a plain JSON file in expectations/ that a data engineer edits. It runs
through GX's SQL execution engine, so every check is an aggregate query executed by
the warehouse over exactly the date's rows: nothing is loaded into pandas. Results,
one row per expectation, go to monitoring.validation_results; rows that break a
tolerated expectation go to monitoring.<model>_quarantine (see `pipelines.adapters.quarantine`).

GX opens its own connections: they run in UTC like batchpred's, and on DuckDB they
wait for another process's file lock the same way.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import math
import os
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pipelines.adapters import quarantine
from pipelines.adapters.warehouse import Warehouse, queries, tables
from pipelines.adapters.warehouse.url import parse, session_setup
from pipelines.config.settings import Settings
from pipelines.config.spec import ModelSpec
from pipelines.domain import redact
from pipelines.domain.errors import SpecError, ValidationFailed

if TYPE_CHECKING:
    import pyarrow as pa
    from great_expectations.core import ExpectationSuite

# GX result formats: the first run counts bad rows; only expectations that found some
# run again, for up to 20 example values, or, when tolerated, for every bad row's key.
COUNTS_ONLY = {"result_format": "BASIC", "partial_unexpected_count": 0}
WITH_EXAMPLES = {"result_format": "BASIC", "partial_unexpected_count": 20}
EVERY_ROW = 10**12  # GX caps its list of unexpected rows at partial_unexpected_count


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation."""

    expectation_type: str
    column: str | None
    success: bool
    observed_value: Any = None
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    partial_unexpected: list[Any] = field(default_factory=list)
    error: str | None = None

    def describe(self) -> str:
        where = f" on column {self.column}" if self.column else ""
        if self.error:
            return f"{self.expectation_type}{where}: could not run ({self.error})"
        if self.unexpected_count is not None:
            sample = f", e.g. {self.partial_unexpected[:5]}" if self.partial_unexpected else ""
            return (
                f"{self.expectation_type}{where}: {self.unexpected_count} of {self.element_count} rows "
                f"unexpected ({self.unexpected_percent or 0:.4g}%){sample}"
            )
        return f"{self.expectation_type}{where}: observed {self.observed_value!r}"


@dataclass(frozen=True)
class ValidationReport:
    validation_id: str
    model_name: str
    table: str
    as_of_date: dt.date
    rows: int
    outcomes: list[ExpectationOutcome]
    quarantined: dict[tuple[Any, ...], list[str]] = field(default_factory=dict)  # entity key -> reasons

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def describe_failures(self) -> str:
        lines = [
            f"validation of {self.table} for as_of_date {self.as_of_date} failed "
            f"{len(self.failures)} of {len(self.outcomes)} expectations (nothing was scored):"
        ]
        lines += [f"  - {o.describe()}" for o in self.failures]
        return "\n".join(lines)


def _import_gx() -> Any:
    """Import great_expectations quietly: its loggers are set before the import, since
    importing it logs ~200 INFO lines ("Skipping registering function ...")."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx

    # GX sets this one back to INFO as it imports.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.ERROR)
    if not _import_gx.__dict__.get("registered"):
        atexit.register(_release_duckdb_types)
        _import_gx.registered = True  # type: ignore[attr-defined]
    return gx


def _release_duckdb_types() -> None:
    """Free duckdb's column-type objects before its extension module is torn down.

    With GX and duckdb-engine both imported, those objects outlive the module at
    interpreter exit, and nanobind (duckdb's binding library) reports each as leaked:
    about 40 lines on stderr after every command and task. Dropping the module-level
    references first, at exit, lets them go in the right order.
    """
    import gc
    import sys

    for name in [m for m in sys.modules if m == "duckdb" or m.startswith(("duckdb.", "_duckdb", "duckdb_engine"))]:
        module = sys.modules.get(name)
        for attribute, value in list(vars(module).items()) if module is not None else []:
            first = value[0] if isinstance(value, list) and value else value
            if type(first).__name__ == "DuckDBPyType":
                delattr(module, attribute)
    gc.collect()


def load_suite(path: Path) -> ExpectationSuite:
    """Read an expectation suite file strictly: an unknown expectation type or a bad argument
    is an error naming the file (GX on its own would skip the entry), and so is `mostly` on an
    expectation whose failing rows cannot be named (see `pipelines.adapters.quarantine`)."""
    _import_gx()
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"expectation suite {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"expectation suite {path} is not valid JSON: {exc}") from None
    expectations = []
    for i, entry in enumerate(raw.get("expectations", []), 1):
        try:
            expectation = ExpectationConfiguration(**entry).to_domain_obj()
        except Exception as exc:  # GX raises several unrelated types here
            raise SpecError(f"{path}: expectation #{i} ({entry.get('type')!r}) is invalid: {exc}") from None
        quarantine.check_tolerable(str(path), i, expectation)
        # Results come back in no particular order: this tag says which entry each one is.
        expectation.meta = {**(expectation.meta or {}), "batchpred_entry": i}
        expectations.append(expectation)
    if not expectations:
        raise SpecError(f"expectation suite {path} has no expectations")
    return ExpectationSuite(name=raw.get("name", path.stem), expectations=expectations, meta=raw.get("meta") or {})


def _sql_datasource_class() -> type[Any]:
    """GX's SQL datasource, with an execution engine that reads each result before the
    connection closes.

    GX 1.x closes the connection, which rolls back the transaction duckdb-engine
    opened, and only then fetches the rows; DuckDB has dropped them by then, and every
    expectation fails with IndexError (great_expectations issue #11579). Reading the
    rows first is harmless on PostgreSQL, whose driver buffers results anyway.
    """
    from great_expectations.datasource.fluent import SQLDatasource
    from great_expectations.execution_engine import SqlAlchemyExecutionEngine

    class BufferingExecutionEngine(SqlAlchemyExecutionEngine):
        def execute_query(self, query: Any) -> Any:
            with self.get_connection() as connection:
                result = connection.execute(query)
                return result.freeze()() if result.returns_rows else result

    # GX types this class variable by the class's generic parameter, which mypy cannot read from the class.
    datasource = cast(Any, SQLDatasource)
    if datasource.execution_engine_override is None:
        datasource.execution_engine_override = BufferingExecutionEngine
    return SQLDatasource


def _prepare_engine(engine: Any, kind: str, query: str) -> None:
    """Every connection of this GX engine starts in UTC, and GX's column lookup for the
    query asset reads no rows.

    GX learns a query asset's columns by executing the query itself and reading only
    the column names of the result. psycopg fetches the whole result first: every row
    of the date crosses the wire for nothing (about 2.5 s per 1M rows). On this engine
    only, that exact statement runs as `select * from (query) limit 0`, which has the
    same columns. The checks themselves wrap the query in their own SELECTs and are
    left alone.
    """
    from sqlalchemy import event

    zero_rows = queries.columns_only(query)

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _no_rows(
        connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> tuple[str, Any]:
        return (zero_rows if statement.strip() == query else statement), parameters

    if kind == "duckdb":  # PostgreSQL gets its time zone from the connection options

        @event.listens_for(engine, "connect")
        def _utc(dbapi_connection: Any, connection_record: Any) -> None:
            for statement in session_setup(kind):
                dbapi_connection.execute(statement)


def _outcome(result: Any) -> ExpectationOutcome:
    config = result.expectation_config
    details = result.result or {}
    error = None
    info = result.exception_info or {}
    if info and "raised_exception" not in info:  # metric errors arrive keyed by metric id
        info = next(iter(info.values()), {})
    if info.get("raised_exception"):
        error = str(info.get("exception_message") or "unknown error")
    column = config.kwargs.get("column") or (",".join(config.kwargs["column_list"]) if config.kwargs.get("column_list") else None)
    return ExpectationOutcome(
        expectation_type=config.type,
        column=column,
        success=bool(result.success),
        observed_value=details.get("observed_value"),
        element_count=details.get("element_count"),
        unexpected_count=details.get("unexpected_count"),
        unexpected_percent=details.get("unexpected_percent"),
        partial_unexpected=list(details.get("partial_unexpected_list") or []),
        error=error,
    )


def _entry(result: Any) -> int:
    return int(result.expectation_config.meta["batchpred_entry"])


class Gx:
    """Great Expectations on one warehouse (built once per task or command by
    `pipelines.adapters.resources`): the GX context is made once and reused; on DuckDB
    every validation waits, through the warehouse, for a file another process holds."""

    def __init__(self, settings: Settings, warehouse: Warehouse) -> None:
        self.settings = settings
        self.warehouse = warehouse
        self._context: Any = None

    def context(self) -> Any:
        if self._context is None:
            gx = _import_gx()
            self._context = gx.get_context(mode="ephemeral")
            self._context.variables.progress_bars = {"globally": False, "metric_calculations": False}
        return self._context

    def validate_partition(
        self,
        spec: ModelSpec,
        as_of_date: dt.date,
        schema: str = "analytics",
        store: bool = True,
        key_fields: list[pa.Field] | None = None,
    ) -> ValidationReport:
        """Run the spec's suite on the rows of `as_of_date` only, in the warehouse.

        Returns the report, with the entity keys of the rows that broke a tolerated
        expectation; raising on failure is the caller's choice. With `store` (not in a dry
        run) stores one result row per expectation and replaces the date's quarantine, keyed
        by `key_fields` (the model version's key columns and types).
        """
        if type(as_of_date) is not dt.date:
            raise TypeError("as_of_date must be a datetime.date")
        suite = load_suite(spec.suite_path)
        table = tables.features(spec, schema)

        def run() -> ValidationReport:
            report = _run_suite(self, spec, suite, table, as_of_date)
            for outcome in report.outcomes:
                if outcome.error and "could not set lock" in outcome.error.lower():
                    raise RuntimeError(outcome.error)  # the DuckDB file was taken after the probe: wait, again
            return report

        report = self.warehouse.when_free(run)
        if store:
            _store(self.warehouse, spec, report, key_fields)
        return report

    def check_passed(self, spec: ModelSpec, as_of_date: dt.date, validation_id: str) -> None:
        """Refuse to go on unless `validation_id` is a passed validation of this model and date."""
        found = queries.validation_outcome(self.warehouse, spec, as_of_date, validation_id)
        if not found["n"]:
            raise ValidationFailed(
                f"no validation {validation_id!r} of {spec.name} for {as_of_date}; validate the date before scoring it"
            )
        if not found["ok"]:
            raise ValidationFailed(
                f"validation {validation_id} of {spec.name} for {as_of_date} failed; see monitoring.validation_results"
            )


def _run_suite(gx: Gx, spec: ModelSpec, suite: ExpectationSuite, table: tables.Table, as_of_date: dt.date) -> ValidationReport:
    from great_expectations.core import ExpectationSuite

    _sql_datasource_class()
    url = parse(gx.settings.warehouse_url)
    query = queries.partition_query(table, as_of_date)
    context = gx.context()
    connect_args = {"options": "-c timezone=UTC"} if url.kind == "postgres" else {}
    with warnings.catch_warnings():
        # GX suggests its PostgreSQL-specific datasource; the generic one is what works on both.
        warnings.simplefilter("ignore")
        datasource = context.data_sources.add_sql(
            name=f"warehouse_{uuid.uuid4().hex[:8]}", connection_string=url.sqlalchemy, kwargs={"connect_args": connect_args}
        )
    asset = datasource.add_query_asset(name=f"{table.name}_{as_of_date:%Y%m%d}", query=query)
    batch = asset.add_batch_definition_whole_table("partition").get_batch()
    engines = [datasource.get_execution_engine().engine, datasource.get_engine()]
    for engine in engines:
        _prepare_engine(engine, url.kind, query)
    by_entry = {i: e for i, e in enumerate(suite.expectations, 1)}
    found: list[tuple[str, int, list[dict[str, Any]]]] = []
    try:
        # Counts only: with examples asked for, GX runs one more query per row-level
        # expectation, which reads the whole date when nothing is wrong.
        results = {_entry(r): r for r in batch.validate(suite, result_format=COUNTS_ONLY).results}
        bad = [i for i, r in sorted(results.items()) if (r.result or {}).get("unexpected_count")]
        failed = [i for i in bad if not results[i].success]
        tolerated = [i for i in bad if results[i].success]
        if failed:
            # Examples, for the expectations that failed and for nothing else.
            again = ExpectationSuite(name=f"{suite.name} examples", expectations=[by_entry[i] for i in failed])
            for example in batch.validate(again, result_format=WITH_EXAMPLES).results:
                results[_entry(example)].result["partial_unexpected_list"] = (example.result or {}).get(
                    "partial_unexpected_list", []
                )
        elif tolerated:
            # The date passes only thanks to `mostly`: GX names every row it counted.
            again = ExpectationSuite(name=f"{suite.name} unexpected rows", expectations=[by_entry[i] for i in tolerated])
            named = batch.validate(
                again,
                result_format={
                    "result_format": "SUMMARY",
                    "partial_unexpected_count": EVERY_ROW,
                    "unexpected_index_column_names": list(spec.key_columns),
                },
            ).results
            for result in named:
                details = result.result or {}
                index = list(details.get("partial_unexpected_index_list") or [])
                found.append((quarantine.describe(result.expectation_config), int(details["unexpected_count"]), index))
                results[_entry(result)].result["partial_unexpected_list"] = list(details.get("partial_unexpected_list") or [])[
                    :20
                ]
    finally:
        # Release the DuckDB file: the datasource and its execution engine each hold an engine.
        for engine in engines:
            engine.dispose()

    outcomes = [_outcome(results[i]) for i in sorted(results)]
    rows = queries.count_partition(gx.warehouse, table, as_of_date)
    report = ValidationReport(str(uuid.uuid4()), spec.name, str(table), as_of_date, rows, outcomes)
    if report.success and found:
        report = ValidationReport(
            report.validation_id, spec.name, str(table), as_of_date, rows, outcomes,
            quarantine.rows(spec.key_columns, found, str(table), as_of_date),
        )  # fmt: skip
    return report


def _finite(value: Any) -> Any:
    """A float that is NaN or infinite as NULL (GX reports 0 of 0 rows as NaN percent)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _json(value: Any) -> str:
    """`value` as strict JSON: a NaN or infinite number GX observed (a mean over an infinite
    value, an unexpected value itself) becomes the string "NaN", "Infinity" or "-Infinity",
    which every JSON reader parses, where a bare NaN is not JSON."""

    def strict(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return "NaN" if math.isnan(v) else "Infinity" if v > 0 else "-Infinity"
        if isinstance(v, dict):
            return {k: strict(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [strict(x) for x in v]
        return v

    return json.dumps(strict(value), default=str, allow_nan=False)


def _store(warehouse: Warehouse, spec: ModelSpec, report: ValidationReport, key_fields: list[pa.Field] | None) -> None:
    """One result row per expectation; the date's quarantine replaced by this validation's rows."""
    import pyarrow as pa

    now = dt.datetime.now(dt.UTC)
    queries.store_validation(
        warehouse,
        [
            {
                "validation_id": report.validation_id,
                "model_name": spec.name,
                "as_of_date": report.as_of_date,
                "suite": spec.suite,
                "expectation_type": o.expectation_type,
                "column_name": o.column,
                "success": o.success,
                "observed_value": _json(o.observed_value),
                "element_count": o.element_count,
                "unexpected_count": o.unexpected_count,
                "unexpected_percent": _finite(o.unexpected_percent),
                "partial_unexpected": _json(o.partial_unexpected[:20]),
                "error": redact.text(o.error) if o.error else None,
                "validated_at": now,
            }
            for o in report.outcomes
        ],
    )
    if not report.success:
        return  # a failed date is not scored, and keeps the quarantine of the validation it was scored after
    if not report.quarantined:
        queries.clear_quarantine(warehouse, spec, report.as_of_date)
        return
    columns: dict[str, list[Any]] = {c: [] for c in spec.key_columns}
    reasons = []
    for key, why in report.quarantined.items():
        for column, value in zip(spec.key_columns, key, strict=True):
            columns[column].append(value)
        reasons.append("; ".join(why))
    n = len(reasons)
    if key_fields is None:
        key_fields = [pa.field(c, pa.array(columns[c]).type, nullable=False) for c in spec.key_columns]
    rows = pa.table(
        {
            **{f.name: pa.array(columns[f.name]).cast(f.type) for f in key_fields},
            "as_of_date": pa.array([report.as_of_date] * n, pa.date32()),
            "reasons": pa.array(reasons, pa.string()),
            "validation_id": pa.array([report.validation_id] * n, pa.string()),
            "quarantined_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
        },
        schema=tables.quarantine_schema(key_fields),
    )
    queries.replace_quarantine(warehouse, spec, key_fields, report.as_of_date, rows)
