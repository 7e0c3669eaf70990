import datetime as dt

import pyarrow as pa
import pytest

from pipelines.adapters.warehouse import open_warehouse
from pipelines.domain.errors import BatchpredError

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
SCHEMA = pa.schema([("id", pa.int64()), ("as_of_date", pa.date32()), ("value", pa.float64())])


def batch(ids, day, value):
    return pa.RecordBatch.from_pydict({"id": ids, "as_of_date": [day] * len(ids), "value": [value] * len(ids)}, schema=SCHEMA)


@pytest.fixture
def wh(tmp_path):
    return open_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}", create=True)


def rows(wh, day):
    return wh.query("select id, value from predictions.t where as_of_date = $1 order by id", [day]).to_pylist()


def test_replace_partition_replaces_exactly_that_date(wh):
    wh.replace_partition("predictions", "t", D1, SCHEMA, [batch([1, 2], D1, 1.0)])
    wh.replace_partition("predictions", "t", D2, SCHEMA, [batch([1, 2, 3], D2, 2.0)])
    written = wh.replace_partition("predictions", "t", D1, SCHEMA, [batch([1], D1, 5.0), batch([2, 4], D1, 5.0)])
    assert written == 3
    assert rows(wh, D1) == [{"id": 1, "value": 5.0}, {"id": 2, "value": 5.0}, {"id": 4, "value": 5.0}]
    assert len(rows(wh, D2)) == 3


def test_a_failure_while_writing_leaves_the_old_rows(wh):
    wh.replace_partition("predictions", "t", D1, SCHEMA, [batch([1, 2], D1, 1.0)])

    def failing():
        yield batch([7, 8], D1, 9.0)
        raise RuntimeError("scoring blew up half way")

    with pytest.raises(RuntimeError, match="half way"):
        wh.replace_partition("predictions", "t", D1, SCHEMA, failing())
    assert rows(wh, D1) == [{"id": 1, "value": 1.0}, {"id": 2, "value": 1.0}]


def test_read_partition_streams_bounded_batches(wh):
    wh.replace_partition("predictions", "t", D1, SCHEMA, [batch(list(range(1000)), D1, 1.0)])
    wh.replace_partition("predictions", "t", D2, SCHEMA, [batch([1], D2, 1.0)])
    with wh.read_partition("predictions", "t", D1, ["id", "value"], batch_size=128) as reader:
        sizes = [b.num_rows for b in reader]
    assert sum(sizes) == 1000
    assert max(sizes) <= 128


def test_duckdb_caps_its_cache_and_streams_with_one_thread_and_a_smaller_cache_then_restores_them(wh):
    wh.replace_partition("predictions", "t", D1, SCHEMA, [batch([1, 2, 3], D1, 1.0)])

    def current(con):
        return con.execute("select current_setting('threads'), current_setting('memory_limit')").fetchone()

    with wh.connect() as con:  # keeps the database open, so its settings outlive the read's connection
        before = current(con)
        with wh.read_partition("predictions", "t", D1, ["id"], 2) as batches:
            during = current(con)
            with wh.connect() as writer:  # as the scorer's write opens its own while the stream runs
                during_writer = current(writer)
            assert sum(b.num_rows for b in batches) == 3
        assert current(con) == before
        with wh.connect() as later:
            assert current(later) == before
    assert during[0] == 1 != before[0]
    assert before[1] == "244.1 MiB"  # 256 MB on every connection (MEMORY_LIMIT)
    assert during[1] == during_writer[1] == "61.0 MiB"  # 64 MB while a partition streams (STREAMING_MEMORY_LIMIT)


def test_the_smaller_cache_lasts_until_the_last_of_overlapping_streams_ends(wh):
    wh.replace_partition("predictions", "t", D1, SCHEMA, [batch([1, 2, 3], D1, 1.0)])

    def limit(con):
        return con.execute("select current_setting('memory_limit')").fetchone()[0]

    with wh.connect() as con:
        with wh.read_partition("predictions", "t", D1, ["id"], 2) as first:
            with wh.read_partition("predictions", "t", D1, ["id"], 2) as second:
                assert sum(b.num_rows for b in second) == 3
            assert limit(con) == "61.0 MiB"  # the first still streams
            with wh.connect() as writer:
                assert limit(writer) == "61.0 MiB"
            assert sum(b.num_rows for b in first) == 3
        assert limit(con) == "244.1 MiB"


def test_replace_tables_is_all_or_nothing(wh):
    wh.replace_tables("raw", {"a": pa.table({"x": [1]})})
    with pytest.raises(TypeError, match="pyarrow.Table"):
        wh.replace_tables("raw", {"a": pa.table({"x": [2, 3]}), "b": "not a table"})
    assert wh.query("select x from raw.a").to_pylist() == [{"x": 1}]


def test_table_columns(wh):
    assert wh.table_columns("predictions", "t") is None
    wh.replace_partition("predictions", "t", D1, SCHEMA, [batch([1], D1, 1.0)])
    assert list(wh.table_columns("predictions", "t")) == ["id", "as_of_date", "value"]


@pytest.mark.parametrize("url", ["duckdb:///:memory:", "mysql://user@host/db"])
def test_unsupported_urls_are_refused_with_the_variable_named(url):
    with pytest.raises(BatchpredError, match="BATCHPRED_WAREHOUSE_URL|must name a file"):
        open_warehouse(url)


def test_a_table_with_other_columns_is_refused_naming_them(wh):
    old = pa.schema([("id", pa.int64()), ("as_of_date", pa.date32()), ("value", pa.string())])  # value was text once
    wh.replace_partition(
        "predictions", "t", D1, old, [pa.RecordBatch.from_pydict({"id": [1], "as_of_date": [D1], "value": ["x"]}, schema=old)]
    )
    with pytest.raises(BatchpredError, match=r"predictions.t exists with other columns.*value \(VARCHAR, needs float\)"):
        wh.replace_partition("predictions", "t", D1, SCHEMA, [batch([1], D1, 1.0)])
    assert wh.query("select value from predictions.t").to_pylist() == [{"value": "x"}]


def test_read_only_roles_need_postgres(tmp_path):
    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}", create=True)
    with pytest.raises(BatchpredError, match="PostgreSQL"):
        warehouse.setup_read_only_role("dashboards", "pw-for-tests")  # the role of tests/integration/test_bi_role.py
