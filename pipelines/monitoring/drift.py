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
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from pipelines.monitoring import metrics as m
from pipelines.monitoring.reference import Bins, bins_of
from pipelines.spec import ModelSpec
from pipelines.warehouse import Warehouse, catalog, health

SCORE = "score"  # the prediction, as a pseudo-feature
COMPARISONS = {"previous_day": 1, "same_day_last_week": 7}


@dataclass(frozen=True)
class Profile:
    rows: int
    counts: dict[str, list[int]]  # feature (and "score") -> rows per bin, null bin last
    means: dict[str, float | None]


def _profile(hist: health.Histogram) -> Profile:
    means = {}
    for name, (total, _) in hist.sums.items():
        present = hist.rows - hist.counts[name][-1]
        means[name] = total / present if total is not None and present else None
    return Profile(hist.rows, hist.counts, means)


def profile(
    warehouse: Warehouse, spec: ModelSpec, reference: dict[str, Any], version: int, as_of_date: dt.date
) -> Profile | None:
    """Date's features and score binned with the reference's bins, or None when it has no features."""
    features = histogram(warehouse, spec, reference, as_of_date)
    if features is None:
        return None
    score = health.histogram(warehouse, catalog.predictions(spec), as_of_date, [score_bins(reference)], version)
    counts = {**features.counts, SCORE: score.counts["score"]}
    means = {**features.means, SCORE: _profile(score).means["score"]}
    return Profile(features.rows, counts, means)


def histogram(warehouse: Warehouse, spec: ModelSpec, reference: dict[str, Any], as_of_date: dt.date) -> Profile | None:
    table = catalog.features(spec)
    if warehouse.table_columns(table.schema, table.name) is None:
        return None
    hist = health.histogram(warehouse, table, as_of_date, bins_of(reference))
    return _profile(hist) if hist.rows else None


def score_bins(reference: dict[str, Any]) -> Bins:
    return Bins("score", "score", tuple(reference["score"]["cuts"]))


def profile_rows(reference: dict[str, Any], profile: Profile) -> list[dict[str, Any]]:
    """The rows of monitoring.feature_profiles for one date, each bin beside the training reference's."""
    rows = []
    for b in [*bins_of(reference), score_bins(reference)]:
        name = SCORE if b.kind == "score" else b.name
        reference_counts = reference["score"]["counts"] if name == SCORE else reference["features"][name]["counts"]
        for j, (label, (lower, upper)) in enumerate(zip(b.labels, b.bounds(), strict=True)):
            rows.append(
                {
                    "feature": name,
                    "kind": b.kind,
                    "bin": j,
                    "label": label,
                    "lower": lower,
                    "upper": upper,
                    "rows": profile.counts[name][j],
                    "reference_rows": reference_counts[j],
                }
            )
    return rows


def drift_rows(
    spec: ModelSpec,
    reference: dict[str, Any],
    current: Profile,
    baseline: dict[str, list[int]],
    comparison: str,
    compared_date: dt.date | None,
    compared_means: dict[str, float | None] | None = None,
) -> list[dict[str, Any]]:
    """One row per feature (and the score) comparing `current` with the `baseline` counts."""
    thresholds = spec.monitoring
    rows = []
    names = [*reference["features"], SCORE]
    for name in names:
        ref = reference["score"] if name == SCORE else reference["features"][name]
        kind = "score" if name == SCORE else ref["kind"]
        now, then = current.counts[name], baseline[name]
        n_now, n_then = sum(now), sum(then)
        if n_now == 0 or n_then == 0:
            continue
        row: dict[str, Any] = {
            "feature": name,
            "kind": kind,
            "comparison": comparison,
            "compared_date": compared_date,
            "rows": n_now,
            "reference_rows": n_then,
            "importance": reference["importance"].get(name) if name != SCORE else None,
            "psi_warn": thresholds.psi_warn,
            "psi_alert": thresholds.psi_alert,
            "js_distance_alert": thresholds.js_distance_alert,
            "linf_distance_alert": thresholds.linf_distance_alert if kind == "categorical" else None,
            "null_share_increase_alert": thresholds.null_share_increase_alert,
        }
        if name != SCORE:
            row["null_share"] = now[-1] / n_now
            row["reference_null_share"] = then[-1] / n_then
            row["null_share_delta"] = row["null_share"] - row["reference_null_share"]
        p_now, p_then = m.shares(now), m.shares(then)
        row["psi"] = m.psi(p_then, p_now)
        row["js_distance"] = m.js_distance(p_then, p_now)
        if kind == "categorical":
            row["linf_distance"] = m.linf_distance(p_then, p_now)
            row["tv_distance"] = m.tv_distance(p_then, p_now)
        if kind != "categorical":
            mean_now = current.means.get(name)
            mean_then = ref.get("mean") if comparison == "baseline" else (compared_means or {}).get(name)
            row["mean"], row["reference_mean"] = mean_now, mean_then
            std = ref.get("std")
            if mean_now is not None and mean_then is not None and std:
                row["mean_delta_std"] = (mean_now - mean_then) / std
        if name == SCORE:
            cuts = reference["score"]["cuts"]
            row["share_above_threshold"] = _share_above(now, cuts, spec.action_threshold)
            row["reference_share_above_threshold"] = (
                reference["score"]["share_above_threshold"]
                if comparison == "baseline"
                else _share_above(then, cuts, spec.action_threshold)
            )
        row["status"], row["reason"] = status(row, kind)
        rows.append(row)
    return rows


def _share_above(counts: list[int], cuts: list[float], threshold: float) -> float | None:
    """Share of scores at or above `threshold`, when the threshold is a bin edge; else None."""
    present = sum(counts[:-1])
    if not present:
        return None
    edges = [-math.inf, *cuts]
    above = [i for i, lower in enumerate(edges) if lower >= threshold]
    if not above and threshold > max(cuts, default=-math.inf):
        return None
    return sum(counts[i] for i in above) / present if above else None


def status(row: dict[str, Any], kind: str) -> tuple[str, str]:
    """(ok | warn | alert, the check that decided it)."""
    checks = [  # the first that fires names the reason: missing data first, it explains the rest
        ("alert", "null_share", (row.get("null_share_delta") or 0) >= row["null_share_increase_alert"]),
        ("alert", "psi", row["psi"] >= row["psi_alert"]),
        ("alert", "js_distance", row["js_distance"] >= row["js_distance_alert"]),
        ("alert", "linf_distance", kind == "categorical" and row.get("linf_distance", 0) >= row["linf_distance_alert"]),
        ("warn", "psi", row["psi"] >= row["psi_warn"]),
    ]
    for severity, check, fired in checks:
        if fired:
            return severity, check
    return "ok", ""
