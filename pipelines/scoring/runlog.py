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

from enum import StrEnum
from typing import Any

from pipelines.adapters.resources import Resources
from pipelines.adapters.warehouse.queries import record_run, update_run
from pipelines.domain import redact
from pipelines.domain.records import Attempt
from pipelines.domain.status import RunStatus

# A date whose latest attempt ended in one of these has work left: `backfill --only failed` picks it.
UNFINISHED = (RunStatus.FAILED, RunStatus.MARTS_FAILED)
# Statuses after which the attempt is over (it gets an end time).
FINAL = (RunStatus.REFUSED, RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.MARTS_FAILED, RunStatus.UNPUBLISHED)
MAX_ERROR = 4000


def _version(attempt: Attempt) -> dict[str, Any]:
    model = attempt.model
    return {"model_version": model.version if model else None, "mlflow_run_id": model.run_id if model else None}


def _row(attempt: Attempt, status: RunStatus, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "scoring_run_id": attempt.scoring_run_id,
        "model_name": attempt.model_name,
        "model_alias": attempt.alias,
        **_version(attempt),
        "as_of_date": attempt.as_of_date,
        "airflow_run_id": attempt.airflow_run_id,
        "started_at": attempt.started_at,
        "triggered_by": attempt.triggered_by,
        "waited_for_data_s": attempt.waited_for_data_s,
        "status": RunStatus(status).value,
        **fields,
    }


def start(res: Resources, attempt: Attempt) -> None:
    """Give the attempt its row, status `running`."""
    if not attempt.dry_run:
        record_run(res.warehouse, _row(attempt, RunStatus.RUNNING, {}))


def record(res: Resources, attempt: Attempt, status: RunStatus, **fields: Any) -> None:
    """Move the attempt to `status`, setting `fields` (rows_scored, error, ...) on its row.

    Keeps the columns an earlier step set; writes the whole row if the attempt has none
    yet. Does nothing for a dry run.
    """
    if attempt.dry_run:
        return
    status = RunStatus(status)  # ValueError for anything else
    fields = {k: v.value if isinstance(v, StrEnum) else v for k, v in fields.items()}  # stored as plain text
    for column in ("error", "shadow_error"):  # exception text may carry a URL with its token or password
        if fields.get(column):
            fields[column] = redact.text(fields[column])[:MAX_ERROR]
    if status in FINAL:
        fields.setdefault("ended_at", res.now())
    values = {"status": status.value, **_version(attempt), **fields}
    values = {k: v for k, v in values.items() if v is not None}
    if not update_run(res.warehouse, attempt.scoring_run_id, values):
        record_run(res.warehouse, _row(attempt, status, fields))


def failed(res: Resources, attempt: Attempt, step: str, error: BaseException, **fields: Any) -> None:
    """Record that `step` ended the attempt with `error`."""
    message = str(error) or type(error).__name__
    record(res, attempt, RunStatus.FAILED, step=step, error=f"{step}: {message}", **fields)


def refused(res: Resources, attempt: Attempt, step: str, error: BaseException) -> None:
    """Record that `step` refused the request before any work, and why."""
    message = str(error) or type(error).__name__
    record(res, attempt, RunStatus.REFUSED, step=step, error=f"{step}: {message}")
