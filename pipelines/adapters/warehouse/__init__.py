"""The warehouse adapter: the only Python that writes SQL.

| module | what it holds |
|---|---|
| `base` | the `Warehouse` interface and the SQL both backends share |
| `duckdb` | the embedded DuckDB file |
| `postgres` | PostgreSQL through ADBC |
| `url` | BATCHPRED_WAREHOUSE_URL, translated for batchpred, dbt and Great Expectations |
| `retry` | waiting for a busy file or server |
| `tables` | every table batchpred owns (schema, name, columns, grain), and their creation |
| `queries` | the named queries the pipeline runs on those tables |

Names are imported lazily, so importing `pipelines.adapters.warehouse.tables` (as the model
spec does, from the DAG files) does not import pyarrow or a database driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.adapters.warehouse.base import SCHEMAS, Warehouse
    from pipelines.adapters.warehouse.duckdb import DuckDBWarehouse
    from pipelines.adapters.warehouse.postgres import PostgresWarehouse

__all__ = ["SCHEMAS", "DuckDBWarehouse", "PostgresWarehouse", "Warehouse", "open_warehouse", "safe_url"]


def open_warehouse(url: str, create: bool = False) -> Warehouse:
    """The adapter for a warehouse URL: `duckdb:///path/file.duckdb` or `postgresql://user@host:5432/db`.

    A DuckDB file that does not exist is created only with `create` (loading raw data,
    setting up the warehouse); otherwise it is refused (NoWarehouse) when first used.
    """
    from pipelines.adapters.warehouse.url import parse

    parsed = parse(url)
    if parsed.kind == "duckdb":
        from pipelines.adapters.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(parsed.path, create=create)
    from pipelines.adapters.warehouse.postgres import PostgresWarehouse

    return PostgresWarehouse(url)


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    from pipelines.adapters.warehouse.url import masked

    return masked(url)


def __getattr__(name: str) -> Any:
    if name in ("Warehouse", "SCHEMAS"):
        from pipelines.adapters.warehouse import base

        return getattr(base, name)
    if name == "DuckDBWarehouse":
        from pipelines.adapters.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse
    if name == "PostgresWarehouse":
        from pipelines.adapters.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse
    raise AttributeError(f"module 'pipelines.adapters.warehouse' has no attribute {name!r}")
