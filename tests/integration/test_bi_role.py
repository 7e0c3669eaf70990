"""The read-only role dashboards log in with, on a real PostgreSQL."""

import psycopg
import pytest
from conftest import resources
from sqlalchemy.engine import make_url

from pipelines.adapters.warehouse import open_warehouse
from tests.services import create_database

ROLE, PASSWORD = "dashboards", "pw-for-tests"


@pytest.fixture
def warehouse_with_role(postgres, pg_base):
    from tests.conftest import PG_TEMPLATE

    url = create_database(postgres, "bi_role_test", template=PG_TEMPLATE)
    warehouse = open_warehouse(url)
    warehouse.setup_read_only_role(ROLE, PASSWORD)
    warehouse.setup_read_only_role(ROLE, PASSWORD)  # running setup again is harmless
    return url, warehouse


def connect_as_role(url):
    return psycopg.connect(make_url(url).set(username=ROLE, password=PASSWORD).render_as_string(hide_password=False))


def test_the_role_reads_marts_and_predictions_including_tables_created_later(warehouse_with_role):
    url, warehouse = warehouse_with_role
    warehouse.execute("create table predictions.later_scores as select 1 as customer_id, 0.5 as score")
    warehouse.execute("create view marts.later_view as select 2 as x")
    with connect_as_role(url) as con:
        assert con.execute("select customer_id, score from predictions.later_scores").fetchall() == [(1, 0.5)]
        assert con.execute("select x from marts.later_view").fetchall() == [(2,)]


@pytest.mark.parametrize(
    "statement",
    [
        "select count(*) from raw.customers",
        "select count(*) from analytics.churn_features",
        "insert into predictions.later_scores values (2, 0.1)",
        "update predictions.later_scores set score = 0",
        "delete from predictions.later_scores",
        "drop table predictions.later_scores",
        "create table marts.mine (x int)",
        "create table public.mine (x int)",
        "create temporary table mine (x int)",
        "create schema mine",
        "truncate predictions.later_scores",
    ],
)
def test_the_role_cannot_write_create_or_drop_anything(warehouse_with_role, statement):
    url, warehouse = warehouse_with_role
    warehouse.execute("create table if not exists predictions.later_scores as select 1 as customer_id, 0.5 as score")
    with connect_as_role(url) as con, pytest.raises(psycopg.errors.Error) as excinfo:
        con.execute(statement)
    assert isinstance(excinfo.value, psycopg.errors.InsufficientPrivilege | psycopg.errors.ReadOnlySqlTransaction)
    assert warehouse.query("select count(*) as n from predictions.later_scores").to_pylist() == [{"n": 1}]


def test_marts_are_readable_after_dbt_rebuilds_them(warehouse_with_role, base_home, spec, tmp_path):
    from dataclasses import replace

    from pipelines.usecases import steps
    from tests.conftest import score_date, settings_for

    url, warehouse = warehouse_with_role
    settings = replace(settings_for(tmp_path, base_home["settings"].mlflow_tracking_uri), warehouse_url=url)
    attempt = score_date(settings, spec)[0]
    steps.build_marts(resources(settings), spec, [attempt])
    with connect_as_role(url) as con:
        assert con.execute("select count(*) from marts.churn_daily_summary").fetchone()[0] > 0
        assert con.execute("select count(*) from marts.churn_latest_scores").fetchone()[0] > 0


def test_the_debug_log_shows_the_statements_but_never_the_password(warehouse_with_role, caplog):
    """`batchpred -vv` logs each SQL statement; the role's statement carries its password."""
    _, warehouse = warehouse_with_role
    with caplog.at_level("DEBUG", logger="pipelines"):
        warehouse.setup_read_only_role(ROLE, "another-pw-for-tests")
    logged = caplog.text
    assert "sql: grant select on all tables in schema" in logged  # the debug log is on
    assert "another-pw-for-tests" not in logged and "login password" not in logged
