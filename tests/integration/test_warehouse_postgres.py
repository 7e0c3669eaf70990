"""The warehouse adapter on PostgreSQL (the DuckDB side is tests/unit/test_warehouse.py)."""

from pipelines.adapters.warehouse import open_warehouse
from tests.unit.test_warehouse import D1, D2, SCHEMA, batch


def test_postgres_tables_find_a_date_through_an_index(postgres):
    from tests.services import create_database

    pg = open_warehouse(create_database(postgres, "date_index"))
    pg.replace_partition("predictions", "t", D1, SCHEMA, [batch(list(range(5000)), D1, 1.0)])
    pg.replace_partition("predictions", "t", D2, SCHEMA, [batch([1], D2, 1.0)])
    pg.execute("analyze predictions.t")
    plan = "\n".join(
        r["QUERY PLAN"] for r in pg.query("explain select * from predictions.t where as_of_date = $1", [D2]).to_pylist()
    )
    assert "t_as_of_date" in plan, plan
