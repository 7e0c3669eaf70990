"""What the generated DAGs' tasks do, without importing Airflow.

The DAG file (dags/batchpred_dags.py) only wires: each task hands `run` its name,
the model, what it knows about its Airflow run (`RunContext`, plain values) and its
upstream tasks' XCom values; `run` calls the step and returns the step's record as
plain values for XCom. The run parameters are declared here once, with their JSON
schemas, for the DAGs' Trigger forms.

How a run chooses its as-of date (`choose_as_of_date`):
1. the `as_of_date` run parameter, if given;
2. a scheduled run or a backfill: its logical date (the run for [D, D+1) scores D);
3. a manual run whose logical date is a day (midnight UTC: `airflow dags test <dag> D`,
   or the Trigger form's logical date set to a day): that day;
4. any other manual run (the Trigger form pre-fills "now"; the REST API may send none):
   the last complete day, from the warehouse (see `pipelines.scoring.completeness`).
The task log's first line says which date, and how it was chosen.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipelines.config.spec import ALIAS_PATTERN
from pipelines.domain.dates import parse_date
from pipelines.domain.errors import DryRun, InputError

log = logging.getLogger(__name__)

# YYYY-MM-DD with a month and a day in range; whether the day exists (30 February) the task checks.
DATE_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"

# Run parameters of <model>_score, as Airflow Param keyword arguments (default first).
# The date is a text field, not a date picker: a picker silently drops an impossible
# date (30 February) and the run would go ahead without one; typed text reaches the
# task, which refuses it by name.
SCORE_PARAMS: dict[str, dict[str, Any]] = {
    "as_of_date": {
        "default": None,
        "type": ["null", "string"],
        "pattern": DATE_PATTERN,
        "title": "As-of date",
        "description": "YYYY-MM-DD: the day to (re)score. Empty: the last complete day in the warehouse (a scheduled "
        "run scores its own day).",
    },
    "model_alias": {
        "default": None,  # the spec's alias; filled in per model by `score_params`
        "type": "string",
        "pattern": ALIAS_PATTERN,
        "title": "Model alias",
        "description": "MLflow registry alias to score with: models:/<model>@<alias>.",
    },
    "dry_run": {
        "default": False,
        "type": "boolean",
        "title": "Dry run",
        "description": "Build and validate the features in a scratch schema and resolve the model; write nothing.",
    },
}

MONITOR_PARAMS: dict[str, dict[str, Any]] = {
    "as_of_date": {
        "default": None,
        "type": ["null", "string"],
        "pattern": DATE_PATTERN,
        "title": "As-of date",
        "description": "YYYY-MM-DD: a scored date to (re)monitor. Empty: the dates the triggering scoring runs "
        "published (none for the daily run, which computes realized performance only).",
    },
}

TRAIN_PARAMS: dict[str, dict[str, Any]] = {
    "as_of_date": {
        "default": None,
        "type": ["null", "string"],
        "pattern": DATE_PATTERN,
        "title": "Train on data known up to",
        "description": "YYYY-MM-DD. Empty: the last complete day in the warehouse.",
    },
}


def score_params(alias: str) -> dict[str, dict[str, Any]]:
    return SCORE_PARAMS | {"model_alias": SCORE_PARAMS["model_alias"] | {"default": alias}}


@dataclass(frozen=True)
class RunContext:
    """What a task knows about its Airflow run, as plain values."""

    run_id: str
    run_type: str  # "scheduled", "manual", "backfill", "asset_triggered"
    logical_date: dt.datetime | None
    params: dict[str, Any] = field(default_factory=dict)
    conf: dict[str, Any] = field(default_factory=dict)
    asset_events: list[dict[str, Any]] = field(default_factory=list)  # the `extra` of each triggering asset event


def choose_as_of_date(ctx: RunContext, allowed: tuple[str, ...], last_complete: Callable[[], dt.date]) -> tuple[dt.date, str]:
    """(as-of date, how it was chosen) for a run; see the module docstring.

    Refuses (InputError) run parameters the DAG does not declare (Airflow itself accepts
    any extra key, so a typo such as `as_of_dte` would otherwise be ignored) and an
    impossible date.
    """

    unknown = sorted(set(ctx.conf or {}) - set(allowed))
    if unknown:
        raise InputError(f"unknown run parameter(s) {unknown}; allowed: {list(allowed)}")
    if ctx.params.get("as_of_date"):
        return parse_date(ctx.params["as_of_date"], "as_of_date"), "the as_of_date parameter"
    logical = ctx.logical_date
    if logical is not None and ctx.run_type in ("scheduled", "backfill"):
        return parse_date(logical), f"the {ctx.run_type} run's logical date"
    if logical is not None and logical.astimezone(dt.UTC).time() == dt.time(0):
        return parse_date(logical.astimezone(dt.UTC)), "the run's logical date"
    return last_complete(), "no date given: the last complete day"


def run(step: str, model: str, ctx: RunContext, inputs: dict[str, Any]) -> Any:
    """Run one task of a generated DAG; returns its result as plain values for XCom."""
    from pipelines.config.settings import Settings
    from pipelines.config.spec import load_spec
    from pipelines.domain import records
    from pipelines.usecases import steps

    settings, spec = Settings.from_env(), load_spec(model)
    if step == "plan":
        as_of_date, how = choose_as_of_date(ctx, tuple(SCORE_PARAMS), lambda: steps.last_complete_date(settings, spec))
        attempt = steps.plan(
            settings, spec, as_of_date, ctx.params.get("model_alias"), ctx.run_id, bool(ctx.params.get("dry_run")),
            date_chosen_by=how,
        )  # fmt: skip
        return records.to_xcom(attempt)
    if step == "train":
        as_of_date, how = choose_as_of_date(ctx, tuple(TRAIN_PARAMS), lambda: steps.last_complete_date(settings, spec))
        requests = [e for e in ctx.asset_events if e.get("retrain_requested_for")]
        if requests:
            how = f"retrain requested by monitoring: {'; '.join(str(e.get('reason')) for e in requests)}"
        log.info("training %s on data known up to %s (%s)", model, as_of_date, how)
        result = steps.train(settings, spec, as_of_date)
        outcome = f"version {result.model.version} trained on data up to {as_of_date}: {result.verdict}"
        for event in requests:
            steps.record_retrain(settings, spec, parse_date(event["retrain_requested_for"]), outcome)
        return {"model_version": result.model.version, "promoted": result.promoted, "verdict": result.verdict}
    if step == "monitor":
        return monitor_run(settings, spec, ctx)

    attempt = records.from_xcom(records.Attempt, inputs["attempt"])
    log.info(
        "%s: as-of date %s (%s), %s, scoring run %s",
        step, attempt.as_of_date, attempt.date_chosen_by or "given", attempt.model.uri, attempt.scoring_run_id,
    )  # fmt: skip
    if step == "build_features":
        steps.build_features(settings, spec, attempt)
        return {"as_of_date": attempt.as_of_date.isoformat()}  # not None: a None result leaves no XCom
    if step == "validate":
        return records.to_xcom(steps.validate(settings, spec, attempt))
    if attempt.dry_run:
        raise DryRun("dry run: features built and validated in a scratch schema, model resolved; nothing written")
    if step == "score_shard":
        validation = records.from_xcom(records.ValidationRef, inputs["validation"])
        return records.to_xcom(steps.score_shard(settings, spec, attempt, validation, int(inputs["shard"])))
    if step == "publish":
        validation = records.from_xcom(records.ValidationRef, inputs["validation"])
        results = [records.from_xcom(records.ShardResult, r) for r in inputs["shard_results"]]
        return records.to_xcom(steps.publish(settings, spec, attempt, validation, results))
    if step == "build_marts":
        steps.build_marts(settings, spec, [attempt])
        return {"as_of_date": attempt.as_of_date.isoformat()}
    raise ValueError(f"unknown step {step!r}")


def monitor_run(settings, spec, ctx: RunContext) -> dict[str, Any]:
    """The <model>_monitor DAG's work: the health of each date the triggering scoring runs
    published (or the `as_of_date` parameter), then realized performance of every date
    whose labels completed, and each date's report (`pipelines.report`). Returns the alerts
    to send and whether to ask for a retrain."""
    from pipelines import report
    from pipelines.usecases import steps

    unknown = sorted(set(ctx.conf or {}) - set(MONITOR_PARAMS))
    if unknown:
        raise InputError(f"unknown run parameter(s) {unknown}; allowed: {list(MONITOR_PARAMS)}")
    dates: dict[dt.date, int | None] = {}
    if ctx.params.get("as_of_date"):
        dates[parse_date(ctx.params["as_of_date"])] = None
    for event in ctx.asset_events:
        if event.get("as_of_date"):
            dates[parse_date(event["as_of_date"])] = event.get("model_version")
    found, retrain, reasons = [], None, []
    for day, version in sorted(dates.items()):
        health = steps.monitor(settings, spec, day, version)
        log.info("%s", health.summary())
        found += health.alerts
        if health.retrain:
            retrain, reasons = day, [*reasons, health.retrain_reason]
    realized = steps.realize(settings, spec, dates=sorted(dates))  # an old date asked for is realized too
    for r in realized:
        found += r.alerts
    if realized:
        log.info(
            "realized performance of %d date(s) whose label horizon is over: %s",
            len(realized),
            ", ".join(f"{r.as_of_date}" + (f" (provisional: {r.provisional})" if r.provisional else "") for r in realized),
        )
    reports = []
    for day in sorted(dates):
        try:
            reports.append(str(report.write(settings, spec, day)))
            log.info("model-health report of %s: %s", day, reports[-1])
        except Exception:  # the health is stored and the alerts must still go out: say so, loudly, and go on
            log.exception("the model-health report of %s could not be written", day)
    json_safe = [{k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in a.items()} for a in found]
    return {
        "monitored": [d.isoformat() for d in sorted(dates)],
        "reports": reports,
        "alerts": json_safe,
        "retrain_requested_for": retrain.isoformat() if retrain else None,
        "reason": "; ".join(reasons),
    }
