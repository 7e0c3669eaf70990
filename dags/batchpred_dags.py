"""Airflow DAGs for every model in models/<name>/model.yaml: <name>_score and <name>_train.

This file only wires tasks. Each task hands its name, its run's context and its
inputs to `pipelines.tasks.run`, which calls one step; the schedule, retries,
timeouts and run parameters come from the model's spec and `pipelines.tasks`.
Heavy packages (pandas, xgboost, mlflow, great_expectations, dbt) are imported inside
the steps, never here, because the scheduler parses this file constantly.

A model whose model.yaml does not load gets one DAG, <name>_score, whose only task
fails with the spec's error: the other models' DAGs are unaffected.
"""

from __future__ import annotations

import datetime as dt
import functools

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from pipelines import tasks
from pipelines.errors import BatchpredError, DryRun
from pipelines.spec import ModelSpec, list_models, load_spec

# Tasks that write to the warehouse share this pool. `batchpred demo` (and the
# production init) create it: 1 slot for a DuckDB file, which takes one writer at a time.
WAREHOUSE_POOL = "batchpred_warehouse"

SCORE_DOC = """
Scores **{name}** for one as-of date D, then rebuilds its marts.

**Parameters** (Trigger): `as_of_date` (YYYY-MM-DD) rescores that day; empty scores the
last complete day in the warehouse (a scheduled run scores its own day).
`model_alias` scores with another registry alias than `{alias}`. `dry_run` builds and
validates the features in a scratch schema and resolves the model, writing nothing.

**Rerun a date**: Trigger with `as_of_date`, clear the run's tasks, or
`batchpred score {name} --date D`. Each replaces exactly that date's rows in
`predictions.{name}_scores`; the same data and version give the same scores.

**When it fails**: the first line of each task's log names the as-of date and the
model version. `plan` refuses dates that are not complete (the message names the
source and its last event), unknown aliases and spec/contract mismatches; `validate`
lists each failed expectation; `monitoring.scoring_runs` has one row per attempt with
the failed step and its error. Failures that a person must fix are not retried.
"""


def _run(step: str, model: str, **inputs):
    """The body of every task: the run's context and the inputs, to `pipelines.tasks.run`.

    An error that names something a person must fix fails the task without retries
    (retrying would only delay the alert); a dry run's writing tasks are skipped."""
    context = get_current_context()
    dag_run = context["dag_run"]
    run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
    ctx = tasks.RunContext(
        context["run_id"], str(run_type), context.get("logical_date"), dict(context["params"]), dict(dag_run.conf or {})
    )
    try:
        return tasks.run(step, model, ctx, inputs)
    except DryRun as skip:
        raise AirflowSkipException(str(skip)) from None
    except BatchpredError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def score_dag(spec: ModelSpec) -> DAG:
    run = functools.partial(_run, model=spec.name)
    with DAG(
        dag_id=spec.score_dag_id,
        description=f"Nightly scores for {spec.name}: features, validation, scoring, marts",
        doc_md=SCORE_DOC.format(name=spec.name, alias=spec.alias),
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
        },
        params={name: Param(**schema) for name, schema in tasks.score_params(spec.alias).items()},
    ) as dag:

        @task
        def plan() -> dict:
            return run("plan")

        @task(pool=WAREHOUSE_POOL)
        def build_features(attempt: dict) -> dict:
            return run("build_features", attempt=attempt)

        @task(pool=WAREHOUSE_POOL)  # it writes validation results and the quarantine
        def validate(attempt: dict, features: dict) -> dict:
            return run("validate", attempt=attempt)

        @task(pool=WAREHOUSE_POOL)
        def score_shard(shard: int, attempt: dict, validation: dict) -> dict:
            return run("score_shard", attempt=attempt, validation=validation, shard=shard)

        @task(pool=WAREHOUSE_POOL)
        def publish(attempt: dict, validation: dict, shard_results: list[dict]) -> dict:
            # [:] reads every mapped result; iterating the lazy sequence probes one past
            # the end and logs a harmless "XCom not found" error.
            return run("publish", attempt=attempt, validation=validation, shard_results=shard_results[:])

        @task(pool=WAREHOUSE_POOL)
        def build_marts(attempt: dict, published: dict) -> dict:
            return run("build_marts", attempt=attempt)

        attempt = plan()
        validation = validate(attempt, build_features(attempt))
        # One mapped task per shard: Celery (or Kubernetes) workers score them in parallel.
        shards = score_shard.partial(attempt=attempt, validation=validation).expand(shard=list(range(spec.shards)))
        build_marts(attempt, publish(attempt, validation, shards))
    return dag


def train_dag(spec: ModelSpec) -> DAG:
    with DAG(
        dag_id=spec.train_dag_id,
        description=f"Retrain {spec.name}; promote to @{spec.alias} only if it beats the current one",
        schedule=spec.training.schedule,
        start_date=None,
        catchup=False,
        max_active_runs=1,
        tags=["batchpred", "training", spec.name],
        default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=5), "execution_timeout": dt.timedelta(hours=2)},
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
    train_dag(_spec)
