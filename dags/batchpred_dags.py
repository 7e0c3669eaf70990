"""Airflow DAGs for every model in models/<name>/model.yaml: <name>_score, <name>_monitor and <name>_train.

This file only wires tasks. Each task hands its name, its run's context and its
inputs to `pipelines.faces.tasks.run`, which calls one step; the schedule, retries,
timeouts and run parameters come from the model's spec and `pipelines.faces.tasks`.
Heavy packages (pandas, xgboost, mlflow, great_expectations, dbt) are imported inside
the steps, never here, because the scheduler parses this file constantly.

A model whose model.yaml does not load gets one DAG, <name>_score, whose only task
fails with the spec's error: the other models' DAGs are unaffected.
"""

from __future__ import annotations

import datetime as dt
import functools

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    BaseNotifier,
    BaseOperator,
    Connection,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    Param,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException

from pipelines.config.spec import ModelSpec, list_models, load_spec
from pipelines.domain.errors import BatchpredError, DryRun
from pipelines.faces import tasks

# Tasks that write to the warehouse share this pool. `batchpred demo` (and the
# production init) create it: 1 slot for a DuckDB file, which takes one writer at a time.
WAREHOUSE_POOL = "batchpred_warehouse"
# The Airflow connection whose URL (e.g. http://hooks.example.com/batchpred) receives alerts
# and task failures as JSON: AIRFLOW_CONN_BATCHPRED_ALERTS='https://...'. Without it, alerts
# stay in monitoring.alerts and each task says once that nothing was sent.
ALERTS_CONNECTION = "batchpred_alerts"
# The monitor's daily run (realized performance of dates whose labels completed), UTC.
MONITOR_SCHEDULE = "0 6 * * *"


def predictions_asset(model: str) -> Asset:
    """Updated by each publish of <model>_score; <model>_monitor runs on it."""
    return Asset(name=f"{model}_predictions", uri=f"batchpred://{model}/predictions")


def retrain_asset(model: str) -> Asset:
    """Updated when monitoring asks for a retrain; <model>_train runs on it (or on its schedule)."""
    return Asset(name=f"{model}_retrain", uri=f"batchpred://{model}/retrain")


def _masked(*urls: str | None) -> None:
    """Hand the secrets of these URLs (and of the warehouse and MLflow URLs) to Airflow's masker,
    which scrubs them from the task logs, and to `pipelines.domain.redact`, which scrubs batchpred's messages."""
    from airflow.sdk.log import mask_secret

    from pipelines.config.settings import Settings
    from pipelines.domain import redact

    for secret in redact.register(*urls) + Settings.from_env().secrets():
        mask_secret(secret)


def _webhook_url() -> str | None:
    try:
        uri = Connection.get(ALERTS_CONNECTION).get_uri()
    except AirflowNotFoundException:
        return None
    # get_uri() escapes the path's slashes (/services/T0/B0/X as /services%2FT0%2F...): a webhook would answer 404.
    scheme, rest = uri.split("://", 1)
    head, slash, tail = rest.partition("/")
    url = f"{scheme}://{head}{slash}{tail.replace('%2F', '/')}"
    _masked(url)
    return url


class WebhookNotifier(BaseNotifier):
    """Posts a failed task (as an on_failure_callback) to the ALERTS_CONNECTION webhook, and records
    it in monitoring.alert_deliveries; one it could not post, the model's next monitor run retries."""

    def notify(self, context) -> None:
        from pipelines.domain import redact

        url = _webhook_url()
        if url is None:
            return
        ti, dag_run = context["ti"], context["dag_run"]
        error = redact.text(context.get("exception"))
        model = dag_run.dag_id.rsplit("_", 1)[0]
        tasks.report_failure(
            model,
            url,
            {
                # One message per failed try: a retry of this callback must not make it two.
                "alert_id": f"{ti.dag_id}.{ti.task_id}.{dag_run.run_id}.{getattr(ti, 'try_number', '')}",
                "model_name": model,
                "as_of_date": None,
                "severity": "alert",
                "check_name": "task_failed",
                "subject": f"{ti.dag_id}.{ti.task_id}",
                "message": f"{ti.dag_id} task {ti.task_id} failed in run {dag_run.run_id}: {error}",
            },
        )


SCORE_DOC = """
Scores **{name}** for one as-of date D, then rebuilds its marts.

**Parameters** (Trigger): `as_of_date` (YYYY-MM-DD) rescores that day; empty scores the
last complete day in the warehouse (a scheduled run scores its own day).
`model_alias` scores with another registry alias than `{alias}`. `dry_run` builds and
validates the features in a scratch schema and resolves the model, writing nothing.

**Rerun a date**: Trigger with `as_of_date`, clear the run's tasks, or
`batchpred score {name} --date D`. Each replaces exactly that date's rows in
`predictions.{name}_scores`; the same data and version give the same scores.
A date that should not have been published: `batchpred unpublish {name} --date D`.

**Late data**: a scheduled run whose date is not complete yet waits in `wait_for_data`,
deferred (it holds no worker slot; the triggerer wakes it), checking every
{every} min, for up to {wait} min (`scoring.wait_for_data_minutes`); then `plan` refuses the
date as incomplete, and the run log's `waited_for_data_s` says how long it waited.
A run you trigger never waits. While a run waits, runs you trigger queue behind it
(one run at a time).

**When it fails**: the first line of each task's log names the as-of date and the
model version. `plan` refuses dates that are not complete (the message names the
source and its last event), unknown aliases and spec/contract mismatches; `validate`
lists each failed expectation; `monitoring.scoring_runs` has one row per attempt with
the failed step and its error (status `refused` for what `plan` refuses: the task is
still red, but the date's last real attempt stands). Failures that a person must fix
are not retried.
"""


def _run(step: str, model: str, **inputs):
    """The body of every task: the run's context and the inputs, to `pipelines.faces.tasks.run`.

    An error that names something a person must fix fails the task without retries
    (retrying would only delay the alert); a dry run's writing tasks are skipped."""
    _masked()
    context = get_current_context()
    dag_run = context["dag_run"]
    run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
    events = [dict(e.extra or {}) for evs in (context.get("triggering_asset_events") or {}).values() for e in evs]
    ctx = tasks.RunContext(
        context["run_id"],
        str(run_type),
        context.get("logical_date"),
        dict(context["params"]),
        dict(dag_run.conf or {}),
        events,
        dag_run.start_date,
    )
    try:
        result = tasks.run(step, model, ctx, inputs)
        return result
    except DryRun as skip:
        raise AirflowSkipException(str(skip)) from None
    except BatchpredError as exc:
        if exc.retryable:
            raise
        from pipelines.domain import redact

        raise AirflowFailException(redact.text(f"{type(exc).__name__}: {exc}")) from exc


class WaitForData(BaseOperator):
    """The first task of <model>_score: until a scheduled run's date is complete, check, then
    defer (TimeDeltaTrigger, on the triggerer) and check again; `pipelines.faces.tasks`
    decides each time. Returns how long it waited, for `plan`."""

    def __init__(self, *, model: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model

    def execute(self, context, event=None) -> dict:
        found = _run("wait_for_data", self.model, resumed=event is not None)
        if found["done"]:
            return {"waited_s": found["waited_s"]}
        self.defer(trigger=TimeDeltaTrigger(dt.timedelta(seconds=found["check_in_s"])), method_name="execute")


def score_dag(spec: ModelSpec) -> DAG:
    run = functools.partial(_run, model=spec.name)
    with DAG(
        dag_id=spec.score_dag_id,
        description=f"Nightly scores for {spec.name}: features, validation, scoring, marts",
        doc_md=SCORE_DOC.format(
            name=spec.name,
            alias=spec.alias,
            wait=spec.scoring.wait_for_data_minutes,
            every=spec.scoring.check_data_every_minutes,
        ),
        schedule=_daily(spec.scoring.schedule),
        # No start date: Airflow would silently skip every task of a run dated before it.
        # The spec's scoring.start_date is enforced by `plan`, which says so.
        start_date=None,
        catchup=False,
        max_active_runs=1,
        tags=["batchpred", "scoring", spec.name],
        default_args={
            "retries": spec.scoring.retries,
            "retry_delay": dt.timedelta(minutes=2),
            "retry_exponential_backoff": True,
            "execution_timeout": dt.timedelta(minutes=spec.scoring.timeout_minutes),
            "on_failure_callback": WebhookNotifier(),
        },
        params={name: Param(**schema) for name, schema in tasks.score_params(spec.alias).items()},
    ) as dag:

        waited = WaitForData(
            task_id="wait_for_data",
            model=spec.name,
            # The whole wait, deferrals included, and one check past the deadline.
            execution_timeout=dt.timedelta(
                minutes=spec.scoring.wait_for_data_minutes + spec.scoring.check_data_every_minutes + spec.scoring.timeout_minutes
            ),
        )

        @task
        def plan(waited: dict) -> dict:
            return run("plan", waited=waited)

        @task(pool=WAREHOUSE_POOL)
        def build_features(attempt: dict) -> dict:
            return run("build_features", attempt=attempt)

        @task(pool=WAREHOUSE_POOL)  # it writes validation results and the quarantine
        def validate(attempt: dict, features: dict) -> dict:
            return run("validate", attempt=attempt)

        @task(pool=WAREHOUSE_POOL)
        def score_shard(shard: int, attempt: dict, validation: dict) -> dict:
            return run("score_shard", attempt=attempt, validation=validation, shard=shard)

        @task(pool=WAREHOUSE_POOL, outlets=[predictions_asset(spec.name)])
        def publish(attempt: dict, validation: dict, shard_results: list[dict]) -> dict:
            # [:] reads every mapped result; iterating the lazy sequence probes one past
            # the end and logs a harmless "XCom not found" error.
            published = run("publish", attempt=attempt, validation=validation, shard_results=shard_results[:])
            # The monitor runs on this event, for this date and version.
            keep = ("as_of_date", "model_version", "scoring_run_id")
            get_current_context()["outlet_events"][predictions_asset(spec.name)].extra = {k: published[k] for k in keep}
            return published

        @task(pool=WAREHOUSE_POOL)
        def build_marts(attempt: dict, published: dict) -> dict:
            return run("build_marts", attempt=attempt)

        attempt = plan(waited.output)
        validation = validate(attempt, build_features(attempt))
        # One mapped task per shard: Celery (or Kubernetes) workers score them in parallel.
        shards = score_shard.partial(attempt=attempt, validation=validation).expand(shard=list(range(spec.shards)))
        build_marts(attempt, publish(attempt, validation, shards))
    return dag


def monitor_dag(spec: ModelSpec) -> DAG:
    with DAG(
        dag_id=spec.monitor_dag_id,
        description=f"Model health of {spec.name}: drift, estimated and realized performance, alerts",
        doc_md=f"""
Model health of **{spec.name}**, after every date `{spec.score_dag_id}` publishes (it runs on
that asset), and daily at 06:00 UTC for the realized performance of dates whose labels
completed. Writes the `monitoring` tables (feature_drift, estimated_performance,
realized_performance, alerts, daily_health), posts each alert to the `{ALERTS_CONNECTION}`
connection's webhook, and asks `{spec.train_dag_id}` for a retrain when the policy fires.
It never delays or fails scoring. The report of the latest date monitored (one HTML page,
drawing the days before it too) goes to `$BATCHPRED_HOME/reports/{spec.name}/<as_of_date>.html`
on the worker; the task log says where. Rerun a date: Trigger with `as_of_date`, or
`batchpred monitor {spec.name} --date D` (which writes its report too).
""",
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(MONITOR_SCHEDULE, timezone="UTC"), assets=[predictions_asset(spec.name)]
        ),
        start_date=None,
        catchup=False,
        max_active_runs=1,
        tags=["batchpred", "monitoring", spec.name],
        default_args={
            "retries": 1,
            "retry_delay": dt.timedelta(minutes=5),
            "execution_timeout": dt.timedelta(minutes=spec.scoring.timeout_minutes),
            "on_failure_callback": WebhookNotifier(),
        },
        params={name: Param(**schema) for name, schema in tasks.MONITOR_PARAMS.items()},
    ) as dag:

        @task(pool=WAREHOUSE_POOL)
        def monitor() -> dict:
            return _run("monitor", spec.name)

        @task(pool=WAREHOUSE_POOL)  # it records each delivery
        def notify(found: dict) -> dict:
            # Every alert is tried; then the task fails (and is retried) if any is still undelivered.
            return _run("notify", spec.name, found=found, url=_webhook_url(), connection=ALERTS_CONNECTION)

        @task(outlets=[retrain_asset(spec.name)])
        def request_retrain(found: dict) -> dict:
            if not found["retrain_requested_for"]:
                raise AirflowSkipException("the retrain policy did not fire")
            extra = {"retrain_requested_for": found["retrain_requested_for"], "reason": found["reason"]}
            get_current_context()["outlet_events"][retrain_asset(spec.name)].extra = extra
            return extra

        found = monitor()
        notify(found)
        request_retrain(found)
    return dag


def train_dag(spec: ModelSpec) -> DAG:
    retrain = retrain_asset(spec.name)
    cron = spec.training.schedule
    with DAG(
        dag_id=spec.train_dag_id,
        description=f"Retrain {spec.name}; promote to @{spec.alias} only if it beats the current one",
        doc_md=f"Retrains **{spec.name}** on its schedule (`{cron}`) or when `{spec.monitor_dag_id}` asks for it (drift).",
        schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=[retrain])
        if cron
        else [retrain],
        start_date=None,
        catchup=False,
        max_active_runs=1,
        tags=["batchpred", "training", spec.name],
        default_args={
            "retries": 1,
            "retry_delay": dt.timedelta(minutes=5),
            "execution_timeout": dt.timedelta(hours=2),
            "on_failure_callback": WebhookNotifier(),
        },
        params={name: Param(**schema) for name, schema in tasks.TRAIN_PARAMS.items()},
    ) as dag:

        @task(pool=WAREHOUSE_POOL)
        def train() -> dict:
            return _run("train", spec.name)

        train()
    return dag


def broken_dag(name: str, error: Exception) -> DAG:
    """A stand-in for a model whose spec does not load: one task that fails with the error."""
    message = f"{type(error).__name__}: {error}"
    with DAG(
        dag_id=f"{name}_score" if name.replace("_", "").isalnum() else "batchpred_broken_spec",
        description=f"models/{name}/model.yaml does not load: fix it",
        doc_md=f"**models/{name}/model.yaml does not load**, so this model is not scored:\n\n```\n{message}\n```",
        schedule="@daily",
        start_date=None,
        catchup=False,
        tags=["batchpred", "broken-spec", name],
    ) as dag:

        @task(retries=0)
        def spec_error() -> None:
            raise AirflowFailException(message)

        spec_error()
    return dag


def _daily(schedule: str):
    cron = {"@daily": "0 0 * * *", "@midnight": "0 0 * * *"}.get(schedule.strip(), schedule.strip())
    return CronDataIntervalTimetable(cron, timezone="UTC")


for _name in list_models():
    try:
        _spec = load_spec(_name)
    except Exception as _error:  # noqa: BLE001 - any broken spec must only take down its own model
        broken_dag(_name, _error)
        continue
    score_dag(_spec)
    monitor_dag(_spec)
    train_dag(_spec)
