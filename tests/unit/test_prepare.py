"""The tables every model shares exist from the first command on a warehouse (`Resources.ready`,
which runs `tables.prepare`), so the queries on them never ask whether they are there."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.adapters.resources import Resources
from pipelines.adapters.warehouse import health, queries, tables
from pipelines.config.settings import Settings
from pipelines.domain.errors import NoWarehouse


@pytest.fixture
def fresh(tmp_path):
    """Resources on a DuckDB file with only a raw schema in it, as a user's own load leaves it."""
    settings = Settings.from_env({"BATCHPRED_HOME": str(tmp_path)})
    Resources.from_settings(settings, create=True).warehouse.execute("create schema raw")
    return Resources.from_settings(settings)


def test_ready_makes_every_shared_table_with_its_comments(fresh):
    assert all(fresh.warehouse.table_columns(t.schema, t.name) is None for t in tables.SHARED)
    fresh.ready()
    assert all(fresh.warehouse.table_columns(t.schema, t.name) is not None for t in tables.SHARED)
    commented = fresh.warehouse.query(
        "select schema_name, table_name from duckdb_tables() where comment is not null"
    ).to_pylist()
    assert {(t.schema, t.name) for t in tables.SHARED} <= {(r["schema_name"], r["table_name"]) for r in commented}


def test_reads_on_a_ready_warehouse_find_nothing_rather_than_fail(fresh):
    fresh.ready()
    assert health.pending_deliveries(fresh.warehouse, "churn") == []
    assert queries.latest_statuses(fresh.warehouse, "churn", dt.date(2026, 1, 1), dt.date(2026, 1, 31)) == {}
    assert health.recent_attempts(fresh.warehouse, "churn", dt.date(2026, 1, 31)).num_rows == 0


def test_ready_twice_changes_nothing(fresh):
    listing = "select schema_name, table_name, comment from duckdb_tables() order by 1, 2"
    fresh.ready()
    before = fresh.warehouse.query(listing).to_pylist()
    fresh.ready()
    assert fresh.warehouse.query(listing).to_pylist() == before


def test_a_missing_warehouse_file_is_refused_not_created(tmp_path):
    res = Resources.from_settings(Settings.from_env({"BATCHPRED_HOME": str(tmp_path)}))
    with pytest.raises(NoWarehouse, match="there is no warehouse"):
        res.ready()
    assert not (tmp_path / "warehouse.duckdb").exists()
