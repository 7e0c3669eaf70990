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
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipelines.adapters.warehouse import Warehouse, health
from pipelines.config.spec import ModelSpec
from pipelines.domain.reference import TrainingReference
from pipelines.domain.status import EstimateStatus, RealizedStatus, stored
from pipelines.monitoring import metrics as m


@dataclass(frozen=True)
class Estimate:
    """The estimated (CBPE) performance of a date's scores (a row of monitoring.estimated_performance).
    The AUC, its sampling error and band are None when the calibrated scores hold one class only."""

    rows: int
    expected_auc: float | None
    sampling_error: float | None
    expected_auc_lower: float | None
    expected_auc_upper: float | None
    expected_positive_rate: float
    expected_precision_top_decile: float
    validation_auc: float
    alert_below: float | None  # the validation AUC minus k sampling errors
    status: EstimateStatus

    @property
    def band(self) -> tuple[float, float] | None:
        if self.expected_auc_lower is None or self.expected_auc_upper is None:
            return None
        return self.expected_auc_lower, self.expected_auc_upper

    def row(self) -> dict[str, Any]:
        return stored(asdict(self))


@dataclass(frozen=True)
class CalibrationBin:
    """Rows of a labelled date whose score fell in one tenth of [0, 1] (a row of monitoring.calibration_bins)."""

    bin: int
    lower: float
    upper: float
    rows: int
    mean_score: float
    positive_rate: float

    def row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RealizedPerformance:
    """The realized performance of a labelled date (a row of monitoring.realized_performance), and
    its calibration bins. AUCs are None when every label is the same (`single_class`)."""

    rows_labelled: int
    positives: int
    log_loss: float
    brier_score: float
    precision_top_decile: float
    recall_top_decile: float | None
    expected_auc: float | None
    validation_auc: float
    labels_complete_through: dt.date | None  # None: a label source has no rows yet (the row is provisional)
    status: RealizedStatus
    expected_calibration_error: float
    roc_auc: float | None = None
    pr_auc: float | None = None
    estimation_error: float | None = None  # realized minus expected AUC
    calibration: tuple[CalibrationBin, ...] = ()

    @property
    def final(self) -> bool:
        """Whether its labels are complete (a provisional row is recomputed, and never alerted on)."""
        return self.status != RealizedStatus.PROVISIONAL

    def row(self) -> dict[str, Any]:
        values = asdict(self)
        del values["calibration"]
        return stored(values)


def estimate(
    warehouse: Warehouse,
    spec: ModelSpec,
    reference: TrainingReference,
    version: int,
    as_of_date: dt.date,
    alias: str | None = None,
) -> Estimate | None:
    """The estimated performance of one date (of a shadow version's scores, with its `alias`),
    or None when it has no predictions."""
    buckets = health.score_buckets(warehouse, spec, as_of_date, version, alias)
    if buckets.num_rows == 0:
        return None
    scores = buckets.column("mean_score").to_numpy()
    rows = buckets.column("rows").to_numpy().astype(np.float64)
    probability = m.calibrate(scores, np.asarray(reference.calibration.x), np.asarray(reference.calibration.y))
    total = float(rows.sum())
    positives = float((rows * probability).sum())
    validation = reference.validation
    if positives <= 0 or positives >= total:
        auc = se = None
        status = EstimateStatus.NO_ESTIMATE
    else:
        auc = m.expected_auc(scores, rows, probability)
        se = m.hanley_mcneil_se(auc, positives, total - positives)
        status = EstimateStatus.OK
    k = spec.monitoring.estimated_auc_sampling_errors
    alert_below = validation.auc - k * se if se is not None else None
    if auc is not None and alert_below is not None and auc < alert_below:  # alert_below is set whenever auc is
        status = EstimateStatus.ALERT
    return Estimate(
        rows=int(total),
        expected_auc=auc,
        sampling_error=se,
        expected_auc_lower=auc - k * se if auc is not None and se is not None else None,  # both or neither
        expected_auc_upper=auc + k * se if auc is not None and se is not None else None,
        expected_positive_rate=positives / total,
        expected_precision_top_decile=m.expected_precision_at_top(scores, rows, probability, share=0.1),
        validation_auc=validation.auc,
        alert_below=alert_below,
        status=status,
    )


def measure(
    warehouse: Warehouse,
    spec: ModelSpec,
    reference: TrainingReference,
    version: int,
    as_of_date: dt.date,
    labels_through: dt.date | None,
    expected_auc: float | None,
    final: bool = True,
) -> RealizedPerformance | None:
    """The realized performance of one date whose label horizon is over, with its calibration
    bins, or None when none of its predictions has a label. Unless `final` (its labels are
    complete through `labels_through`), its status is `provisional` whatever its values, so
    nothing alerts on it."""
    totals = health.labelled_totals(warehouse, spec, as_of_date, version)
    n = int(totals["rows"] or 0)
    if n == 0:
        return None
    positives = int(totals["positives"] or 0)
    validation_auc = reference.validation.auc
    status, roc_auc, pr_auc = RealizedStatus.OK, None, None
    if 0 < positives < n:
        groups = health.labelled_groups(warehouse, spec, as_of_date, version)
        args = (groups.column("score").to_numpy(), groups.column("rows").to_numpy(), groups.column("positives").to_numpy())
        roc_auc = m.roc_auc_grouped(*args)
        pr_auc = m.average_precision_grouped(*args)
        if validation_auc - roc_auc > spec.monitoring.realized_auc_drop_alert:
            status = RealizedStatus.ALERT
    else:
        status = RealizedStatus.SINGLE_CLASS  # every label is the same: no AUC
    if not final:
        status = RealizedStatus.PROVISIONAL
    bins = health.calibration_groups(warehouse, spec, as_of_date, version).to_pylist()
    calibration = tuple(
        CalibrationBin(b["bin"], b["bin"] / 10, (b["bin"] + 1) / 10, b["rows"], b["mean_score"], b["positive_rate"]) for b in bins
    )
    return RealizedPerformance(
        rows_labelled=n,
        positives=positives,
        log_loss=totals["log_loss_sum"] / n,
        brier_score=totals["brier_sum"] / n,
        precision_top_decile=totals["top_positives"] / totals["top_rows"],
        recall_top_decile=totals["top_positives"] / positives if positives else None,
        expected_auc=expected_auc,
        validation_auc=validation_auc,
        labels_complete_through=labels_through,
        status=status,
        expected_calibration_error=m.expected_calibration_error(
            np.array([b["rows"] for b in bins], dtype=np.float64),
            np.array([b["mean_score"] for b in bins]),
            np.array([b["positive_rate"] for b in bins]),
        ),
        roc_auc=roc_auc,
        pr_auc=pr_auc,
        estimation_error=roc_auc - expected_auc if roc_auc is not None and expected_auc is not None else None,
        calibration=calibration,
    )
