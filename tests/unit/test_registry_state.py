"""The registry object leaves MLflow's process-wide state as it found it: no tracking URI and
no MLFLOW_* variable is left behind for the next `Settings.from_env()` to read."""

import os

import pytest

from pipelines.adapters.registry import Registry
from pipelines.config.settings import Settings


@pytest.mark.parametrize("preset", [None, "sqlite:////tmp/someone-elses/mlflow.db"])
def test_pointing_mlflow_at_the_registry_puts_everything_back(tmp_path, monkeypatch, preset):
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_state

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracking_state, "_tracking_uri", None)
    if preset:
        mlflow.set_tracking_uri(preset)
    before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    settings = Settings.from_env({"BATCHPRED_HOME": str(tmp_path / "home")})
    registry = Registry(settings)
    with registry._pointed():
        assert mlflow.get_tracking_uri() == settings.mlflow_tracking_uri
    assert {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")} == before
    assert tracking_state._tracking_uri == preset
    mlflow.set_tracking_uri(None)
