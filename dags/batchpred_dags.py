"""Airflow DAGs for every model in models/<name>/model.yaml: <name>_score and <name>_train.

This file only wires tasks. Each task reads its run context, calls one step from
`pipelines.steps`, and returns a small reference for XCom. Heavy packages (pandas,
xgboost, mlflow, great_expectations, dbt) are imported inside the steps, never
here, because the scheduler parses this file constantly.
"""

from __future__ import annotations

import datetime as dt
import functools

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from pipelines.spec import ALIAS_PATTERN, ModelSpec, list_models, load_spec

# Tasks that write to the warehouse share this pool. `batchpred demo` (and the
# production init) create it: 1 slot for a DuckDB file, which takes one writer at a time.
WAREHOUSE_POOL = "batchpred_warehouse"
START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _fail_fast(step):
    """Fail a task without retries when the error names something a person must fix
    (bad data, bad parameter, missing model): retrying would only delay the alert."""

    @functools.wraps(step)
    def wrapper(*args, **kwargs):
        from pipelines.errors import BatchpredError

        try:
            return step(*args, **kwargs)
        except BatchpredError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    return wrapper


def _unless_dry_run() -> None:
    """Stop a task that would write predictions when the run is a dry run."""
    if get_current_context()["params"].get("dry_run"):
        raise AirflowSkipException("dry run: features built and validated, model resolved; nothing scored or published")


def _run_inputs():
    """(settings, as-of date, Airflow run id) for the running task."""
    from pipelines import steps
    from pipelines.settings import Settings

    context = get_current_context()
    dag_run = context["dag_run"]
    as_of_date = steps.as_of_date_for_run(
        dag_run.conf, context["params"].get("as_of_date"), context.get("logical_date"), dag_run.run_after
    )
    return Settings.from_env(), as_of_date, context["run_id"]


def score_dag(spec: ModelSpec) -> DAG:
    with DAG(
        dag_id=spec.score_dag_id,
        description=f"Nightly scores for {spec.name}: features, validation, scoring, marts",
        doc_md=f"""
Scores **{spec.name}** for one as-of date D: the run for the daily interval [D, D+1)
runs once D is over. Trigger it by hand with `as_of_date` to (re)score a date, and
`model_alias` to score with another registry alias than `{spec.alias}`.
Each rerun replaces exactly that date's rows in `predictions.{spec.predictions_table}`.
""",
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["batchpred", "scoring", spec.name],
        default_args={
            "retries": 2,
            "retry_delay": dt.timedelta(minutes=2),
            "retry_exponential_backoff": True,
            "execution_timeout": dt.timedelta(minutes=30),
        },
        params={
            "as_of_date": Param(
                None,
                type=["null", "string"],
                format="date",
                title="As-of date",
                description="YYYY-MM-DD. Empty: the run's own date (the day before it started, for a manual run).",
            ),
            "model_alias": Param(
                spec.alias,
                type="string",
                pattern=ALIAS_PATTERN,
                title="Model alias",
                description=f"MLflow registry alias to score with: models:/{spec.name}@<alias>.",
            ),
            "dry_run": Param(
                False,
                type="boolean",
                title="Dry run",
                description="Build and validate the features and resolve the model, but score and publish nothing.",
            ),
        },
    ) as dag:

        @task(pool=WAREHOUSE_POOL)
        @_fail_fast
        def build_features() -> dict:
            from pipelines import steps

            settings, as_of_date, _ = _run_inputs()
            return steps.build_features(settings, load_spec(spec.name), as_of_date)

        @task(pool=WAREHOUSE_POOL)  # it writes validation results and the quarantine
        @_fail_fast
        def validate() -> dict:
            from pipelines import steps

            settings, as_of_date, run_id = _run_inputs()
            return steps.validate(settings, load_spec(spec.name), as_of_date, run_id)

        @task
        @_fail_fast
        def resolve_model() -> dict:
            from pipelines import steps

            settings, as_of_date, run_id = _run_inputs()
            alias = get_current_context()["params"]["model_alias"]
            return steps.resolve_model(settings, load_spec(spec.name), as_of_date, alias, run_id)

        @task(pool=WAREHOUSE_POOL)
        @_fail_fast
        def score_shard(shard: int, validation: dict, model: dict) -> dict:
            from pipelines import steps

            _unless_dry_run()
            settings, as_of_date, run_id = _run_inputs()
            return steps.score_shard(
                settings, load_spec(spec.name), as_of_date, validation["validation_id"], model, shard, run_id
            )

        @task(pool=WAREHOUSE_POOL)
        @_fail_fast
        def publish(validation: dict, model: dict, shard_results: list[dict]) -> dict:
            from pipelines import steps

            settings, as_of_date, run_id = _run_inputs()
            return steps.publish(
                settings, load_spec(spec.name), as_of_date, validation["validation_id"], model, list(shard_results), run_id
            )

        @task(pool=WAREHOUSE_POOL)
        @_fail_fast
        def build_marts(published: dict) -> dict:
            from pipelines import steps

            settings, as_of_date, _ = _run_inputs()
            return steps.build_marts(settings, load_spec(spec.name), as_of_date)

        features = build_features()
        validation = validate()
        model = resolve_model()
        features >> validation
        # One mapped task per shard: Celery (or Kubernetes) workers score them in parallel.
        shards = score_shard.partial(validation=validation, model=model).expand(shard=list(range(spec.shards)))
        build_marts(publish(validation, model, shards))
    return dag


def train_dag(spec: ModelSpec) -> DAG:
    with DAG(
        dag_id=spec.train_dag_id,
        description=f"Retrain {spec.name}; promote to @{spec.alias} only if it beats the current one",
        schedule=spec.training.schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["batchpred", "training", spec.name],
        default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=5), "execution_timeout": dt.timedelta(hours=2)},
        params={
            "as_of_date": Param(
                None,
                type=["null", "string"],
                format="date",
                title="Train on data known up to",
                description="YYYY-MM-DD. Empty: the day before the run started.",
            ),
        },
    ) as dag:

        @task(pool=WAREHOUSE_POOL)
        @_fail_fast
        def train() -> dict:
            from pipelines import steps
            from pipelines.settings import Settings

            context = get_current_context()
            dag_run = context["dag_run"]
            as_of_date = steps.as_of_date_for_run(dag_run.conf, context["params"].get("as_of_date"), None, dag_run.run_after)
            return steps.train(Settings.from_env(), load_spec(spec.name), as_of_date)

        train()
    return dag


for _name in list_models():
    _spec = load_spec(_name)
    score_dag(_spec)
    train_dag(_spec)
