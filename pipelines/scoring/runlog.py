"""monitoring.scoring_runs: one row per scoring attempt, whose status is the truth.

An attempt gets its row as soon as its date is chosen (`start`, status `running`);
each step that moves it on updates that same row: `failed` (with the step and the
error), `published` (predictions visible, marts being rebuilt), `succeeded`, or
`marts_failed` (predictions published, marts not rebuilt). A request refused before
any work (a malformed or unknown alias, a date that is not complete, in the future or
before scoring.start_date, a version whose contract the spec contradicts) is
`refused`, with the reason in `error`: it touched nothing, so it is not an attempt at
the date, and whatever reads a date's latest attempt skips it. A request
that names no model or no date (an unknown model, an impossible date, no complete
date to default to) gets no row: there is nothing to key it by. A dry run is not an
attempt and writes no row. Removing a published date (`batchpred unpublish`) writes
a row of its own with status `unpublished`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipelines.adapters.warehouse import Warehouse
from pipelines.adapters.warehouse.catalog import record_run, update_run
from pipelines.domain import redact
from pipelines.domain.records import Attempt

STATUSES = ("running", "refused", "failed", "published", "succeeded", "marts_failed", "unpublished")
# A date whose latest attempt ended in one of these has work left: `backfill --only failed` picks it.
UNFINISHED = ("failed", "marts_failed")
# Statuses after which the attempt is over (it gets an end time).
FINAL = ("refused", "failed", "succeeded", "marts_failed", "unpublished")
MAX_ERROR = 4000


def _row(attempt: Attempt, status: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "scoring_run_id": attempt.scoring_run_id,
        "model_name": attempt.model_name,
        "model_alias": attempt.alias,
        "model_version": attempt.model_version,
        "mlflow_run_id": attempt.mlflow_run_id,
        "as_of_date": attempt.as_of_date,
        "airflow_run_id": attempt.airflow_run_id,
        "started_at": attempt.started_at,
        "triggered_by": attempt.triggered_by,
        "status": status,
        **fields,
    }


def start(warehouse: Warehouse, attempt: Attempt) -> None:
    """Give the attempt its row, status `running`."""
    if not attempt.dry_run:
        record_run(warehouse, _row(attempt, "running", {}))


def record(warehouse: Warehouse, attempt: Attempt, status: str, **fields: Any) -> None:
    """Move the attempt to `status`, setting `fields` (rows_scored, error, ...) on its row.

    Keeps the columns an earlier step set; writes the whole row if the attempt has none
    yet. Does nothing for a dry run.
    """
    if attempt.dry_run:
        return
    if status not in STATUSES:
        raise ValueError(f"unknown run status {status!r}")
    for column in ("error", "shadow_error"):  # exception text may carry a URL with its token or password
        if fields.get(column):
            fields[column] = redact.text(fields[column])[:MAX_ERROR]
    if status in FINAL:
        fields.setdefault("ended_at", dt.datetime.now(dt.UTC))
    values = {
        "status": status,
        "model_version": attempt.model_version,
        "mlflow_run_id": attempt.mlflow_run_id,
        **fields,
    }
    values = {k: v for k, v in values.items() if v is not None}
    if not update_run(warehouse, attempt.scoring_run_id, values):
        record_run(warehouse, _row(attempt, status, fields))


def failed(warehouse: Warehouse, attempt: Attempt, step: str, error: BaseException, **fields: Any) -> None:
    """Record that `step` ended the attempt with `error`."""
    message = str(error) or type(error).__name__
    record(warehouse, attempt, "failed", step=step, error=f"{step}: {message}", **fields)


def refused(warehouse: Warehouse, attempt: Attempt, step: str, error: BaseException) -> None:
    """Record that `step` refused the request before any work, and why."""
    message = str(error) or type(error).__name__
    record(warehouse, attempt, "refused", step=step, error=f"{step}: {message}")
