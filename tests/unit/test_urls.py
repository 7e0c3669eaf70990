"""Warehouse URLs as dbt sees them."""

from pipelines.adapters.warehouse.url import parse


def test_dbt_env_maps_a_postgres_url_without_leaking_it_elsewhere():
    env = parse("postgresql://alice:s3cret@db.internal:6432/warehouse").dbt_env()
    assert env["BATCHPRED_DBT_TARGET"] == "postgres"
    assert (env["BATCHPRED_PG_HOST"], env["BATCHPRED_PG_PORT"], env["BATCHPRED_PG_DATABASE"]) == (
        "db.internal",
        "6432",
        "warehouse",
    )
    assert env["BATCHPRED_PG_PASSWORD"] == "s3cret"
    assert env["PGTZ"] == "UTC"  # libpq sessions of dbt-postgres run in UTC
