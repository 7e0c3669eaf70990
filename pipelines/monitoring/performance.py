"""Estimated performance before labels arrive, and realized performance once they do.

Estimated (CBPE, confidence-based performance estimation, as NannyML describes it):
the version's calibration map (isotonic regression of the label on the score, fitted
on its validation window) turns each score into a probability of a positive; the
expected confusion matrix at every threshold, and so the expected ROC curve and AUC,
follow from those probabilities without a single label. The warehouse groups the
date's scores into fine buckets first (`health.score_buckets`), so rows in one bucket
count as ties. The band is ± `monitoring.estimated_auc_sampling_errors` Hanley–McNeil
standard errors at the date's expected counts.

Realized: once D + the label horizon is complete, the labels model's rows for D are
joined to D's predictions in the warehouse, which returns them grouped by distinct
score; ROC AUC and PR AUC (average precision) from those groups equal scikit-learn's
on the same rows. While a table the labels read (`completeness.label_sources`) has not
reached D + the horizon, the row is `provisional`: computed on the labels known so far,
never alerted on, and recomputed (final) once they are complete.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from pipelines.adapters.warehouse import Warehouse, health
from pipelines.config.spec import ModelSpec
from pipelines.monitoring import metrics as m


def estimate(
    warehouse: Warehouse, spec: ModelSpec, reference: dict[str, Any], version: int, as_of_date: dt.date, alias: str | None = None
) -> dict[str, Any] | None:
    """The row of monitoring.estimated_performance for one date (of a shadow version's scores,
    with its `alias`), or None when it has no predictions."""
    buckets = health.score_buckets(warehouse, spec, as_of_date, version, alias)
    if buckets.num_rows == 0:
        return None
    scores = buckets.column("mean_score").to_numpy()
    rows = buckets.column("rows").to_numpy().astype(np.float64)
    probability = m.calibrate(scores, np.asarray(reference["calibration"]["x"]), np.asarray(reference["calibration"]["y"]))
    total = float(rows.sum())
    positives = float((rows * probability).sum())
    validation = reference["validation"]
    if positives <= 0 or positives >= total:
        auc = se = None
        status = "no_estimate"
    else:
        auc = m.expected_auc(scores, rows, probability)
        se = m.hanley_mcneil_se(auc, positives, total - positives)
        status = "ok"
    k = spec.monitoring.estimated_auc_sampling_errors
    alert_below = validation["auc"] - k * se if se is not None else None
    if auc is not None and auc < alert_below:
        status = "alert"
    return {
        "rows": int(total),
        "expected_auc": auc,
        "sampling_error": se,
        "expected_auc_lower": auc - k * se if auc is not None else None,
        "expected_auc_upper": auc + k * se if auc is not None else None,
        "expected_positive_rate": positives / total,
        "expected_precision_top_decile": m.expected_precision_at_top(scores, rows, probability, share=0.1),
        "validation_auc": validation["auc"],
        "alert_below": alert_below,
        "status": status,
    }


def realize(
    warehouse: Warehouse,
    spec: ModelSpec,
    reference: dict[str, Any],
    version: int,
    as_of_date: dt.date,
    labels_through: dt.date,
    expected_auc: float | None,
    final: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(monitoring.realized_performance row, monitoring.calibration_bins rows) for one date
    whose label horizon is over, or None when none of its predictions has a label. Unless
    `final` (its labels are complete through `labels_through`), the row's status is
    `provisional` whatever its values, so nothing alerts on it."""
    totals = health.labelled_totals(warehouse, spec, as_of_date, version)
    n = int(totals["rows"] or 0)
    if n == 0:
        return None
    positives = int(totals["positives"] or 0)
    validation_auc = reference["validation"]["auc"]
    row: dict[str, Any] = {
        "rows_labelled": n,
        "positives": positives,
        "log_loss": totals["log_loss_sum"] / n,
        "brier_score": totals["brier_sum"] / n,
        "precision_top_decile": totals["top_positives"] / totals["top_rows"],
        "recall_top_decile": totals["top_positives"] / positives if positives else None,
        "expected_auc": expected_auc,
        "validation_auc": validation_auc,
        "labels_complete_through": labels_through,
        "status": "ok",
    }
    if 0 < positives < n:
        groups = health.labelled_groups(warehouse, spec, as_of_date, version)
        args = (groups.column("score").to_numpy(), groups.column("rows").to_numpy(), groups.column("positives").to_numpy())
        row["roc_auc"] = m.roc_auc_grouped(*args)
        row["pr_auc"] = m.average_precision_grouped(*args)
        row["estimation_error"] = row["roc_auc"] - expected_auc if expected_auc is not None else None
        if validation_auc - row["roc_auc"] > spec.monitoring.realized_auc_drop_alert:
            row["status"] = "alert"
    else:
        row["status"] = "single_class"  # every label is the same: no AUC
    if not final:
        row["status"] = "provisional"
    bins = health.calibration_groups(warehouse, spec, as_of_date, version).to_pylist()
    calibration = [
        {
            "bin": b["bin"],
            "lower": b["bin"] / 10,
            "upper": (b["bin"] + 1) / 10,
            "rows": b["rows"],
            "mean_score": b["mean_score"],
            "positive_rate": b["positive_rate"],
        }
        for b in bins
    ]
    row["expected_calibration_error"] = m.expected_calibration_error(
        np.array([b["rows"] for b in bins], dtype=np.float64),
        np.array([b["mean_score"] for b in bins]),
        np.array([b["positive_rate"] for b in bins]),
    )
    return row, calibration
