"""Taking published dates back."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from pipelines.adapters.resources import Resources, current_user
from pipelines.adapters.warehouse import queries, tables
from pipelines.config.spec import ModelSpec
from pipelines.domain.dates import date_range
from pipelines.domain.errors import InputError
from pipelines.domain.status import RunStatus


@dataclass(frozen=True)
class Unpublished:
    dates: list[dt.date]  # the dates whose predictions were removed
    skipped: list[dt.date]  # dates of the range that had none
    removed: dict[str, int]  # rows removed per table


def unpublish(res: Resources, spec: ModelSpec, start: dt.date, end: dt.date) -> Unpublished:
    """Take published dates back: in one transaction, remove the predictions of every date of
    start..end that has them (with their shadow scores, reasons, quarantine and model-health
    rows) and write one run-log row per date, status `unpublished`, saying who removed which
    version's rows; then rebuild the marts for those dates.

    Refuses (InputError), removing nothing, when no date of the range has predictions, or
    when `end` is before `start`. If the marts fail to rebuild, the dates stay removed and
    DbtError says to rebuild them.
    """
    span = date_range(start, end)
    warehouse = res.warehouse
    scored = queries.scored_versions(warehouse, spec, start, end)
    dates = sorted(scored)
    if not dates:
        raise InputError(
            f"{tables.predictions(spec)} has no predictions for {start if start == end else f'{start}..{end}'}: "
            "nothing to unpublish (batchpred backfill --dry-run lists the dates that have rows)"
        )
    counts = {d: queries.count_partition(warehouse, tables.predictions(spec), d) for d in dates}
    at, who = res.now(), current_user()
    rows = [
        {
            "scoring_run_id": str(uuid.uuid4()),
            "model_name": spec.name,
            "model_version": max(scored[d]),
            "as_of_date": d,
            "rows_removed": counts[d],
            "status": RunStatus.UNPUBLISHED.value,
            "step": "unpublish",
            "started_at": at,
            "ended_at": at,
            "triggered_by": who,
        }
        for d in dates
    ]
    removed = queries.unpublish(warehouse, spec, dates, rows)
    res.dbt.build_marts(spec, dates)
    return Unpublished(dates, [d for d in span if d not in scored], removed)
