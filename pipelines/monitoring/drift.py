"""Feature and prediction drift of one scored date, against the version's training reference.

For date D scored by version v, D's profile is every feature's rows in each of v's
reference bins, and the score's (prediction drift), with their means
(`pipelines.scoring.profile`). The scorer counts it while it scores and stores it with
the publish (`monitoring.feature_profiles`, keyed by the scoring run whose predictions it
describes), so monitoring D reads it: no scan of the partition. When no stored profile
matches D's predictions (D scored before batchpred stored one, or by another route, or
re-scored since without one), D is binned by the warehouse: one scan of its
feature partition and one of its predictions (`health.histogram`), counting exactly as the
scorer does. The profile then goes to `monitoring.feature_profiles` again with D's health.
A stored profile describes the rows as they were scored: features rebuilt since are
not read again.

Each feature (and the score) is then compared with three distributions
(`monitoring.feature_drift`):

- `baseline`: v's training data (the score: its validation window);
- `previous_day`: D - 1, profiled the same way;
- `same_day_last_week`: D - 7.

A comparison date's profile is read or binned the same way, and the date skipped when v
scored nothing on it.

A feature's status comes from its baseline row, unless `monitoring.drift` in model.yaml
says otherwise: `compare: same_weekday` judges it by its `same_day_last_week` row (a
feature that takes one value per weekday), `exclude: <why>` leaves it out (still
profiled). The row that decides has `decides` true; alerts and daily_health read those.

Thresholds grow with what sampling noise alone explains at the date's and the
reference's sizes (`metrics.psi_noise`), so small dates do not alert on noise.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.adapters.warehouse import Warehouse, health, tables
from pipelines.config.spec import ModelSpec
from pipelines.domain.reference import TrainingReference
from pipelines.domain.status import Check, Comparison, DriftStatus, stored
from pipelines.monitoring import metrics as m
from pipelines.scoring.profile import SCORE, Profile, score_bins

COMPARISONS = {Comparison.PREVIOUS_DAY: 1, Comparison.SAME_DAY_LAST_WEEK: 7}


@dataclass(frozen=True)
class DriftRow:
    """A feature (or the score) on a date against one comparison (a row of monitoring.feature_drift).
    The thresholds are the effective ones, sampling-noise allowance included. Statistics that do
    not apply to the feature's kind are None (NULL)."""

    feature: str
    kind: str  # numeric | categorical | score
    comparison: Comparison
    compared_date: dt.date | None  # None for the baseline
    rows: int
    reference_rows: int
    importance: float | None  # None for the score
    psi_noise: float
    psi_warn: float
    psi_alert: float
    js_distance_alert: float
    linf_distance_alert: float | None  # categorical features only
    null_share_increase_alert: float
    psi: float
    js_distance: float
    status: DriftStatus
    reason: str  # the check that decided `status` ("" when ok), or why the row does not judge the feature
    decides: bool  # the row that judges the feature (alerts and daily_health read these)
    check: Check | None = None  # the check that fired, when `status` is warn or alert (`reason` says it in the table)
    null_share: float | None = None
    reference_null_share: float | None = None
    null_share_delta: float | None = None
    inf_share: float | None = None
    reference_inf_share: float | None = None
    linf_distance: float | None = None
    tv_distance: float | None = None
    mean: float | None = None
    reference_mean: float | None = None
    mean_delta_std: float | None = None
    action_threshold: float | None = None
    share_above_threshold: float | None = None
    reference_share_above_threshold: float | None = None

    @property
    def fired(self) -> bool:
        return self.status in (DriftStatus.WARN, DriftStatus.ALERT)

    def row(self) -> dict[str, Any]:
        values = asdict(self)
        del values["check"]
        return stored(values)


def profile(
    warehouse: Warehouse, spec: ModelSpec, reference: TrainingReference, version: int, as_of_date: dt.date
) -> Profile | None:
    """The date's profile as `version` scored it: the one stored with its predictions when there
    is one, else binned by the warehouse (see the module docstring). None when the date has no
    features; its score's counts are all zero when `version` has no predictions for it."""
    return _profile(warehouse, spec, reference, version, as_of_date, health.scoring_run(warehouse, spec, version, as_of_date))


def _profile(
    warehouse: Warehouse, spec: ModelSpec, reference: TrainingReference, version: int, as_of_date: dt.date, run: str | None
) -> Profile | None:
    # A date whose features are gone is not monitored, stored profile or not (`empty_partition`).
    if not health.has_rows(warehouse, tables.features(spec), as_of_date):
        return None
    return stored_profile(warehouse, spec, reference, version, as_of_date, run) or binned(
        warehouse, spec, reference, version, as_of_date, run
    )


def stored_profile(
    warehouse: Warehouse, spec: ModelSpec, reference: TrainingReference, version: int, as_of_date: dt.date, run: str | None
) -> Profile | None:
    """The profile stored for the date and version, if it describes the predictions of scoring
    run `run` (the date's now) with the reference's bins; else None. A profile of an earlier
    run (the date re-scored since), or one stored by a batchpred that kept no run id or means,
    or with other bins, is not used."""
    if run is None:
        return None
    saved = health.stored_profile(warehouse, spec.name, version, as_of_date)
    shapes = {b.name: len(b.labels) for b in [*reference.feature_bins(), score_bins(reference)]}
    if saved.scoring_run_ids != {run} or {name: len(saved.counts.get(name, ())) for name in shapes} != shapes:
        return None
    first = next((name for name in shapes if name != SCORE), SCORE)
    return Profile(sum(saved.counts[first]), {name: saved.counts[name] for name in shapes}, saved.means, run)


def binned(
    warehouse: Warehouse, spec: ModelSpec, reference: TrainingReference, version: int, as_of_date: dt.date, run: str | None
) -> Profile | None:
    """The date's features and `version`'s scores binned by the warehouse with the reference's
    bins (two scans), or None when it has no features. `run` is the scoring run whose
    predictions the date holds (`health.scoring_run`), recorded with the profile."""
    table = tables.features(spec)
    if warehouse.table_columns(table.schema, table.name) is None:
        return None
    features = health.histogram(warehouse, table, as_of_date, reference.feature_bins())
    if not features.rows:
        return None
    score = health.histogram(warehouse, tables.predictions(spec), as_of_date, [score_bins(reference)], version)
    counts = {**features.counts, SCORE: score.counts[SCORE]}
    means = {}
    for name, total in {**features.sums, SCORE: score.sums[SCORE]}.items():
        finite = sum(counts[name][:-2])  # the infinite and the null bin are not averaged
        means[name] = total / finite if total is not None and finite else None
    return Profile(features.rows, counts, means, run)


def compare(
    warehouse: Warehouse, spec: ModelSpec, reference: TrainingReference, version: int, as_of_date: dt.date, current: Profile
) -> list[DriftRow]:
    """The feature_drift rows of a date: `current` against the baseline and each comparison date."""
    threshold = reference.score.action_threshold  # the version's, never today's spec
    days = {name: as_of_date - dt.timedelta(days=d) for name, d in COMPARISONS.items()}
    shares = health.threshold_shares(warehouse, spec, version, [as_of_date, *days.values()], threshold)
    baseline = {name: list(f.counts) for name, f in reference.features.items()} | {SCORE: list(reference.score.counts)}
    baseline_share = reference.score.share_above_threshold
    rows = drift_rows(
        spec, reference, current, baseline, Comparison.BASELINE, None, None, (shares.get(as_of_date), baseline_share)
    )
    runs = health.scoring_runs(warehouse, spec, version, list(days.values()))
    for comparison, then in days.items():
        run = runs.get(then)
        if run is None:  # `version` scored nothing that day: nothing to compare with
            continue
        other = _profile(warehouse, spec, reference, version, then, run)
        # sum's start spelled out: mypy takes the bool of the `and` as the context and picks sum's bool overload
        if other is not None and sum(other.counts.get(SCORE, [0]), 0):
            share = (shares.get(as_of_date), shares.get(then))
            rows += drift_rows(spec, reference, current, other.counts, comparison, then, other.means, share)
    return rows


def drift_rows(
    spec: ModelSpec,
    reference: TrainingReference,
    current: Profile,
    baseline: dict[str, list[int]],
    comparison: Comparison,
    compared_date: dt.date | None,
    compared_means: dict[str, float | None] | None = None,
    threshold_shares: tuple[float | None, float | None] = (None, None),
) -> list[DriftRow]:
    """One row per feature (and the score) comparing `current` with the `baseline` counts;
    `threshold_shares` are the exact shares of scores at or above the version's action
    threshold, today's and the compared one's."""
    thresholds, rules = spec.monitoring, spec.monitoring.drift
    rows = []
    names = [*reference.features, SCORE]
    for name in names:
        ref = reference.score if name == SCORE else reference.features[name]
        kind = "score" if name == SCORE else reference.features[name].kind
        now, then = current.counts[name], baseline[name]
        n_now, n_then = sum(now), sum(then)
        if n_now == 0 or n_then == 0:
            continue
        # Snapshots of the same entities pooled in the training data are not independent rows.
        effective = min(n_then, (reference.score if name == SCORE else reference).effective_rows or n_then)
        m_then = effective if comparison == Comparison.BASELINE else n_then
        bins = sum(1 for a, b in zip(now, then, strict=True) if a or b)
        noise = m.psi_noise(bins, n_now, m_then)
        values: dict[str, Any] = {
            "feature": name,
            "kind": kind,
            "comparison": comparison,
            "compared_date": compared_date,
            "rows": n_now,
            "reference_rows": n_then,
            "importance": reference.importance.get(name) if name != SCORE else None,
            "psi_noise": noise,
            "psi_warn": thresholds.psi_warn + noise,
            "psi_alert": thresholds.psi_alert + noise,
            "js_distance_alert": math.sqrt(thresholds.js_distance_alert**2 + m.js_divergence_noise(noise)),
            "linf_distance_alert": thresholds.linf_distance_alert + m.linf_noise(m.shares(then), n_now, m_then)
            if kind == "categorical"
            else None,
            "null_share_increase_alert": thresholds.null_share_increase_alert
            + m.proportion_increase_noise((now[-1] + then[-1]) / (n_now + n_then), n_now, m_then),
        }
        if name != SCORE:
            values["null_share"] = now[-1] / n_now
            values["reference_null_share"] = then[-1] / n_then
            values["null_share_delta"] = values["null_share"] - values["reference_null_share"]
        if kind == "numeric":
            values["inf_share"], values["reference_inf_share"] = now[-2] / n_now, then[-2] / n_then
        p_now, p_then = m.shares(now), m.shares(then)
        values["psi"] = m.psi(p_then, p_now)
        values["js_distance"] = m.js_distance(p_then, p_now)
        if kind == "categorical":
            values["linf_distance"] = m.linf_distance(p_then, p_now)
            values["tv_distance"] = m.tv_distance(p_then, p_now)
        if kind != "categorical":
            mean_now = current.means.get(name)
            mean_then = ref.mean if comparison == Comparison.BASELINE else (compared_means or {}).get(name)
            values["mean"], values["reference_mean"] = mean_now, mean_then
            std = None if name == SCORE else reference.features[name].std  # the score has none
            if mean_now is not None and mean_then is not None and std:
                values["mean_delta_std"] = (mean_now - mean_then) / std
        if name == SCORE:
            values["action_threshold"] = reference.score.action_threshold
            values["share_above_threshold"], values["reference_share_above_threshold"] = threshold_shares
        rule = rules.get(name)
        same_weekday = rule is not None and rule.compare == "same_weekday"
        judged_by = Comparison.SAME_DAY_LAST_WEEK if same_weekday else Comparison.BASELINE
        if rule is not None and rule.exclude:
            values |= {"status": DriftStatus.EXCLUDED, "reason": f"excluded in model.yaml: {rule.exclude}", "decides": False}
        elif comparison == Comparison.BASELINE and judged_by != Comparison.BASELINE:
            reason = "judged against the same weekday (its same_day_last_week row), as model.yaml declares"
            values |= {"status": DriftStatus.EXCLUDED, "reason": reason, "decides": False}
        else:
            values["status"], values["check"] = status(values, kind)
            values["reason"] = str(values["check"] or "")
            values["decides"] = comparison == judged_by
        rows.append(DriftRow(**values))
    return rows


def status(values: dict[str, Any], kind: str) -> tuple[DriftStatus, Check | None]:
    """(ok | warn | alert, the check that decided it) of a feature's drift statistics."""
    checks = [  # the first that fires names the reason: missing data first, it explains the rest
        (DriftStatus.ALERT, Check.NULL_SHARE, (values.get("null_share_delta") or 0) >= values["null_share_increase_alert"]),
        (DriftStatus.ALERT, Check.PSI, values["psi"] >= values["psi_alert"]),
        (DriftStatus.ALERT, Check.JS_DISTANCE, values["js_distance"] >= values["js_distance_alert"]),
        (
            DriftStatus.ALERT,
            Check.LINF_DISTANCE,
            kind == "categorical" and values.get("linf_distance", 0) >= values["linf_distance_alert"],
        ),
        (DriftStatus.WARN, Check.PSI, values["psi"] >= values["psi_warn"]),
    ]
    for severity, check, fired in checks:
        if fired:
            return severity, check
    return DriftStatus.OK, None
