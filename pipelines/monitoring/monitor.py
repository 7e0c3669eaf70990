"""Model health of one scored date, and realized performance of the dates whose labels completed.

`monitor_date` runs after a date is published (the <model>_monitor DAG, `batchpred
monitor`): drift of every feature and of the score, the estimated performance, the
alerts and the retrain decision, and one `monitoring.daily_health` row that sums the
day up. `realize` computes realized performance for every scored date whose label
horizon completed, within `monitoring.realized_lookback_days` (so labels that arrive
late are counted) and for any older date asked for; a date whose label sources are
not complete yet is `provisional`. Each writes only its own tables, replacing the
date's rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from pipelines.adapters.warehouse import health, queries, tables
from pipelines.config.spec import ModelSpec
from pipelines.domain.records import PinnedModel
from pipelines.domain.status import RETRAIN_REQUESTED, Check, DriftStatus, HealthStatus, RealizedStatus, Severity
from pipelines.monitoring import alerts as alerting
from pipelines.monitoring import challenger, drift, performance
from pipelines.monitoring.performance import RealizedPerformance
from pipelines.scoring import completeness
from pipelines.scoring.profile import profile_bins

if TYPE_CHECKING:
    from pipelines.adapters.resources import Resources

log = logging.getLogger(__name__)

# The tables `monitor_date` replaces a date's rows of, all at once (daily_health last).
MONITOR_TABLES = (
    tables.FEATURE_PROFILES,
    tables.FEATURE_DRIFT,
    tables.ESTIMATED_PERFORMANCE,
    tables.SHADOW_COMPARISON,
    tables.ALERTS,
    tables.DAILY_HEALTH,
)


def _posted(model: str, version: int, as_of_date: dt.date, alerts: Iterable[alerting.Alert]) -> list[dict[str, Any]]:
    return [{"model_name": model, "model_version": version, "as_of_date": as_of_date, **a.row()} for a in alerts]


@dataclass(frozen=True)
class DayHealth:
    """What monitoring found for one date and version (the daily_health row, plus the alerts to post)."""

    model: str
    version: int
    as_of_date: dt.date
    status: HealthStatus
    message: str
    drift_status: DriftStatus | None = None
    worst_feature: str | None = None
    worst_psi: float | None = None
    expected_auc: float | None = None
    expected_auc_band: tuple[float, float] | None = None
    alerts: list[alerting.Alert] = field(default_factory=list)  # to post (`alerts.notify`); the table holds them all
    retrain: bool = False
    retrain_reason: str = ""

    def alert_rows(self) -> list[dict[str, Any]]:
        """The alerts as `alerts.deliver` posts them: each with the model, version and date."""
        return _posted(self.model, self.version, self.as_of_date, self.alerts)

    def summary(self) -> str:
        parts = [f"{self.model} {self.as_of_date} (version {self.version}): {self.status}"]
        if self.drift_status:
            worst = f", worst {self.worst_feature} (PSI {self.worst_psi:.3f})" if self.worst_feature else ""
            parts.append(f"drift {self.drift_status}{worst}")
        if self.expected_auc is not None and self.expected_auc_band:
            parts.append(
                f"estimated AUC {self.expected_auc:.3f} [{self.expected_auc_band[0]:.3f}, {self.expected_auc_band[1]:.3f}]"
            )
        parts.append(f"{len(self.alerts)} alert(s)")
        return "; ".join(parts) + (f" — {self.message}" if self.message and self.status != HealthStatus.OK else "")


def monitor_date(res: Resources, spec: ModelSpec, as_of_date: dt.date, model: PinnedModel) -> DayHealth:
    """Compute and store the health of `as_of_date` as scored by `model` (see the module docstring)."""
    warehouse = res.warehouse
    reference = res.registry.training_reference(model)
    # Every table the date's health is stored in, replaced together in one transaction at the
    # end (`day`): a failure anywhere leaves the date's previous health rows as they were, and a
    # date monitored again with less to say (no predictions now) keeps no stale rows.
    written: dict[tables.Table, list[dict[str, Any]]] = {t: [] for t in MONITOR_TABLES}

    def write(table: tables.Table, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            queries.check_finite(table, r)  # fail here, naming the calculation, not at the end
        written[table] = rows

    def day(status: HealthStatus, message: str, **values: Any) -> DayHealth:
        extra = values.pop("extra", {})
        result = DayHealth(spec.name, model.version, as_of_date, status, message, **values)
        row = {
            "status": str(status),
            "message": message,
            "drift_status": str(result.drift_status) if result.drift_status else None,
            "worst_feature": result.worst_feature,
            "worst_psi": result.worst_psi,
            "expected_auc": result.expected_auc,
            "expected_auc_lower": result.expected_auc_band[0] if result.expected_auc_band else None,
            "expected_auc_upper": result.expected_auc_band[1] if result.expected_auc_band else None,
            "alerts": len(written[tables.ALERTS]),  # every row of monitoring.alerts, posted or not
            # Realized performance is computed once the label horizon after the date is complete.
            "labels_due": as_of_date + dt.timedelta(days=spec.training.label_horizon_days),
            **extra,
        }
        write(tables.DAILY_HEALTH, [row])
        writes = [queries.health_write(t, spec.name, model.version, as_of_date, rows) for t, rows in written.items()]
        warehouse.replace_partitions(as_of_date, writes)
        return result

    if reference is None:
        return day(
            HealthStatus.NO_REFERENCE,
            f"{model.uri} has no training reference (trained before batchpred kept one): retrain it to monitor it",
        )
    current = drift.profile(warehouse, spec, reference, model.version, as_of_date)
    if current is None:
        return day(HealthStatus.EMPTY_PARTITION, f"analytics.{spec.features_model} has no rows for {as_of_date}")
    if not sum(current.counts[drift.SCORE]):
        return day(HealthStatus.NO_PREDICTIONS, f"{model.uri} has no predictions for {as_of_date} in {tables.predictions(spec)}")

    rows = drift.compare(warehouse, spec, reference, model.version, as_of_date, current)
    write(tables.FEATURE_PROFILES, [b.row() for b in profile_bins(reference, current)])
    write(tables.FEATURE_DRIFT, [r.row() for r in rows])

    estimated = performance.estimate(warehouse, spec, reference, model.version, as_of_date)
    write(tables.ESTIMATED_PERFORMANCE, [estimated.row()] if estimated else [])
    comparisons = challenger.compare(res, spec, as_of_date, model, reference, estimated)
    write(tables.SHADOW_COMPARISON, [c.row() for c in comparisons])

    attributions = health.rows_of(warehouse, tables.FEATURE_ATTRIBUTIONS, spec.name, as_of_date, as_of_date, model.version)
    attribution_ndcg, attribution_alerts, ndcg_null_reason = alerting.from_attribution(
        reference, attributions.to_pylist(), spec.monitoring.attribution_ndcg_alert
    )
    day_before = as_of_date - dt.timedelta(days=1)
    yesterday = health.rows_of(warehouse, tables.ALERTS, spec.name, day_before, day_before, model.version)
    checks = alerting.from_drift(rows) + alerting.from_performance(estimated, None) + attribution_alerts
    checks += alerting.from_shadow(health.shadow_errors(warehouse, spec.name, as_of_date))
    found = alerting.with_streaks(checks, yesterday.to_pylist())
    retrain, why = alerting.retrain_decision(
        spec, reference, found, as_of_date, health.last_retrain_request(warehouse, spec.name, as_of_date - dt.timedelta(days=1))
    )
    earlier = health.rows_of(warehouse, tables.ALERTS, spec.name, as_of_date, as_of_date, model.version).to_pylist()
    requested_before = any(a["action"] == RETRAIN_REQUESTED for a in earlier)
    if retrain or requested_before:
        found = [a if a.severity != Severity.ALERT else replace(a, action=RETRAIN_REQUESTED) for a in found]
    elif why:
        found = [a if a.severity != Severity.ALERT else replace(a, action=why[:500]) for a in found]
    write(tables.ALERTS, [a.row() for a in found])

    judging = [r for r in rows if r.decides]
    features = [r for r in judging if r.feature != drift.SCORE]  # the rows that judge each feature
    worst = max(features, key=lambda r: r.psi, default=None)
    statuses = {r.status for r in judging}
    drift_status = next((s for s in (DriftStatus.ALERT, DriftStatus.WARN) if s in statuses), DriftStatus.OK)
    alerting_now = [a for a in found if a.severity == Severity.ALERT]
    overall = HealthStatus.ALERT if alerting_now else HealthStatus.WARN if found else HealthStatus.OK
    message = "; ".join(a.message for a in alerting_now)[:2000]
    if retrain and requested_before:  # this date was monitored before and asked already: not twice
        retrain, why = False, f"retrain already requested for {as_of_date}"
    if retrain:
        message = f"retrain requested: {why}. {message}"
    return day(
        overall,
        message,
        drift_status=drift_status,
        worst_feature=worst.feature if worst else None,
        worst_psi=worst.psi if worst else None,
        expected_auc=estimated.expected_auc if estimated else None,
        expected_auc_band=estimated.band if estimated and estimated.expected_auc is not None else None,
        alerts=alerting.notify(found),
        retrain=retrain,
        retrain_reason=why,
        extra={
            "attribution_ndcg": attribution_ndcg,
            "null_reason": ndcg_null_reason,
            "challengers": len(comparisons),
            "rows_scored": sum(current.counts[drift.SCORE]),
            "features_warn": sum(1 for r in features if r.status == DriftStatus.WARN),
            "features_alert": sum(1 for r in features if r.status == DriftStatus.ALERT),
        },
    )


@dataclass(frozen=True)
class Realized:
    """What `realize` stored for one labelled date and version."""

    model: str
    as_of_date: dt.date
    version: int
    performance: RealizedPerformance | None  # None when no prediction of the date has a label
    alerts: list[alerting.Alert]
    provisional: str | None = None  # why the date's labels are not complete yet (its performance is provisional)

    def alert_rows(self) -> list[dict[str, Any]]:
        """The alerts as `alerts.deliver` posts them: each with the model, version and date."""
        return _posted(self.model, self.version, self.as_of_date, self.alerts)


@dataclass(frozen=True)
class Labelled:
    """Scored dates whose label horizon is over ({date: versions}), and for those whose label
    sources have not reached D + the horizon yet, why (their realized rows are provisional)."""

    versions: dict[dt.date, list[int]]
    provisional: dict[dt.date, str]
    through: dt.date | None  # every source, label sources included, is complete through this day


def labelled_dates(res: Resources, spec: ModelSpec, dates: Iterable[dt.date] = ()) -> Labelled:
    """The scored dates whose label horizon is over, as of `res.now()`: those within
    `realized_lookback_days` of the last complete day, and each of `dates` however old it is."""
    warehouse = res.warehouse
    cover = completeness.coverage(warehouse, spec, res.now(), labels=True)
    last = cover.last_complete
    if last is None:
        return Labelled({}, {}, None)
    horizon = spec.training.label_horizon_days
    newest = last - dt.timedelta(days=horizon)
    scored = health.versions_scored(warehouse, spec, newest - dt.timedelta(days=spec.monitoring.realized_lookback_days), newest)
    asked = set(dates) - set(scored)
    if asked:  # one query over their span, however many dates were asked for
        scored |= {d: v for d, v in health.versions_scored(warehouse, spec, min(asked), max(asked)).items() if d in asked}
    elapsed = replace(cover, label_extents=())  # the horizon is over in the tables the features read
    over = {d: v for d, v in scored.items() if elapsed.problem(d, horizon) is None}
    provisional = {d: why for d in over if (why := cover.problem(d, horizon)) is not None}
    return Labelled(over, provisional, cover.labels_through)


def realize(res: Resources, spec: ModelSpec, labelled: Labelled) -> list[Realized]:
    """Build the labels of the `labelled` dates (one dbt run) and store the realized performance
    of each date and version, with its calibration bins, realized-AUC alert and
    daily_health.realized_auc, replacing what an earlier run stored. A provisional date gets
    its realized_performance row only (status `provisional`): no calibration bins, no alert,
    no realized AUC in daily_health or the shadow comparison. Refuses (SpecError), before
    writing, a labels model that reads a table the completeness rule does not list."""
    if not labelled.versions:
        return []
    res.dbt.build_labels(spec, sorted(labelled.versions))
    completeness.check_label_sources(spec, res.settings.dbt_target_dir / "target" / "manifest.json")
    warehouse = res.warehouse
    alert_columns = [f.name for f in fields(alerting.Alert)]
    done = []
    for day, versions in sorted(labelled.versions.items()):
        why = labelled.provisional.get(day)
        for version in versions:
            reference = res.registry.training_reference(res.registry.pin(spec.name, version))
            if reference is None:
                continue
            estimated = health.rows_of(warehouse, tables.ESTIMATED_PERFORMANCE, spec.name, day, day, version).to_pylist()
            expected = estimated[0]["expected_auc"] if estimated else None
            measured = performance.measure(
                warehouse, spec, reference, version, day, labelled.through, expected, final=why is None
            )
            final = measured is not None and measured.status != RealizedStatus.PROVISIONAL
            writes = [
                queries.health_write(tables.REALIZED_PERFORMANCE, spec.name, version, day, [measured.row()] if measured else []),
                queries.health_write(
                    tables.CALIBRATION_BINS,
                    spec.name,
                    version,
                    day,
                    [b.row() for b in measured.calibration] if final and measured is not None else [],  # final: not None
                ),
            ]
            found = alerting.from_performance(None, measured)
            stored = health.rows_of(warehouse, tables.ALERTS, spec.name, day, day, version).to_pylist()
            if found or any(a["check_name"] == Check.REALIZED_AUC for a in stored):  # replace the date's realized alert
                kept = [{k: a[k] for k in alert_columns} for a in stored if a["check_name"] != Check.REALIZED_AUC]
                writes.append(queries.health_write(tables.ALERTS, spec.name, version, day, kept + [x.row() for x in found]))
            warehouse.replace_partitions(day, writes)
            realized_auc = measured.roc_auc if final and measured is not None else None  # final: measured is not None
            queries.update_health(warehouse, tables.DAILY_HEALTH, spec.name, version, day, {"realized_auc": realized_auc})
            if final:
                for c in challenger.compare_realized(warehouse, spec, day, version):
                    queries.update_health(warehouse, tables.SHADOW_COMPARISON, spec.name, version, day, c.values(), c.key)
            elif why:  # realized AUCs stored while the labels looked complete are not final any more
                withdrawn = dict.fromkeys(challenger.REALIZED_COLUMNS) | {"delong_null_reason": f"provisional: {why}"}
                queries.update_health(warehouse, tables.SHADOW_COMPARISON, spec.name, version, day, withdrawn)
            done.append(Realized(spec.name, day, version, measured, found, why))
    return done
