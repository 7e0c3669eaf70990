"""The model registry adapter: the only code that speaks MLflow.

An alias (`models:/churn@champion`) is resolved once, to a concrete version and
training run id, and everything after that uses the version. There is no fallback
to "latest": an alias that does not exist is an error.

Each version carries its input contract (`pipelines.config.contract`) in its MLflow model
metadata, written when it is logged; scoring reads it from there and never from
today's spec. A version without one is refused.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import TYPE_CHECKING, Any

from pipelines.adapters.warehouse.url import masked
from pipelines.config.contract import InputContract
from pipelines.config.settings import Settings
from pipelines.config.spec import ALIAS_PATTERN
from pipelines.domain import redact
from pipelines.domain.errors import ContractError, InputError, ModelNotFound, RegistryUnavailable
from pipelines.domain.records import PinnedModel

if TYPE_CHECKING:
    import pandas as pd
    import xgboost as xgb

CONTRACT_KEY = "batchpred_input_contract"


def check_alias(alias: object) -> str:
    """Refuse (InputError) anything that is not an MLflow alias name: checked before any work starts."""
    if not isinstance(alias, str) or not re.match(ALIAS_PATTERN, alias):
        raise InputError(f"model_alias must be an MLflow alias name matching {ALIAS_PATTERN}; got {alias!r}")
    return alias


def connect(settings: Settings):
    """Point MLflow at the configured tracking server or local store; return a client."""
    # Quiet at the source: MLflow logs an INFO line per store migration, a warning when the
    # venv has no pip (uv's venvs do not) while it writes the model's conda.yaml, and draws
    # a progress bar for every artifact it downloads.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    if settings.mlflow_tracking_uri.startswith("sqlite:"):
        settings.home.mkdir(parents=True, exist_ok=True)
    return mlflow.MlflowClient()


def resolve(settings: Settings, model_name: str, alias: str) -> PinnedModel:
    """Resolve models:/<model_name>@<alias> to its version and run id, or raise ModelNotFound."""
    from mlflow.exceptions import MlflowException

    check_alias(alias)
    client = connect(settings)
    try:
        registered = client.get_registered_model(model_name)
    except MlflowException as exc:
        _unless_missing(settings, exc)
        raise ModelNotFound(
            f"no registered model {model_name!r} in the MLflow registry at {masked(settings.mlflow_tracking_uri)}; "
            f"train one with `batchpred train {model_name}`"
        ) from None
    try:
        version = client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        _unless_missing(settings, exc)
        known = sorted(registered.aliases)
        raise ModelNotFound(
            f"model {model_name!r} has no alias {alias!r} (aliases it has: {', '.join(known) or 'none'}); "
            f"use one of those or train with `batchpred train {model_name}`"
        ) from None
    if version.run_id is None:
        raise ModelNotFound(f"models:/{model_name}@{alias} (version {version.version}) has no training run id")
    return PinnedModel(name=model_name, version=int(version.version), run_id=version.run_id, alias=alias)


def _unless_missing(settings: Settings, exc: Exception) -> None:
    """Re-raise an MLflow error that is not "no such model or alias" as RegistryUnavailable."""
    if getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
        return
    reason = redact.text(str(getattr(exc, "message", exc)).splitlines()[0])[:300]  # MLflow's messages hold the URL
    raise RegistryUnavailable(f"the MLflow registry at {masked(settings.mlflow_tracking_uri)} did not answer: {reason}") from None


def pin(settings: Settings, model_name: str, version: int) -> PinnedModel:
    """A version by number (for `promote`), or ModelNotFound."""
    from mlflow.exceptions import MlflowException

    try:
        found = connect(settings).get_model_version(model_name, str(version))
    except MlflowException:
        raise ModelNotFound(f"model {model_name!r} has no version {version}") from None
    return PinnedModel(model_name, int(found.version), found.run_id, None)


# A registered version never changes, so what was loaded for it can be kept for the
# life of the process: a backfill loads the model once, not once per date.
_loaded: dict[tuple[str, str], Any] = {}


def load_booster(settings: Settings, model: PinnedModel) -> xgb.Booster:
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


def contract(settings: Settings, model: PinnedModel) -> InputContract:
    """The version's input contract, or ContractError saying how to get one."""
    key = (settings.mlflow_tracking_uri, model.uri + "#contract")
    if key not in _loaded:
        from mlflow.exceptions import MlflowException
        from mlflow.models import get_model_info

        connect(settings)
        try:
            metadata = get_model_info(model.uri).metadata or {}
        except MlflowException as exc:
            _unless_missing(settings, exc)  # a registry that did not answer is a failure, not a refusal
            raise ModelNotFound(f"cannot read {model.uri}: {redact.text(exc.message)}") from None
        if CONTRACT_KEY not in metadata:
            raise ContractError(
                f"{model.uri} was registered without an input contract (by a batchpred older than 0.2, or by hand), "
                f"so batchpred cannot tell how it reads a row; train a new version with `batchpred train {model.name}` "
                "and score with it"
            )
        _loaded[key] = InputContract.from_dict(metadata[CONTRACT_KEY])
    return _loaded[key]


def training_reference(settings: Settings, model: PinnedModel) -> dict[str, Any] | None:
    """The version's training reference (what monitoring compares against), or None if it has none."""
    key = (settings.mlflow_tracking_uri, model.uri + "#reference")
    if key not in _loaded:
        import mlflow
        from mlflow.exceptions import MlflowException

        connect(settings)
        try:
            path = mlflow.artifacts.download_artifacts(run_id=model.run_id, artifact_path="training_reference.json")
        except (MlflowException, OSError):
            _loaded[key] = None
        else:
            from pipelines.domain.reference import upgrade

            with open(path) as f:
                _loaded[key] = upgrade(json.load(f))
    return _loaded[key]


def log_model(
    settings: Settings,
    model_name: str,
    booster: xgb.Booster,
    input_contract: InputContract,
    example: pd.DataFrame,
    params: dict[str, Any],
    metrics: dict[str, float],
    artifacts: dict[str, Any],
) -> PinnedModel:
    """Log a training run (params, metrics, JSON artifacts, the model with its input contract,
    signature and an input example) and register it as a new version of `model_name`."""
    import mlflow
    import mlflow.xgboost
    import xgboost
    from mlflow.exceptions import MlflowException
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
            metadata={CONTRACT_KEY: input_contract.to_dict()},
            # Stated, not inferred: inference exports this whole project's lock file.
            pip_requirements=[f"xgboost=={xgboost.__version__}"],
        )
    # Registered through the client, which (unlike log_model's registered_model_name)
    # prints nothing: the caller reports the version.
    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(model_name)
    version = client.create_model_version(model_name, info.model_uri, run_id=run.info.run_id, model_id=info.model_id)
    return PinnedModel(name=model_name, version=int(version.version), run_id=run.info.run_id, alias=None)


def set_alias(settings: Settings, model: PinnedModel, alias: str) -> None:
    connect(settings).set_registered_model_alias(model.name, alias, str(model.version))


def tag_version(settings: Settings, model: PinnedModel, tags: dict[str, str]) -> None:
    client = connect(settings)
    for key, value in tags.items():
        client.set_model_version_tag(model.name, str(model.version), key, value)
