"""The resources a use case works with, built once per Airflow task or CLI command from
the settings and passed down: the warehouse, the model registry, dbt, Great
Expectations and the clock. Nothing below the faces opens a warehouse or an MLflow
client itself; a test builds its own `Resources` (a frozen clock, say) the same way.
"""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.adapters.registry import Registry
from pipelines.adapters.transform import Dbt
from pipelines.adapters.validate import Gx
from pipelines.adapters.warehouse import Warehouse, open_warehouse, tables
from pipelines.config.settings import Settings


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Resources:
    settings: Settings
    warehouse: Warehouse
    registry: Registry
    dbt: Dbt
    gx: Gx
    clock: Callable[[], dt.datetime] = field(default=utc_now)

    @classmethod
    def from_settings(
        cls, settings: Settings, create: bool = False, clock: Callable[[], dt.datetime] | None = None
    ) -> Resources:
        """Everything a use case needs, for the configured warehouse and registry. Opening is
        lazy: nothing connects until a use case asks. `create` lets a new DuckDB file be made
        (loading raw data, setting a warehouse up); otherwise a missing one is refused."""
        warehouse = open_warehouse(settings.warehouse_url, create=create)
        return cls(
            settings=settings,
            warehouse=warehouse,
            registry=Registry(settings),
            dbt=Dbt(settings, warehouse),
            gx=Gx(settings, warehouse),
            clock=clock or utc_now,
        )

    def now(self) -> dt.datetime:
        return self.clock()

    def ready(self) -> Resources:
        """Make the tables every model shares exist (`tables.prepare`: one catalogue read once
        they do), so no use case asks whether they are there. Each command and task calls it
        once, where it builds its resources; a DuckDB file that does not exist is refused here."""
        tables.prepare(self.warehouse)
        return self


def current_user() -> str:
    """Who is asking, for the run log and the registry's tags: the OS user name."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "unknown"
