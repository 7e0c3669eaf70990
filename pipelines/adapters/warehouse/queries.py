"""The named queries the pipeline runs on the tables batchpred owns (declared in `tables`).

The rest of `pipelines` calls these functions and never writes SQL itself
(tests/test_layout.py holds it to that). Identifiers are checked and quoted; values
are bound parameters. pyarrow and the drivers are imported inside the functions that
need them, not here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pipelines.adapters.warehouse.tables import (
    HEALTH_TABLES,
    SCORING_RUNS,
    VALIDATION_RESULTS,
    Table,
    exists,
    features,
    health_schema,
    labels,
    marts,
    predictions,
    profile_staging,
    quarantine,
    quarantine_schema,
    reasons,
    scoring_runs_schema,
    shadow,
    staging,
    validation_results_schema,
)
from pipelines.domain.errors import BatchpredError, SpecError
from pipelines.domain.identifiers import check_identifier, qualified, quote
from pipelines.domain.names import SCRATCH_PREFIX

if TYPE_CHECKING:
    import pyarrow as pa

    from pipelines.adapters.warehouse.base import PartitionWrite, Warehouse
    from pipelines.config.spec import ModelSpec, Source


def health_write(
    table: Table,
    model: str,
    version: int,
    as_of_date: dt.date,
    rows: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]],
    narrow: dict[str, Any] | None = None,
) -> PartitionWrite:
    """One date's rows of a model-health table for one model version (narrowed by more key
    columns), as a `PartitionWrite` for `Warehouse.replace_partitions`: several tables'
    rows of a date are then replaced in one transaction. `rows` may be a function giving
    them when the write's turn comes in that transaction (what an earlier write of it
    produced). Refuses a NaN or infinite value (ValueError naming the table and column): an
    undefined statistic is NULL, with a reason."""
    import pyarrow as pa

    from pipelines.adapters.warehouse.base import PartitionWrite

    schema = health_schema(table)

    def checked(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in found:
            check_finite(table, r)
        return found

    ready = None if callable(rows) else checked(rows)

    def batches() -> list[pa.RecordBatch]:
        found = ready if ready is not None else checked(rows() if callable(rows) else rows)
        now = dt.datetime.now(dt.UTC)
        data: list[pa.RecordBatch] = pa.Table.from_pylist(
            [{"model_name": model, "model_version": version, "as_of_date": as_of_date, "computed_at": now, **r} for r in found],
            schema=schema,
        ).to_batches()
        return data

    key = {"model_name": model, "model_version": version, **(narrow or {})}
    return PartitionWrite(table.schema, table.name, schema, batches, key)


def check_finite(table: Table | str, row: dict[str, Any]) -> None:
    """Refuse a row holding NaN or an infinity (no table batchpred writes holds one)."""
    for column, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(
                f"{table}.{column} would hold {value} ({', '.join(f'{k}={v}' for k, v in row.items() if k in _ROW_NAMES)}): "
                "an undefined statistic must be NULL with a reason"
            )


_ROW_NAMES = ("feature", "comparison", "check_name", "subject", "challenger_alias", "bin")


def replace_health(
    warehouse: Warehouse, table: Table, model: str, version: int, as_of_date: dt.date, rows: list[dict[str, Any]]
) -> int:
    """Replace one date's rows of a model-health table for one model version."""
    return warehouse.replace_partitions(as_of_date, [health_write(table, model, version, as_of_date, rows)])[0]


def update_health(
    warehouse: Warehouse,
    table: Table,
    model: str,
    version: int,
    as_of_date: dt.date,
    values: dict[str, Any],
    narrow: dict[str, Any] | None = None,
) -> int:
    """Set some columns of one date's model-health row(s) for one version (narrowed by more columns)."""
    check_finite(table, values)
    key = {"model_name": model, "model_version": int(version), "as_of_date": as_of_date, **(narrow or {})}
    return warehouse.update_rows(table.schema, table.name, key, values)


# -- named queries -------------------------------------------------------------------


def _one(warehouse: Warehouse, sql: str, params: list[Any] | None = None) -> dict[str, Any]:
    rows = warehouse.query(sql, params).to_pylist()
    return rows[0] if rows else {}


def source_extent(warehouse: Warehouse, source: Source) -> tuple[dt.date | None, dt.date | None]:
    """(first, last) event date of a completeness source, as UTC dates; (None, None) when it is empty.

    Refuses (BatchpredError) a table or column that does not exist, or an event column
    that is not a date or timestamp, naming the source and the spec key.
    """
    from pipelines.domain.sql_types import type_family

    columns = warehouse.table_columns(source.schema, source.table)
    where = f"completeness source {source.name}"
    if columns is None:
        raise BatchpredError(
            f"{where} does not exist in the warehouse; load the raw data first (for the demo: batchpred generate)"
        )
    if source.event_column not in columns:
        raise SpecError(f"{where} has no column {source.event_column!r} (it has {sorted(columns)}); fix completeness.sources")
    if type_family(columns[source.event_column]) not in ("date", "timestamp"):
        raise SpecError(
            f"{where} column {source.event_column!r} has type {columns[source.event_column]}; an event column must be "
            "a date or a timestamp"
        )
    column = quote(source.event_column)
    # Sessions run in UTC, so a timestamp's date is its UTC date.
    row = _one(
        warehouse,
        f"select cast(min({column}) as date) as first, cast(max({column}) as date) as last "
        f"from {qualified(source.schema, source.table)}",
    )
    return row.get("first"), row.get("last")


def partition_query(table: Table, as_of_date: dt.date) -> str:
    """The SELECT of one date of a table, for Great Expectations (whose query assets take no
    bind parameters). The date is a `datetime.date`, whose isoformat() is always YYYY-MM-DD."""
    if type(as_of_date) is not dt.date:
        raise TypeError("as_of_date must be a datetime.date")
    return f"select * from {qualified(table.schema, table.name)} where as_of_date = date '{as_of_date.isoformat()}'"


def columns_only(query: str) -> str:
    """A query with the same columns as `query` and no rows (for GX's column lookup)."""
    return f"select * from ({query}) as columns_only limit 0"


def count_partition(warehouse: Warehouse, table: Table, as_of_date: dt.date) -> int:
    """The rows of one date of a model's own table or a dbt model (0 before it exists)."""
    if not exists(warehouse, table):
        return 0
    return int(
        _one(warehouse, f"select count(*) as n from {qualified(table.schema, table.name)} where as_of_date = $1", [as_of_date])[
            "n"
        ]
    )


@contextmanager
def read_for_scoring(
    warehouse: Warehouse,
    spec: ModelSpec,
    columns: Sequence[str],
    as_of_date: dt.date,
    validation_id: str,
    shard: int,
    shards: int,
    batch_size: int,
    quarantined: bool = False,
) -> Iterator[Iterator[pa.RecordBatch]]:
    """Stream the rows of `as_of_date` to score: the feature partition minus exactly the rows
    that validation `validation_id` quarantined, and only the shard's rows when sharded. With
    `quarantined`, exactly those quarantined rows instead (none when nothing was)."""
    q = quarantine(spec)
    predicates, params = [], []
    if exists(warehouse, q):
        match = " and ".join(f"q.{quote(c)} = t.{quote(c)}" for c in spec.key_columns)
        predicates.append(
            ("" if quarantined else "not ")
            + f"exists (select 1 from {qualified(q.schema, q.name)} as q "
            f"where q.as_of_date = t.as_of_date and q.validation_id = $2 and {match})"
        )
        params.append(validation_id)
    elif quarantined:
        predicates.append("false")
    if shards > 1:
        predicates.append(warehouse.shard_predicate(spec.key_columns, shards, shard))
    table = features(spec)
    with warehouse.read_partition(
        table.schema, table.name, as_of_date, columns, batch_size, " and ".join(predicates), params
    ) as batches:
        yield batches


def staged_rows(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, scoring_run_id: str) -> int:
    t = staging(spec)
    if not exists(warehouse, t):
        return 0
    return int(
        _one(
            warehouse,
            f"select count(*) as n from {qualified(t.schema, t.name)} where as_of_date = $1 and scoring_run_id = $2",
            [as_of_date, scoring_run_id],
        )["n"]
    )


def training_rows(warehouse: Warehouse, spec: ModelSpec, columns: Sequence[str], dates: Sequence[dt.date]) -> pa.Table:
    """Features joined to labels for the snapshot `dates`, ordered by date and key."""
    f, lab = features(spec), labels(spec)
    select = ", ".join([*(f"f.{quote(c)}" for c in columns), f"l.{quote(spec.target)}"])
    join = " and ".join(f"l.{quote(c)} = f.{quote(c)}" for c in spec.key_columns)
    placeholders = ", ".join(f"${i}" for i in range(1, len(dates) + 1))
    order = ", ".join(["f.as_of_date", *(f"f.{quote(c)}" for c in spec.key_columns)])
    return warehouse.query(
        f"select {select} from {qualified(f.schema, f.name)} as f "
        f"inner join {qualified(lab.schema, lab.name)} as l on l.as_of_date = f.as_of_date and {join} "
        f"where f.as_of_date in ({placeholders}) order by {order}",
        list(dates),
    )


def staged_profile(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, scoring_run_id: str) -> list[dict[str, Any]]:
    """The profile rows every shard of a scoring run staged for the date (shard, feature, bin, rows, finite_sum)."""
    t = profile_staging(spec)
    rows: list[dict[str, Any]] = warehouse.query(
        f"select shard, feature, bin, rows, finite_sum from {qualified(t.schema, t.name)} "
        "where as_of_date = $1 and scoring_run_id = $2 order by shard, feature, bin",
        [as_of_date, scoring_run_id],
    ).to_pylist()
    return rows


def quarantine_count(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, validation_id: str) -> int:
    t = quarantine(spec)
    if not exists(warehouse, t):
        return 0
    return int(
        _one(
            warehouse,
            f"select count(*) as n from {qualified(t.schema, t.name)} where as_of_date = $1 and validation_id = $2",
            [as_of_date, validation_id],
        )["n"]
    )


def validation_outcome(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, validation_id: str) -> dict[str, Any]:
    """{'n': expectations stored, 'ok': all passed} for one validation of one date."""
    t = VALIDATION_RESULTS
    return _one(
        warehouse,
        f"select count(*) as n, coalesce(bool_and(success), false) as ok from {qualified(t.schema, t.name)} "
        "where validation_id = $1 and model_name = $2 and as_of_date = $3",
        [validation_id, spec.name, as_of_date],
    )


def scored_versions(warehouse: Warehouse, spec: ModelSpec, start: dt.date, end: dt.date) -> dict[dt.date, set[int]]:
    """The model versions whose predictions each date of start..end holds."""
    t = predictions(spec)
    if not exists(warehouse, t):
        return {}
    found: dict[dt.date, set[int]] = {}
    for row in warehouse.query(
        f"select distinct as_of_date, model_version from {qualified(t.schema, t.name)} where as_of_date between $1 and $2",
        [start, end],
    ).to_pylist():
        found.setdefault(row["as_of_date"], set()).add(int(row["model_version"]))
    return found


def latest_statuses(warehouse: Warehouse, model: str, start: dt.date, end: dt.date) -> dict[dt.date, str]:
    """The status of each date's latest real attempt in start..end: a refused request touched
    nothing and an unpublish is not an attempt, so neither counts."""
    t = SCORING_RUNS
    latest: dict[dt.date, str] = {}
    for row in warehouse.query(
        f"select as_of_date, status from {qualified(t.schema, t.name)} "
        "where model_name = $1 and as_of_date between $2 and $3 and status not in ('unpublished', 'refused') "
        "order by started_at",
        [model, start, end],
    ).to_pylist():
        latest[row["as_of_date"]] = row["status"]
    return latest


def record_run(warehouse: Warehouse, row: dict[str, Any]) -> None:
    """Write an attempt's run-log row, replacing the one it had (one row per attempt)."""
    import pyarrow as pa

    t = SCORING_RUNS
    rows = pa.Table.from_pylist([row], schema=scoring_runs_schema())
    warehouse.replace_partition(t.schema, t.name, None, rows.schema, rows.to_batches(), {"scoring_run_id": row["scoring_run_id"]})


def update_run(warehouse: Warehouse, scoring_run_id: str, values: dict[str, Any]) -> bool:
    """Change some columns of an attempt's run-log row; False if the attempt has no row."""
    t = SCORING_RUNS
    return warehouse.update_rows(t.schema, t.name, {"scoring_run_id": scoring_run_id}, values) > 0


def unpublish(
    warehouse: Warehouse, spec: ModelSpec, as_of_dates: Sequence[dt.date], log_rows: list[dict[str, Any]]
) -> dict[str, int]:
    """Remove the dates' predictions, shadow scores, reasons, quarantine and model-health rows
    of the model, and write `log_rows` to the run log, in one transaction. Returns the rows
    removed per table."""
    import pyarrow as pa

    own = [predictions(spec), shadow(spec), reasons(spec), quarantine(spec)]
    tables = [(t.schema, t.name, None) for t in own] + [(t.schema, t.name, {"model_name": spec.name}) for t in HEALTH_TABLES]
    log = (SCORING_RUNS.schema, SCORING_RUNS.name, pa.Table.from_pylist(log_rows, schema=scoring_runs_schema()))
    return warehouse.delete_dates(as_of_dates, tables, log)


def store_validation(warehouse: Warehouse, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa

    t = VALIDATION_RESULTS
    warehouse.append(t.schema, t.name, pa.Table.from_pylist(rows, schema=validation_results_schema()))


def replace_quarantine(
    warehouse: Warehouse, spec: ModelSpec, key: Sequence[pa.Field], as_of_date: dt.date, rows: pa.Table
) -> int:
    t = quarantine(spec)
    return warehouse.replace_partition(t.schema, t.name, as_of_date, quarantine_schema(key), rows.to_batches())


def clear_quarantine(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date) -> None:
    t = quarantine(spec)
    warehouse.delete_partition(t.schema, t.name, as_of_date)


def drop_scratch(warehouse: Warehouse, schema: str) -> None:
    """Drop a dry run's scratch schema, and nothing else."""
    if not schema.startswith(SCRATCH_PREFIX):
        raise ValueError(f"{schema!r} is not a scratch schema")
    warehouse.drop_schema(check_identifier(schema, "scratch schema"))


def dashboard_view(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, top: int = 5) -> tuple[pa.Table, pa.Table]:
    """What the demo prints: the highest scores of the latest date, and the date's summary."""
    m = marts(spec)
    latest, summary = m["latest_scores"], m["daily_summary"]
    key = ", ".join(quote(c) for c in spec.key_columns)
    reason = ", top_reason" if "top_reason" in (warehouse.table_columns(latest.schema, latest.name) or {}) else ""
    highest = warehouse.query(
        f"select {key}, as_of_date, score, risk_band, {quote(spec.segment)}, model_version{reason} "
        f"from {qualified(latest.schema, latest.name)} order by score desc, {key} limit {int(top)}"
    )
    day = warehouse.query(
        f"select as_of_date, {quote(spec.segment)}, entities, mean_score, p90_score, high_risk "
        f"from {qualified(summary.schema, summary.name)} where as_of_date = $1 order by {quote(spec.segment)} nulls last",
        [as_of_date],
    )
    return highest, day
