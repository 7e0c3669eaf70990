"""Alerts: one row per check that fired, per as-of date and version, and the retrain policy.

Checks, with thresholds from `monitoring` in model.yaml (defaults in README, "Model
health"): drift of each feature and of the score against the training reference
(PSI warn/alert, Jensen–Shannon distance, L-infinity distance for categoricals, an
increase of the null share), the estimated AUC below the validation AUC minus k
sampling errors, and the realized AUC more than a margin below the validation AUC.
p-values are never alerted on: at 100k rows everything is "significant".

An alert reaches a person through a webhook (`post`), which the Airflow notifier in
dags/ calls with the URL of an Airflow connection.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

from pipelines.spec import ModelSpec

log = logging.getLogger(__name__)

DRIFT_CHECKS = {
    "psi": "psi_alert",
    "js_distance": "js_distance_alert",
    "linf_distance": "linf_distance_alert",
    "null_share": "null_share_increase_alert",
}


@dataclass(frozen=True)
class Alert:
    check_name: str  # psi | js_distance | linf_distance | null_share | estimated_auc | realized_auc
    subject: str  # the feature, "score", or "model"
    severity: str  # warn | alert
    value: float
    threshold: float
    message: str
    consecutive_days: int = 1
    action: str | None = None
    action_result: str | None = None

    def row(self) -> dict[str, Any]:
        return asdict(self)


def from_drift(rows: list[dict[str, Any]]) -> list[Alert]:
    """An alert per feature whose drift against the training reference crossed a threshold."""
    found = []
    for r in rows:
        if r["comparison"] != "baseline" or r["status"] == "ok":
            continue
        check = r["reason"]
        value = r["null_share_delta"] if check == "null_share" else r[check]
        threshold = r["psi_warn"] if r["status"] == "warn" else r[DRIFT_CHECKS[check]]
        what = "the null share rose by" if check == "null_share" else f"{check.replace('_', ' ')} is"
        found.append(
            Alert(
                check,
                r["feature"],
                r["status"],
                float(value),
                float(threshold),
                f"{r['feature']}: {what} {value:.3f} (threshold {threshold:g})",
            )
        )
    return found


def from_performance(estimated: dict[str, Any] | None, realized: dict[str, Any] | None) -> list[Alert]:
    found = []
    if estimated and estimated["status"] == "alert":
        found.append(
            Alert(
                "estimated_auc", "model", "alert", estimated["expected_auc"], estimated["alert_below"],
                f"estimated AUC {estimated['expected_auc']:.3f} is below {estimated['alert_below']:.3f} "
                f"(validation AUC {estimated['validation_auc']:.3f} minus the sampling errors)",
            )
        )  # fmt: skip
    if realized and realized["status"] == "alert":
        drop = realized["validation_auc"] - realized["roc_auc"]
        found.append(
            Alert(
                "realized_auc", "model", "alert", realized["roc_auc"], realized["validation_auc"],
                f"realized AUC {realized['roc_auc']:.3f} is {drop:.3f} below the validation AUC {realized['validation_auc']:.3f}",
            )
        )  # fmt: skip
    return found


def from_attribution(
    reference: dict[str, Any], today: list[dict[str, Any]], threshold: float
) -> tuple[float | None, list[Alert]]:
    """nDCG of the date's feature ranking by mean |contribution| against the validation window's,
    and an alert when it is below `threshold` (the features the model leans on have changed)."""
    from pipelines.monitoring.metrics import ndcg

    expected = reference.get("attribution") or {}
    if not expected or not today or len(expected) < 2:
        return None, []
    score = ndcg(expected, {r["feature"]: r["mean_abs_contribution"] for r in today})
    if score >= threshold:
        return score, []
    return score, [
        Alert(
            "attribution_ndcg", "model", "alert", score, threshold, f"attribution ranking nDCG {score:.3f} is below {threshold:g}"
        )
    ]


def from_shadow(errors: str | None) -> list[Alert]:
    """An alert for a shadow version that did not score (the champion was published)."""
    if not errors:
        return []
    return [Alert("shadow_failed", "shadow", "warn", 1.0, 0.0, f"shadow scoring failed: {errors[:500]}")]


def with_streaks(alerts: list[Alert], yesterday: list[dict[str, Any]]) -> list[Alert]:
    """Count consecutive days: an alert that also fired the day before (same check and subject) continues its streak."""
    before = {(a["check_name"], a["subject"]): a["consecutive_days"] for a in yesterday}
    return [replace(a, consecutive_days=before.get((a.check_name, a.subject), 0) + 1) for a in alerts]


def retrain_decision(
    spec: ModelSpec, reference: dict[str, Any], alerts: list[Alert], as_of_date: dt.date, last_request: dt.date | None
) -> tuple[bool, str]:
    """(retrain?, why) by the spec's policy: alert-level drift on enough of the most important
    features for enough consecutive days, or an estimated-AUC alert; at most once per cool-down."""
    policy = spec.monitoring
    top = sorted(reference["importance"], key=lambda f: -reference["importance"][f])[: policy.retrain_top_features]
    drifted = sorted(
        {
            a.subject
            for a in alerts
            if a.severity == "alert" and a.subject in top and a.consecutive_days >= policy.retrain_consecutive_days
        }
    )
    reasons = []
    if len(drifted) >= policy.retrain_drifted_features:
        reasons.append(
            f"{len(drifted)} of the {len(top)} most important features ({', '.join(drifted)}) drifted for "
            f"{policy.retrain_consecutive_days}+ days"
        )
    if policy.retrain_on_estimated_auc and any(a.check_name == "estimated_auc" for a in alerts):
        reasons.append("the estimated AUC fell below its alert line")
    if not reasons:
        return False, ""
    if last_request is not None and (as_of_date - last_request).days < policy.retrain_cooldown_days:
        cooldown = f"{policy.retrain_cooldown_days}-day cool-down since {last_request}"
        return False, f"retrain not requested: in the {cooldown} ({'; '.join(reasons)})"
    return True, "; ".join(reasons)


def post(url: str, alert: dict[str, Any], timeout: float = 10.0) -> None:
    """POST one alert as JSON to a webhook (Slack-style `text` plus the alert's fields). Raises on a non-2xx answer."""
    import httpx

    payload = {
        "text": f"[batchpred] {alert['severity'].upper()} {alert['model_name']} {alert['as_of_date']}: {alert['message']}",
        **{k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v) for k, v in alert.items()},
    }
    httpx.post(url, json=payload, timeout=timeout).raise_for_status()


def send(url: str | None, alerts: list[dict[str, Any]], where: str = "the webhook connection") -> int:
    """Post each alert once to `url`; with no URL, say (once) that none was sent. Returns how many were sent."""
    if url is None:
        if alerts:
            log.warning("%d alert(s) are in monitoring.alerts, none sent: no webhook (%s) is configured", len(alerts), where)
        return 0
    for alert in alerts:
        post(url, alert)
    return len(alerts)
