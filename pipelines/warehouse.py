"""The warehouse adapter: the only Python that writes SQL.

Arrow in, Arrow out, on DuckDB (embedded) or PostgreSQL (production), chosen by
one URL. Every write that matters is atomic: a partition (one as-of date) or a set
of raw tables is replaced inside one transaction, so a reader sees the old rows or
the new ones, never a mix and never none.

Identifiers are checked and quoted (`pipelines.identifiers`). Values such as dates
travel as bound parameters ($1, $2, ... in both databases), never pasted into SQL.
"""

from __future__ import annotations

import abc
import datetime as dt
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import make_url

from pipelines.errors import BatchpredError, WarehouseBusy
from pipelines.identifiers import check_identifier, qualified, quote

SCHEMAS = ("raw", "analytics", "predictions", "monitoring", "marts")

# How long a writer waits for another process to release a DuckDB file.
LOCK_WAIT_SECONDS = 60.0
# DuckDB's memory limit while a partition streams (see DuckDBWarehouse.read_partition).
STREAM_MEMORY_LIMIT = "256MB"
# How long a connection keeps retrying a PostgreSQL server that does not answer.
CONNECT_WAIT_SECONDS = 60.0
# libpq messages that no amount of waiting will fix.
_PERMANENT = ("password authentication failed", "does not exist", "no pg_hba.conf entry")
# How long after a process alarm (a task timeout) a statement still running is cancelled.
CANCEL_GRACE_SECONDS = 1.0

log = logging.getLogger(__name__)


def open_warehouse(url: str) -> Warehouse:
    """The adapter for a warehouse URL: `duckdb:///path/file.duckdb` or `postgresql://user@host:5432/db`."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "duckdb":
        if not parsed.database or parsed.database == ":memory:":
            raise BatchpredError(
                f"BATCHPRED_WAREHOUSE_URL must name a DuckDB file, e.g. duckdb:///path/warehouse.duckdb; got {safe_url(url)!r}"
            )
        return DuckDBWarehouse(Path(parsed.database))
    if backend == "postgresql":
        return PostgresWarehouse(url)
    raise BatchpredError(
        f"unsupported scheme {parsed.drivername!r} in BATCHPRED_WAREHOUSE_URL; "
        "use duckdb:///path/warehouse.duckdb or postgresql://user@host:5432/database"
    )


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://", 1)[0] + "://***"


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


class Warehouse(abc.ABC):
    """What every warehouse offers. Subclasses supply connections, streaming and bulk load."""

    kind: str

    @abc.abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[Any]: ...

    @abc.abstractmethod
    def _execute(self, con: Any, sql: str, params: list[Any] | None = None) -> None: ...

    @abc.abstractmethod
    def _value(self, con: Any, sql: str, params: list[Any] | None = None) -> Any:
        """The first column of the first row of a query run inside a transaction."""
        ...

    @abc.abstractmethod
    def _load(self, con: Any, schema: str, table: str, batches: Iterable[pa.RecordBatch]) -> int: ...

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

        `where` is an extra predicate built from checked identifiers (see `shard_predicate`
        and `pipelines.quarantine`); its values are `params`, numbered from $2.
        Memory is bounded by the batch size: neither database materialises the result.
        """
        ...

    @abc.abstractmethod
    def shard_predicate(self, column: str, shards: int, shard: int) -> str:
        """SQL that is true for the rows of `shard` when rows are split by a hash of `column`."""
        ...

    # -- shared SQL ----------------------------------------------------------

    @staticmethod
    def _partition_sql(schema: str, table: str, columns: Iterable[str], where: str) -> str:
        select = ", ".join(quote(c) for c in columns)
        return f"select {select} from {qualified(schema, table)} where as_of_date = $1" + (f" and {where}" if where else "")

    def table_columns(self, schema: str, table: str) -> dict[str, str] | None:
        """Column name -> SQL type, or None when the table does not exist."""
        rows = self.query(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = $1 and table_name = $2 order by ordinal_position",
            [schema, table],
        ).to_pylist()
        return {r["column_name"]: r["data_type"] for r in rows} or None

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
                if existing == [f.name for f in data.schema]:
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
        as_of_date: dt.date,
        arrow_schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        key: dict[str, Any] | None = None,
    ) -> int:
        """Replace exactly the rows of `as_of_date` (narrowed by the `key` columns) with `batches`.

        One transaction, serialised per table and date: on any error, including one
        raised while producing the batches, the previous rows stay. Returns the number
        of rows written. The table is created from `arrow_schema` on first use.
        """
        with self._replacing(schema, table, as_of_date, arrow_schema, key) as con:
            return self._load(con, schema, table, batches)

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

    def move_partition(
        self,
        source: tuple[str, str],
        target: tuple[str, str],
        as_of_date: dt.date,
        arrow_schema: pa.Schema,
        key: dict[str, Any],
    ) -> None:
        """Publish staged rows: in one transaction, replace `as_of_date` in `target` with the
        `arrow_schema` columns of the `source` rows matching `key`, then delete those staged rows."""
        names = ", ".join(quote(f.name) for f in arrow_schema)
        where, params = self._key_filter(as_of_date, key)
        with self._replacing(*target, as_of_date, arrow_schema) as con:
            self._execute(
                con, f"insert into {qualified(*target)} ({names}) select {names} from {qualified(*source)} where {where}", params
            )
            self._execute(con, f"delete from {qualified(*source)} where {where}", params)

    @contextmanager
    def _replacing(
        self, schema: str, table: str, as_of_date: dt.date, arrow_schema: pa.Schema, key: dict[str, Any] | None = None
    ) -> Iterator[Any]:
        """A transaction that holds the table's date (narrowed by `key`) and has already
        deleted its rows; whatever the caller writes replaces them, or nothing does."""
        where, params = self._key_filter(as_of_date, key)
        self._ensure_table(schema, table, arrow_schema)
        with self.transaction() as con:
            self._lock(con, f"{schema}.{table}/{as_of_date.isoformat()}")
            self._execute(con, f"delete from {qualified(schema, table)} where {where}", params)
            yield con

    def append(self, schema: str, table: str, rows: pa.Table) -> None:
        """Append rows to a log table, creating it on first use."""
        self._ensure_table(schema, table, rows.schema)
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

    def _ensure_table(self, schema: str, table: str, arrow_schema: pa.Schema) -> None:
        with self.transaction() as con:
            # "if not exists" is not safe against a concurrent creator in PostgreSQL.
            self._lock(con, "batchpred:ddl")
            self._execute(con, f"create schema if not exists {quote(schema)}")
            self._execute(con, create_table_sql(schema, table, arrow_schema))
            if "as_of_date" in arrow_schema.names:
                self._index_dates(con, schema, table)

    def _index_dates(self, con: Any, schema: str, table: str) -> None:  # noqa: B027 - a deliberate default
        """Let a date's rows be found without reading every date (DuckDB's zone maps already do)."""

    def _lock(self, con: Any, name: str) -> None:  # noqa: B027 - a deliberate default, not abstract
        """Serialise writers of one partition (a no-op where the database has one writer)."""

    @staticmethod
    def _key_filter(as_of_date: dt.date, key: dict[str, Any] | None) -> tuple[str, list[Any]]:
        clauses, params = ["as_of_date = $1"], [as_of_date]
        for i, (column, value) in enumerate((key or {}).items(), 2):
            clauses.append(f"{quote(check_identifier(column, 'column'))} = ${i}")
            params.append(value)
        return " and ".join(clauses), params

    @staticmethod
    def _rebatch(batches: Iterable[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for offset in range(0, batch.num_rows, batch_size):
                yield batch.slice(offset, batch_size)


class _CountedSource:
    """Batches for a bulk load that a database pulls through an Arrow stream: counts the rows,
    and keeps the exception the batches raised, which the database reports as its own error."""

    def __init__(self, first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]):
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


class DuckDBWarehouse(Warehouse):
    """A DuckDB file. One process may write at a time; writers wait for the file lock."""

    kind = "duckdb"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.url = f"duckdb:///{self.path}"

    def __repr__(self) -> str:
        return f"DuckDBWarehouse({str(self.path)!r})"

    @contextmanager
    def connect(self):
        """A short-lived connection. Waits up to LOCK_WAIT_SECONDS for another process's lock."""
        import duckdb

        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        delay = 0.1
        while True:
            try:
                con = duckdb.connect(str(self.path))
                break
            except duckdb.ResourceInUseException:
                # Another thread of this process is closing its last connection to the
                # file just now, and DuckDB has not let go of it yet: a moment's wait.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    raise WarehouseBusy(
                        f"the warehouse file {self.path} is held by another process; DuckDB allows one writer at a time ({exc})"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        try:
            with cancel_at_alarm(con.interrupt):
                yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self):
        with self.connect() as con:
            con.execute("begin")
            try:
                yield con
            except BaseException:
                con.execute("rollback")
                raise
            con.execute("commit")

    def _execute(self, con, sql, params=None):
        con.execute(sql, params or [])

    def _value(self, con, sql, params=None):
        return con.execute(sql, params or []).fetchone()[0]

    def _columns(self, con, schema, table):
        rows = con.execute(
            "select column_name from information_schema.columns where table_schema = $1 and table_name = $2 "
            "order by ordinal_position",
            [schema, table],
        ).fetchall()
        return [r[0] for r in rows]

    def _load(self, con, schema, table, batches):
        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            return 0
        names = ", ".join(quote(f.name) for f in first.schema)
        # One INSERT that streams every batch: DuckDB writes full row groups to the file
        # as they fill, so the transaction's memory stays flat. (One INSERT per batch
        # kept the transaction's rows in memory: 0.8 GB for 5M prediction rows.)
        source = _CountedSource(first, batches)
        con.register("_batches", source.reader)
        try:
            con.execute(f"insert into {qualified(schema, table)} ({names}) select {names} from _batches")
        except BaseException:
            # No unregister here: it would fail in the aborted transaction and hide the
            # error. The caller rolls back and closes the connection, which drops the view.
            source.reraise()
            raise
        con.unregister("_batches")
        return source.rows

    def query(self, sql, params=None):
        with self.connect() as con:
            return con.sql(sql, params=params or None).to_arrow_table()

    @contextmanager
    def read_partition(self, schema, table, as_of_date, columns, batch_size, where="", params=()):
        import duckdb

        sql = self._partition_sql(schema, table, columns, where)
        with self.connect() as con:
            # While a partition streams, for this database in this process (DuckDB's
            # defaults come back after; batchpred sets these nowhere else):
            # - cap the block cache: DuckDB keeps every block it scans cached up to 80% of
            #   RAM by default, 1.1 GB after streaming 5M rows of 40 features, so memory
            #   would grow with the row count;
            # - use one thread: the reader of the stream scores every batch with all the
            #   cores, and DuckDB's own threads only take turns with it (3% slower).
            reader = None
            try:
                con.execute(f"set memory_limit = '{STREAM_MEMORY_LIMIT}'")
                con.execute("set threads = 1")
                # sql(...).to_arrow_reader streams; execute(...) would materialise the result first.
                reader = con.sql(sql, params=[as_of_date, *params]).to_arrow_reader(batch_size)
                yield iter(reader)
            finally:
                if reader is not None:
                    reader.close()
                for setting in ("memory_limit", "threads"):
                    try:
                        con.execute(f"reset {setting}")
                    except duckdb.Error:
                        log.warning("could not reset DuckDB's %s", setting)

    def shard_predicate(self, column, shards, shard):
        return f"hash({quote(column)}) % {int(shards)} = {int(shard)}"


def _literal_text(value: Any) -> tuple[str | None, str]:
    """A bound value as (text, PostgreSQL type): the type ADBC would have bound it as."""
    if value is None:
        return None, "text"
    if isinstance(value, bool):
        return ("true" if value else "false"), "boolean"
    if isinstance(value, int):
        return str(value), "bigint"
    if isinstance(value, float):
        return repr(value).replace("inf", "Infinity").replace("nan", "NaN"), "double precision"
    if isinstance(value, str):
        return value, "text"
    if isinstance(value, dt.datetime):
        return value.isoformat(), "timestamp with time zone" if value.tzinfo else "timestamp"
    if isinstance(value, dt.date):
        return value.isoformat(), "date"
    raise BatchpredError(f"cannot pass {value!r} ({type(value).__name__}) as a query parameter")


class PostgresWarehouse(Warehouse):
    """A PostgreSQL database, through ADBC: streaming Arrow reads and binary COPY loads."""

    kind = "postgres"

    def __init__(self, url: str):
        parsed = make_url(url)
        # ADBC takes a libpq URI: the SQLAlchemy driver suffix (+psycopg, ...) is not part of it.
        self.url = parsed.set(drivername="postgresql").render_as_string(hide_password=False)

    def __repr__(self) -> str:
        return f"PostgresWarehouse({safe_url(self.url)!r})"

    @contextmanager
    def connect(self):
        """A connection. A server that does not answer is retried with backoff for up to
        CONNECT_WAIT_SECONDS; a refused login or a missing database fails at once."""
        import adbc_driver_manager
        import adbc_driver_postgresql.dbapi as adbc

        deadline = time.monotonic() + CONNECT_WAIT_SECONDS
        delay = 0.2
        while True:
            try:
                con = adbc.connect(self.url)
                break
            except adbc_driver_manager.Error as exc:
                reason = str(exc).replace(make_url(self.url).password or "\0", "***").splitlines()[0]
                if any(marker in reason for marker in _PERMANENT):
                    raise BatchpredError(f"the warehouse at {safe_url(self.url)} refused the connection: {reason}") from None
                if time.monotonic() > deadline:
                    raise WarehouseBusy(
                        f"cannot reach the warehouse at {safe_url(self.url)} after {CONNECT_WAIT_SECONDS:.0f}s: {reason}"
                    ) from None
                log.warning("warehouse %s unreachable (%s); retrying in %.1fs", safe_url(self.url), reason, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        try:
            with cancel_at_alarm(con.adbc_cancel):
                yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self):
        with self.connect() as con:  # ADBC's DB-API connections start with autocommit off
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    def _execute(self, con, sql, params=None):
        with con.cursor() as cur:
            cur.execute(sql, parameters=tuple(params) if params else None)

    def _value(self, con, sql, params=None):
        with con.cursor() as cur:
            cur.execute(sql, parameters=tuple(params) if params else None)
            return cur.fetchone()[0]

    def _columns(self, con, schema, table):
        with con.cursor() as cur:
            cur.execute(
                "select column_name from information_schema.columns where table_schema = $1 and table_name = $2 "
                "order by ordinal_position",
                parameters=(schema, table),
            )
            return [r[0] for r in cur.fetchall()]

    def _load(self, con, schema, table, batches):
        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            return 0
        source = _CountedSource(first, batches)
        with con.cursor() as cur:
            try:
                cur.adbc_ingest(table, source.reader, mode="append", db_schema_name=schema)
            except BaseException:
                # The driver reports a failing batch source as its own I/O error;
                # raise what actually went wrong, with its type and message.
                source.reraise()
                raise
        return source.rows

    def query(self, sql, params=None):
        with self.connect() as con, con.cursor() as cur:
            cur.execute(sql, parameters=tuple(params) if params else None)
            table = cur.fetch_arrow_table()
            con.commit()
            return table

    @contextmanager
    def read_partition(self, schema, table, as_of_date, columns, batch_size, where="", params=()):
        sql = self._partition_sql(schema, table, columns, where)
        with self.connect() as con, con.cursor() as cur:
            # ADBC streams a result (COPY, batches of ~16 MB) only for a statement without
            # bind parameters; with them libpq holds the whole result in memory and hands
            # it over as one batch (1.8 GB for 1M rows of 40 features). So the values
            # become typed literals, quoted by the server, never by Python.
            cur.execute(self._inline_parameters(cur, sql, [as_of_date, *params]))
            reader = cur.fetch_record_batch()
            try:
                yield self._rebatch(reader, batch_size)
            finally:
                reader.close()
                con.rollback()

    @staticmethod
    def _inline_parameters(cur, sql: str, params: list[Any]) -> str:
        """`sql` with each $n replaced by the n-th value as a typed literal, e.g. '2026-01-31'::date.

        Each value is sent as a bound text parameter and quoted by the server's
        quote_literal; the cast gives it the type the bound parameter would have had."""
        typed = [_literal_text(value) for value in params]
        texts = [text for text, _ in typed]
        if texts:
            cur.execute(
                "select " + ", ".join(f"quote_literal(${i}::text)" for i in range(1, len(texts) + 1)),
                parameters=tuple(texts),
            )
            quoted = cur.fetchone()
        literals = ["null" if text is None else f"{quoted[i]}::{sql_type}" for i, (text, sql_type) in enumerate(typed)]

        def literal(match: re.Match) -> str:
            number = int(match.group(1))
            if not 1 <= number <= len(literals):
                raise ValueError(f"the query uses ${number} but has {len(literals)} parameter(s)")
            return literals[number - 1]

        return re.sub(r"\$(\d+)", literal, sql)

    def shard_predicate(self, column, shards, shard):
        return f"(hashtextextended({quote(column)}::text, 0) & 9223372036854775807) % {int(shards)} = {int(shard)}"

    def _lock(self, con, name):
        self._execute(con, "select pg_advisory_xact_lock(hashtextextended($1, 0))", [name])

    def _index_dates(self, con, schema, table):
        # Every write deletes one date and every read selects one: without this index each
        # would scan the table's whole history.
        index = quote(check_identifier(f"{table}_as_of_date"[:63], "index name"))
        self._execute(con, f"create index if not exists {index} on {qualified(schema, table)} (as_of_date)")

    def setup_read_only_role(self, role: str, password: str) -> None:
        """Create (or update) `role`: it may log in and SELECT every table and view in
        `marts` and `predictions`, including those created later by this pipeline's
        role, and nothing else: no writes, no DDL, no temporary tables, nothing in
        `raw` or `analytics`. Running it again is harmless.

        Temporary tables are refused by revoking TEMPORARY on this database from
        PUBLIC (granting it back to the pipeline's own role), so use a database
        dedicated to the warehouse.
        """
        check_identifier(role, "read-only role name")
        if not password:
            raise BatchpredError("the read-only role needs a password (set BATCHPRED_BI_PASSWORD)")
        self.ensure_schemas()
        with self.transaction() as con:
            with con.cursor() as cur:
                cur.execute("select count(*) from pg_roles where rolname = $1", parameters=(role,))
                exists = cur.fetchone()[0] > 0
                # Utility statements take no bind parameters: the server quotes the password (%L).
                verb = "alter" if exists else "create"
                cur.execute(f"select format('{verb} role %I login password %L', $1::text, $2::text)", parameters=(role, password))
                statement = cur.fetchone()[0]
            self._execute(con, statement)
            r = quote(role)
            self._execute(con, f"alter role {r} set default_transaction_read_only = on")
            with con.cursor() as cur:
                cur.execute("select current_database(), current_user")
                database, owner = cur.fetchone()
            self._execute(con, f"grant connect on database {quote(database)} to {r}")
            self._execute(con, f"revoke temporary on database {quote(database)} from public")
            self._execute(con, f"grant temporary on database {quote(database)} to {quote(owner)}")
            for schema in SCHEMAS:
                self._execute(con, f"revoke all on schema {quote(schema)} from {r}")
            self._execute(con, f"revoke create on schema public from {r}")
            for schema in ("marts", "predictions"):
                s = quote(schema)
                self._execute(con, f"grant usage on schema {s} to {r}")
                self._execute(con, f"grant select on all tables in schema {s} to {r}")
                self._execute(con, f"alter default privileges in schema {s} grant select on tables to {r}")
