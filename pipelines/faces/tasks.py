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
from typing import TYPE_CHECKING, Any

from pipelines.config.spec import ALIAS_PATTERN
from pipelines.domain.dates import parse_date
from pipelines.domain.errors import DryRun, InputError

if TYPE_CHECKING:
    from pipelines.adapters.resources import Resources
    from pipelines.config.spec import ModelSpec
    from pipelines.domain.records import Attempt

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
    started_at: dt.datetime | None = None  # when the run started


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
    from pipelines.adapters.resources import Resources
    from pipelines.config.settings import Settings
    from pipelines.config.spec import load_spec

    if step not in TASKS:
        raise ValueError(f"unknown step {step!r}")
    spec = load_spec(model)  # a spec error is reported as such, before the warehouse is asked anything
    res = Resources.from_settings(Settings.from_env()).ready()
    if step not in ONE_DATE_STEPS:  # training, posting alerts, monitoring (which holds the file per date itself)
        return TASKS[step](res, spec, ctx, inputs)
    with res.warehouse.session():  # one date's step: its queries share the open DuckDB file
        return TASKS[step](res, spec, ctx, inputs)


def _attempt(inputs: dict[str, Any], step: str) -> Attempt:
    from pipelines.domain.records import Attempt, from_xcom

    attempt = from_xcom(Attempt, inputs["attempt"])
    log.info(
        "%s: as-of date %s (%s), %s, scoring run %s",
        step, attempt.as_of_date, attempt.date_chosen_by or "given", attempt.pinned.uri, attempt.scoring_run_id,
    )  # fmt: skip
    return attempt


def _wait_for_data(res: Resources, spec: ModelSpec, ctx: RunContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """One check of a <model>_score run's first task. A scheduled run (and only one: a date a
    person asks for is refused at once if incomplete) whose as-of date is not complete yet
    gets {"done": False, "check_in_s"}: the task defers that long, holding no worker slot,
    and checks again (`resumed`). Otherwise {"done": True, "waited_s"}: `plan` goes on, with
    how long the run waited (None: it did not), and refuses the date as today if the
    deadline, scoring.wait_for_data_minutes after the run started, passed first."""
    from pipelines.usecases import steps

    wait = dt.timedelta(minutes=spec.scoring.wait_for_data_minutes)
    if ctx.run_type != "scheduled" or ctx.params.get("as_of_date") or not wait:
        return {"done": True, "waited_s": None}
    as_of_date, _ = choose_as_of_date(ctx, tuple(SCORE_PARAMS), lambda: steps.last_complete_date(res, spec))
    now = res.now()
    since = min(ctx.started_at or now, now)
    waited = int((now - since).total_seconds()) if inputs.get("resumed") else None
    missing = steps.data_missing(res, spec, as_of_date)
    if missing is None:
        log.info("as-of date %s is complete%s", as_of_date, f" (waited {waited} s for it)" if waited else "")
        return {"done": True, "waited_s": waited}
    deadline = since + wait
    if now >= deadline:
        log.info("as-of date %s is still not complete at the deadline (scoring.wait_for_data_minutes)", as_of_date)
        return {"done": True, "waited_s": waited}
    check_in = min(dt.timedelta(minutes=spec.scoring.check_data_every_minutes), deadline - now)
    log.info(
        "as-of date %s is not complete yet (%s); waiting, deferred, and checking again in %.0f s, until %s "
        "(scoring.wait_for_data_minutes in models/%s/model.yaml)",
        as_of_date, missing, check_in.total_seconds(), deadline.strftime("%Y-%m-%d %H:%M UTC"), spec.name,
    )  # fmt: skip
    return {"done": False, "check_in_s": check_in.total_seconds()}


def _plan(res: Resources, spec: ModelSpec, ctx: RunContext, inputs: dict[str, Any]) -> dict[str, Any]:
    from pipelines.domain.records import to_xcom
    from pipelines.usecases import steps

    as_of_date, how = choose_as_of_date(ctx, tuple(SCORE_PARAMS), lambda: steps.last_complete_date(res, spec))
    waited = (inputs.get("waited") or {}).get("waited_s")
    attempt = steps.plan(
        res, spec, as_of_date, ctx.params.get("model_alias"), ctx.run_id, bool(ctx.params.get("dry_run")), date_chosen_by=how,
        waited_for_data_s=waited,
    )  # fmt: skip
    return to_xcom(attempt)


def _build_features(res: Resources, spec: ModelSpec, ctx: RunContext, inputs: dict[str, Any]) -> dict[str, Any]:
    from pipelines.usecases import steps

    attempt = _attempt(inputs, "build_features")
    steps.build_features(res, spec, attempt)
    return {"as_of_date": attempt.as_of_date.isoformat()}  # not None: a None result leaves no XCom


def _validate(res: Resources, spec: ModelSpec, ctx: RunContext, inputs: dict[str, Any]) -> dict[str, Any]:
    from pipelines.domain.records import to_xcom
    from pipelines.usecases import steps

    return to_xcom(steps.validate(res, spec, _attempt(inputs, "validate")))


def _scoring(inputs: dict[str, Any], step: str) -> Attempt:
    attempt = _attempt(inputs, step)
    if attempt.dry_run:
        raise DryRun("dry run: features built and validated in a scratch schema, model resolved; nothing written")
    return attempt


def _score_shard(res: Resources, spec: ModelSpec, ctx: RunContext, inputs: dict[str, Any]) -> dict[str, Any]:
    from pipelines.domain.records import ValidationRef, from_xcom, to_xcom
    from pipelines.usecases import steps

    attempt = _scoring(inputs, "score_shard")
    validation = from_xcom(ValidationRef, inputs["validation"])
    return to_xcom(steps.score_shard(res, spec, attempt, validation, int(inputs["shard"])))


def _publish(res: Resources, spec: ModelSpec, ctx: RunContext, inputs: dict[str, Any]) -> dict[str, Any]:
    from pipelines.domain.records import ShardResult, ValidationRef, from_xcom, to_xcom
    from pipelines.usecases import steps

    attempt = _scoring(inputs, "publish")
    validation = from_xcom(ValidationRef, inputs["validation"])
    results = [from_xcom(ShardResult, r) for r in inputs["shard_results"]]
    return to_xcom(steps.publish(res, spec, attempt, validation, results))


def _build_marts(res: Resources, spec: ModelSpec, ctx: RunContext, inputs: dict[str, Any]) -> dict[str, Any]:
    from pipelines.usecases import steps

    attempt = _scoring(inputs, "build_marts")
    steps.build_marts(res, spec, [attempt])
    return {"as_of_date": attempt.as_of_date.isoformat()}


def _train(res: Resources, spec: ModelSpec, ctx: RunContext, inputs: dict[str, Any]) -> dict[str, Any]:
    from pipelines.usecases import models, steps

    as_of_date, how = choose_as_of_date(ctx, tuple(TRAIN_PARAMS), lambda: steps.last_complete_date(res, spec))
    requests = [e for e in ctx.asset_events if e.get("retrain_requested_for")]
    if requests:
        how = f"retrain requested by monitoring: {'; '.join(str(e.get('reason')) for e in requests)}"
    log.info("training %s on data known up to %s (%s)", spec.name, as_of_date, how)
    result = models.train(
        res, spec, as_of_date, retrain_requested_for=[parse_date(e["retrain_requested_for"]) for e in requests]
    )
    return {"model_version": result.model.version, "promoted": result.promoted, "verdict": result.verdict}


def monitor_dates_of(ctx: RunContext) -> dict[dt.date, int | None]:
    """The dates a <model>_monitor run looks at: the `as_of_date` parameter, and each date the
    triggering scoring runs published (with the version that scored it)."""
    unknown = sorted(set(ctx.conf or {}) - set(MONITOR_PARAMS))
    if unknown:
        raise InputError(f"unknown run parameter(s) {unknown}; allowed: {list(MONITOR_PARAMS)}")
    dates: dict[dt.date, int | None] = {}
    if ctx.params.get("as_of_date"):
        dates[parse_date(ctx.params["as_of_date"])] = None
    for event in ctx.asset_events:
        if event.get("as_of_date"):
            dates[parse_date(event["as_of_date"])] = event.get("model_version")
    return dates


def _monitor(res: Resources, spec: ModelSpec, ctx: RunContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """The <model>_monitor DAG's work (`pipelines.usecases.health.monitor_dates`). Returns the
    alerts to send and whether to ask for a retrain."""
    from pipelines.usecases import health

    result = health.monitor_dates(res, spec, monitor_dates_of(ctx))
    return {
        "monitored": [h.as_of_date.isoformat() for h in result.health],
        "reports": [str(p) for p in result.reports],
        "alerts": result.alerts_as_json(),
        "retrain_requested_for": result.retrain_requested_for.isoformat() if result.retrain_requested_for else None,
        "reason": result.retrain_reason,
    }


def _notify(res: Resources, spec: ModelSpec, ctx: RunContext, inputs: dict[str, Any]) -> dict[str, Any]:
    from pipelines.usecases import health

    return {"sent": health.notify(res, spec, inputs["url"], inputs["found"]["alerts"], inputs["connection"])}


def report_failure(model: str, url: str, alert: dict[str, Any]) -> None:
    """A failed task, to the webhook (the DAGs' on_failure_callback)."""
    from pipelines.adapters.resources import Resources
    from pipelines.config.settings import Settings
    from pipelines.usecases import health

    try:
        res = Resources.from_settings(Settings.from_env())
    except Exception:  # noqa: BLE001 - the failure is still posted; recording it is what cannot happen
        res = None
    health.report_task_failure(res, model, url, alert)


# Each task of the generated DAGs, by name: its body turns the task's inputs into one call.
# The score DAG's steps: each works on one date, in seconds, and keeps the DuckDB file open
# while it does (`Warehouse.session`). Training, notifying and monitoring a range do not.
ONE_DATE_STEPS = frozenset({"wait_for_data", "plan", "build_features", "validate", "score_shard", "publish", "build_marts"})

TASKS: dict[str, Callable[[Resources, ModelSpec, RunContext, dict[str, Any]], dict[str, Any]]] = {
    "wait_for_data": _wait_for_data,
    "plan": _plan,
    "build_features": _build_features,
    "validate": _validate,
    "score_shard": _score_shard,
    "publish": _publish,
    "build_marts": _build_marts,
    "train": _train,
    "monitor": _monitor,
    "notify": _notify,
}
