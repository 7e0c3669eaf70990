"""A version's training reference: what its training data looked like, stored with the
version (MLflow artifact `training_reference.json`) when it is logged, so monitoring
compares every scored date against the data that version learnt from, never against
whatever the spec or the warehouse says today.

It holds, per feature, the bins drift is measured on and the training data's share in
each; the score distribution and the calibration map on the validation window (what
the estimated performance reads); the validation metrics; and feature importances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipelines.config.contract import InputContract
from pipelines.domain.reference import FORMAT, Bins, next_up
from pipelines.scoring import profile

NUMERIC_BINS = 10  # quantile bins per numeric feature (fewer when values repeat)


def quantile_cuts(values: np.ndarray, bins: int) -> tuple[float, ...]:
    """Cut points such that every change in the distribution of the finite values can show.

    A value holding at least 1/bins of the finite values (a dominant value, or the only
    value of a constant) gets a bin of its own, [v, next float32 after v), with the bins
    below and above it; the other values get interior cuts at their quantiles 1/bins ..
    (bins-1)/bins, deduplicated (fewer bins when values repeat). float32 values, as the
    model reads them (`InputContract.matrix`); NaN and infinities are not binned here.
    """
    present = values[np.isfinite(values)].astype(np.float32)
    if present.size == 0:
        return ()
    distinct, counts = np.unique(present, return_counts=True)
    dominant = distinct[counts * bins >= present.size]
    rest = present[~np.isin(present, dominant)]
    cuts = {next_up(v) for v in dominant} | {float(v) for v in dominant}
    if rest.size:
        quantiles = np.quantile(rest, np.linspace(0, 1, bins + 1)[1:-1], method="lower")
        cuts |= {float(c) for c in np.unique(quantiles.astype(np.float32)) if c > rest.min()}
    return tuple(sorted(cuts))


def numeric_counts(values: np.ndarray, cuts: tuple[float, ...]) -> list[int]:
    """Rows per bin of `Bins(cuts=...)`: the finite bins, the infinite bin, the null bin (NaN is
    null), counted as a scored date's are (`pipelines.scoring.profile`)."""
    return profile.numeric_counts(values, profile.float32_cuts(cuts))[0]


def categorical_counts(values: Any, categories: tuple[str, ...]) -> list[int]:
    """Rows per category, then other values, then nulls, of an Arrow string array."""
    return profile.categorical_counts(values, categories)


def training_reference(
    contract: InputContract,
    matrix: np.ndarray,
    categorical_values: dict[str, Any],
    valid_scores: np.ndarray,
    valid_labels: np.ndarray,
    metrics: dict[str, float],
    importance: dict[str, float],
    action_threshold: float,
    attribution: dict[str, float] | None = None,
    entities: int | None = None,
    valid_entities: int | None = None,
) -> dict[str, Any]:
    """The reference of a version trained on `matrix` (training rows x features, in the
    contract's order; `categorical_values` each categorical feature's raw text, an Arrow array), and
    validated with `valid_scores` against `valid_labels`; `attribution` is the mean
    |contribution| of each feature over the validation window (what attribution drift
    compares a date's with). `entities` and `valid_entities` are the distinct entities among
    the training and the validation rows: the effective sample sizes drift's noise allowance
    uses, since snapshots of the same entities are not independent samples (`effective_rows`).

    Calibration map: isotonic regression of the label on the score over the validation
    window (sklearn IsotonicRegression, out_of_bounds="clip"), as CBPE prescribes; stored
    as its breakpoints.
    """
    from sklearn.isotonic import IsotonicRegression

    from pipelines.monitoring import metrics as m

    features = {}
    for i, feature in enumerate(contract.features):
        if feature.kind == "categorical":
            counts = categorical_counts(categorical_values[feature.name], feature.categories)
            bins = Bins(feature.name, "categorical", categories=feature.categories)
            entry: dict[str, Any] = {}
        else:
            column = matrix[:, i]
            bins = Bins(feature.name, "numeric", cuts=quantile_cuts(column, NUMERIC_BINS))
            counts = numeric_counts(column, bins.cuts)
            present = column[np.isfinite(column)].astype(np.float64)  # infinities are counted, not averaged
            entry = {
                "mean": float(present.mean()) if present.size else None,
                "std": float(present.std()) if present.size else None,
            }
        rows = int(sum(counts))
        features[feature.name] = {
            "kind": bins.kind,
            "cuts": list(bins.cuts),
            "categories": list(bins.categories),
            "counts": counts,
            "rows": rows,
            "null_share": counts[-1] / rows if rows else None,
            **entry,
        }

    scores = valid_scores.astype(np.float64)
    score_bins = Bins("score", "score", cuts=quantile_cuts(scores.astype(np.float32), NUMERIC_BINS))
    isotonic = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, valid_labels)
    calibrated = isotonic.predict(scores)
    positives = float(calibrated.sum())
    expected = m.expected_auc(scores, np.ones_like(scores), calibrated)
    total = sum(importance.values()) or 1.0
    return {
        "format": FORMAT,
        "features": features,
        "effective_rows": min(entities or matrix.shape[0], matrix.shape[0]),
        "score": {
            "cuts": list(score_bins.cuts),
            "counts": numeric_counts(scores.astype(np.float32), score_bins.cuts),
            "rows": int(scores.size),
            "effective_rows": min(valid_entities or scores.size, scores.size),
            "mean": float(scores.mean()),
            "share_above_threshold": float((scores >= action_threshold).mean()),
            "action_threshold": action_threshold,
        },
        "calibration": {"x": isotonic.X_thresholds_.tolist(), "y": isotonic.y_thresholds_.tolist()},
        "validation": {
            **metrics,
            "rows": int(scores.size),
            "positives": int(valid_labels.sum()),
            "positive_rate": float(valid_labels.mean()),
            "expected_auc": expected,
            "sampling_error": m.hanley_mcneil_se(expected, positives, scores.size - positives),
        },
        "importance": {name: importance.get(name, 0.0) / total for name in contract.feature_names},
        "attribution": attribution or {},
    }
