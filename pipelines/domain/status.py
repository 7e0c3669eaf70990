"""The statuses, severities and comparisons batchpred stores and decides on.

Each is a `StrEnum`: a member is the very string the tables hold (`Severity.ALERT ==
"alert"`, and it is stored as `alert`), so a dashboard's SQL and a row read back compare
equal to it. Code decides on members, never on message text.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A scoring attempt's status in monitoring.scoring_runs (see `pipelines.scoring.runlog`)."""

    RUNNING = "running"
    REFUSED = "refused"  # refused before any work: not an attempt at the date
    FAILED = "failed"
    PUBLISHED = "published"  # predictions visible, marts being rebuilt
    SUCCEEDED = "succeeded"
    MARTS_FAILED = "marts_failed"  # predictions published, marts not rebuilt
    UNPUBLISHED = "unpublished"


# The statuses of an attempt whose predictions went live.
PUBLISHED_STATUSES = (RunStatus.PUBLISHED, RunStatus.SUCCEEDED)


class ValidationOutcome(StrEnum):
    """How a date's validation ended (monitoring.scoring_runs.validation_outcome)."""

    PASSED = "passed"
    FAILED = "failed"


class Severity(StrEnum):
    """How loud an alert is (monitoring.alerts.severity)."""

    WARN = "warn"
    ALERT = "alert"
    FINDING = "finding"  # a drift alert that lasted FINDING_STREAK days: configuration, not news


class Check(StrEnum):
    """What fired (monitoring.alerts.check_name)."""

    PSI = "psi"
    JS_DISTANCE = "js_distance"
    LINF_DISTANCE = "linf_distance"
    NULL_SHARE = "null_share"
    ESTIMATED_AUC = "estimated_auc"
    REALIZED_AUC = "realized_auc"
    ATTRIBUTION_NDCG = "attribution_ndcg"
    SHADOW_FAILED = "shadow_failed"
    TASK_FAILED = "task_failed"


class Comparison(StrEnum):
    """What a date's distribution is compared with (monitoring.feature_drift.comparison)."""

    BASELINE = "baseline"  # the version's training data (the score: its validation window)
    PREVIOUS_DAY = "previous_day"
    SAME_DAY_LAST_WEEK = "same_day_last_week"


class DriftStatus(StrEnum):
    """A feature's drift (monitoring.feature_drift.status, daily_health.drift_status)."""

    OK = "ok"
    WARN = "warn"
    ALERT = "alert"
    EXCLUDED = "excluded"  # not judged by this row (model.yaml excludes it, or judges it by another)


class HealthStatus(StrEnum):
    """A date's health in one word (monitoring.daily_health.status)."""

    OK = "ok"
    WARN = "warn"
    ALERT = "alert"
    NO_REFERENCE = "no_reference"
    NO_PREDICTIONS = "no_predictions"
    EMPTY_PARTITION = "empty_partition"


class EstimateStatus(StrEnum):
    """An estimated (CBPE) performance row's status (monitoring.estimated_performance.status)."""

    OK = "ok"
    ALERT = "alert"
    NO_ESTIMATE = "no_estimate"  # the calibrated scores say every row is positive, or none is


class RealizedStatus(StrEnum):
    """A realized performance row's status (monitoring.realized_performance.status)."""

    OK = "ok"
    ALERT = "alert"
    SINGLE_CLASS = "single_class"  # every label is the same: no AUC
    PROVISIONAL = "provisional"  # the labels are not complete yet: never alerted on


# The action on the alerts of a date whose monitoring asked for a retrain (monitoring.alerts.action).
RETRAIN_REQUESTED = "retrain requested"


class DeliveryStatus(StrEnum):
    """An alert's delivery to the webhook (monitoring.alert_deliveries.status)."""

    PENDING = "pending"
    DELIVERED = "delivered"


def stored(values: dict[str, object]) -> dict[str, object]:
    """`values` with each member as the plain string a table stores (a database driver may
    write an enum by its name)."""
    return {key: str(value) if isinstance(value, StrEnum) else value for key, value in values.items()}
