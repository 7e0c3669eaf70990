"""The embedded warehouse: one DuckDB file under $BATCHPRED_HOME.

A DuckDB file has one read-write process at a time. batchpred opens it only for the
length of a write, or of one unit of work (`DuckDBWarehouse.session`), and every opener
(batchpred's own connections, dbt, Great Expectations) waits for another process's lock
the same way: `wait_for_file`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pipelines.adapters.warehouse.base import CountedSource, Warehouse, cancel_at_alarm, one_line
from pipelines.adapters.warehouse.retry import Busy, retry
from pipelines.adapters.warehouse.url import session_setup
from pipelines.domain.errors import NoWarehouse, WarehouseBusy
from pipelines.domain.identifiers import qualified, quote

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

# How long an opener waits for another process to release the file.
LOCK_WAIT_SECONDS = 60.0
# DuckDB's memory limit (its block cache, and where large sorts start to spill to disk),
# set on every connection batchpred opens: by default DuckDB caches every block it scans
# up to 80% of RAM, so memory grew with the rows (monitoring a 10M-row date held 2.9 GB;
# streaming 5M rows of 40 features, 1.1 GB).
MEMORY_LIMIT = "256MB"
# ... and while a partition streams through the scorer, whose reads and writes pass each block
# once: the cache only held blocks written, and at 256 MB a 10M-row scoring run with the shadow
# and the reasons peaked at 1.13 GB, at 64 MB 0.2 GB less and no slower.
STREAMING_MEMORY_LIMIT = "64MB"

T = TypeVar("T")
log = logging.getLogger(__name__)
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def lock_holder(message: str) -> str | None:
    """'PID 123 (/usr/bin/python3)' from a DuckDB lock error, or None if `message` is not one."""
    if "could not set lock" not in message.lower():
        return None
    found = _HOLDER.search(message)
    return f"PID {found['pid']} ({found['program']})" if found else "another process"


def causes(exc: BaseException) -> str:
    """The messages of an exception and of everything it was raised from (dbt and GX wrap the driver's error)."""
    messages: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        messages.append(str(current))
        current = current.__cause__ or current.__context__
    return "\n".join(messages)


def wait_for_file(path: Path, attempt: Callable[[], T]) -> T:
    """Run `attempt`, which opens the DuckDB file at `path`, waiting while another process holds it.

    `attempt` raises `retry.Busy` (see `lock_holder`) when it meets the lock. Gives up
    after LOCK_WAIT_SECONDS with WarehouseBusy naming the file and the holder.
    """
    return retry(
        attempt,
        seconds=LOCK_WAIT_SECONDS,
        waiting=f"waiting for the warehouse file {path}, held by {{reason}} (up to {{seconds:.0f}}s)",
        gave_up=lambda holder, seconds: WarehouseBusy(
            f"the warehouse file {path} is held by {holder}; waited {seconds:.0f}s. DuckDB allows one writer at a "
            "time: stop the other process (a dashboard or shell holding the file open), or run again later"
        ),
    )


class DuckDBWarehouse(Warehouse):
    """A DuckDB file. One process may write at a time; writers wait for the file lock."""

    kind = "duckdb"

    def __init__(self, path: Path, create: bool = False) -> None:
        self.path = Path(path)
        self.url = f"duckdb:///{self.path}"
        self.create = create
        self._sessions = 0
        self._held: duckdb.DuckDBPyConnection | None = None
        self._holding = threading.Lock()
        self._streams = 0  # partitions streaming now (_streaming)

    def __repr__(self) -> str:
        return f"DuckDBWarehouse({str(self.path)!r})"

    def _open(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.ResourceInUseException:
                # Another thread of this process is closing its last connection to the
                # file just now, and DuckDB has not let go of it yet: a moment's wait.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
            except duckdb.IOException as exc:
                holder = lock_holder(str(exc))
                if holder is None:
                    raise
                raise Busy(holder) from None

    @contextmanager
    def session(self) -> Iterator[None]:
        """Keep the file open from the first connection of a unit of work to its end. Opening
        the file costs tens of milliseconds (and its catalog is read again), and a date's
        steps open it some fifty times: within a session the connections after the first
        take under a millisecond. Other processes wait for the file while a session holds
        it, as they wait for a write; `when_free` lets go of it for dbt and GX, which open
        the file with their own configuration."""
        self._sessions += 1
        try:
            yield
        finally:
            self._sessions -= 1
            if not self._sessions:
                self._let_go()

    def _let_go(self) -> None:
        with self._holding:
            held, self._held = self._held, None
        if held is not None:
            held.close()

    def _hold(self) -> None:
        """Inside a session: open the file once, kept open until the session ends."""
        with self._holding:
            if self._sessions and self._held is None:
                self._held = wait_for_file(self.path, self._open)

    def when_free(self, work: Callable[[], T]) -> T:
        """Run `work` (dbt, Great Expectations) once no other process holds the file, waiting
        up to LOCK_WAIT_SECONDS. The file is probed first; a lock that `work` meets anyway
        (taken between the probe and its connect) surfaces in its error, which is retried.
        A session's open file is let go first (DuckDB refuses a second configuration of an
        open file), and taken again by the next connection."""
        self._let_go()

        def attempt() -> T:
            self._open().close()
            try:
                return work()
            except Exception as exc:
                holder = lock_holder(causes(exc))
                if holder:
                    raise Busy(holder) from None
                raise

        return wait_for_file(self.path, attempt)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection in UTC. Waits up to LOCK_WAIT_SECONDS for another process's lock.

        Refuses (NoWarehouse) a file that does not exist yet, unless the warehouse was
        opened to create it: reading an empty home must not leave an empty file behind.
        """
        if not self.path.exists():
            if not self.create:
                raise NoWarehouse(
                    f"there is no warehouse at {self.path}: no raw data to work on. Load your raw tables into it "
                    "(schema raw), or generate the demo business with `batchpred generate` (or run `make demo`)"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._hold()
        con = wait_for_file(self.path, self._open)
        try:
            for statement in session_setup("duckdb"):
                con.execute(statement)
            with self._holding:  # not while a stream starts or ends (_streaming)
                con.execute(f"set memory_limit = '{STREAMING_MEMORY_LIMIT if self._streams else MEMORY_LIMIT}'")
            with cancel_at_alarm(con.interrupt):
                yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.connect() as con:
            con.execute("begin")
            try:
                yield con
            except BaseException:
                con.execute("rollback")
                raise
            con.execute("commit")

    def _execute(self, con: Any, sql: str, params: list[Any] | None = None) -> None:
        log.debug("sql: %s", one_line(sql))
        con.execute(sql, params or [])

    def _value(self, con: Any, sql: str, params: list[Any] | None = None) -> Any:
        return con.execute(sql, params or []).fetchone()[0]

    def _columns(self, con: Any, schema: str, table: str) -> dict[str, str]:
        rows = con.execute(
            "select column_name, data_type from information_schema.columns where table_schema = $1 and table_name = $2 "
            "order by ordinal_position",
            [schema, table],
        ).fetchall()
        return {name: sql_type for name, sql_type in rows}

    def _comments(self, con: Any, schemas: Sequence[str]) -> dict[tuple[str, str], dict[str | None, str | None]]:
        found: dict[tuple[str, str], dict[str | None, str | None]] = {}
        where = "database_name = current_database() and list_contains($1, schema_name)"
        for schema, table, comment in con.execute(
            f"select schema_name, table_name, comment from duckdb_tables() where {where} "
            f"union all select schema_name, view_name, comment from duckdb_views() where {where}",
            [list(schemas)],
        ).fetchall():
            found[schema, table] = {None: comment}
        for schema, table, column, comment in con.execute(
            f"select schema_name, table_name, column_name, comment from duckdb_columns() where {where}", [list(schemas)]
        ).fetchall():
            found.setdefault((schema, table), {None: None})[column] = comment
        return found

    def _load(self, con: Any, schema: str, table: str, batches: Iterable[pa.RecordBatch]) -> int:
        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            return 0
        names = ", ".join(quote(f.name) for f in first.schema)
        # One INSERT that streams every batch: DuckDB writes full row groups to the file
        # as they fill, so the transaction's memory stays flat. (One INSERT per batch
        # kept the transaction's rows in memory: 0.8 GB for 5M prediction rows.)
        source = CountedSource(first, batches)
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

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        log.debug("sql: %s", one_line(sql))
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
        where: str = "",
        params: Iterable[Any] = (),
    ) -> Iterator[Iterator[pa.RecordBatch]]:
        import duckdb

        sql = self._partition_sql(schema, table, columns, where)
        with self.connect() as con:
            reader = None
            self._streaming(con, +1)
            try:
                # sql(...).to_arrow_reader streams; execute(...) would materialise the result first.
                reader = con.sql(sql, params=[as_of_date, *params]).to_arrow_reader(batch_size)
                yield iter(reader)
            finally:
                try:
                    if reader is not None:
                        reader.close()
                finally:
                    try:
                        self._streaming(con, -1)
                    except duckdb.Error:
                        log.warning("could not reset DuckDB's threads and memory limit after streaming")

    def _streaming(self, con: duckdb.DuckDBPyConnection, change: int) -> None:
        """Count a partition stream starting (+1) or ending (-1). While any streams, the
        database (these settings are global: the stream's writes, on their own connections,
        get them too) uses one thread, as the reader of the stream scores every batch with all
        the cores and DuckDB's own threads only take turns with it (3% slower), and its cache is
        STREAMING_MEMORY_LIMIT. When the last one ends, the defaults come back."""
        with self._holding:
            streams = self._streams + change
            if change < 0:  # an ending stream is counted off even if the settings fail: the next connection sets the limit
                self._streams = streams
            if streams:
                con.execute(f"set memory_limit = '{STREAMING_MEMORY_LIMIT}'; set threads = 1")
            else:
                con.execute(f"set memory_limit = '{MEMORY_LIMIT}'; reset threads")
            self._streams = streams  # a start counts once its settings are made

    def shard_predicate(self, columns: Iterable[str], shards: int, shard: int) -> str:
        # hash() takes any type, and several columns at once.
        return f"hash({', '.join(f't.{quote(c)}' for c in columns)}) % {int(shards)} = {int(shard)}"

    def drop_schema(self, schema: str) -> None:
        self.execute(f"drop schema if exists {quote(schema)} cascade")
