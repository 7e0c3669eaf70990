"""The DAG files: they parse, they wire the right tasks, they import nothing heavy, and a
broken spec takes down only its own model."""

import datetime as dt
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

from pipelines.config.settings import DAGS_DIR, MODELS_DIR
from pipelines.domain.errors import InputError
from pipelines.faces import tasks

HEAVY = ("pandas", "numpy", "xgboost", "mlflow", "great_expectations", "dbt", "sklearn", "duckdb", "pyarrow")
LAST_COMPLETE = dt.date(2026, 1, 31)


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_dagbag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    models = ("churn", "payment_risk")
    assert {f"{m}_{kind}" for m in models for kind in ("score", "monitor", "train")} == set(dagbag.dag_ids)


def test_publishing_updates_the_asset_the_monitor_runs_on_and_monitoring_can_ask_for_a_retrain(dagbag):
    publish = dagbag.dags["churn_score"].get_task("publish")
    assert [a.name for a in publish.outlets] == ["churn_predictions"]
    monitor = dagbag.dags["churn_monitor"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in monitor.tasks} == {
        "monitor": ["notify", "request_retrain"],
        "notify": [],
        "request_retrain": [],
    }
    assert [a.name for a in monitor.get_task("request_retrain").outlets] == ["churn_retrain"]
    schedule = dagbag.dags["churn_train"].timetable
    assert type(schedule).__name__ == "AssetOrTimeSchedule"  # weekly, or when monitoring asks
    assert "churn_retrain" in repr(schedule.asset_condition)
    assert type(monitor.timetable).__name__ == "AssetOrTimeSchedule" and "churn_predictions" in repr(
        monitor.timetable.asset_condition
    )


def test_score_dag_wiring_and_settings(dagbag):
    dag = dagbag.dags["churn_score"]
    order = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert order == {
        "wait_for_data": ["plan"],
        "plan": ["build_features", "build_marts", "publish", "score_shard", "validate"],
        "build_features": ["validate"],
        "validate": ["publish", "score_shard"],
        "score_shard": ["publish"],
        "publish": ["build_marts"],
        "build_marts": [],
    }
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert dag.start_date is None  # a run dated before a start date would silently run no task
    score = dag.get_task("score_shard")
    assert (score.retries, score.execution_timeout) == (2, dt.timedelta(minutes=30))  # models/churn/model.yaml
    assert score.pool == "batchpred_warehouse"
    params = dag.params.dump()
    assert set(params) == {"as_of_date", "model_alias", "dry_run"}
    schema = dag.params.get_param("as_of_date").schema
    assert "format" not in schema and schema["pattern"] == tasks.DATE_PATTERN  # a text field, not a date picker
    assert params["model_alias"] == "champion"
    assert "Rerun a date" in dag.doc_md and "When it fails" in dag.doc_md
    # A scheduled run waits up to 360 min for its data, checking every 10 (models/churn/model.yaml's defaults).
    wait = dag.get_task("wait_for_data")
    assert wait.execution_timeout == dt.timedelta(minutes=360 + 10 + 30) and wait.pool != "batchpred_warehouse"
    assert "for up to 360 min" in dag.doc_md and "checking every\n10 min" in dag.doc_md


def test_the_scheduled_run_for_day_d_has_ds_d_and_runs_after_d(dagbag):
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable
    from airflow.timetables.base import TimeRestriction

    # The scheduler works on the serialized timetable; decode it the same way.
    timetable = decode_timetable(encode_timetable(dagbag.dags["churn_score"].timetable))
    after = dt.datetime(2026, 1, 31, 0, 0, tzinfo=dt.UTC)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=TimeRestriction(earliest=after, latest=None, catchup=True)
    )
    assert info.logical_date.date() == dt.date(2026, 1, 31)
    assert info.run_after > dt.datetime(2026, 1, 31, 23, 59, tzinfo=dt.UTC)


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


def test_a_broken_spec_takes_down_only_its_own_model(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from pipelines.config import settings

    shutil.copytree(MODELS_DIR / "churn", tmp_path / "churn")
    (tmp_path / "typo").mkdir()
    raw = yaml.safe_load((MODELS_DIR / "churn" / "model.yaml").read_text()) | {"name": "typo", "entity_kee": "x"}
    (tmp_path / "typo" / "model.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(settings, "MODELS_DIR", tmp_path)
    bag = DagBag(dag_folder=str(DAGS_DIR))
    assert bag.import_errors == {}
    assert {"churn_score", "churn_monitor", "churn_train", "typo_score"} == set(bag.dag_ids)
    broken = bag.dags["typo_score"]
    assert [t.task_id for t in broken.tasks] == ["spec_error"]
    assert "entity_kee" in broken.doc_md and "typo/model.yaml" in broken.doc_md
    with pytest.raises(Exception, match="entity_kee"):
        broken.get_task("spec_error").python_callable()


def ctx(run_type="manual", logical=None, params=None, conf=None):
    return tasks.RunContext("run", run_type, logical, params or {}, conf if conf is not None else dict(params or {}))


def choose(context):
    return tasks.choose_as_of_date(context, tuple(tasks.SCORE_PARAMS), lambda: LAST_COMPLETE)


def test_the_as_of_date_of_each_kind_of_run():
    midnight = dt.datetime(2026, 1, 20, tzinfo=dt.UTC)
    now = dt.datetime(2026, 2, 3, 7, 30, 12, tzinfo=dt.UTC)
    assert choose(ctx(params={"as_of_date": "2026-01-15"}, logical=now))[0] == dt.date(2026, 1, 15)
    assert choose(ctx("scheduled", midnight)) == (dt.date(2026, 1, 20), "the scheduled run's logical date")
    assert choose(ctx("backfill", midnight))[0] == dt.date(2026, 1, 20)
    assert choose(ctx("manual", midnight)) == (dt.date(2026, 1, 20), "the run's logical date")  # airflow dags test <dag> D
    # The Trigger form pre-fills "now"; the REST API may send no logical date: the last complete day.
    assert choose(ctx("manual", now)) == (LAST_COMPLETE, "no date given: the last complete day")
    assert choose(ctx("manual", None))[0] == LAST_COMPLETE
    assert choose(ctx("asset_triggered", None))[0] == LAST_COMPLETE


def test_unknown_run_parameters_are_refused_by_name():
    with pytest.raises(InputError, match="as_of_dte"):
        choose(ctx(conf={"as_of_dte": "2026-01-01"}))


@pytest.mark.parametrize("bad", ["2026-02-30", "31/01/2026", "2026-01-31; drop table x", 20260131])
def test_impossible_and_malformed_dates_are_refused_by_name(bad):
    with pytest.raises(InputError, match="as_of_date"):
        choose(ctx(params={"as_of_date": bad}))


def test_the_form_pattern_refuses_what_cannot_be_a_date():
    import re

    assert re.match(tasks.DATE_PATTERN, "2026-01-31")
    assert not any(re.match(tasks.DATE_PATTERN, s) for s in ("2026-13-01", "2026-01-32", "26-01-31", "2026-1-31"))
