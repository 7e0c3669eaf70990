"""The typed model spec read from models/<name>/model.yaml.

A new model is a new folder holding a model.yaml, a dbt feature model, a dbt labels
model and an expectation suite; no Python changes. Every name in the spec that
reaches SQL, and every table name batchpred derives from it, is checked here when
the spec loads, so a bad spec fails before any work starts.

This module is imported by the DAG files, so it imports nothing heavy.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from pipelines.config import settings
from pipelines.config.settings import EXPECTATIONS_DIR
from pipelines.domain.errors import SpecError
from pipelines.domain.identifiers import check_identifier
from pipelines.domain.names import check_model_name

# Aliases are MLflow alias names; they also appear in run parameters.
ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
# A daily schedule: the run for as-of date D starts once D is over, at this time of day (UTC).
DAILY_SCHEDULE = re.compile(r"@daily|@midnight|([0-5]?[0-9]) ([01]?[0-9]|2[0-3]) \* \* \*")


@dataclass(frozen=True)
class Source:
    """A raw table whose events say how far the warehouse's data reaches."""

    schema: str
    table: str
    event_column: str  # a date or timestamp column; its maximum (as a UTC date) is the high-water mark

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class Completeness:
    """When an as-of date D may be scored, or used as a training snapshot: D is over (UTC),
    every source has events on or after D, and every source's first event is on or
    before D - lookback_days + 1 (the start of the longest window a feature reads)."""

    lookback_days: int
    sources: tuple[Source, ...]
    # Raw tables the labels model reads beyond `sources`: D's labels are complete only when
    # these (and `sources`) reach D + the label horizon.
    label_sources: tuple[Source, ...] = ()


@dataclass(frozen=True)
class Scoring:
    """How the <model>_score DAG runs."""

    schedule: str = "@daily"
    start_date: dt.date | None = None  # the earliest as-of date scored; None: as early as the data allows
    retries: int = 2
    timeout_minutes: int = 30
    # A scheduled run whose date is not complete yet checks again every check_data_every_minutes,
    # deferred in between (it holds no worker slot), until wait_for_data_minutes after the run
    # started; then `plan` refuses it as incomplete. 0: refuse at once. Manual runs never wait.
    # Whole minutes: Airflow 3.3's scheduler can take a deferral that wakes within seconds for
    # a task killed externally and fail it (apache/airflow#72716).
    wait_for_data_minutes: int = 360
    check_data_every_minutes: int = 10


@dataclass(frozen=True)
class Training:
    """How `batchpred train` builds and judges a model."""

    window_days: int = 120  # snapshots reach back this many days before the newest one
    validation_days: int = 28  # the latest snapshots, held out for the time-based validation split
    snapshot_every_days: int = 7  # one training snapshot every N days
    label_horizon_days: int = 30  # the label is known this many days after the as-of date
    num_boost_round: int = 200
    params: dict[str, Any] = field(default_factory=dict)
    promote_metric: str = "auc"  # the champion alias moves only if the new model beats it on this
    schedule: str | None = None  # cron/preset for the <model>_train DAG; None means manual only


@dataclass(frozen=True)
class ReasonsPolicy:
    """Per-row reasons: each scored row's top features by contribution to the margin (log-odds)."""

    # "default": approximate (Saabas) contributions for every row, exact TreeSHAP for the
    # highest-scored rows; "approximate" or "exact" for every row; "off": no reasons.
    method: str = "default"
    top_k: int = 3
    exact_share: float = 0.02  # "default": this share of a date's rows, the highest scores, get exact TreeSHAP ...
    exact_cap: int = 2_000  # ... but at most this many (exact TreeSHAP: about 1.3 ms a row on 2 cores)


@dataclass(frozen=True)
class FeatureDrift:
    """monitoring.drift.<feature>: `compare: same_weekday` judges the feature against the same
    weekday a week before instead of the pooled training data; `exclude: <why>` leaves it out
    of drift statuses and alerts (it is still profiled, and its rows say why)."""

    compare: str = "reference"  # reference | same_weekday
    exclude: str | None = None


@dataclass(frozen=True)
class Monitoring:
    """Model-health thresholds (README, "Model health"). Drift statuses are `ok`, `warn` or `alert`."""

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    js_distance_alert: float = 0.1  # Jensen-Shannon distance, base 2
    linf_distance_alert: float = 0.3  # categorical features
    null_share_increase_alert: float = 0.05
    estimated_auc_sampling_errors: float = 3.0  # alert when the estimated AUC is this many sampling errors below validation
    realized_auc_drop_alert: float = 0.03  # realized AUC below the validation AUC by more than this
    # Drift-triggered retraining: alert-level drift on at least `retrain_drifted_features` of the
    # `retrain_top_features` most important features on `retrain_consecutive_days` dates in a row,
    # or an estimated-AUC alert (when `retrain_on_estimated_auc`); at most once per cool-down.
    retrain_drifted_features: int = 2
    retrain_top_features: int = 5
    retrain_consecutive_days: int = 2
    retrain_on_estimated_auc: bool = True
    retrain_cooldown_days: int = 7
    # Realized performance is (re)computed for scored dates whose labels completed within
    # this many days, so labels that arrive late are counted.
    realized_lookback_days: int = 60
    # Attribution drift: alert when the ranking of features by mean |contribution| on a date
    # agrees with the validation window's less than this (nDCG).
    attribution_ndcg_alert: float = 0.9
    # How drift treats a feature, when not by the training reference (`drift:` in model.yaml).
    drift: dict[str, FeatureDrift] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    key_columns: tuple[str, ...]  # the entity key: one column, or several for a composite key
    target: str
    features_model: str  # dbt model (schema analytics) with one partition per as_of_date
    labels_model: str  # dbt model (schema analytics): key columns, as_of_date, target; one partition per as_of_date
    suite: str  # expectations/<suite>.json
    numeric_features: tuple[str, ...]
    categorical_features: dict[str, tuple[str, ...]]  # column -> allowed values, in code order
    segment: str  # categorical feature the daily summary mart groups by
    completeness: Completeness
    risk_bands: tuple[tuple[str, float], ...] = (("high", 0.5), ("medium", 0.2))  # highest threshold first
    action_threshold: float = 0.5  # a score at or above it is "high risk": what the marts count
    alias: str = "champion"
    batch_size: int = 100_000
    shards: int = 1  # scoring fans out to this many parallel tasks, split by a hash of the entity key
    shadow_aliases: tuple[str, ...] = ("challenger",)  # scored beside the champion, into <model>_shadow_scores
    reasons: ReasonsPolicy = field(default_factory=ReasonsPolicy)
    scoring: Scoring = field(default_factory=Scoring)
    training: Training = field(default_factory=Training)
    monitoring: Monitoring = field(default_factory=Monitoring)
    source_dir: Path | None = None
    suites_dir: Path = EXPECTATIONS_DIR  # where <suite>.json lives

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Model input columns, in the order the spec lists them (numeric, then categorical)."""
        return self.numeric_features + tuple(self.categorical_features)

    @property
    def score_dag_id(self) -> str:
        return f"{self.name}_score"

    @property
    def train_dag_id(self) -> str:
        return f"{self.name}_train"

    @property
    def monitor_dag_id(self) -> str:
        return f"{self.name}_monitor"

    @property
    def suite_path(self) -> Path:
        return self.suites_dir / f"{self.suite}.json"


def list_models(models_dir: Path | None = None) -> list[str]:
    """Names of the models that have a models/<name>/model.yaml, sorted."""
    return sorted(p.parent.name for p in (models_dir or settings.MODELS_DIR).glob("*/model.yaml"))


def load_spec(name: str, models_dir: Path | None = None) -> ModelSpec:
    """Load and check models/<name>/model.yaml.

    Refuses (SpecError) a missing file, unknown or missing keys, any name that is not a
    plain SQL identifier, and a model name too long for a table name batchpred derives
    from it: the message names the file and the key.
    """
    check_identifier(name, "model name")
    if models_dir is None:
        settings.check_project_dir()  # a project folder without models/ or dbt_project/ says so, naming the setting
    models_dir = models_dir or settings.MODELS_DIR
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
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise SpecError(f"{path}: {exc}") from None


_TOP_KEYS = {
    "name",
    "description",
    "entity_key",
    "target",
    "features_model",
    "labels_model",
    "suite",
    "features",
    "segment",
    "completeness",
    "risk_bands",
    "action_threshold",
    "alias",
    "batch_size",
    "shards",
    "scoring",
    "training",
    "monitoring",
    "shadow_aliases",
    "reasons",
}


def _mapping(raw: Any, what: str, allowed: set[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{what} must be a mapping")
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"unknown {what} key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return raw


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer; got {value!r}")
    return value


def _probability(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{what} must be a number between 0 and 1 (exclusive); got {value!r}")
    return float(value)


def _parse(raw: Any, path: Path) -> ModelSpec:
    if not isinstance(raw, dict):
        raise ValueError("expected a mapping at the top level")
    _mapping(raw, "top-level", _TOP_KEYS)
    for key in ("name", "entity_key", "target", "features_model", "labels_model", "suite", "features", "completeness"):
        if key not in raw:
            raise ValueError(f"missing required key {key!r}")

    name = check_identifier(raw["name"], "name")
    if name != path.parent.name:
        raise ValueError(f"name {name!r} must match its folder {path.parent.name!r}")
    # Every table name batchpred derives from the model name must fit too.
    check_model_name(name)

    keys = raw["entity_key"] if isinstance(raw["entity_key"], list) else [raw["entity_key"]]
    if not keys:
        raise ValueError("entity_key must name at least one column")
    key_columns = tuple(check_identifier(k, "entity_key") for k in keys)
    if len(set(key_columns)) != len(key_columns):
        raise ValueError(f"entity_key lists a column twice: {list(key_columns)}")

    features = _mapping(raw["features"], "features", {"numeric", "categorical"})
    numeric = tuple(check_identifier(c, "features.numeric entry") for c in features.get("numeric") or [])
    categorical: dict[str, tuple[str, ...]] = {}
    for column, values in (features.get("categorical") or {}).items():
        check_identifier(column, "features.categorical column")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise ValueError(f"features.categorical.{column} must be a non-empty list of strings")
        if len(set(values)) != len(values):
            raise ValueError(f"features.categorical.{column} lists a value twice: {values}")
        categorical[column] = tuple(values)
    all_features = numeric + tuple(categorical)
    if not all_features:
        raise ValueError("features must list at least one column")
    duplicated = sorted({c for c in all_features if all_features.count(c) > 1})
    if duplicated:
        raise ValueError(f"feature(s) listed twice: {duplicated}")
    target = check_identifier(raw["target"], "target")
    clash = sorted(set(key_columns + (target,)) & set(all_features))
    if clash:
        raise ValueError(f"entity_key and target must not also be listed as features: {clash}")

    segment = raw.get("segment") or next(iter(categorical), None)
    if segment is None or segment not in categorical:
        raise ValueError(f"segment must be one of the categorical features {sorted(categorical)}; got {segment!r}")

    completeness = _completeness(raw["completeness"])

    bands_raw = raw.get("risk_bands", {"high": 0.5, "medium": 0.2})
    if not isinstance(bands_raw, dict) or not bands_raw:
        raise ValueError("risk_bands must map band names to thresholds, e.g. {high: 0.5, medium: 0.2}")
    bands = tuple(
        sorted(
            ((check_identifier(b, "risk_bands name"), _probability(t, f"risk_bands.{b}")) for b, t in bands_raw.items()),
            key=lambda band: -band[1],
        )
    )
    if "low" in dict(bands):
        raise ValueError("risk_bands: 'low' is the band below every threshold; do not list it")
    if len({t for _, t in bands}) != len(bands):
        raise ValueError("risk_bands: two bands share a threshold")
    action_threshold = _probability(raw.get("action_threshold", bands[0][1]), "action_threshold")

    alias = raw.get("alias", "champion")
    if not isinstance(alias, str) or not re.match(ALIAS_PATTERN, alias):
        raise ValueError(f"alias must match {ALIAS_PATTERN}; got {alias!r}")

    batch_size = _positive_int(raw.get("batch_size", 100_000), "batch_size")
    shards = raw.get("shards", 1)
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 256:
        raise ValueError(f"shards must be an integer from 1 to 256; got {shards!r}")

    return ModelSpec(
        name=name,
        description=str(raw.get("description", "")).strip(),
        key_columns=key_columns,
        target=target,
        features_model=check_identifier(raw["features_model"], "features_model"),
        labels_model=check_identifier(raw["labels_model"], "labels_model"),
        suite=check_identifier(raw["suite"], "suite"),
        numeric_features=numeric,
        categorical_features=categorical,
        segment=segment,
        completeness=completeness,
        risk_bands=bands,
        action_threshold=action_threshold,
        alias=alias,
        batch_size=batch_size,
        shards=shards,
        scoring=_scoring(raw.get("scoring")),
        training=_training(raw.get("training")),
        monitoring=_monitoring(raw.get("monitoring"), all_features),
        shadow_aliases=_shadow_aliases(raw.get("shadow_aliases", ["challenger"]), alias),
        reasons=_reasons(raw.get("reasons")),
        source_dir=path.parent,
    )


def _completeness(raw: Any) -> Completeness:
    section = _mapping(raw, "completeness", {"lookback_days", "sources", "label_sources"})
    if "lookback_days" not in section or not section.get("sources"):
        raise ValueError(
            "completeness needs lookback_days (the longest window a feature reads) and sources "
            "(schema.table: event column, for each raw table that gets rows every day)"
        )
    return Completeness(
        _positive_int(section["lookback_days"], "completeness.lookback_days"),
        _sources(section["sources"], "completeness.sources"),
        _sources(section.get("label_sources") or {}, "completeness.label_sources"),
    )


def _sources(raw: Any, key: str) -> tuple[Source, ...]:
    if not isinstance(raw, dict):
        raise ValueError(f"{key} must map schema.table to its event column, e.g. raw.usage_daily: usage_date")
    sources = []
    for table, column in raw.items():
        parts = str(table).split(".")
        if len(parts) != 2:
            raise ValueError(f"{key} key {table!r} must be schema.table")
        sources.append(
            Source(
                check_identifier(parts[0], f"{key} schema"),
                check_identifier(parts[1], f"{key} table"),
                check_identifier(column, f"{key}.{table} event column"),
            )
        )
    return tuple(sources)


def _scoring(raw: Any) -> Scoring:
    section = _mapping(raw, "scoring", set(Scoring.__dataclass_fields__))
    scoring = Scoring(**section)
    if not isinstance(scoring.schedule, str) or not DAILY_SCHEDULE.fullmatch(scoring.schedule.strip()):
        raise ValueError(
            f"scoring.schedule must be daily: '@daily' or a cron 'M H * * *' (the time of day, UTC, the run for "
            f"as-of date D starts after D is over); got {scoring.schedule!r}"
        )
    if scoring.start_date is not None and type(scoring.start_date) is not dt.date:
        raise ValueError(f"scoring.start_date must be a date written YYYY-MM-DD; got {scoring.start_date!r}")
    if isinstance(scoring.retries, bool) or not isinstance(scoring.retries, int) or scoring.retries < 0:
        raise ValueError(f"scoring.retries must be a whole number, 0 or more; got {scoring.retries!r}")
    _positive_int(scoring.timeout_minutes, "scoring.timeout_minutes")
    wait, every = scoring.wait_for_data_minutes, scoring.check_data_every_minutes
    if isinstance(wait, bool) or not isinstance(wait, int) or wait < 0:
        raise ValueError(f"scoring.wait_for_data_minutes must be a whole number of minutes, 0 or more; got {wait!r}")
    if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= max(wait, 1):
        raise ValueError(
            "scoring.check_data_every_minutes must be a whole number of minutes, at least 1 and at most "
            f"scoring.wait_for_data_minutes ({wait}); got {every!r}"
        )
    return scoring


def _training(raw: Any) -> Training:
    section = _mapping(raw, "training", set(Training.__dataclass_fields__))
    training = Training(**section)
    for key in ("window_days", "validation_days", "snapshot_every_days", "label_horizon_days", "num_boost_round"):
        _positive_int(getattr(training, key), f"training.{key}")
    if training.promote_metric not in {"auc", "pr_auc", "log_loss"}:
        raise ValueError("training.promote_metric must be one of auc, pr_auc, log_loss")
    if not isinstance(training.params, dict):
        raise ValueError("training.params must be a mapping of XGBoost parameters")
    return training


def _monitoring(raw: Any, features: tuple[str, ...]) -> Monitoring:
    section = dict(_mapping(raw, "monitoring", set(Monitoring.__dataclass_fields__)))
    drift = _feature_drift(section.pop("drift", None), features)
    monitoring = Monitoring(**section)
    for key, f in Monitoring.__dataclass_fields__.items():
        value = getattr(monitoring, key)
        if key == "drift":
            continue
        if f.type == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"monitoring.{key} must be true or false; got {value!r}")
        elif f.type == "int":
            _positive_int(value, f"monitoring.{key}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"monitoring.{key} must be a positive number; got {value!r}")
    monitoring = replace(monitoring, drift=drift)
    if monitoring.attribution_ndcg_alert >= 1:
        raise ValueError("monitoring.attribution_ndcg_alert must be below 1")
    if monitoring.psi_warn >= monitoring.psi_alert:
        raise ValueError("monitoring.psi_warn must be below monitoring.psi_alert")
    if monitoring.retrain_drifted_features > monitoring.retrain_top_features:
        raise ValueError("monitoring.retrain_drifted_features cannot exceed monitoring.retrain_top_features")
    return monitoring


def _feature_drift(raw: Any, features: tuple[str, ...]) -> dict[str, FeatureDrift]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError("monitoring.drift must map features to {compare: same_weekday} or {exclude: <why>}")
    found = {}
    for feature, rule in raw.items():
        key = f"monitoring.drift.{feature}"
        if feature not in features:
            raise ValueError(f"{key}: {feature!r} is not a feature of this model ({', '.join(features)})")
        rule = _mapping(rule, key, {"compare", "exclude"})
        if len(rule) != 1:
            raise ValueError(f"{key} needs exactly one of compare: same_weekday or exclude: <why>; got {rule!r}")
        if "compare" in rule and rule["compare"] not in ("reference", "same_weekday"):
            raise ValueError(f"{key}.compare must be reference or same_weekday; got {rule['compare']!r}")
        if "exclude" in rule and not (isinstance(rule["exclude"], str) and rule["exclude"].strip()):
            raise ValueError(f"{key}.exclude must say why the feature is left out of drift; got {rule['exclude']!r}")
        if rule.get("compare") != "reference":
            found[feature] = FeatureDrift(**rule)
    return found


def _shadow_aliases(raw: Any, alias: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(a, str) and re.match(ALIAS_PATTERN, a) for a in raw):
        raise ValueError(f"shadow_aliases must be a list of MLflow alias names matching {ALIAS_PATTERN}; got {raw!r}")
    if alias in raw:
        raise ValueError(f"shadow_aliases must not include the scoring alias {alias!r}")
    return tuple(dict.fromkeys(raw))


def _reasons(raw: Any) -> ReasonsPolicy:
    reasons = ReasonsPolicy(**_mapping(raw, "reasons", set(ReasonsPolicy.__dataclass_fields__)))
    if reasons.method not in ("default", "approximate", "exact", "off"):
        raise ValueError(f"reasons.method must be default, approximate, exact or off; got {reasons.method!r}")
    _positive_int(reasons.top_k, "reasons.top_k")
    _positive_int(reasons.exact_cap, "reasons.exact_cap")
    _probability(reasons.exact_share, "reasons.exact_share")
    return reasons
