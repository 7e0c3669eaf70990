"""The model-health report: one self-contained HTML page per model and as-of date.

It reads the warehouse's tables (the monitoring tables, the run log, the validation
results; the prediction tables only for the challenger scatter and the top reasons) and
draws them; everything it shows was computed by `pipelines.monitoring`. Charts are
matplotlib SVGs and the page is a Jinja2 template, all inline: the file makes no network
request, so it opens offline and can be mailed or attached to a ticket.

`render(res, spec, as_of_date, days)` returns the page; `write(...)` saves it (by
default to `$BATCHPRED_HOME/reports/<model>/<as_of_date>.html`, see `default_path`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pipelines.adapters.warehouse import health, tables
from pipelines.config.settings import Settings
from pipelines.config.spec import ModelSpec
from pipelines.domain.errors import InputError
from pipelines.domain.status import PUBLISHED_STATUSES, Comparison, RealizedStatus, RunStatus, Severity, ValidationOutcome

if TYPE_CHECKING:
    from pipelines.adapters.resources import Resources

SCORE = "score"  # the score's pseudo-feature in the drift tables (pipelines.monitoring.drift.SCORE)
MOST_DRIFTED = 3  # reference vs current distributions are drawn for this many features
SCATTER_POINTS = 2_000
FEW_DATES = 7  # fewer monitored dates than this in the window, and the page says the history is short
DRIFT_NOTE = (
    "ordered by importance × PSI; trend: PSI per date, each scaled to its own range "
    "(the red line is the alert threshold, once near)"
)


def default_path(settings: Settings, model: str, as_of_date: dt.date) -> Path:
    """Where the monitor DAG and `batchpred report` put a date's report."""
    return settings.home / "reports" / model / f"{as_of_date.isoformat()}.html"


@dataclass
class Section:
    """One part of the page: a chart (SVG), a table, or an empty state saying why there is none."""

    title: str
    empty: str | None = None
    charts: list[str] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


def write(res: Resources, spec: ModelSpec, as_of_date: dt.date, days: int = 60, out: Path | None = None) -> Path:
    """Render the report of `as_of_date` over the `days` before it and write it to `out`
    (default: `default_path`). Returns the path. Refuses (InputError) a date batchpred has
    no record of: nothing scored, validated or attempted."""
    page = render(res, spec, as_of_date, days)
    path = out or default_path(res.settings, spec.name, as_of_date)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(path)  # a reader never sees half a page
    return path


def render(res: Resources, spec: ModelSpec, as_of_date: dt.date, days: int = 60) -> str:
    """The report's HTML (see the module docstring)."""
    if days < 1:
        raise InputError(f"--days must be at least 1 (got {days})")
    data = _read(res, spec, as_of_date, days)
    from pipelines.report import charts

    with charts.style():
        sections = _sections(spec, data, charts)
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("pipelines.report"), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("report.html.j2").render(
        spec=spec,
        as_of_date=as_of_date,
        start=data.start,
        days=days,
        version=data.version,
        tiles=_tiles(spec, data),
        history=_history(data, days),
        sections=sections,
        generated_at=res.now().strftime("%Y-%m-%d %H:%M UTC"),
    )


@dataclass
class _Data:
    start: dt.date
    version: int | None
    attempts: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    daily: list[dict[str, Any]]
    drift: list[dict[str, Any]]
    profiles: list[dict[str, Any]]
    estimated: list[dict[str, Any]]
    realized: list[dict[str, Any]]
    calibration: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    shadow: list[dict[str, Any]]
    pairs: dict[str, list[dict[str, Any]]]
    reasons: list[dict[str, Any]]
    as_of_date: dt.date

    @functools.cached_property
    def history(self) -> list[dt.date]:
        """The dates of the window with history: health, drift, an estimate, realized performance
        or a shadow comparison (a date realized but never monitored counts)."""
        tables = (self.daily, self.drift, self.estimated, self.realized, self.shadow)
        return sorted({r["as_of_date"] for rows in tables for r in rows})

    @functools.cached_property
    def chart_start(self) -> dt.date:
        """Where the time axes start: the first monitored date (a week before the as-of date at
        least), so a short history is drawn across the chart, not as a dot at its right edge."""
        first = min(self.history, default=self.as_of_date)
        return max(self.start, min(first, self.as_of_date - dt.timedelta(days=FEW_DATES - 1)))


def _read(res: Resources, spec: ModelSpec, as_of_date: dt.date, days: int) -> _Data:
    warehouse = res.warehouse
    start = as_of_date - dt.timedelta(days=days - 1)
    attempts = health.recent_attempts(warehouse, spec.name, as_of_date).to_pylist()
    scored = health.versions_scored(warehouse, spec, as_of_date, as_of_date).get(as_of_date, [])
    version: int | None
    if scored:
        version = scored[-1]
    else:  # nothing published (a failed validation, say): the version the last attempt pinned
        version = next((a["model_version"] for a in attempts if a["model_version"] is not None), None)
    if not attempts and not scored:
        raise InputError(
            f"batchpred has no record of {spec.name} on {as_of_date} (no scoring attempt in {tables.SCORING_RUNS}); "
            f"score it first: batchpred score {spec.name} --date {as_of_date}"
        )

    def rows(table: tables.Table, first: dt.date = start, only_version: bool = True) -> list[dict[str, Any]]:
        v = version if only_version else None
        return health.rows_of(warehouse, table, spec.name, first, as_of_date, v).to_pylist() if version else []

    realized = rows(tables.REALIZED_PERFORMANCE)
    labelled = max((r["as_of_date"] for r in realized if r["status"] != RealizedStatus.PROVISIONAL), default=None)
    calibration = (
        health.rows_of(warehouse, tables.CALIBRATION_BINS, spec.name, labelled, labelled, version).to_pylist() if labelled else []
    )
    shadow = rows(tables.SHADOW_COMPARISON)
    pairs = {}
    for row in (r for r in shadow if r["as_of_date"] == as_of_date):
        assert version is not None  # `rows` reads no shadow rows without a version
        key = f"{row['challenger_alias']} (version {row['challenger_version']})"
        pairs[key] = health.shadow_pairs(
            warehouse, spec, as_of_date, version, row["challenger_alias"], row["challenger_version"], SCATTER_POINTS
        ).to_pylist()
    # With `scored`, `version` is its last version.
    reasons = (
        health.top_reasons(warehouse, spec, as_of_date, cast(int, version), spec.action_threshold).to_pylist() if scored else []
    )
    return _Data(
        start=start,
        version=version,
        attempts=attempts,
        validation=health.latest_validation(warehouse, spec.name, as_of_date).to_pylist(),
        daily=rows(tables.DAILY_HEALTH),
        drift=rows(tables.FEATURE_DRIFT),
        profiles=rows(tables.FEATURE_PROFILES, as_of_date),
        estimated=rows(tables.ESTIMATED_PERFORMANCE),
        realized=realized,
        calibration=calibration,
        alerts=rows(tables.ALERTS, as_of_date),
        shadow=shadow,
        pairs=pairs,
        reasons=reasons,
        as_of_date=as_of_date,
    )


def _history(d: _Data, days: int) -> str:
    """How much of the window has history, in words (a short history says so)."""
    dates = d.history
    if not dates:
        return "no monitored date in the window yet"
    if len(dates) == 1:
        return f"1 monitored date so far ({dates[0]}): the charts draw it alone"
    if len(dates) < FEW_DATES:
        return f"{len(dates)} monitored dates so far ({dates[0]} to {dates[-1]}): the charts draw those"
    return f"{len(dates)} monitored dates of the {days} in the window"


def _labels_through(day: dt.date | None) -> str:
    return f"labels complete through {day}" if day else "a label source has no rows yet"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _tiles(spec: ModelSpec, d: _Data) -> list[dict[str, str]]:
    """The status tiles of the date: label, value, detail, and a state (ok/warn/alert/none) for the colour."""
    # A refused request touched nothing: the date's state is its latest real attempt.
    attempt = next((a for a in d.attempts if a["status"] != RunStatus.REFUSED), {})
    today = next((r for r in reversed(d.daily) if r["as_of_date"] == d.as_of_date), None)
    tiles = []
    status = attempt.get("status", "no attempt")
    tiles.append(
        {
            "label": "Rows scored",
            "value": _fmt(attempt.get("rows_scored")),
            "detail": f"{_fmt(attempt.get('rows_quarantined'))} quarantined; last attempt {status}",
            "state": "ok" if status in PUBLISHED_STATUSES else "alert",
        }
    )
    outcome = attempt.get("validation_outcome")
    outcome_states: dict[str, str] = {ValidationOutcome.PASSED: "ok", ValidationOutcome.FAILED: "alert"}
    failed = [r for r in d.validation if not r["success"]]
    tiles.append(
        {
            "label": "Validation",
            "value": outcome or "not run",
            "detail": f"{len(failed)} of {len(d.validation)} expectations failed" if d.validation else "no results stored",
            "state": outcome_states.get(outcome or "", "none"),
        }
    )
    if today and today["drift_status"]:
        worst = f"most drifted: {today['worst_feature']} (PSI {_fmt(today['worst_psi'])})" if today["worst_feature"] else ""
        tiles.append({"label": "Drift", "value": today["drift_status"], "detail": worst, "state": today["drift_status"]})
    else:
        tiles.append({"label": "Drift", "value": "–", "detail": _not_monitored(spec, d, today), "state": "none"})
    if today and today["expected_auc"] is not None:
        band = f"band {_fmt(today['expected_auc_lower'])}–{_fmt(today['expected_auc_upper'])}"
        estimated = next((r for r in d.estimated if r["as_of_date"] == d.as_of_date), {})
        state = estimated.get("status") or "ok"
        tiles.append({"label": "Estimated AUC (CBPE)", "value": _fmt(today["expected_auc"]), "detail": band, "state": state})
    else:
        tiles.append({"label": "Estimated AUC (CBPE)", "value": "–", "detail": _not_monitored(spec, d, today), "state": "none"})
    # A provisional value (its labels not complete yet) is never shown as the realized AUC.
    final = [r for r in d.realized if r["status"] != RealizedStatus.PROVISIONAL]
    pending = [r for r in d.realized if r["status"] == RealizedStatus.PROVISIONAL]
    waiting = (
        f"; {pending[-1]['as_of_date']} provisional ({_labels_through(pending[-1]['labels_complete_through'])})"
        if pending and (not final or pending[-1]["as_of_date"] > final[-1]["as_of_date"])
        else ""
    )
    if final:
        last = final[-1]
        tiles.append(
            {
                "label": "Realized AUC",
                "value": _fmt(last["roc_auc"]),
                "detail": f"latest labelled date {last['as_of_date']} ({_fmt(last['rows_labelled'])} rows){waiting}",
                "state": last["status"] or "ok",
            }
        )
    else:
        due = d.as_of_date + dt.timedelta(days=spec.training.label_horizon_days)
        tiles.append(
            {
                "label": "Realized AUC",
                "value": "–",
                "detail": f"no labelled date yet; {d.as_of_date} due {due}{waiting}",
                "state": "none",
            }
        )
    severities: defaultdict[str, int] = defaultdict(int)
    for alert in d.alerts:
        severities[alert["severity"]] += 1
    tiles.append(
        {
            "label": "Alerts",
            "value": str(len(d.alerts)),
            "detail": ", ".join(f"{n} {s}" for s, n in sorted(severities.items())) or "none open",
            "state": "alert" if severities.get(Severity.ALERT) else ("warn" if d.alerts else "ok"),
        }
    )
    return tiles


def _not_monitored(spec: ModelSpec, d: _Data, today: dict[str, Any] | None) -> str:
    if today:
        return today["message"] or today["status"]
    if not d.version or not any(a["status"] in PUBLISHED_STATUSES for a in d.attempts):
        return "nothing published for this date"
    return f"not monitored yet: batchpred monitor {spec.name} --date {d.as_of_date}"


def _sections(spec: ModelSpec, d: _Data, charts: Any) -> list[Section]:
    nothing = _not_monitored(spec, d, next((r for r in d.daily if r["as_of_date"] == d.as_of_date), None))
    baseline = [r for r in d.drift if r["comparison"] == Comparison.BASELINE]
    today = [r for r in baseline if r["as_of_date"] == d.as_of_date]
    features = sorted((r for r in today if r["feature"] != SCORE), key=lambda r: -((r["importance"] or 0.0) * (r["psi"] or 0.0)))
    out = []

    fired = Section("Alerts of the date", note="every check that fired: its value against the threshold it crossed")
    for a in d.alerts:
        fired.table.append(
            {
                "subject": a["subject"],
                "check": a["check_name"],
                "value": _fmt(a["value"]),
                "threshold": _fmt(a["threshold"]),
                "status": a["severity"],
                "days in a row": _fmt(a["consecutive_days"]),
                "message": a["message"],
            }
        )
    if not d.alerts:
        fired.empty = "No check fired on this date." if d.daily else nothing
    out.append(fired)

    drift = Section("Feature drift against the training data", note=DRIFT_NOTE)
    if not features:
        drift.empty = nothing
    history: dict[str, list[tuple[dt.date, float | None]]] = defaultdict(list)
    for r in baseline:
        history[r["feature"]].append((r["as_of_date"], r["psi"]))
    for r in features:
        drift.table.append(
            {
                "feature": r["feature"],
                "kind": r["kind"],
                "importance": _fmt(r["importance"]),
                "PSI": _fmt(r["psi"]),
                "JS distance": _fmt(r["js_distance"]),
                "mean Δ (sd)": _fmt(r["mean_delta_std"], 2),
                "null share": _fmt(r["null_share"]),
                "status": r["status"],
                "trend": charts.sparkline(history[r["feature"]], d.chart_start, d.as_of_date, r["psi_alert"]),
            }
        )
    out.append(drift)

    dist = Section("Reference vs current distributions", note=f"the {MOST_DRIFTED} most drifted features by importance × PSI")
    profiles: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in d.profiles:
        profiles[p["feature"]].append(p)
    for r in features[:MOST_DRIFTED]:
        bins = sorted(profiles.get(r["feature"], []), key=lambda p: p["bin"])
        if bins and any(p["reference_rows"] is not None for p in bins):
            dist.charts.append(charts.distribution(r["feature"], bins, r["psi"]))
    if not dist.charts:
        dist.empty = (
            nothing if not features else "no stored profile of the reference for this version: run batchpred monitor again"
        )
    out.append(dist)

    score_rows = [r for r in baseline if r["feature"] == SCORE]
    threshold = next((r["action_threshold"] for r in reversed(score_rows) if r["action_threshold"] is not None), None)
    at = _fmt(threshold) if threshold is not None else spec.action_threshold
    scores = Section("Scores over time", note=f"share of rows at or above the version's action threshold ({at})")
    if score_rows:
        scores.charts.append(charts.score_trend(score_rows, d.chart_start, d.as_of_date))
        today_score = sorted(profiles.get(SCORE, []), key=lambda p: p["bin"])
        if today_score and any(p["reference_rows"] is not None for p in today_score):
            scores.charts.append(charts.distribution("score", today_score, next((r["psi"] for r in score_rows[-1:]), None)))
    else:
        scores.empty = nothing
    out.append(scores)

    perf = Section("Estimated vs realized AUC", note="estimate: CBPE with its sampling band; realized: once labels land")
    if d.estimated or d.realized:
        perf.charts.append(charts.auc_trend(d.estimated, d.realized, d.chart_start, d.as_of_date))
        if not d.realized:
            perf.note += (
                f". No labelled date in the window yet (labels arrive {spec.training.label_horizon_days} days after a date)"
            )
    else:
        perf.empty = nothing
    out.append(perf)

    calibration = Section("Reliability (calibration)")
    if d.calibration:
        labelled = d.calibration[0]["as_of_date"]
        realized = next(r for r in d.realized if r["as_of_date"] == labelled)
        calibration.note = (
            f"latest labelled date {labelled}; expected calibration error {_fmt(realized['expected_calibration_error'])}"
        )
        calibration.charts.append(charts.reliability(d.calibration))
    else:
        due = d.as_of_date + dt.timedelta(days=spec.training.label_horizon_days)
        calibration.empty = (
            f"No labels yet: a date's labels are complete {spec.training.label_horizon_days} days after it "
            f"({d.as_of_date} is due {due}), and no date in the window has them."
        )
    out.append(calibration)

    shadow = Section("Champion vs challenger")
    if d.shadow:
        for name, pairs in d.pairs.items():
            if pairs:
                shadow.charts.append(charts.scatter(pairs, name, spec.action_threshold))
        shadow.charts.append(charts.shadow_trend(d.shadow, d.chart_start, d.as_of_date))
        for r in (r for r in d.shadow if r["as_of_date"] == d.as_of_date):
            shadow.table.append(
                {
                    "challenger": f"{r['challenger_alias']} v{r['challenger_version']}",
                    "rows": _fmt(r["rows"]),
                    "Spearman": _fmt(r["spearman"]),
                    "flip share": _fmt(r["flip_share"]),
                    "top-decile Jaccard": _fmt(r["top_decile_jaccard"]),
                    "estimated AUC": f"{_fmt(r['champion_expected_auc'])} → {_fmt(r['challenger_expected_auc'])}",
                    "realized AUC": f"{_fmt(r['champion_realized_auc'])} → {_fmt(r['challenger_realized_auc'])}",
                    "DeLong p": _fmt(r["delong_p_value"], 4),
                }
            )
    else:
        aliases = ", ".join(f"{spec.name}@{a}" for a in spec.shadow_aliases) or "none declared (shadow_aliases in model.yaml)"
        shadow.empty = (
            f"No challenger scored in this window. Shadow aliases: {aliases}. Register one with "
            f"batchpred train {spec.name} --alias challenger; the next scoring run scores it in the shadow."
        )
    out.append(shadow)

    reasons = Section("Top reasons among high-risk rows", note=f"rows scored ≥ {spec.action_threshold}: their first reason")
    if d.reasons:
        reasons.charts.append(charts.reasons(d.reasons))
    elif spec.reasons.method == "off":
        reasons.empty = "Reasons are off for this model (reasons.method: off in model.yaml)."
    else:
        reasons.empty = f"No row of {d.as_of_date} scored at or above {spec.action_threshold}, or no reasons were stored."
    out.append(reasons)

    validation = Section("Validation of the features")
    flagged = [r for r in d.validation if not r["success"] or (r["unexpected_count"] or 0) > 0]
    for r in flagged:
        examples = json.loads(r["partial_unexpected"]) if r["partial_unexpected"] else []
        validation.table.append(
            {
                "expectation": r["expectation_type"],
                "column": r["column_name"] or "–",
                "outcome": "failed" if not r["success"] else "tolerated",
                "unexpected": f"{_fmt(r['unexpected_count'])} ({_fmt(r['unexpected_percent'], 2)}%)"
                if r["unexpected_count"] is not None
                else "–",
                "examples": ", ".join(str(e) for e in examples[:5]) or (r["error"] or "")[:200],
            }
        )
    if not d.validation:
        validation.empty = f"No validation result stored for {d.as_of_date}."
    elif not flagged:
        validation.empty = f"All {len(d.validation)} expectations passed with no unexpected rows."
    out.append(validation)

    runs = Section("Run log: the date's latest attempts")
    for a in d.attempts:
        runs.table.append(
            {
                "started": a["started_at"].strftime("%Y-%m-%d %H:%M:%S") if a["started_at"] else "–",
                "status": a["status"],
                "version": _fmt(a["model_version"]),
                "rows scored": _fmt(a["rows_scored"]),
                "quarantined": _fmt(a["rows_quarantined"]),
                "step": a["step"] or "",
                "error": (a["error"] or a["shadow_error"] or "")[:300],
                "by": a["triggered_by"] or "",
            }
        )
    out.append(runs)
    return out
