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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from pipelines.adapters.warehouse.url import masked
from pipelines.config.contract import InputContract
from pipelines.config.settings import Settings
from pipelines.config.spec import ALIAS_PATTERN
from pipelines.domain import redact
from pipelines.domain.errors import ContractError, InputError, ModelNotFound, RegistryUnavailable
from pipelines.domain.records import PinnedModel
from pipelines.domain.reference import TrainingReference

if TYPE_CHECKING:
    import pandas as pd
    import xgboost as xgb

CONTRACT_KEY = "batchpred_input_contract"


def check_alias(alias: object) -> str:
    """Refuse (InputError) anything that is not an MLflow alias name: checked before any work starts."""
    if not isinstance(alias, str) or not re.match(ALIAS_PATTERN, alias):
        raise InputError(f"model_alias must be an MLflow alias name matching {ALIAS_PATTERN}; got {alias!r}")
    return alias


# Quiet at the source: MLflow logs an INFO line per store migration, a warning when the
# venv has no pip (uv's venvs do not) while it writes the model's conda.yaml, and draws
# a progress bar for every artifact it downloads.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # "View run ... at" on stdout would break --json


def _import_mlflow() -> Any:
    """MLflow, imported (slow: only when a registry is used) and quietened: it sets its
    loggers to INFO when it is first imported."""
    import mlflow

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return mlflow


class Registry:
    """The MLflow model registry at the configured tracking URI (built once per task or
    command by `pipelines.adapters.resources`). It owns its client, and what it loaded for
    a version: a registered version never changes, so a backfill loads the model once,
    not once per date.

    MLflow's model loading and run logging read its process-wide tracking URI; the few
    calls that need it set it for their duration only (`_pointed`) and put back what was
    there, so nothing else in the process is pointed anywhere by batchpred.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.uri = settings.mlflow_tracking_uri
        self._client: Any = None
        self._loaded: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Registry({masked(self.uri)!r})"

    @property
    def client(self) -> Any:
        if self._client is None:
            mlflow = _import_mlflow()
            if self.uri.startswith("sqlite:"):
                self.settings.home.mkdir(parents=True, exist_ok=True)
            self._client = mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    @contextmanager
    def _pointed(self) -> Iterator[None]:
        """MLflow's fluent API (load_model, start_run, and the registry store, which builds clients
        of its own) pointed at this registry for the duration; then exactly what was there before,
        the MLFLOW_TRACKING_URI and MLFLOW_REGISTRY_URI variables included (MLflow's setters write
        them, and a later `Settings.from_env()` would read them)."""
        from mlflow.tracking._model_registry import utils as registry_state
        from mlflow.tracking._tracking_service import utils as tracking_state

        mlflow = _import_mlflow()
        self.client  # noqa: B018 - creates the SQLite store's folder first
        saved_env = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        saved_tracking, saved_registry = tracking_state._tracking_uri, registry_state._registry_uri
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved_tracking)
            registry_state._registry_uri = saved_registry
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def _unless_missing(self, exc: Exception) -> None:
        """Re-raise an MLflow error that is not "no such model or alias" as RegistryUnavailable."""
        if getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return
        reason = redact.text(str(getattr(exc, "message", exc)).splitlines()[0])[:300]  # MLflow's messages hold the URL
        raise RegistryUnavailable(f"the MLflow registry at {masked(self.uri)} did not answer: {reason}") from None

    def resolve(self, model_name: str, alias: str) -> PinnedModel:
        """Resolve models:/<model_name>@<alias> to its version and run id, or raise ModelNotFound."""
        from mlflow.exceptions import MlflowException

        check_alias(alias)
        try:
            registered = self.client.get_registered_model(model_name)
        except MlflowException as exc:
            self._unless_missing(exc)
            raise ModelNotFound(
                f"no registered model {model_name!r} in the MLflow registry at {masked(self.uri)}; "
                f"train one with `batchpred train {model_name}`"
            ) from None
        try:
            version = self.client.get_model_version_by_alias(model_name, alias)
        except MlflowException as exc:
            self._unless_missing(exc)
            known = sorted(registered.aliases)
            raise ModelNotFound(
                f"model {model_name!r} has no alias {alias!r} (aliases it has: {', '.join(known) or 'none'}); "
                f"use one of those or train with `batchpred train {model_name}`"
            ) from None
        if version.run_id is None:
            raise ModelNotFound(f"models:/{model_name}@{alias} (version {version.version}) has no training run id")
        return PinnedModel(name=model_name, version=int(version.version), run_id=version.run_id, alias=alias)

    def pin(self, model_name: str, version: int) -> PinnedModel:
        """A version by number (for `promote`), or ModelNotFound."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_model_version(model_name, str(version))
        except MlflowException:
            raise ModelNotFound(f"model {model_name!r} has no version {version}") from None
        return PinnedModel(model_name, int(found.version), found.run_id, None)

    def load_booster(self, model: PinnedModel) -> xgb.Booster:
        """Load the pinned version with the XGBoost flavour (faster than pyfunc)."""
        if model.uri not in self._loaded:
            import mlflow.xgboost
            from mlflow.exceptions import MlflowException

            try:
                with self._pointed():
                    booster = mlflow.xgboost.load_model(model.uri)
            except MlflowException as exc:
                raise ModelNotFound(f"cannot load {model.uri}: {exc.message}") from None
            self._loaded[model.uri] = booster.get_booster() if hasattr(booster, "get_booster") else booster
        return cast("xgb.Booster", self._loaded[model.uri])

    def contract(self, model: PinnedModel) -> InputContract:
        """The version's input contract, or ContractError saying how to get one."""
        key = model.uri + "#contract"
        if key not in self._loaded:
            from mlflow.exceptions import MlflowException
            from mlflow.models import get_model_info

            try:
                with self._pointed():
                    metadata = get_model_info(model.uri).metadata or {}
            except MlflowException as exc:
                self._unless_missing(exc)  # a registry that did not answer is a failure, not a refusal
                raise ModelNotFound(f"cannot read {model.uri}: {redact.text(exc.message)}") from None
            if CONTRACT_KEY not in metadata:
                raise ContractError(
                    f"{model.uri} was registered without an input contract (by a batchpred older than 0.2, or by hand), "
                    f"so batchpred cannot tell how it reads a row; train a new version with `batchpred train {model.name}` "
                    "and score with it"
                )
            self._loaded[key] = InputContract.from_dict(metadata[CONTRACT_KEY])
        return cast(InputContract, self._loaded[key])

    def training_reference(self, model: PinnedModel) -> TrainingReference | None:
        """The version's training reference (what monitoring compares against), or None if it has
        none or one of a format batchpred cannot read (a version trained before it kept one)."""
        key = model.uri + "#reference"
        if key not in self._loaded:
            from mlflow.exceptions import MlflowException

            try:
                with self._pointed():  # an mlflow-artifacts:/ store is reached through the tracking server
                    path = self.client.download_artifacts(model.run_id, "training_reference.json")
            except (MlflowException, OSError):
                self._loaded[key] = None
            else:
                with open(path) as f:
                    stored = json.load(f)
                self._loaded[key] = TrainingReference.from_dict(stored) if TrainingReference.readable(stored) else None
        return cast("TrainingReference | None", self._loaded[key])

    def log_model(
        self,
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

        client = self.client
        experiment = f"batchpred-{model_name}"
        found = client.get_experiment_by_name(experiment)
        if found is None:
            location = self.settings.mlflow_artifact_root.as_uri() if self.uri.startswith("sqlite:") else None
            experiment_id = client.create_experiment(experiment, artifact_location=location)
        else:
            experiment_id = found.experiment_id
        signature = infer_signature(example, booster.inplace_predict(example.to_numpy()))
        with self._pointed():
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{model_name}") as run:
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

    def set_alias(self, model: PinnedModel, alias: str) -> None:
        self.client.set_registered_model_alias(model.name, alias, str(model.version))

    def tag_version(self, model: PinnedModel, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(model.name, str(model.version), key, value)
