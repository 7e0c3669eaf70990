"""Training against a real MLflow SQLite store and a real dbt training set."""

import datetime as dt
import json
from dataclasses import replace

import pytest

from pipelines import registry, steps
from pipelines.errors import ModelNotFound
from pipelines.train import snapshot_dates
from tests.conftest import AS_OF


def test_snapshot_dates_leave_room_for_the_label(spec):
    train, valid = snapshot_dates(spec, AS_OF)
    horizon = dt.timedelta(days=spec.training.label_horizon_days)
    assert max(valid) == AS_OF - horizon
    assert max(train) < min(valid)
    dates = train + valid
    assert {(b - a).days for a, b in zip(dates, dates[1:], strict=False)} == {spec.training.snapshot_every_days}


def test_the_base_model_is_registered_as_champion_and_learns(base_home, spec):
    trained = base_home["trained"]
    settings = base_home["settings"]
    assert trained["promoted"] is True
    assert trained["metrics"]["auc"] > 0.65, trained["metrics"]
    champion = registry.resolve(settings, "churn", "champion")
    assert champion.version == trained["model_version"]
    assert champion.run_id == trained["mlflow_run_id"]
    assert registry.input_columns(settings, champion) == list(spec.feature_names)


def test_reference_distribution_is_logged_for_drift_checks(base_home, spec):
    import mlflow

    registry.connect(base_home["settings"])
    path = mlflow.artifacts.download_artifacts(
        run_id=base_home["trained"]["mlflow_run_id"], artifact_path="reference_distribution.json"
    )
    reference = json.loads(open(path).read())
    assert set(reference["features"]) == set(spec.feature_names)
    assert abs(sum(reference["features"]["plan"]["shares"].values()) - 1) < 1e-6
    run = mlflow.get_run(base_home["trained"]["mlflow_run_id"])
    assert {"val_auc", "val_pr_auc", "val_log_loss"} <= set(run.data.metrics)


def test_the_alias_moves_only_to_a_better_model(settings, spec, tmp_path):
    own = replace(settings, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    first = steps.train(own, spec, AS_OF)
    assert first["promoted"] and first["champion_metrics"] is None
    second = steps.train(own, spec, AS_OF)  # same data, same seed: not better, so not promoted
    assert second["model_version"] != first["model_version"]
    assert second["champion_metrics"] == pytest.approx(first["metrics"])
    assert second["promoted"] is False
    assert registry.resolve(own, "churn", "champion").version == first["model_version"]


def test_an_unknown_alias_is_an_error_naming_it(base_home):
    with pytest.raises(ModelNotFound, match="no alias 'challenger'.*champion"):
        registry.resolve(base_home["settings"], "churn", "challenger")
