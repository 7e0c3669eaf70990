"""The typed model spec read from models/<name>/model.yaml.

A new model is a new folder holding a model.yaml, a dbt feature model and an
expectation suite; no Python changes. Every name in the spec that reaches SQL is
checked here, when the spec loads, so a bad spec fails before any work starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import SpecError
from pipelines.identifiers import check_identifier
from pipelines.settings import EXPECTATIONS_DIR, MODELS_DIR

# Aliases are MLflow alias names; they also appear in run parameters.
ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


@dataclass(frozen=True)
class Training:
    """How `batchpred train` builds and judges a model."""

    window_days: int = 120  # as-of dates used for training end this many days before the last labelled date
    validation_days: int = 28  # the latest as-of dates, held out for the time-based validation split
    snapshot_every_days: int = 7  # one training snapshot every N days
    label_horizon_days: int = 30  # the label is known this many days after the as-of date
    num_boost_round: int = 200
    params: dict[str, Any] = field(default_factory=dict)
    promote_metric: str = "auc"  # the champion alias moves only if the new model beats it on this
    schedule: str | None = None  # cron/preset for the <model>_train DAG; None means manual only


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    entity_key: str
    target: str
    features_model: str  # dbt model (schema analytics) with one partition per as_of_date
    training_model: str  # dbt model (schema analytics) with features plus the label
    suite: str  # expectations/<suite>.json
    numeric_features: tuple[str, ...]
    categorical_features: dict[str, tuple[str, ...]]  # column -> allowed values, in code order
    segment: str  # categorical column the daily summary mart groups by
    alias: str = "champion"
    batch_size: int = 100_000
    shards: int = 1  # scoring fans out to this many parallel tasks, split by a hash of the entity key
    training: Training = field(default_factory=Training)
    source_dir: Path | None = None
    suites_dir: Path = EXPECTATIONS_DIR  # where <suite>.json lives

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Model input columns, in the order the booster expects them."""
        return self.numeric_features + tuple(self.categorical_features)

    @property
    def score_dag_id(self) -> str:
        return f"{self.name}_score"

    @property
    def train_dag_id(self) -> str:
        return f"{self.name}_train"

    @property
    def predictions_table(self) -> str:
        return f"{self.name}_scores"

    @property
    def suite_path(self) -> Path:
        return self.suites_dir / f"{self.suite}.json"


def list_models(models_dir: Path = MODELS_DIR) -> list[str]:
    """Names of the models that have a models/<name>/model.yaml, sorted."""
    return sorted(p.parent.name for p in models_dir.glob("*/model.yaml"))


def load_spec(name: str, models_dir: Path = MODELS_DIR) -> ModelSpec:
    """Load and check models/<name>/model.yaml.

    Refuses (SpecError) a missing file, unknown or missing keys, and any name that
    is not a plain SQL identifier: the message names the file and the key.
    """
    try:
        check_identifier(name, "model name")
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    path = models_dir / name / "model.yaml"
    if not path.is_file():
        known = ", ".join(list_models(models_dir)) or "none"
        raise SpecError(f"no model spec at {path} (known models: {known})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is not valid YAML: {exc}") from None
    try:
        return _parse(raw, path)
    except (ValueError, TypeError, KeyError) as exc:
        raise SpecError(f"{path}: {exc}") from None


_TOP_KEYS = {
    "name",
    "description",
    "entity_key",
    "target",
    "features_model",
    "training_model",
    "suite",
    "features",
    "segment",
    "alias",
    "batch_size",
    "shards",
    "training",
}


def _parse(raw: Any, path: Path) -> ModelSpec:
    if not isinstance(raw, dict):
        raise ValueError("expected a mapping at the top level")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    for key in ("name", "entity_key", "target", "features_model", "training_model", "suite", "features"):
        if key not in raw:
            raise ValueError(f"missing required key {key!r}")

    name = check_identifier(raw["name"], "name")
    if name != path.parent.name:
        raise ValueError(f"name {name!r} must match its folder {path.parent.name!r}")

    features = raw["features"]
    if not isinstance(features, dict) or set(features) - {"numeric", "categorical"}:
        raise ValueError("features must be a mapping with keys 'numeric' and 'categorical'")
    numeric = tuple(check_identifier(c, "features.numeric entry") for c in features.get("numeric") or [])
    categorical: dict[str, tuple[str, ...]] = {}
    for column, values in (features.get("categorical") or {}).items():
        check_identifier(column, "features.categorical column")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise ValueError(f"features.categorical.{column} must be a non-empty list of strings")
        categorical[column] = tuple(values)
    all_features = numeric + tuple(categorical)
    if not all_features:
        raise ValueError("features must list at least one column")
    duplicated = sorted({c for c in all_features if all_features.count(c) > 1})
    if duplicated:
        raise ValueError(f"feature(s) listed twice: {duplicated}")

    segment = raw.get("segment") or next(iter(categorical), None)
    if segment is None or segment not in categorical:
        raise ValueError(f"segment must be one of the categorical features {sorted(categorical)}")

    alias = raw.get("alias", "champion")
    if not isinstance(alias, str) or not re.match(ALIAS_PATTERN, alias):
        raise ValueError(f"alias must match {ALIAS_PATTERN}; got {alias!r}")

    batch_size = raw.get("batch_size", 100_000)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")

    shards = raw.get("shards", 1)
    if not isinstance(shards, int) or not 1 <= shards <= 256:
        raise ValueError(f"shards must be an integer from 1 to 256; got {shards!r}")

    training_raw = raw.get("training") or {}
    if not isinstance(training_raw, dict):
        raise ValueError("training must be a mapping")
    allowed = set(Training.__dataclass_fields__)
    if set(training_raw) - allowed:
        raise ValueError(f"unknown training key(s) {sorted(set(training_raw) - allowed)}; allowed: {sorted(allowed)}")
    training = Training(**training_raw)
    for key in ("window_days", "validation_days", "snapshot_every_days", "label_horizon_days", "num_boost_round"):
        value = getattr(training, key)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"training.{key} must be a positive integer; got {value!r}")
    if training.promote_metric not in {"auc", "pr_auc", "log_loss"}:
        raise ValueError("training.promote_metric must be one of auc, pr_auc, log_loss")

    spec = ModelSpec(
        name=name,
        description=str(raw.get("description", "")).strip(),
        entity_key=check_identifier(raw["entity_key"], "entity_key"),
        target=check_identifier(raw["target"], "target"),
        features_model=check_identifier(raw["features_model"], "features_model"),
        training_model=check_identifier(raw["training_model"], "training_model"),
        suite=check_identifier(raw["suite"], "suite"),
        numeric_features=numeric,
        categorical_features=categorical,
        segment=segment,
        alias=alias,
        batch_size=batch_size,
        shards=shards,
        training=training,
        source_dir=path.parent,
    )
    # The table names derived from the model name must stay within identifier limits too.
    check_identifier(spec.predictions_table, "name (as used in the predictions table name)")
    if spec.entity_key in all_features or spec.target in all_features:
        raise ValueError("entity_key and target must not also be listed as features")
    return spec
