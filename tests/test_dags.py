"""The DAG files: they parse, they wire the right tasks, and they import nothing heavy."""

import datetime as dt
import subprocess
import sys
import textwrap

import pytest

from pipelines import steps
from pipelines.errors import InputError
from pipelines.settings import DAGS_DIR

HEAVY = ("pandas", "numpy", "xgboost", "mlflow", "great_expectations", "dbt", "sklearn", "duckdb", "pyarrow")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_dagbag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"churn_score", "churn_train"} <= set(dagbag.dag_ids)


def test_score_dag_wiring_and_settings(dagbag):
    dag = dagbag.dags["churn_score"]
    order = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert order == {
        "build_features": ["validate"],
        "validate": ["publish", "score_shard"],
        "resolve_model": ["publish", "score_shard"],
        "score_shard": ["publish"],
        "publish": ["build_marts"],
        "build_marts": [],
    }
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    score = dag.get_task("score_shard")
    assert score.retries >= 1 and score.execution_timeout is not None
    assert score.pool == "batchpred_warehouse"
    params = dag.params.dump()
    assert set(params) == {"as_of_date", "model_alias", "dry_run"}
    assert dag.params.get_param("as_of_date").schema["format"] == "date"
    assert params["model_alias"] == "champion"


def test_the_scheduled_run_for_day_d_has_ds_d_and_runs_after_d(dagbag):
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable

    # The scheduler works on the serialized timetable; decode it the same way.
    timetable = decode_timetable(encode_timetable(dagbag.dags["churn_score"].timetable))
    after = dt.datetime(2026, 1, 31, 0, 0, tzinfo=dt.UTC)
    info = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=_restriction(after))
    assert info.logical_date.date() == dt.date(2026, 1, 31)
    assert info.run_after > dt.datetime(2026, 1, 31, 23, 59, tzinfo=dt.UTC)


def _restriction(earliest):
    from airflow.timetables.base import TimeRestriction

    return TimeRestriction(earliest=earliest, latest=None, catchup=True)


def test_dag_files_import_nothing_heavy():
    code = textwrap.dedent(
        f"""
        import runpy, sys
        runpy.run_path({str(DAGS_DIR / "batchpred_dags.py")!r})
        print(",".join(m for m in {HEAVY!r} if m in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), f"heavy modules imported by the DAG file: {out.stdout}"


def test_as_of_date_comes_from_the_param_then_the_logical_date_then_yesterday():
    run_after = dt.datetime(2026, 2, 3, 7, 30, tzinfo=dt.UTC)
    logical = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    assert steps.as_of_date_for_run({"as_of_date": "2026-01-15"}, "2026-01-15", logical, run_after) == dt.date(2026, 1, 15)
    assert steps.as_of_date_for_run({}, None, logical, run_after) == dt.date(2026, 2, 1)
    assert steps.as_of_date_for_run(None, None, None, run_after) == dt.date(2026, 2, 2)


def test_unknown_run_parameters_are_refused_by_name():
    with pytest.raises(InputError, match="as_of_dte"):
        steps.as_of_date_for_run({"as_of_dte": "2026-01-01"}, None, None, dt.datetime(2026, 1, 2, tzinfo=dt.UTC))


@pytest.mark.parametrize("bad", ["2026-02-30", "31/01/2026", "2026-01-31; drop table x", 20260131])
def test_malformed_dates_are_refused_by_name(bad):
    with pytest.raises(InputError, match="as_of_date must be a date written YYYY-MM-DD"):
        steps.parse_date(bad)
