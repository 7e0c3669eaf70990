"""What every warehouse offers: Arrow in, Arrow out, every write that matters atomic.

A partition (one as-of date) or a set of raw tables is replaced inside one
transaction, so a reader sees the old rows or the new ones, never a mix and never
none. Identifiers are checked and quoted (`pipelines.domain.identifiers`); values travel as
bound parameters ($1, $2, ... in both databases), never pasted into SQL.

One module per backend implements it: `duckdb.py` (the embedded default) and
`postgres.py` (production).
"""

from __future__ import annotations

import abc
import datetime as dt
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import pyarrow as pa

from pipelines.domain.errors import BatchpredError
from pipelines.domain.identifiers import check_identifier, qualified, quote
from pipelines.domain.sql_types import type_family

SCHEMAS = ("raw", "analytics", "predictions", "monitoring", "marts")

# How long after a process alarm (a task timeout) a statement still running is cancelled.
CANCEL_GRACE_SECONDS = 1.0


@contextmanager
def cancel_at_alarm(cancel: Callable[[], None]) -> Iterator[None]:
    """Cancel the database call in flight if the process's alarm passes.

    Airflow enforces a task's execution_timeout with SIGALRM, and Python runs a signal
    handler only between bytecodes, so a statement blocked inside a database driver
    (waiting on a lock, say) would never see it and the task would hang. While an
    alarm is set, a watchdog calls `cancel` shortly after it was due: the blocked call
    returns, the timeout is raised, and the transaction rolls back.
    """
    remaining = signal.getitimer(signal.ITIMER_REAL)[0]
    if not remaining:
        yield
        return
    watchdog = threading.Timer(remaining + CANCEL_GRACE_SECONDS, cancel)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()


_SQL_TYPES = {
    pa.int64(): "bigint",
    pa.int32(): "integer",
    pa.float64(): "double precision",
    pa.float32(): "real",
    pa.string(): "text",
    pa.large_string(): "text",
    pa.bool_(): "boolean",
    pa.date32(): "date",
}


def arrow_family(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    return str(arrow_type)


def _column_type(field: pa.Field) -> str:
    if pa.types.is_timestamp(field.type):
        return "timestamp with time zone" if field.type.tz else "timestamp"
    try:
        return _SQL_TYPES[field.type]
    except KeyError:
        raise BatchpredError(
            f"column {field.name!r} has Arrow type {field.type}, which the warehouse adapter does not map"
        ) from None


def create_table_sql(schema: str, table: str, arrow_schema: pa.Schema) -> str:
    columns = ", ".join(f"{quote(f.name)} {_column_type(f)}{'' if f.nullable else ' not null'}" for f in arrow_schema)
    return f"create table if not exists {qualified(schema, table)} ({columns})"


def one_line(sql: str) -> str:
    """A statement on one line, for the debug log (`batchpred -vv`)."""
    return " ".join(sql.split())


def sql_string(text: str) -> str:
    """`text` as a SQL string literal, for the statements that take no bound parameters
    (COMMENT ON). Refuses a NUL or a backslash, which would read differently in a
    PostgreSQL without standard_conforming_strings; doubles single quotes."""
    if "\0" in text or "\\" in text:
        raise ValueError(f"a SQL string literal here holds neither NUL nor backslash: {text[:60]!r}")
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class DocumentedTable:
    """A table `Warehouse.ensure_tables` makes exist, with its comment and its columns' comments."""

    schema: str
    table: str
    arrow_schema: pa.Schema
    comment: str
    columns: dict[str, str]

    def stale_comments(self, current: dict[str | None, str | None]) -> dict[str | None, str]:
        """The comments to write given the `current` ones (None: the table's own); every one
        when the table lacks a column of `arrow_schema` (it is then altered anyway)."""
        # A dict is invariant in its key type: str keys are read here as `str | None` ones.
        wanted: dict[str | None, str] = {None: self.comment, **cast("dict[str | None, str]", self.columns)}
        if not set(self.arrow_schema.names) <= set(current):
            return wanted
        return {target: text for target, text in wanted.items() if current.get(target) != text}


@dataclass(frozen=True)
class PartitionWrite:
    """One table's part of `Warehouse.replace_partitions`."""

    schema: str
    table: str
    arrow_schema: pa.Schema
    batches: Callable[[], Iterable[pa.RecordBatch]]
    key: dict[str, Any] | None = None


T = TypeVar("T")


class Warehouse(abc.ABC):
    """What every warehouse offers. Subclasses supply connections, streaming and bulk load."""

    kind: str
    url: str
    # What closes a subquery whose values the query around it reads many times, so that each
    # is computed once per row (`health.histogram`). Nothing by default: DuckDB computes a
    # projection once, and an OFFSET would make its scan single-threaded.
    subquery_fence = ""

    @abc.abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[Any]: ...

    @contextmanager
    def session(self) -> Iterator[None]:
        """One unit of work (a date's steps): its many short transactions may share what is
        costly to set up again for each. Nothing to share here; DuckDB keeps its file open."""
        yield

    @abc.abstractmethod
    def _execute(self, con: Any, sql: str, params: list[Any] | None = None) -> None: ...

    @abc.abstractmethod
    def _value(self, con: Any, sql: str, params: list[Any] | None = None) -> Any:
        """The first column of the first row of a query run inside a transaction."""
        ...

    @abc.abstractmethod
    def _columns(self, con: Any, schema: str, table: str) -> dict[str, str]:
        """Column name -> SQL type of a table, inside a transaction ({} when it does not exist)."""
        ...

    @abc.abstractmethod
    def _comments(self, con: Any, schemas: Sequence[str]) -> dict[tuple[str, str], dict[str | None, str | None]]:
        """Inside a transaction, for every table and view of `schemas`: its comment (key None)
        and each of its columns' (None where there is none)."""
        ...

    @abc.abstractmethod
    def _load(self, con: Any, schema: str, table: str, batches: Iterable[pa.RecordBatch]) -> int: ...

    def when_free(self, work: Callable[[], T]) -> T:
        """Run `work`, which opens the warehouse through another library (dbt, Great
        Expectations), when this warehouse lets it in. A server takes any number of
        connections, so by default it runs at once; the DuckDB file waits for another
        process's lock the way batchpred's own connections do."""
        return work()

    @abc.abstractmethod
    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run a small read and return it whole. For reports, logs and tests, not partitions."""
        ...

    @abc.abstractmethod
    @contextmanager
    def read_partition(
        self,
        schema: str,
        table: str,
        as_of_date: dt.date,
        columns: Iterable[str],
        batch_size: int,
        where: str = "",
        params: Iterable[Any] = (),
    ) -> Iterator[Iterator[pa.RecordBatch]]:
        """Stream one as-of date's rows as Arrow record batches of at most `batch_size` rows.

        `where` is an extra predicate built by `queries` from checked identifiers, over
        the table aliased `t`; its values are `params`, numbered from $2. Memory is bounded
        by the batch size: neither database materialises the result.
        """
        ...

    @abc.abstractmethod
    def shard_predicate(self, columns: Iterable[str], shards: int, shard: int) -> str:
        """SQL true for the rows of `shard` when rows are split by a hash of the key `columns` (any type)."""
        ...

    @abc.abstractmethod
    def drop_schema(self, schema: str) -> None:
        """Drop a schema and everything in it, if it exists (a dry run's scratch schema:
        `queries.drop_scratch` checks the name first)."""
        ...

    # -- shared SQL ----------------------------------------------------------

    @staticmethod
    def _partition_sql(schema: str, table: str, columns: Iterable[str], where: str) -> str:
        select = ", ".join(f"t.{quote(c)}" for c in columns)
        return f"select {select} from {qualified(schema, table)} as t where t.as_of_date = $1" + (
            f" and {where}" if where else ""
        )

    def table_columns(self, schema: str, table: str) -> dict[str, str] | None:
        """Column name -> SQL type, or None when the table does not exist."""
        with self.transaction() as con:
            return self._columns(con, schema, table) or None

    def ensure_schemas(self) -> None:
        with self.transaction() as con:
            self._lock(con, "batchpred:ddl")
            for schema in SCHEMAS:
                self._execute(con, f"create schema if not exists {quote(schema)}")

    def replace_tables(self, schema: str, tables: dict[str, pa.Table]) -> None:
        """Replace whole tables in one transaction (used to load `raw`)."""
        with self.transaction() as con:
            self._execute(con, f"create schema if not exists {quote(schema)}")
            for name, data in tables.items():
                if not isinstance(data, pa.Table):
                    raise TypeError(f"table {name!r} must be a pyarrow.Table")
                existing = self._columns(con, schema, name)
                if list(existing) == [f.name for f in data.schema]:
                    # Same shape: empty it rather than drop it, so views built on it survive.
                    self._execute(con, f"delete from {qualified(schema, name)}")
                else:
                    self._execute(con, f"drop table if exists {qualified(schema, name)}")
                    self._execute(con, create_table_sql(schema, name, data.schema))
                self._load(con, schema, name, data.to_batches())

    def replace_partition(
        self,
        schema: str,
        table: str,
        as_of_date: dt.date | None,
        arrow_schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        key: dict[str, Any] | None = None,
    ) -> int:
        """Replace exactly the rows of `as_of_date` (narrowed by the `key` columns; with no
        date, the rows matching `key`) with `batches`.

        One transaction, serialised per table and date: on any error, including one
        raised while producing the batches, the previous rows stay. Returns the number
        of rows written. The table is created from `arrow_schema` on first use.
        """
        with self._replacing(schema, table, as_of_date, arrow_schema, key) as con:
            return self._load(con, schema, table, batches)

    def replace_partitions(self, as_of_date: dt.date, writes: list[PartitionWrite]) -> list[int]:
        """Replace one date's rows in several tables, in order, in one transaction: readers see
        all of them change at once, or none. Each write's `batches` is called only when its
        turn comes, so a later table may be filled from what writing an earlier one produced
        (reasons spooled while the predictions streamed). Returns the rows written to each."""
        for w in writes:
            self.ensure_table(w.schema, w.table, w.arrow_schema)
        with self.transaction() as con:
            return [self._replace_in(con, as_of_date, w) for w in writes]

    def _replace_in(self, con: Any, as_of_date: dt.date, w: PartitionWrite) -> int:
        """Inside a transaction: hold `w`'s table for the date, delete its rows, load its batches."""
        where, params = self._key_filter(as_of_date, w.key)
        self._lock(con, self._partition_lock(w.schema, w.table, as_of_date, w.key))
        self._execute(con, f"delete from {qualified(w.schema, w.table)} where {where}", params)
        return self._load(con, w.schema, w.table, w.batches())

    def replace_partition_select(
        self, schema: str, table: str, as_of_date: dt.date, arrow_schema: pa.Schema, select: str, params: list[Any]
    ) -> int:
        """Replace the rows of `as_of_date` with the rows of `select`, a query built from
        checked identifiers whose values are the bound `params` ($1 is the date).
        One transaction, serialised like `replace_partition`. Returns the row count."""
        if params[:1] != [as_of_date]:
            raise ValueError("the select's first parameter must be the as-of date")
        target = qualified(schema, table)
        names = ", ".join(quote(f.name) for f in arrow_schema)
        with self._replacing(schema, table, as_of_date, arrow_schema) as con:
            self._execute(con, f"insert into {target} ({names}) {select}", params)
            return int(self._value(con, f"select count(*) from {target} where as_of_date = $1", [as_of_date]))

    def move_partitions(
        self,
        as_of_date: dt.date,
        moves: list[tuple[tuple[str, str], tuple[str, str], pa.Schema]],
        key: dict[str, Any],
        replace_key: dict[str, Any] | None = None,
        writes: Sequence[PartitionWrite] = (),
    ) -> list[int]:
        """Publish staged rows: in one transaction, for each (source, target, schema), replace
        `as_of_date` in `target` (narrowed by `replace_key`) with the `schema` columns of the
        `source` rows of that date matching `key`, then delete those staged rows; then replace
        the date's rows of each of `writes` as `replace_partitions` does. Returns the rows
        moved into each target."""
        for _, target, arrow_schema in moves:
            self.ensure_table(*target, arrow_schema)
        for w in writes:
            self.ensure_table(w.schema, w.table, w.arrow_schema)
        moved = []
        with self.transaction() as con:
            for source, target, arrow_schema in moves:
                names = ", ".join(quote(f.name) for f in arrow_schema)
                target_where, target_params = self._key_filter(as_of_date, replace_key)
                self._lock(con, self._partition_lock(*target, as_of_date, replace_key))
                self._execute(con, f"delete from {qualified(*target)} where {target_where}", target_params)
                where, params = self._key_filter(as_of_date, key)
                self._execute(
                    con,
                    f"insert into {qualified(*target)} ({names}) select {names} from {qualified(*source)} where {where}",
                    params,
                )
                moved.append(
                    int(self._value(con, f"select count(*) from {qualified(*target)} where {target_where}", target_params))
                )
                self._execute(con, f"delete from {qualified(*source)} where {where}", params)
            for w in writes:
                self._replace_in(con, as_of_date, w)
        return moved

    def delete_partition(self, schema: str, table: str, as_of_date: dt.date, key: dict[str, Any] | None = None) -> int:
        """Delete the rows of `as_of_date` (narrowed by `key`) in one transaction, serialised
        like a replace. Returns how many rows went; a missing table has none."""
        with self.transaction() as con:
            if not self._columns(con, schema, table):
                return 0
            self._lock(con, self._partition_lock(schema, table, as_of_date, key))
            where, params = self._key_filter(as_of_date, key)
            n = int(self._value(con, f"select count(*) from {qualified(schema, table)} where {where}", params))
            self._execute(con, f"delete from {qualified(schema, table)} where {where}", params)
            return n

    def delete_dates(
        self,
        as_of_dates: Sequence[dt.date],
        tables: Sequence[tuple[str, str, dict[str, Any] | None]],
        log: tuple[str, str, pa.Table] | None = None,
    ) -> dict[str, int]:
        """In one transaction: delete the rows of every date from each (schema, table, key)
        that exists, and append the `log` rows to (schema, table). Returns the rows deleted
        per "schema.table"; all of it happens, or none of it."""
        if log is not None:
            self.ensure_table(log[0], log[1], log[2].schema)
        deleted: dict[str, int] = {}
        with self.transaction() as con:
            for schema, table, key in tables:
                if not self._columns(con, schema, table):
                    continue
                deleted[f"{schema}.{table}"] = 0
                for day in as_of_dates:
                    self._lock(con, self._partition_lock(schema, table, day, key))
                    where, params = self._key_filter(day, key)
                    n = int(self._value(con, f"select count(*) from {qualified(schema, table)} where {where}", params))
                    self._execute(con, f"delete from {qualified(schema, table)} where {where}", params)
                    deleted[f"{schema}.{table}"] += n
            if log is not None:
                self._load(con, log[0], log[1], log[2].to_batches())
        return deleted

    @contextmanager
    def _replacing(
        self, schema: str, table: str, as_of_date: dt.date | None, arrow_schema: pa.Schema, key: dict[str, Any] | None = None
    ) -> Iterator[Any]:
        """A transaction that holds the table's date (narrowed by `key`) and has already
        deleted its rows; whatever the caller writes replaces them, or nothing does."""
        where, params = self._key_filter(as_of_date, key)
        self.ensure_table(schema, table, arrow_schema)
        with self.transaction() as con:
            self._lock(con, self._partition_lock(schema, table, as_of_date, key))
            self._execute(con, f"delete from {qualified(schema, table)} where {where}", params)
            yield con

    def update_rows(self, schema: str, table: str, key: dict[str, Any], values: dict[str, Any]) -> int:
        """Set `values` on the rows matching `key`, in one transaction. Returns how many rows matched."""
        if not values:
            raise ValueError("nothing to update")
        with self.transaction() as con:
            if not self._columns(con, schema, table):
                return 0
            where, params = self._key_filter(None, key)
            assignments = []
            for column, value in values.items():
                params.append(value)
                assignments.append(f"{quote(check_identifier(column, 'column'))} = ${len(params)}")
            n = int(self._value(con, f"select count(*) from {qualified(schema, table)} where {where}", params[: len(key)]))
            if n:
                self._execute(con, f"update {qualified(schema, table)} set {', '.join(assignments)} where {where}", params)
            return n

    def append(self, schema: str, table: str, rows: pa.Table) -> None:
        """Append rows to a log table, creating it on first use."""
        self.ensure_table(schema, table, rows.schema)
        with self.transaction() as con:
            self._load(con, schema, table, rows.to_batches())

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        """Run one statement in its own transaction (DDL, fixes by hand, tests)."""
        with self.transaction() as con:
            self._execute(con, sql, params)

    def setup_read_only_role(self, role: str, password: str) -> None:
        """Create (or update) a login role for dashboards that can only read marts and predictions."""
        raise BatchpredError(
            "read-only roles need a PostgreSQL warehouse; with DuckDB, dashboards open the file read-only instead"
        )

    def ensure_table(self, schema: str, table: str, arrow_schema: pa.Schema) -> None:
        """Create the table on first use. An existing table is refused if its columns do not fit;
        nullable columns a later batchpred added are added to it (old rows hold null)."""
        with self.transaction() as con:
            existing = self._columns(con, schema, table)
            if existing and not self._check_shape(schema, table, existing, arrow_schema):
                return
            # "if not exists" is not safe against a concurrent creator in PostgreSQL:
            # serialise creators, and look again once it is our turn.
            self._lock(con, "batchpred:ddl")
            self._create_or_extend(con, schema, table, arrow_schema)

    def _create_or_extend(self, con: Any, schema: str, table: str, arrow_schema: pa.Schema) -> None:
        """Inside the DDL lock: create the table, or add the nullable columns it lacks."""
        existing = self._columns(con, schema, table)
        if existing:
            for f in self._check_shape(schema, table, existing, arrow_schema):
                self._execute(con, f"alter table {qualified(schema, table)} add column {quote(f.name)} {_column_type(f)}")
            return
        self._execute(con, f"create schema if not exists {quote(schema)}")
        self._execute(con, create_table_sql(schema, table, arrow_schema))
        if "as_of_date" in arrow_schema.names:
            self._index_dates(con, schema, table)

    def ensure_tables(self, tables: Sequence[DocumentedTable]) -> None:
        """Make each table exist, empty if new, with the columns of its `arrow_schema` (adding
        the nullable ones it lacks) and its table and column comments, in one transaction.

        Idempotent: a comment is written only where it differs, so a warehouse already set up
        is only read. Refuses (BatchpredError) a table whose columns do not fit, like
        `ensure_table`, and then changes nothing."""
        with self.transaction() as con:
            # One catalogue read: a table already so (every column there, every comment
            # right) needs no lock and no write; its columns' types are checked when written.
            current = self._comments(con, sorted({t.schema for t in tables}))
            stale = [(t, t.stale_comments(current.get((t.schema, t.table), {}))) for t in tables]
            if not any(comments for _, comments in stale):
                return
            self._lock(con, "batchpred:ddl")
            for t, comments in stale:
                self._create_or_extend(con, t.schema, t.table, t.arrow_schema)
                for column, text in comments.items():
                    target = f"table {qualified(t.schema, t.table)}"
                    if column is not None:
                        target = f"column {qualified(t.schema, t.table)}.{quote(column)}"
                    self._execute(con, f"comment on {target} is {sql_string(text)}")

    @staticmethod
    def _check_shape(schema: str, table: str, existing: dict[str, str], arrow_schema: pa.Schema) -> list[pa.Field]:
        """Refuse a table whose columns do not fit `arrow_schema`; return the nullable columns it
        lacks, which batchpred added in a later version and can add to it (empty for old rows)."""
        wanted = {f.name: arrow_family(f.type) for f in arrow_schema}
        have = {name: type_family(sql_type) for name, sql_type in existing.items()}
        addable = [f for f in arrow_schema if f.name not in have and f.nullable]
        missing = [c for c in wanted if c not in have and not arrow_schema.field(c).nullable]
        different = [f"{c} ({existing[c]}, needs {wanted[c]})" for c in wanted if c in have and have[c] != wanted[c]]
        if not (missing or different):
            return addable
        raise BatchpredError(
            f"{schema}.{table} exists with other columns than batchpred writes"
            + (f"; missing: {missing}" if missing else "")
            + (f"; of another type: {different}" if different else "")
            + ". It was made by another version of batchpred or by hand: rename or drop it, then score again"
        )

    def _index_dates(self, con: Any, schema: str, table: str) -> None:  # noqa: B027 - a deliberate default
        """Let a date's rows be found without reading every date (DuckDB's zone maps already do)."""

    def _lock(self, con: Any, name: str) -> None:  # noqa: B027 - a deliberate default, not abstract
        """Serialise writers of one partition (a no-op where the database has one writer)."""

    @staticmethod
    def _partition_lock(schema: str, table: str, as_of_date: dt.date | None, key: dict[str, Any] | None) -> str:
        """The name writers of one partition serialise on (see `_lock`)."""
        return f"{schema}.{table}/{as_of_date.isoformat() if as_of_date else ''}/{sorted((key or {}).items())}"

    @staticmethod
    def _key_filter(as_of_date: dt.date | None, key: dict[str, Any] | None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if as_of_date is not None:
            clauses.append("as_of_date = $1")
            params.append(as_of_date)
        for column, value in (key or {}).items():
            params.append(value)
            clauses.append(f"{quote(check_identifier(column, 'column'))} = ${len(params)}")
        if not clauses:
            raise ValueError("a replace needs an as-of date or a key")
        return " and ".join(clauses), params

    @staticmethod
    def _rebatch(batches: Iterable[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for offset in range(0, batch.num_rows, batch_size):
                yield batch.slice(offset, batch_size)


class CountedSource:
    """Batches for a bulk load that a database pulls through an Arrow stream: counts the rows,
    and keeps the exception the batches raised, which the database reports as its own error."""

    def __init__(self, first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> None:
        self.rows = 0
        self.failure: BaseException | None = None
        self.reader = pa.RecordBatchReader.from_batches(first.schema, self._batches(first, rest))

    def _batches(self, first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        self.rows += first.num_rows
        yield first
        try:
            for batch in rest:
                self.rows += batch.num_rows
                yield batch
        except GeneratorExit:
            raise
        except BaseException as exc:
            self.failure = exc
            raise

    def reraise(self) -> None:
        """Raise the batches' own exception, if that is why the load failed."""
        if self.failure is not None:
            raise self.failure from None
