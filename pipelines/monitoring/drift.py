"""Feature and prediction drift of one scored date, against the version's training reference.

For date D scored by version v: one scan of D's feature partition bins every feature
with v's reference bins, and one of D's predictions bins the score (prediction
drift); the profiles are stored (`monitoring.feature_profiles`). Each feature (and the
score) is then compared with three distributions (`monitoring.feature_drift`):

- `baseline`: v's training data (the score: its validation window);
- `previous_day`: D - 1, binned the same way;
- `same_day_last_week`: D - 7.

A comparison date's profile is read from the table when it was stored, else binned
from its partition, and skipped when the date has no data.

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
from pipelines.domain.reference import Bins, TrainingReference
from pipelines.domain.status import Check, Comparison, DriftStatus, stored
from pipelines.monitoring import metrics as m

SCORE = "score"  # the prediction, as a pseudo-feature
COMPARISONS = {Comparison.PREVIOUS_DAY: 1, Comparison.SAME_DAY_LAST_WEEK: 7}


@dataclass(frozen=True)
class Profile:
    rows: int
    counts: dict[str, list[int]]  # feature (and "score") -> rows per bin; numeric: the infinite bin, then the null bin, last
    means: dict[str, float | None]  # numeric features (and the score): the mean of the finite values


@dataclass(frozen=True)
class ProfileBin:
    """One bin of a feature's (or the score's) profile on a date, beside the training reference's
    (a row of monitoring.feature_profiles)."""

    feature: str
    kind: str
    bin: int
    label: str
    lower: float | None
    upper: float | None
    rows: int
    reference_rows: int

    def row(self) -> dict[str, Any]:
        return asdict(self)


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


def _profile(hist: health.Histogram) -> Profile:
    means = {}
    for name, total in hist.sums.items():
        finite = hist.rows - sum(hist.counts[name][-2:])
        means[name] = total / finite if total is not None and finite else None
    return Profile(hist.rows, hist.counts, means)


def profile(
    warehouse: Warehouse, spec: ModelSpec, reference: TrainingReference, version: int, as_of_date: dt.date
) -> Profile | None:
    """Date's features and score binned with the reference's bins, or None when it has no features."""
    features = histogram(warehouse, spec, reference, as_of_date)
    if features is None:
        return None
    score = health.histogram(warehouse, tables.predictions(spec), as_of_date, [score_bins(reference)], version)
    counts = {**features.counts, SCORE: score.counts["score"]}
    means = {**features.means, SCORE: _profile(score).means["score"]}
    return Profile(features.rows, counts, means)


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
    shapes = {name: len(counts) for name, counts in baseline.items()}
    other: Profile | None
    for comparison, then in days.items():
        saved = health.stored_profile(warehouse, spec.name, version, then)
        if saved and {name: len(saved.get(name, ())) for name in shapes} == shapes:
            other = Profile(sum(saved[SCORE]), saved, health.stored_means(warehouse, spec.name, version, then))
        else:  # not stored, or stored with other bins (by an older batchpred): bin it again
            other = profile(warehouse, spec, reference, version, then)
        # sum's start spelled out: mypy takes the bool of the `and` as the context and picks sum's bool overload
        if other is not None and sum(other.counts.get(SCORE, [0]), 0):
            share = (shares.get(as_of_date), shares.get(then))
            rows += drift_rows(spec, reference, current, other.counts, comparison, then, other.means, share)
    return rows


def histogram(warehouse: Warehouse, spec: ModelSpec, reference: TrainingReference, as_of_date: dt.date) -> Profile | None:
    table = tables.features(spec)
    if warehouse.table_columns(table.schema, table.name) is None:
        return None
    hist = health.histogram(warehouse, table, as_of_date, reference.feature_bins())
    return _profile(hist) if hist.rows else None


def score_bins(reference: TrainingReference) -> Bins:
    return reference.score.bins


def profile_bins(reference: TrainingReference, profile: Profile) -> list[ProfileBin]:
    """The monitoring.feature_profiles rows of one date, each bin beside the training reference's."""
    found = []
    for b in [*reference.feature_bins(), score_bins(reference)]:
        name = SCORE if b.kind == "score" else b.name
        reference_counts = reference.score.counts if name == SCORE else reference.features[name].counts
        for j, (label, (lower, upper)) in enumerate(zip(b.labels, b.bounds(), strict=True)):
            found.append(ProfileBin(name, b.kind, j, label, lower, upper, profile.counts[name][j], reference_counts[j]))
    return found


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
