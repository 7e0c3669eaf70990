"""Setting a warehouse up."""

from __future__ import annotations

from pipelines.adapters.resources import Resources
from pipelines.adapters.warehouse import tables


def setup_warehouse(res: Resources) -> None:
    """Create the warehouse's schemas and every table the models share (empty, with their comments)."""
    tables.ensure_shared_tables(res.warehouse)


def add_read_only_role(res: Resources, role: str, password: str) -> None:
    """The dashboards' login role (PostgreSQL): it reads marts and predictions, and nothing else."""
    res.warehouse.setup_read_only_role(role, password)
