"""Alerts: one row per check that fired, per as-of date and version, and the retrain policy.

Checks, with thresholds from `monitoring` in model.yaml (defaults in README, "Model
health"): drift of each feature and of the score against the training reference
(PSI warn/alert, Jensen–Shannon distance, L-infinity distance for categoricals, an
increase of the null share), the estimated AUC below the validation AUC minus k
sampling errors, and the realized AUC more than a margin below the validation AUC.
p-values are never alerted on: at 100k rows everything is "significant".

An alert reaches a person through a webhook: `deliver` posts each alert on its own, with a
stable id, records each delivery in monitoring.alert_deliveries, and retries what an
earlier run could not deliver. The DAGs call it with the URL of an Airflow connection.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from pipelines.config.spec import ModelSpec
from pipelines.domain import redact
from pipelines.domain.errors import UndeliveredAlerts
from pipelines.domain.reference import TrainingReference
from pipelines.domain.status import (
    Check,
    Comparison,
    DeliveryStatus,
    DriftStatus,
    EstimateStatus,
    RealizedStatus,
    Severity,
    stored,
)

if TYPE_CHECKING:
    from pipelines.adapters.resources import Resources
    from pipelines.adapters.warehouse.base import Warehouse
    from pipelines.monitoring.drift import DriftRow
    from pipelines.monitoring.performance import Estimate, RealizedPerformance

log = logging.getLogger(__name__)

# The drift checks, and the drift row's column holding each one's alert threshold.
DRIFT_CHECKS = {
    Check.PSI: "psi_alert",
    Check.JS_DISTANCE: "js_distance_alert",
    Check.LINF_DISTANCE: "linf_distance_alert",
    Check.NULL_SHARE: "null_share_increase_alert",
}


# A feature's drift alert this many dates in a row is a configuration finding, not news.
FINDING_STREAK = 14


@dataclass(frozen=True)
class Alert:
    """A check that fired (a row of monitoring.alerts, without the model, version and date)."""

    check_name: Check
    subject: str  # the feature, "score", "model" or "shadow"
    severity: Severity  # see `with_streaks` for `finding`
    value: float
    threshold: float
    message: str
    consecutive_days: int = 1
    action: str | None = None
    action_result: str | None = None

    def row(self) -> dict[str, Any]:
        return stored(asdict(self))


def from_drift(rows: list[DriftRow]) -> list[Alert]:
    """An alert per feature whose drift crossed a threshold, in the row that judges the feature
    (`decides`: against the training reference, or the same weekday where model.yaml says so).
    The threshold is the effective one, noise allowance included."""
    found = []
    for r in rows:
        if not r.decides or not r.fired or r.check is None:
            continue
        check = r.check
        value = r.null_share_delta if check == Check.NULL_SHARE else getattr(r, check.value)
        assert value is not None  # the check fired on it (the null-share check fires only on a delta)
        threshold = r.psi_warn if r.status == DriftStatus.WARN else getattr(r, DRIFT_CHECKS[check])
        what = "the null share rose by" if check == Check.NULL_SHARE else f"{check.replace('_', ' ')} is"
        found.append(
            Alert(
                check,
                r.feature,
                Severity(r.status.value),
                float(value),
                float(threshold),
                f"{r.feature}: {what} {value:.3f} (threshold {threshold:.3f}, against {_against(r)})",
            )
        )
    return found


def _against(row: DriftRow) -> str:
    if row.comparison == Comparison.BASELINE:
        return "the training data"
    return f"{row.compared_date}, the same weekday"


def from_performance(estimated: Estimate | None, realized: RealizedPerformance | None) -> list[Alert]:
    """The alerts of an estimate and a realized performance whose status is `alert`; a
    `provisional` one (its labels not complete yet) never alerts."""
    found = []
    if estimated and estimated.status == EstimateStatus.ALERT:
        # `performance.estimate` alerts only on an AUC below its alert line: both are set.
        assert estimated.expected_auc is not None and estimated.alert_below is not None
        found.append(
            Alert(
                Check.ESTIMATED_AUC, "model", Severity.ALERT, estimated.expected_auc, estimated.alert_below,
                f"estimated AUC {estimated.expected_auc:.3f} is below {estimated.alert_below:.3f} "
                f"(validation AUC {estimated.validation_auc:.3f} minus the sampling errors)",
            )
        )  # fmt: skip
    if realized and realized.status == RealizedStatus.ALERT:
        assert realized.roc_auc is not None  # `performance.measure` alerts only on a realized AUC
        drop = realized.validation_auc - realized.roc_auc
        found.append(
            Alert(
                Check.REALIZED_AUC, "model", Severity.ALERT, realized.roc_auc, realized.validation_auc,
                f"realized AUC {realized.roc_auc:.3f} is {drop:.3f} below the validation AUC {realized.validation_auc:.3f}",
            )
        )  # fmt: skip
    return found


def from_attribution(
    reference: TrainingReference, today: list[dict[str, Any]], threshold: float
) -> tuple[float | None, list[Alert], str | None]:
    """nDCG of the date's feature ranking by mean |contribution| against the validation window's,
    an alert when it is below `threshold` (the features the model leans on have changed), and,
    when there is nothing to rank, None with the reason (daily_health.null_reason)."""
    from pipelines.monitoring.metrics import ndcg

    expected = dict(reference.attribution)
    if not today:
        return None, [], "attribution_ndcg: no reasons were computed for this date (reasons.method off, or not scored with them)"
    if len(expected) < 2:
        return None, [], "attribution_ndcg: the version's reference has fewer than two attributed features"
    if not sum(expected.values()) > 0:
        return None, [], "attribution_ndcg: the version's reference attributions are all zero (its trees have no splits)"
    score = ndcg(expected, {r["feature"]: r["mean_abs_contribution"] for r in today})
    if score >= threshold:
        return score, [], None
    message = f"attribution ranking nDCG {score:.3f} is below {threshold:g}"
    return score, [Alert(Check.ATTRIBUTION_NDCG, "model", Severity.ALERT, score, threshold, message)], None


def from_shadow(errors: str | None) -> list[Alert]:
    """An alert for a shadow version that did not score (the champion was published)."""
    if not errors:
        return []
    return [Alert(Check.SHADOW_FAILED, "shadow", Severity.WARN, 1.0, 0.0, f"shadow scoring failed: {errors[:500]}")]


def with_streaks(alerts: list[Alert], yesterday: list[dict[str, Any]]) -> list[Alert]:
    """Count consecutive days: an alert that also fired the day before (same check and subject)
    continues its streak. A feature's drift alert that reaches FINDING_STREAK days becomes a
    configuration finding (severity `finding`): said once, on that day, with what to declare
    in model.yaml; the days after keep counting it as `finding`, posted no more (`notify`)."""
    before = {(a["check_name"], a["subject"]): a["consecutive_days"] for a in yesterday}
    found = []
    for a in alerts:
        a = replace(a, consecutive_days=before.get((a.check_name, a.subject), 0) + 1)
        if a.check_name in DRIFT_CHECKS and a.subject != "score" and a.consecutive_days >= FINDING_STREAK:
            a = replace(
                a,
                severity=Severity.FINDING,
                message=f"{a.message}. It has alerted on {a.consecutive_days} dates in a row: a configuration finding, "
                f"not news. If the feature moves by design, declare it in model.yaml under monitoring.drift: "
                f"{a.subject}: {{compare: same_weekday}} (one value per weekday) or {{exclude: <why>}}; "
                "if it really moved, retrain",
            )
        found.append(a)
    return found


def notify(alerts: list[Alert]) -> list[Alert]:
    """The alerts to post: a configuration finding only on the day its streak reached FINDING_STREAK."""
    return [a for a in alerts if a.severity != Severity.FINDING or a.consecutive_days == FINDING_STREAK]


def retrain_decision(
    spec: ModelSpec, reference: TrainingReference, alerts: list[Alert], as_of_date: dt.date, last_request: dt.date | None
) -> tuple[bool, str]:
    """(retrain?, why) by the spec's policy: alert-level drift on enough of the most important
    features for enough consecutive days, or an estimated-AUC alert; at most once per cool-down."""
    policy = spec.monitoring
    top = sorted(reference.importance, key=lambda f: -reference.importance[f])[: policy.retrain_top_features]
    drifted = sorted(
        {
            a.subject
            for a in alerts
            # a finding is an alert that has lasted: real drift that long still asks for a retrain
            if a.severity in (Severity.ALERT, Severity.FINDING)
            and a.subject in top
            and a.consecutive_days >= policy.retrain_consecutive_days
        }
    )
    grounds = []
    if len(drifted) >= policy.retrain_drifted_features:
        grounds.append(
            f"{len(drifted)} of the {len(top)} most important features ({', '.join(drifted)}) drifted for "
            f"{policy.retrain_consecutive_days}+ days"
        )
    if policy.retrain_on_estimated_auc and any(a.check_name == Check.ESTIMATED_AUC for a in alerts):
        grounds.append("the estimated AUC fell below its alert line")
    if not grounds:
        return False, ""
    if last_request is not None and (as_of_date - last_request).days < policy.retrain_cooldown_days:
        cooldown = f"{policy.retrain_cooldown_days}-day cool-down since {last_request}"
        return False, f"retrain not requested: in the {cooldown} ({'; '.join(grounds)})"
    return True, "; ".join(grounds)


# -- delivery -------------------------------------------------------------------------

# Seconds one post may take: a receiver that hangs costs this much, then the next alert goes.
POST_TIMEOUT = 10.0
# Seconds all of one call's posts may take together; alerts not tried by then stay pending.
TOTAL_TIMEOUT = 120.0


class DeliveryFailed(Exception):
    """One post did not reach the webhook. The message is redacted: it never holds the URL."""


@dataclass(frozen=True)
class Delivery:
    alert_id: str
    delivered: bool
    tried: bool = True
    error: str | None = None


def alert_id(alert: dict[str, Any]) -> str:
    """A stable id for an alert: the same model, version, as-of date, check, subject and severity
    give the same id in every run, so a receiver can drop a repeat (it is the Idempotency-Key
    header); a check that rises from warn to alert on a date monitored again is news, and posted."""
    day = alert.get("as_of_date")
    key = [alert.get("model_name"), alert.get("model_version"), day.isoformat() if isinstance(day, dt.date) else day]
    key += [alert.get("check_name"), alert.get("subject"), alert.get("severity")]
    return hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()[:32]


def payload(alert: dict[str, Any]) -> dict[str, Any]:
    """The JSON posted for an alert: Slack-style `text`, its id and its fields, secrets redacted."""
    fields = {k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v) for k, v in alert.items()}
    fields["message"] = redact.text(fields.get("message") or "")
    text = f"[batchpred] {str(alert['severity']).upper()} {alert['model_name']} {fields.get('as_of_date') or ''}".rstrip()
    return {"text": f"{text}: {fields['message']}", **fields, "alert_id": alert.get("alert_id") or alert_id(alert)}


def post(url: str, body: dict[str, Any], timeout: float = POST_TIMEOUT) -> None:
    """POST one payload as JSON, its `alert_id` as the Idempotency-Key header. Raises DeliveryFailed
    on a non-2xx answer, a timeout or an unreachable receiver, with a reason that never holds the
    URL (httpx's own messages print it whole, tokens included)."""
    import httpx

    redact.guard_logger("httpx")  # it logs each request's full URL
    try:
        response = httpx.post(url, json=body, headers={"Idempotency-Key": body["alert_id"]}, timeout=timeout)
    except httpx.TimeoutException:
        raise DeliveryFailed(f"the webhook did not answer within {timeout:g}s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise DeliveryFailed(f"the webhook could not be reached: {type(exc).__name__}: {redact.text(exc)}") from None
    if not response.is_success:
        raise DeliveryFailed(f"the webhook answered {response.status_code} {response.reason_phrase}")


def send(
    url: str,
    bodies: list[dict[str, Any]],
    timeout: float = POST_TIMEOUT,
    budget: float = TOTAL_TIMEOUT,
    on_result: Callable[[Delivery], None] | None = None,
) -> list[Delivery]:
    """Post each payload once, each on its own: one that fails or hangs (for at most `timeout`
    seconds) does not keep the others from going. Once `budget` seconds have passed, the rest
    are not tried (`tried` False). Calls `on_result` after each, so a caller can record it at once."""
    deadline = time.monotonic() + budget
    results = []
    for body in bodies:
        left = deadline - time.monotonic()
        if left <= 0:
            result = Delivery(body["alert_id"], False, False, f"not tried: this run's {budget:g}s for deliveries ran out")
        else:
            try:
                post(url, body, min(timeout, left))
                result = Delivery(body["alert_id"], True)
            except DeliveryFailed as exc:
                result = Delivery(body["alert_id"], False, True, str(exc))
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def deliver(
    warehouse: Warehouse,
    model: str,
    url: str | None,
    alerts: list[dict[str, Any]],
    where: str = "the webhook connection",
    timeout: float = POST_TIMEOUT,
    budget: float = TOTAL_TIMEOUT,
) -> int:
    """Deliver `alerts` (and any earlier alert of `model` still pending) to the webhook at `url`.

    Each alert is queued in monitoring.alert_deliveries under its stable `alert_id` (an alert
    already delivered is not posted again), then every pending alert of the model is posted on
    its own and its attempt recorded (attempts, last_attempt_at, delivered_at or last_error,
    redacted). Returns how many were delivered; after trying them all, raises UndeliveredAlerts
    naming how many were not and why. With no URL, says once that none was sent and records nothing.
    """
    from pipelines.adapters.warehouse import health

    if url is None:
        if alerts:
            log.warning("%d alert(s) are in monitoring.alerts, none sent: no webhook (%s) is configured", len(alerts), where)
        return 0
    now = dt.datetime.now(dt.UTC)
    queued = [queued_row(payload(a), url, now) for a in alerts]
    health.queue_deliveries(warehouse, model, queued)
    pending = {r["alert_id"]: r for r in health.pending_deliveries(warehouse, model)}

    def record(result: Delivery) -> None:
        if not result.tried:
            health.record_delivery(warehouse, result.alert_id, {"last_error": result.error})
            return
        at = dt.datetime.now(dt.UTC)
        values = {"attempts": (pending[result.alert_id]["attempts"] or 0) + 1, "last_attempt_at": at}
        values |= (
            {"status": DeliveryStatus.DELIVERED.value, "delivered_at": at} if result.delivered else {"last_error": result.error}
        )
        health.record_delivery(warehouse, result.alert_id, values)

    results = send(url, [json.loads(r["payload"]) for r in pending.values()], timeout, budget, record)
    failed = [r for r in results if not r.delivered]
    if failed:
        reasons = "; ".join(f"{pending[r.alert_id]['check_name']} {pending[r.alert_id]['subject']}: {r.error}" for r in failed)
        raise UndeliveredAlerts(
            f"{len(failed)} of {len(results)} alert(s) of {model} not delivered to {redact.url(url)} ({reasons}); "
            "they are pending in monitoring.alert_deliveries and the next run retries them"
        )
    return len(results)


def queued_row(body: dict[str, Any], url: str, at: dt.datetime) -> dict[str, Any]:
    """A new monitoring.alert_deliveries row for a payload: pending, not tried yet."""
    return {
        "alert_id": body["alert_id"],
        "model_name": body.get("model_name"),
        "model_version": body.get("model_version"),
        "as_of_date": dt.date.fromisoformat(body["as_of_date"]) if body.get("as_of_date") else None,
        "check_name": body.get("check_name"),
        "subject": body.get("subject"),
        "severity": body.get("severity"),
        "payload": json.dumps(body, default=str),
        "destination": redact.url(url),
        "status": DeliveryStatus.PENDING.value,
        "attempts": 0,
        "queued_at": at,
    }


def deliver_failure(
    res: Resources | None, model: str, url: str | None, alert: dict[str, Any], timeout: float = POST_TIMEOUT
) -> bool:
    """Post a task failure at once (the warehouse may be what failed), then record it in
    monitoring.alert_deliveries: delivered, or pending for the model's next monitor run to
    retry. Never raises (it runs as a failure callback): what could be neither posted nor
    recorded is logged as an error, redacted; `res` is None when the resources could not even
    be built (a malformed URL, say). Returns whether it was delivered."""
    if url is None:
        return False
    body = payload(alert)
    [result] = send(url, [body], timeout, timeout)
    at = res.now() if res else dt.datetime.now(dt.UTC)
    row = queued_row(body, url, at) | {"attempts": 1, "last_attempt_at": at}
    row |= {"status": DeliveryStatus.DELIVERED.value, "delivered_at": at} if result.delivered else {"last_error": result.error}
    try:
        from pipelines.adapters.warehouse import health

        if res is None:
            raise ValueError("the warehouse settings could not be read")
        health.queue_deliveries(res.ready().warehouse, model, [row])
    except Exception as exc:  # noqa: BLE001 - the failure being reported matters more than its record
        log.error("task failure %s could not be recorded in monitoring.alert_deliveries: %s", body["alert_id"], redact.text(exc))
        if not result.delivered:
            log.error("task failure not delivered (%s); only this log holds it: %s", result.error, body["text"])
        return result.delivered
    if not result.delivered:
        log.error(
            "task failure %s was not delivered to %s (%s); it is pending in monitoring.alert_deliveries and the next "
            "monitor run of %s retries it", body["alert_id"], redact.url(url), result.error, model,
        )  # fmt: skip
    return result.delivered
