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
from dataclasses import dataclass, field, replace
from typing import Any

from pipelines.adapters import registry, transform
from pipelines.adapters.warehouse import catalog, health, open_warehouse
from pipelines.config.settings import Settings
from pipelines.config.spec import ModelSpec
from pipelines.domain.records import PinnedModel
from pipelines.domain.reference import usable
from pipelines.monitoring import alerts as alerting
from pipelines.monitoring import challenger, drift, performance
from pipelines.scoring import completeness

log = logging.getLogger(__name__)

# The tables `monitor_date` replaces a date's rows of, all at once (daily_health last).
MONITOR_TABLES = (
    catalog.FEATURE_PROFILES,
    catalog.FEATURE_DRIFT,
    catalog.ESTIMATED_PERFORMANCE,
    catalog.SHADOW_COMPARISON,
    catalog.ALERTS,
    catalog.DAILY_HEALTH,
)


@dataclass(frozen=True)
class DayHealth:
    """What monitoring found for one date and version (the daily_health row, plus the alerts)."""

    model: str
    version: int
    as_of_date: dt.date
    status: str  # ok | warn | alert | no_reference | no_predictions | empty_partition
    message: str
    drift_status: str | None = None
    worst_feature: str | None = None
    worst_psi: float | None = None
    expected_auc: float | None = None
    expected_auc_band: tuple[float, float] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    retrain: bool = False
    retrain_reason: str = ""

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
        return "; ".join(parts) + (f" — {self.message}" if self.message and self.status not in ("ok",) else "")


def monitor_date(settings: Settings, spec: ModelSpec, as_of_date: dt.date, model: PinnedModel) -> DayHealth:
    """Compute and store the health of `as_of_date` as scored by `model` (see the module docstring)."""
    warehouse = open_warehouse(settings.warehouse_url)
    reference = registry.training_reference(settings, model)
    # Every table the date's health is stored in, replaced together in one transaction at the
    # end (`day`): a failure anywhere leaves the date's previous health rows as they were, and a
    # date monitored again with less to say (no predictions now) keeps no stale rows.
    written: dict[catalog.Table, list[dict[str, Any]]] = {t: [] for t in MONITOR_TABLES}

    def write(table: catalog.Table, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            catalog.check_finite(table, r)  # fail here, naming the calculation, not at the end
        written[table] = rows

    def day(status: str, message: str, **fields: Any) -> DayHealth:
        extra = fields.pop("extra", {})
        result = DayHealth(spec.name, model.version, as_of_date, status, message, **fields)
        row = {
            "status": status,
            "message": message,
            "drift_status": result.drift_status,
            "worst_feature": result.worst_feature,
            "worst_psi": result.worst_psi,
            "expected_auc": result.expected_auc,
            "expected_auc_lower": result.expected_auc_band[0] if result.expected_auc_band else None,
            "expected_auc_upper": result.expected_auc_band[1] if result.expected_auc_band else None,
            "alerts": len(written[catalog.ALERTS]),  # every row of monitoring.alerts, posted or not
            # Realized performance is computed once the label horizon after the date is complete.
            "labels_due": as_of_date + dt.timedelta(days=spec.training.label_horizon_days),
            **extra,
        }
        write(catalog.DAILY_HEALTH, [row])
        writes = [catalog.health_write(t, spec.name, model.version, as_of_date, rows) for t, rows in written.items()]
        warehouse.replace_partitions(as_of_date, writes)
        return result

    if not usable(reference):
        return day(
            "no_reference", f"{model.uri} has no training reference (trained before batchpred kept one): retrain it to monitor it"
        )
    current = drift.profile(warehouse, spec, reference, model.version, as_of_date)
    if current is None:
        return day("empty_partition", f"analytics.{spec.features_model} has no rows for {as_of_date}")
    if not sum(current.counts[drift.SCORE]):
        return day("no_predictions", f"{model.uri} has no predictions for {as_of_date} in {catalog.predictions(spec)}")

    rows = drift.compare(warehouse, spec, reference, model.version, as_of_date, current)
    write(catalog.FEATURE_PROFILES, drift.profile_rows(reference, current))
    write(catalog.FEATURE_DRIFT, rows)

    estimated = performance.estimate(warehouse, spec, reference, model.version, as_of_date)
    write(catalog.ESTIMATED_PERFORMANCE, [estimated] if estimated else [])
    comparisons = challenger.compare(settings, warehouse, spec, as_of_date, model, reference, estimated)
    write(catalog.SHADOW_COMPARISON, comparisons)

    attributions = health.rows_of(warehouse, catalog.FEATURE_ATTRIBUTIONS, spec.name, as_of_date, as_of_date, model.version)
    attribution_ndcg, attribution_alerts, ndcg_null_reason = alerting.from_attribution(
        reference, attributions.to_pylist(), spec.monitoring.attribution_ndcg_alert
    )
    day_before = as_of_date - dt.timedelta(days=1)
    yesterday = health.rows_of(warehouse, catalog.ALERTS, spec.name, day_before, day_before, model.version)
    checks = alerting.from_drift(rows) + alerting.from_performance(estimated, None) + attribution_alerts
    checks += alerting.from_shadow(health.shadow_errors(warehouse, spec.name, as_of_date))
    found = alerting.with_streaks(checks, yesterday.to_pylist())
    retrain, why = alerting.retrain_decision(
        spec, reference, found, as_of_date, health.last_retrain_request(warehouse, spec.name, as_of_date - dt.timedelta(days=1))
    )
    earlier = health.rows_of(warehouse, catalog.ALERTS, spec.name, as_of_date, as_of_date, model.version).to_pylist()
    requested_before = any(a["action"] == "retrain requested" for a in earlier)
    if retrain or requested_before:
        found = [a if a.severity != "alert" else replace(a, action="retrain requested") for a in found]
    elif why:
        found = [a if a.severity != "alert" else replace(a, action=why[:500]) for a in found]
    write(catalog.ALERTS, [a.row() for a in found])

    baseline_rows = [r for r in rows if r["decides"] and r["feature"] != drift.SCORE]  # the rows that judge each feature
    worst = max(baseline_rows, key=lambda r: r["psi"], default=None)
    statuses = [r["status"] for r in rows if r["decides"]]
    drift_status = "alert" if "alert" in statuses else "warn" if "warn" in statuses else "ok"
    overall = "alert" if any(a.severity == "alert" for a in found) else "warn" if found else "ok"
    message = "; ".join(a.message for a in found if a.severity == "alert")[:2000]
    if retrain and requested_before:  # this date was monitored before and asked already: not twice
        retrain, why = False, f"retrain already requested for {as_of_date}"
    if retrain:
        message = f"retrain requested: {why}. {message}"
    return day(
        overall,
        message,
        drift_status=drift_status,
        worst_feature=worst["feature"] if worst else None,
        worst_psi=worst["psi"] if worst else None,
        expected_auc=estimated["expected_auc"] if estimated else None,
        expected_auc_band=(estimated["expected_auc_lower"], estimated["expected_auc_upper"])
        if estimated and estimated["expected_auc"] is not None
        else None,
        alerts=[
            {"model_name": spec.name, "model_version": model.version, "as_of_date": as_of_date, **a.row()}
            for a in alerting.notify(found)
        ],
        retrain=retrain,
        retrain_reason=why,
        extra={
            "attribution_ndcg": attribution_ndcg,
            "null_reason": ndcg_null_reason,
            "challengers": len(comparisons),
            "rows_scored": sum(current.counts[drift.SCORE]),
            "features_warn": sum(1 for r in baseline_rows if r["status"] == "warn"),
            "features_alert": sum(1 for r in baseline_rows if r["status"] == "alert"),
        },
    )


@dataclass(frozen=True)
class Realized:
    as_of_date: dt.date
    version: int
    row: dict[str, Any] | None
    alerts: list[dict[str, Any]]
    provisional: str | None = None  # why the date's labels are not complete yet (its row is provisional)


@dataclass(frozen=True)
class Labelled:
    """Scored dates whose label horizon is over ({date: versions}), and for those whose label
    sources have not reached D + the horizon yet, why (their realized rows are provisional)."""

    versions: dict[dt.date, list[int]]
    provisional: dict[dt.date, str]
    through: dt.date | None  # every source, label sources included, is complete through this day


def labelled_dates(settings: Settings, spec: ModelSpec, now: dt.datetime, dates: Iterable[dt.date] = ()) -> Labelled:
    """The scored dates whose label horizon is over: those within `realized_lookback_days` of
    the last complete day, and each of `dates` however old it is."""
    warehouse = open_warehouse(settings.warehouse_url)
    cover = completeness.coverage(warehouse, spec, now, labels=True)
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


def realize(settings: Settings, spec: ModelSpec, labelled: Labelled) -> list[Realized]:
    """Build the labels of the `labelled` dates (one dbt run) and store the realized performance
    of each date and version, with its calibration bins, realized-AUC alert and
    daily_health.realized_auc, replacing what an earlier run stored. A provisional date gets
    its realized_performance row only (status `provisional`): no calibration bins, no alert,
    no realized AUC in daily_health or the shadow comparison. Refuses (SpecError), before
    writing, a labels model that reads a table the completeness rule does not list."""
    if not labelled.versions:
        return []
    transform.build_labels(settings, spec, sorted(labelled.versions))
    completeness.check_label_sources(spec, settings.dbt_target_dir / "target" / "manifest.json")
    warehouse = open_warehouse(settings.warehouse_url)
    done = []
    for day, versions in sorted(labelled.versions.items()):
        why = labelled.provisional.get(day)
        for version in versions:
            model = registry.pin(settings, spec.name, version)
            reference = registry.training_reference(settings, model)
            if not usable(reference):
                continue
            estimated = health.rows_of(warehouse, catalog.ESTIMATED_PERFORMANCE, spec.name, day, day, version).to_pylist()
            expected = estimated[0]["expected_auc"] if estimated else None
            result = performance.realize(
                warehouse, spec, reference, version, day, labelled.through, expected, final=why is None
            )
            row, calibration = result if result else (None, [])
            final = row is not None and why is None
            writes = [
                catalog.health_write(catalog.REALIZED_PERFORMANCE, spec.name, version, day, [row] if row else []),
                catalog.health_write(catalog.CALIBRATION_BINS, spec.name, version, day, calibration if final else []),
            ]
            found = alerting.from_performance(None, row)
            stored = health.rows_of(warehouse, catalog.ALERTS, spec.name, day, day, version).to_pylist()
            if found or any(a["check_name"] == "realized_auc" for a in stored):  # replace the date's realized alert
                fields = alerting.Alert.__dataclass_fields__
                kept = [{k: a[k] for k in fields} for a in stored if a["check_name"] != "realized_auc"]
                writes.append(catalog.health_write(catalog.ALERTS, spec.name, version, day, kept + [x.row() for x in found]))
            warehouse.replace_partitions(day, writes)
            realized_auc = row.get("roc_auc") if final and row else None
            catalog.update_health(warehouse, catalog.DAILY_HEALTH, spec.name, version, day, {"realized_auc": realized_auc})
            if final:
                challenger.realize(warehouse, spec, day, version)
            elif why:  # realized AUCs stored while the labels looked complete are not final any more
                challenger.unrealize(warehouse, spec, day, version, f"provisional: {why}")
            done.append(
                Realized(
                    day,
                    version,
                    row,
                    [{"model_name": spec.name, "model_version": version, "as_of_date": day, **a.row()} for a in found],
                    why,
                )
            )
    return done
