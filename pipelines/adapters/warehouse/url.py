"""BATCHPRED_WAREHOUSE_URL, translated once for every consumer.

batchpred's own connections (DuckDB, ADBC), dbt (environment variables read by
dbt_project/profiles.yml) and Great Expectations (a SQLAlchemy URL) all reach the
same warehouse, and all of them open sessions in UTC: the as-of boundary is the end
of the date in UTC whatever the machine's, the server's or the database's time zone.

Passwords never leave this module in a message: `masked` hides them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from pipelines.domain.errors import BatchpredError

# Run on every connection batchpred, dbt and GX open (see `session_setup`).
SESSION_TIME_ZONE = "UTC"


def masked(url: str) -> str:
    """A URL (warehouse or MLflow) with its password and query hidden, for messages and logs."""
    from pipelines.domain import redact

    return redact.url(url)


@dataclass(frozen=True)
class WarehouseURL:
    """A parsed warehouse URL: `duckdb:///path/file.duckdb` or `postgresql://user@host:5432/db`."""

    raw: str
    kind: str  # "duckdb" | "postgres"
    parsed: URL

    @property
    def masked(self) -> str:
        return masked(self.raw)

    @property
    def path(self) -> Path:
        """The DuckDB file."""
        return Path(self.parsed.database or "")

    @property
    def libpq(self) -> str:
        """A libpq URI for ADBC (without SQLAlchemy's +driver suffix), password included."""
        return self.parsed.set(drivername="postgresql").render_as_string(hide_password=False)

    @property
    def sqlalchemy(self) -> str:
        """The URL Great Expectations' SQLAlchemy engine uses (psycopg 3 for PostgreSQL)."""
        url = self.parsed
        if self.kind == "postgres" and url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)

    def dbt_env(self) -> dict[str, str]:
        """The variables dbt_project/profiles.yml reads. The DuckDB profile sets the session
        time zone itself; libpq (dbt-postgres) takes it from PGTZ."""
        if self.kind == "duckdb":
            return {"BATCHPRED_DBT_TARGET": "duckdb", "BATCHPRED_DUCKDB_PATH": str(self.path)}
        url = self.parsed
        return {
            "BATCHPRED_DBT_TARGET": "postgres",
            "BATCHPRED_PG_HOST": url.host or "localhost",
            "BATCHPRED_PG_PORT": str(url.port or 5432),
            "BATCHPRED_PG_USER": url.username or "",
            "BATCHPRED_PG_PASSWORD": url.password or "",
            "BATCHPRED_PG_DATABASE": url.database or "",
            "PGTZ": SESSION_TIME_ZONE,
        }


def session_setup(kind: str) -> list[str]:
    """Statements every new connection runs first (no user input in them)."""
    if kind == "duckdb":
        return [f"set TimeZone = '{SESSION_TIME_ZONE}'"]
    return [f"set time zone '{SESSION_TIME_ZONE}'"]


def parse(url: str) -> WarehouseURL:
    """Parse and check a warehouse URL; refuses (BatchpredError) anything but a DuckDB file or PostgreSQL."""
    try:
        parsed = make_url(url)
    except Exception:
        raise BatchpredError(f"BATCHPRED_WAREHOUSE_URL is not a URL: {masked(url)!r}") from None
    backend = parsed.get_backend_name()
    if backend == "duckdb":
        if not parsed.database or parsed.database == ":memory:":
            raise BatchpredError(
                f"BATCHPRED_WAREHOUSE_URL must name a DuckDB file, e.g. duckdb:///path/warehouse.duckdb; got {masked(url)!r}"
            )
        return WarehouseURL(url, "duckdb", parsed)
    if backend == "postgresql":
        return WarehouseURL(url, "postgres", parsed)
    raise BatchpredError(
        f"unsupported scheme {parsed.drivername!r} in BATCHPRED_WAREHOUSE_URL; "
        "use duckdb:///path/warehouse.duckdb or postgresql://user@host:5432/database"
    )
