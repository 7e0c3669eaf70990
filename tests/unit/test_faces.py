"""The faces are thin: each CLI command and each DAG task turns its input into a call of the
same use-case function. Checked by running both faces with that function replaced by a
recorder that stops the run at once (so nothing touches a warehouse or a registry: what is
tested is where the face leads, not what the use case does, which the other tiers test)."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from pipelines.faces import cli as cli_face
from pipelines.faces import tasks
from pipelines.usecases import health, models, steps

DAY = dt.date(2026, 1, 31)


class Reached(Exception):
    """Raised by the recorder: the face called the use case."""


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHPRED_HOME", str(tmp_path))
    monkeypatch.delenv("BATCHPRED_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from pipelines.adapters.resources import Resources
    from pipelines.config.settings import Settings
    from pipelines.usecases.setup import setup_warehouse

    setup_warehouse(Resources.from_settings(Settings.from_env(), create=True))  # an empty warehouse file
    return tmp_path


def recorder(monkeypatch, module, name):
    calls = []

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        raise Reached(f"{module.__name__}.{name}")

    monkeypatch.setattr(module, name, record)
    return calls


def run_cli(*args):
    return CliRunner().invoke(cli_face.cli, list(args), standalone_mode=False)


def run_task(step, params=None, inputs=None):
    ctx = tasks.RunContext("manual__1", "manual", None, params or {}, {}, [])
    return tasks.run(step, "churn", ctx, inputs or {})


# (use-case module, function, CLI arguments, DAG task, its run parameters)
PATHS = [
    (steps, "plan", ["score", "churn", "--date", str(DAY)], "plan", {"as_of_date": str(DAY)}),
    (models, "train", ["train", "churn", "--date", str(DAY)], "train", {"as_of_date": str(DAY)}),
    (health, "monitor_dates", ["monitor", "churn", "--date", str(DAY)], "monitor", {"as_of_date": str(DAY)}),
]


@pytest.mark.parametrize(("module", "name", "args", "task", "params"), PATHS, ids=[p[3] for p in PATHS])
def test_the_cli_command_and_the_dag_task_reach_the_same_use_case(home, monkeypatch, module, name, args, task, params):
    calls = recorder(monkeypatch, module, name)
    result = run_cli(*args)
    assert isinstance(result.exception, Reached), result.output
    with pytest.raises(Reached):
        run_task(task, params)
    cli_call, task_call = calls
    # The same request: the spec and the date reach the use case the same way from both faces.
    assert cli_call[0][1] == task_call[0][1]  # the spec
    assert cli_call[0][2] == task_call[0][2]  # the date (monitor: {date: version})
    assert cli_call[0][2] in (DAY, {DAY: None})
    assert type(cli_call[0][0]) is type(task_call[0][0])  # the resources


def test_every_dag_task_body_calls_one_use_case_module_function():
    """The task bodies are the DAG's faces: no body reaches past the use-case layer."""
    import ast
    import inspect

    for step, body in tasks.TASKS.items():
        tree = ast.parse(inspect.getsource(body))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        allowed = ("pipelines.usecases", "pipelines.domain")
        lower = [m for m in imported if m.startswith("pipelines.") and not m.startswith(allowed)]
        assert not lower, f"task {step} imports {lower}: call a use case instead"


def test_the_recorder_would_see_a_face_that_goes_elsewhere(home, monkeypatch):
    """The check can fail: with the recorder on a function the command does not call, no Reached."""
    calls = recorder(monkeypatch, models, "train")
    run_cli("monitor", "churn", "--date", str(DAY))
    assert calls == []
