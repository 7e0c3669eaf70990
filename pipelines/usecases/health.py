"""The model-health use cases: monitor scored dates (drift, estimated performance, alerts),
realize performance once labels are complete, and write the report.

`monitor_dates` is what both the <model>_monitor DAG's task and `batchpred monitor` call:
the health of each date, then realized performance (the dates asked for, however old,
and the recent ones whose label horizon is over), then the report of the latest date.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines import report
from pipelines.adapters.resources import Resources
from pipelines.adapters.warehouse import health, tables
from pipelines.config.spec import ModelSpec
from pipelines.domain.dates import date_range
from pipelines.domain.errors import InputError
from pipelines.monitoring.alerts import deliver, deliver_failure
from pipelines.monitoring.monitor import DayHealth, Realized, labelled_dates, monitor_date
from pipelines.monitoring.monitor import realize as realize_labelled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Monitored:
    """What monitoring some dates found: each date's health, the realized performance it
    computed, the reports it wrote, the alerts to send, and whether to ask for a retrain."""

    health: list[DayHealth]
    realized: list[Realized]
    reports: list[Path] = field(default_factory=list)
    report_failures: dict[dt.date, str] = field(default_factory=dict)
    retrain_requested_for: dt.date | None = None
    retrain_reason: str = ""

    def alert_rows(self) -> list[dict[str, Any]]:
        """Every alert as `alerts.deliver` posts it (with the model, version and date)."""
        return [a for h in self.health for a in h.alert_rows()] + [a for r in self.realized for a in r.alert_rows()]

    def alerts_as_json(self) -> list[dict[str, Any]]:
        """The alerts as plain JSON values (what the notify task receives through XCom)."""
        return [{k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in a.items()} for a in self.alert_rows()]


def monitor(res: Resources, spec: ModelSpec, as_of_date: dt.date, version: int | None = None) -> DayHealth:
    """Compute and store the health of a scored date (`pipelines.monitoring.monitor`), for the
    version whose predictions it holds unless `version` is given.

    Refuses (InputError) a date with no predictions of that version: score it first.
    """
    scored = health.versions_scored(res.warehouse, spec, as_of_date, as_of_date).get(as_of_date, [])
    if version is None and len(scored) == 1:
        version = scored[0]
    if version is None or version not in scored:
        which = f"version {version}" if version is not None else "any version"
        raise InputError(
            f"{tables.predictions(spec)} has no predictions of {which} for {as_of_date}"
            + (f" (it has version(s) {scored})" if scored else "")
            + f"; score it first: batchpred score {spec.name} --date {as_of_date}"
        )
    return monitor_date(res, spec, as_of_date, res.registry.pin(spec.name, version))


def realize(res: Resources, spec: ModelSpec, dates: Sequence[dt.date] = ()) -> list[Realized]:
    """Realized performance of every scored date whose label horizon is over: within the spec's
    lookback (so late labels are counted), and each of `dates` however old. A date whose
    label sources are not complete yet is stored as provisional."""
    return realize_labelled(res, spec, labelled_dates(res, spec, dates))


def scored_dates(res: Resources, spec: ModelSpec, start: dt.date, end: dt.date) -> list[dt.date]:
    """The dates of start..end that have predictions (InputError if none has)."""
    scored = health.versions_scored(res.warehouse, spec, start, end)
    days = [d for d in date_range(start, end) if d in scored]
    if not days:
        raise InputError(f"no date of {start}..{end} has predictions in {tables.predictions(spec)}")
    return days


def monitor_dates(
    res: Resources,
    spec: ModelSpec,
    dates: Mapping[dt.date, int | None],
    progress: Callable[[str], None] = lambda _: None,
) -> Monitored:
    """The monitoring use case: the health of each date (of the version given, or the one whose
    predictions it holds), then realized performance, then the report of the latest date,
    which draws every date before it too (a range filled in at once writes one page, not one
    per date; `batchpred report` writes any other). A report that cannot be written is logged
    and listed, never stops the alerts. `progress(label)` hears each stage."""
    reasons: list[str]
    found, retrain, reasons = [], None, []
    for day, version in sorted(dates.items()):
        progress(str(day))
        with res.warehouse.session():  # a date's queries share the open DuckDB file
            day_health = monitor(res, spec, day, version)
        log.info("%s", day_health.summary())
        found.append(day_health)
        if day_health.retrain:
            retrain, reasons = day, [*reasons, day_health.retrain_reason]
    progress("realized performance")
    with res.warehouse.session():
        realized = realize(res, spec, sorted(dates))  # an old date asked for is realized too
    if realized:
        log.info(
            "realized performance of %d date(s) whose label horizon is over: %s",
            len(realized),
            ", ".join(f"{r.as_of_date}" + (f" (provisional: {r.provisional})" if r.provisional else "") for r in realized),
        )
    reports, failures = [], {}
    for day in sorted(dates)[-1:]:
        progress(f"report {day}")
        try:
            with res.warehouse.session():
                reports.append(report.write(res, spec, day))
            log.info("model-health report of %s: %s", day, reports[-1])
        except Exception as exc:  # the health is stored and the alerts must still go out: say so, loudly, and go on
            log.exception("the model-health report of %s could not be written", day)
            failures[day] = str(exc)
    return Monitored(found, realized, reports, failures, retrain, "; ".join(reasons))


def write_report(res: Resources, spec: ModelSpec, as_of_date: dt.date, days: int = 60, out: Path | None = None) -> Path:
    """Write the model's health report for a date: one self-contained HTML page."""
    with res.warehouse.session():
        return report.write(res, spec, as_of_date, days, out)


def notify(res: Resources, spec: ModelSpec, url: str | None, alerts: list[dict[str, Any]], connection: str) -> int:
    """Post each alert to the webhook at `url` and record each delivery (and any pending one from
    an earlier run) in monitoring.alert_deliveries. Every alert is tried; then UndeliveredAlerts
    if any is still not delivered. Returns how many were posted."""
    return deliver(res.warehouse, spec.name, url, alerts, connection)


def report_task_failure(res: Resources | None, model: str, url: str | None, alert: dict[str, Any]) -> None:
    """Post a failed task to the webhook and record it; one that cannot be posted is queued for
    the model's next monitor run."""
    deliver_failure(res, model, url, alert)
