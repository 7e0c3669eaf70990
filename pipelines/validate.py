"""Validate one as-of date of a feature table with its Great Expectations suite.

The suite is a plain JSON file in expectations/ that a data engineer edits. It runs
through GX's SQL execution engine, so every check is an aggregate query executed by
the warehouse over exactly the date's rows: nothing is loaded into pandas. Results,
one row per expectation, go to monitoring.validation_results.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipelines.errors import SpecError, ValidationFailed
from pipelines.identifiers import qualified
from pipelines.settings import Settings
from pipelines.spec import ModelSpec
from pipelines.warehouse import Warehouse, open_warehouse

RESULTS_TABLE = "validation_results"

# GX result formats: the first run counts bad rows; only expectations that found some
# are run again for up to 20 example values.
COUNTS_ONLY = {"result_format": "BASIC", "partial_unexpected_count": 0}
WITH_EXAMPLES = {"result_format": "BASIC", "partial_unexpected_count": 20}

RESULTS_SCHEMA = pa.schema(
    [
        ("validation_id", pa.string()),
        ("model_name", pa.string()),
        ("as_of_date", pa.date32()),
        ("suite", pa.string()),
        ("expectation_type", pa.string()),
        ("column_name", pa.string()),
        ("success", pa.bool_()),
        ("observed_value", pa.string()),  # JSON
        ("element_count", pa.int64()),
        ("unexpected_count", pa.int64()),
        ("unexpected_percent", pa.float64()),
        ("partial_unexpected", pa.string()),  # JSON list, at most 20 values
        ("error", pa.string()),
        ("validated_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class Outcome:
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
    outcomes: list[Outcome]

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success]

    def describe_failures(self) -> str:
        lines = [
            f"validation of {self.table} for as_of_date {self.as_of_date} failed "
            f"{len(self.failures)} of {len(self.outcomes)} expectations (nothing was scored):"
        ]
        lines += [f"  - {o.describe()}" for o in self.failures]
        return "\n".join(lines)


def load_suite(path: Path):
    """Read an expectation suite file strictly: an unknown expectation type or a bad
    argument is an error naming the file (GX on its own would skip the entry)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"expectation suite {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"expectation suite {path} is not valid JSON: {exc}") from None
    expectations = []
    for i, entry in enumerate(raw.get("expectations", [])):
        try:
            expectations.append(ExpectationConfiguration(**entry).to_domain_obj())
        except Exception as exc:  # GX raises several unrelated types here
            raise SpecError(f"{path}: expectation #{i + 1} ({entry.get('type')!r}) is invalid: {exc}") from None
    if not expectations:
        raise SpecError(f"expectation suite {path} has no expectations")
    return ExpectationSuite(name=raw.get("name", path.stem), expectations=expectations, meta=raw.get("meta") or {})


def _sql_datasource_class():
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
        def execute_query(self, query):
            with self.get_connection() as connection:
                result = connection.execute(query)
                return result.freeze()() if result.returns_rows else result

    if SQLDatasource.execution_engine_override is None:
        SQLDatasource.execution_engine_override = BufferingExecutionEngine
    return SQLDatasource


def _read_query_columns_without_rows(engine, query: str) -> None:
    """Make GX's column lookup for the query asset read no rows.

    GX learns a query asset's columns by executing the query itself and reading only
    the column names of the result. psycopg fetches the whole result first: every row
    of the date crosses the wire for nothing (about 2.5 s per 1M rows). On this engine
    only, that exact statement runs as `select * from (query) limit 0`, which has the
    same columns. The checks themselves wrap the query in their own SELECTs and are
    left alone.
    """
    from sqlalchemy import event

    zero_rows = f"select * from ({query}) as columns_only limit 0"

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _no_rows(connection, cursor, statement, parameters, context, executemany):
        return (zero_rows if statement.strip() == query else statement), parameters


def _outcome(result) -> Outcome:
    config = result.expectation_config
    details = result.result or {}
    error = None
    info = result.exception_info or {}
    if info and "raised_exception" not in info:  # metric errors arrive keyed by metric id
        info = next(iter(info.values()), {})
    if info.get("raised_exception"):
        error = str(info.get("exception_message") or "unknown error")
    column = config.kwargs.get("column") or (",".join(config.kwargs["column_list"]) if config.kwargs.get("column_list") else None)
    return Outcome(
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


def sqlalchemy_url(warehouse_url: str) -> str:
    """The URL GX's SQLAlchemy engine should use (psycopg 3 for PostgreSQL)."""
    from sqlalchemy.engine import make_url

    url = make_url(warehouse_url)
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def validate_partition(settings: Settings, spec: ModelSpec, as_of_date: dt.date) -> ValidationReport:
    """Run the spec's suite on the rows of `as_of_date` only, in the warehouse, and store
    one result row per expectation. Returns the report; raising is the caller's choice."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    if type(as_of_date) is not dt.date:
        raise TypeError("as_of_date must be a datetime.date")
    suite = load_suite(spec.suite_path)
    import great_expectations as gx
    from great_expectations.core import ExpectationSuite

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    _sql_datasource_class()
    table = f"analytics.{spec.features_model}"
    # GX query assets take no bind parameters. The date is a datetime.date, whose
    # isoformat() is always YYYY-MM-DD, and the identifiers are checked and quoted.
    query = f"select * from {qualified('analytics', spec.features_model)} where as_of_date = date '{as_of_date.isoformat()}'"

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    with warnings.catch_warnings():
        # GX suggests its PostgreSQL-specific datasource; the generic one is what works on both.
        warnings.simplefilter("ignore")
        datasource = context.data_sources.add_sql(name="warehouse", connection_string=sqlalchemy_url(settings.warehouse_url))
    asset = datasource.add_query_asset(name=f"{spec.features_model}_{as_of_date:%Y%m%d}", query=query)
    batch = asset.add_batch_definition_whole_table("partition").get_batch()
    engine = datasource.get_execution_engine().engine
    _read_query_columns_without_rows(engine, query)
    try:
        # Counts only: with examples asked for, GX runs one more query per row-level
        # expectation, which reads the whole date when nothing is wrong (LIMIT 20 stops
        # early only when there are 20 bad rows to find).
        results = list(batch.validate(suite, result_format=COUNTS_ONLY).results)
        failed = [i for i, r in enumerate(results) if not r.success and (r.result or {}).get("unexpected_count")]
        if failed:
            # Then examples, for the expectations that found bad rows and for nothing else.
            configs = [results[i].expectation_config for i in failed]
            again = ExpectationSuite(name=f"{suite.name} examples", expectations=[c.to_domain_obj() for c in configs])
            for example in batch.validate(again, result_format=WITH_EXAMPLES).results:
                i = failed[configs.index(example.expectation_config)]
                results[i].result["partial_unexpected_list"] = (example.result or {}).get("partial_unexpected_list", [])
    finally:
        # Release the DuckDB file: the datasource and its execution engine each hold an engine.
        engine.dispose()
        datasource.get_engine().dispose()

    outcomes = [_outcome(r) for r in results]
    rows = next(
        (int(o.observed_value) for o in outcomes if o.expectation_type == "expect_table_row_count_to_be_between"),
        next((o.element_count for o in outcomes if o.element_count is not None), 0),
    )
    report = ValidationReport(str(uuid.uuid4()), spec.name, table, as_of_date, rows or 0, outcomes)
    _store(open_warehouse(settings.warehouse_url), spec, report)
    return report


def _store(warehouse: Warehouse, spec: ModelSpec, report: ValidationReport) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "validation_id": report.validation_id,
            "model_name": spec.name,
            "as_of_date": report.as_of_date,
            "suite": spec.suite,
            "expectation_type": o.expectation_type,
            "column_name": o.column,
            "success": o.success,
            "observed_value": json.dumps(o.observed_value, default=str),
            "element_count": o.element_count,
            "unexpected_count": o.unexpected_count,
            "unexpected_percent": o.unexpected_percent,
            "partial_unexpected": json.dumps(o.partial_unexpected[:20], default=str),
            "error": o.error,
            "validated_at": now,
        }
        for o in report.outcomes
    ]
    warehouse.append("monitoring", RESULTS_TABLE, pa.Table.from_pylist(rows, schema=RESULTS_SCHEMA))


def check_passed(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, validation_id: str) -> None:
    """Refuse to go on unless `validation_id` is a passed validation of this model and date."""
    found = {"n": 0, "ok": False}
    if warehouse.table_columns("monitoring", RESULTS_TABLE) is not None:
        found = warehouse.query(
            f"select count(*) as n, coalesce(bool_and(success), false) as ok "
            f"from {qualified('monitoring', RESULTS_TABLE)} where validation_id = $1 and model_name = $2 and as_of_date = $3",
            [validation_id, spec.name, as_of_date],
        ).to_pylist()[0]
    if not found["n"]:
        raise ValidationFailed(
            f"no validation {validation_id!r} of {spec.name} for {as_of_date}; validate the date before scoring it"
        )
    if not found["ok"]:
        raise ValidationFailed(
            f"validation {validation_id} of {spec.name} for {as_of_date} failed; see monitoring.validation_results"
        )
