"""The model registry adapter: the only code that speaks MLflow.

An alias (`models:/churn@champion`) is resolved once, to a concrete version and
training run id, and everything after that uses the version. There is no
fallback to "latest": an alias that does not exist is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.errors import ModelNotFound
from pipelines.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    import xgboost as xgb


@dataclass(frozen=True)
class ResolvedModel:
    """One registered model version, pinned."""

    name: str
    version: str
    run_id: str
    alias: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def connect(settings: Settings):
    """Point MLflow at the configured tracking server or local store; return a client."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    if settings.mlflow_tracking_uri.startswith("sqlite:"):
        settings.home.mkdir(parents=True, exist_ok=True)
    return mlflow.MlflowClient()


def resolve(settings: Settings, model_name: str, alias: str) -> ResolvedModel:
    """Resolve models:/<model_name>@<alias> to its version and run id, or raise ModelNotFound."""
    from mlflow.exceptions import MlflowException

    client = connect(settings)
    try:
        client.get_registered_model(model_name)
    except MlflowException:
        raise ModelNotFound(
            f"no registered model {model_name!r} in the MLflow registry at {_safe_uri(settings)}; "
            f"train one with `batchpred train {model_name}`"
        ) from None
    try:
        version = client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        known = sorted(client.get_registered_model(model_name).aliases)
        raise ModelNotFound(
            f"model {model_name!r} has no alias {alias!r} (aliases it has: {', '.join(known) or 'none'}); "
            f"use one of those or train with `batchpred train {model_name}`"
        ) from None
    if version.run_id is None:
        raise ModelNotFound(f"models:/{model_name}@{alias} (version {version.version}) has no training run id")
    return ResolvedModel(name=model_name, version=str(version.version), run_id=version.run_id, alias=alias)


# A registered version never changes, so what was loaded for it can be kept for the
# life of the process: a backfill loads the model once, not once per date.
_loaded: dict[tuple[str, str], Any] = {}


def load_booster(settings: Settings, model: ResolvedModel) -> xgb.Booster:
    """Load the pinned version with the XGBoost flavour (faster than pyfunc)."""
    key = (settings.mlflow_tracking_uri, model.uri)
    if key not in _loaded:
        import mlflow.xgboost
        from mlflow.exceptions import MlflowException

        connect(settings)
        try:
            booster = mlflow.xgboost.load_model(model.uri)
        except MlflowException as exc:
            raise ModelNotFound(f"cannot load {model.uri}: {exc.message}") from None
        _loaded[key] = booster.get_booster() if hasattr(booster, "get_booster") else booster
    return _loaded[key]


def input_columns(settings: Settings, model: ResolvedModel) -> list[str]:
    """The column names in the version's signature, in order; [] if it has none."""
    key = (settings.mlflow_tracking_uri, model.uri + "#signature")
    if key not in _loaded:
        _loaded[key] = _signature_columns(settings, model)
    return _loaded[key]


def _signature_columns(settings: Settings, model: ResolvedModel) -> list[str]:
    from mlflow.models import get_model_info

    connect(settings)
    signature = get_model_info(model.uri).signature
    if signature is None or signature.inputs is None:
        return []
    return list(signature.inputs.input_names())


def log_model(
    settings: Settings,
    model_name: str,
    booster: xgb.Booster,
    example: pd.DataFrame,
    params: dict[str, Any],
    metrics: dict[str, float],
    artifacts: dict[str, Any],
) -> ResolvedModel:
    """Log a training run (params, metrics, JSON artifacts, the model with its signature and
    an input example) and register the model as a new version of `model_name`."""
    import mlflow
    import mlflow.xgboost
    import xgboost
    from mlflow.models import infer_signature

    client = connect(settings)
    experiment = f"batchpred-{model_name}"
    if client.get_experiment_by_name(experiment) is None:
        location = settings.mlflow_artifact_root.as_uri() if settings.mlflow_tracking_uri.startswith("sqlite:") else None
        client.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    signature = infer_signature(example, booster.inplace_predict(example.to_numpy()))
    with mlflow.start_run(run_name=f"train-{model_name}") as run:
        mlflow.log_params({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in params.items()})
        mlflow.log_metrics(metrics)
        for file_name, content in artifacts.items():
            mlflow.log_dict(content, file_name)
        info = mlflow.xgboost.log_model(
            booster,
            name="model",
            signature=signature,
            input_example=example,
            registered_model_name=model_name,
            # Stated, not inferred: inference exports this whole project's lock file.
            pip_requirements=[f"xgboost=={xgboost.__version__}"],
        )
    return ResolvedModel(name=model_name, version=str(info.registered_model_version), run_id=run.info.run_id, alias=None)


def set_alias(settings: Settings, model: ResolvedModel, alias: str) -> None:
    connect(settings).set_registered_model_alias(model.name, alias, model.version)


def tag_version(settings: Settings, model: ResolvedModel, tags: dict[str, str]) -> None:
    client = connect(settings)
    for key, value in tags.items():
        client.set_model_version_tag(model.name, model.version, key, value)


def _safe_uri(settings: Settings) -> str:
    """The tracking URI without any password, for messages."""
    from sqlalchemy.engine import make_url

    uri = settings.mlflow_tracking_uri
    if "://" in uri and "@" in uri:
        try:
            return make_url(uri).render_as_string(hide_password=True)
        except Exception:
            return uri.split("://", 1)[0] + "://***"
    return uri
