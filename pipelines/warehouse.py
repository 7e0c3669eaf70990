"""The warehouse adapter: the only Python that writes SQL.

Arrow in, Arrow out. Every write that matters is atomic: a partition (one as-of
date) or a set of raw tables is replaced inside one transaction, so a reader sees
the old rows or the new ones, never a mix and never none.

Identifiers are checked and quoted (`pipelines.identifiers`); values such as dates
travel as bound parameters, never pasted into SQL text.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy.engine import make_url

from pipelines.errors import BatchpredError, WarehouseBusy
from pipelines.identifiers import check_identifier, qualified, quote

SCHEMAS = ("raw", "analytics", "predictions", "monitoring", "marts")

# How long a writer waits for another process to release the DuckDB file.
LOCK_WAIT_SECONDS = 60.0


def open_warehouse(url: str) -> DuckDBWarehouse:
    """Return the adapter for a warehouse URL (`duckdb:///path/to/file.duckdb`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "duckdb":
        if not parsed.database or parsed.database == ":memory:":
            raise BatchpredError(f"the DuckDB warehouse URL must name a file, e.g. duckdb:///path/warehouse.duckdb; got {url!r}")
        return DuckDBWarehouse(Path(parsed.database))
    raise BatchpredError(
        f"unsupported warehouse URL scheme {parsed.drivername!r} in BATCHPRED_WAREHOUSE_URL; use duckdb:///path/warehouse.duckdb"
    )


class DuckDBWarehouse:
    """A DuckDB file. One process may write at a time; writers wait for the file lock."""

    kind = "duckdb"

    def __init__(self, path: Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DuckDBWarehouse({str(self.path)!r})"

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection. Waits up to LOCK_WAIT_SECONDS for another process's lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        delay = 0.1
        while True:
            try:
                con = duckdb.connect(str(self.path))
                break
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
            yield con
        finally:
            con.close()

    # -- reads -------------------------------------------------------------

    def table_columns(self, schema: str, table: str) -> dict[str, str] | None:
        """Column name -> SQL type, or None when the table does not exist."""
        with self.connect() as con:
            rows = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                [schema, table],
            ).fetchall()
        return dict(rows) or None

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run a small read and return it whole. For reports and tests, not partitions."""
        with self.connect() as con:
            return con.sql(sql, params=params or None).to_arrow_table()

    @contextmanager
    def read_partition(
        self,
        schema: str,
        table: str,
        as_of_date: dt.date,
        columns: Iterable[str],
        batch_size: int,
    ) -> Iterator[pa.RecordBatchReader]:
        """Stream the rows of one as-of date as Arrow record batches of at most `batch_size`.

        Memory is bounded by the batch size: DuckDB's streaming reader does not
        materialise the result.
        """
        select = ", ".join(quote(c) for c in columns)
        sql = f"select {select} from {qualified(schema, table)} where as_of_date = $as_of_date"
        with self.connect() as con:
            relation = con.sql(sql, params={"as_of_date": as_of_date})
            reader = relation.to_arrow_reader(batch_size)
            try:
                yield reader
            finally:
                reader.close()

    # -- writes ------------------------------------------------------------

    def ensure_schemas(self) -> None:
        with self.connect() as con:
            for schema in SCHEMAS:
                con.execute(f"create schema if not exists {quote(schema)}")

    def replace_tables(self, schema: str, tables: dict[str, pa.Table]) -> None:
        """Replace whole tables in one transaction (used to load `raw`)."""
        with self.connect() as con:
            con.execute("begin")
            try:
                con.execute(f"create schema if not exists {quote(schema)}")
                for name, data in tables.items():
                    con.register("_incoming", data)
                    con.execute(f"create or replace table {qualified(schema, name)} as select * from _incoming")
                    con.unregister("_incoming")
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise

    def replace_partition(
        self,
        schema: str,
        table: str,
        as_of_date: dt.date,
        arrow_schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        partition_filter: dict[str, Any] | None = None,
    ) -> int:
        """Replace exactly the rows of `as_of_date` (and `partition_filter`) with `batches`.

        One transaction: on any error, including one raised while producing the
        batches, the previous rows stay. Returns the number of rows written.
        The table is created from `arrow_schema` the first time.
        """
        target = qualified(schema, table)
        names = ", ".join(quote(f.name) for f in arrow_schema)
        where = ["as_of_date = ?"]
        params: list[Any] = [as_of_date]
        for column, value in (partition_filter or {}).items():
            where.append(f"{quote(column)} = ?")
            params.append(value)
        written = 0
        with self.connect() as con:
            con.execute(f"create schema if not exists {quote(schema)}")
            con.register("_empty", pa.Table.from_batches([], schema=arrow_schema))
            con.execute(f"create table if not exists {target} as select * from _empty")
            con.unregister("_empty")
            con.execute("begin")
            try:
                con.execute(f"delete from {target} where {' and '.join(where)}", params)
                for batch in batches:
                    con.register("_batch", batch)
                    con.execute(f"insert into {target} ({names}) select {names} from _batch")
                    con.unregister("_batch")
                    written += batch.num_rows
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
        return written

    def append(self, schema: str, table: str, rows: pa.Table) -> None:
        """Append rows to a log table, creating it on first use."""
        target = qualified(schema, table)
        names = ", ".join(quote(f.name) for f in rows.schema)
        with self.connect() as con:
            con.execute(f"create schema if not exists {quote(schema)}")
            con.register("_rows", rows)
            con.execute(f"create table if not exists {target} as select * from _rows limit 0")
            con.execute(f"insert into {target} ({names}) select {names} from _rows")
            con.unregister("_rows")

    def update_where(self, schema: str, table: str, key: dict[str, Any], values: dict[str, Any]) -> int:
        """UPDATE table SET values WHERE key; returns rows changed."""
        sets = ", ".join(f"{quote(check_identifier(c, 'column'))} = ?" for c in values)
        where = " and ".join(f"{quote(check_identifier(c, 'column'))} = ?" for c in key)
        with self.connect() as con:
            cursor = con.execute(
                f"update {qualified(schema, table)} set {sets} where {where}",
                [*values.values(), *key.values()],
            )
            return cursor.fetchone()[0]
