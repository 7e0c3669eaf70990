"""monitoring.scoring_runs: one row per scoring attempt, successful or not.

A successful attempt is logged when its predictions are published; a failed one
(an alias that does not resolve, a shard that fails, a failed validation) when it
fails, with its error.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

from pipelines.warehouse import Warehouse

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


def record(warehouse: Warehouse, attempt: Attempt, **fields: object) -> None:
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
