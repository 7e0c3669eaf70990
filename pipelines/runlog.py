"""monitoring.scoring_runs: one row per scoring attempt, successful or not.

A row is written when an attempt starts (status `running`) and completed when it
ends, so an attempt that was killed stays visible as `running` with no end time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

from pipelines.warehouse import DuckDBWarehouse

TABLE = "scoring_runs"

SCHEMA = pa.schema(
    [
        ("scoring_run_id", pa.string()),
        ("model_name", pa.string()),
        ("model_alias", pa.string()),
        ("model_version", pa.string()),
        ("mlflow_run_id", pa.string()),
        ("as_of_date", pa.date32()),
        ("airflow_run_id", pa.string()),
        ("rows_read", pa.int64()),
        ("rows_scored", pa.int64()),
        ("rows_rejected", pa.int64()),
        ("validation_outcome", pa.string()),  # passed | failed
        ("validation_id", pa.string()),
        ("status", pa.string()),  # running | succeeded | failed
        ("error", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("ended_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class Attempt:
    scoring_run_id: str
    model_name: str
    model_alias: str
    as_of_date: dt.date
    airflow_run_id: str | None
    started_at: dt.datetime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def record(warehouse: DuckDBWarehouse, attempt: Attempt, **fields: object) -> None:
    """Append the attempt's row; `fields` fill any other column (status, rows, ...)."""
    row = {
        "scoring_run_id": attempt.scoring_run_id,
        "model_name": attempt.model_name,
        "model_alias": attempt.model_alias,
        "as_of_date": attempt.as_of_date,
        "airflow_run_id": attempt.airflow_run_id,
        "started_at": attempt.started_at,
        **fields,
    }
    warehouse.append("monitoring", TABLE, pa.Table.from_pylist([row], schema=SCHEMA))


def finish(warehouse: DuckDBWarehouse, attempt: Attempt, **fields: object) -> None:
    """Complete the attempt's row with its outcome and end time."""
    warehouse.update_where("monitoring", TABLE, {"scoring_run_id": attempt.scoring_run_id}, {**fields, "ended_at": _now()})


def start(warehouse: DuckDBWarehouse, attempt: Attempt, **fields: object) -> None:
    record(warehouse, attempt, status="running", **fields)
