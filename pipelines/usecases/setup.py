"""Setting a warehouse up."""

from __future__ import annotations

from pipelines.adapters.resources import Resources
from pipelines.adapters.warehouse import tables


def setup_warehouse(res: Resources, bi_role: str | None = None, bi_password: str = "") -> None:
    """Create the warehouse's schemas and every table the models share (empty, with their
    comments), and optionally the dashboards' read-only login role (PostgreSQL)."""
    tables.ensure_shared_tables(res.warehouse)
    if bi_role:
        res.warehouse.setup_read_only_role(bi_role, bi_password)
