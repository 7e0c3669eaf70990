"""Train a model on a time-based split and promote it only if it beats the champion.

The training set is a dbt model: one row per entity per snapshot date, with the
label that became known `label_horizon_days` later. Snapshots on the latest
`validation_days` are held out; the new model and the current champion are both
scored on exactly those rows, and the alias moves only when the new one is better
on `promote_metric` (or when there is no champion yet).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines import registry, transform
from pipelines.errors import BatchpredError, ModelNotFound
from pipelines.identifiers import qualified, quote
from pipelines.matrix import feature_matrix
from pipelines.settings import Settings
from pipelines.spec import ModelSpec
from pipelines.warehouse import open_warehouse

log = logging.getLogger(__name__)

# Metrics where lower is better.
_LOWER_IS_BETTER = {"log_loss"}


@dataclass(frozen=True)
class TrainResult:
    model: registry.ResolvedModel
    metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    promoted: bool
    train_rows: int
    validation_rows: int


def snapshot_dates(spec: ModelSpec, as_of_date: dt.date) -> tuple[list[dt.date], list[dt.date]]:
    """(training dates, validation dates) for data known up to `as_of_date`.

    The newest snapshot is `label_horizon_days` before `as_of_date`, so every label
    is already known. Snapshots step back `snapshot_every_days` over `window_days`;
    those within the latest `validation_days` are held out.
    """
    t = spec.training
    newest = as_of_date - dt.timedelta(days=t.label_horizon_days)
    dates = [newest - dt.timedelta(days=k * t.snapshot_every_days) for k in range(t.window_days // t.snapshot_every_days + 1)]
    cutoff = newest - dt.timedelta(days=t.validation_days)
    train = sorted(d for d in dates if d <= cutoff)
    valid = sorted(d for d in dates if d > cutoff)
    if not train or not valid:
        raise BatchpredError(
            f"training.window_days={t.window_days} and validation_days={t.validation_days} leave "
            f"{len(train)} training and {len(valid)} validation snapshot(s); both need at least one"
        )
    return train, valid


def metrics_for(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    return {
        "auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "log_loss": float(log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1])),
    }


def reference_distribution(matrix: np.ndarray, spec: ModelSpec) -> dict:
    """Per-feature summary of the training data, saved with the run for drift checks."""
    features = {}
    for i, name in enumerate(spec.feature_names):
        column = matrix[:, i]
        present = column[~np.isnan(column)]
        entry: dict = {"rows": int(column.size), "null_share": float(1 - present.size / max(column.size, 1))}
        if name in spec.categorical_features:
            values = spec.categorical_features[name]
            counts = np.bincount(present.astype(np.int64), minlength=len(values))
            entry["kind"] = "categorical"
            entry["shares"] = {v: float(c / max(present.size, 1)) for v, c in zip(values, counts, strict=True)}
        elif present.size:
            edges = np.unique(np.quantile(present, np.linspace(0, 1, 11)))
            counts, _ = np.histogram(present, bins=edges) if edges.size > 1 else (np.array([present.size]), edges)
            entry.update(
                kind="numeric",
                mean=float(present.mean()),
                std=float(present.std()),
                quantiles={f"p{q}": float(np.quantile(present, q / 100)) for q in (1, 5, 25, 50, 75, 95, 99)},
                histogram={"edges": edges.tolist(), "counts": counts.tolist()},
            )
        features[name] = entry
    return {"model": spec.name, "features": features}


def train_model(settings: Settings, spec: ModelSpec, as_of_date: dt.date) -> TrainResult:
    """Build the training set for `as_of_date`, train, log and register a version, and move
    `spec.alias` to it if it beats the current holder on the same validation rows."""
    import pandas as pd
    import xgboost as xgb

    train_dates, valid_dates = snapshot_dates(spec, as_of_date)
    transform.build_training_set(settings, spec, train_dates + valid_dates)

    warehouse = open_warehouse(settings.warehouse_url)
    columns = [spec.entity_key, "as_of_date", *spec.feature_names, spec.target]
    select = ", ".join(quote(c) for c in columns)
    table = warehouse.query(
        f"select {select} from {qualified('analytics', spec.training_model)} order by as_of_date, {quote(spec.entity_key)}"
    )
    is_valid = pc.greater(table.column("as_of_date"), pa.scalar(train_dates[-1])).to_numpy(zero_copy_only=False)
    matrix = feature_matrix(table, spec)
    labels = table.column(spec.target).to_numpy(zero_copy_only=False).astype(np.float32)
    x_train, y_train = matrix[~is_valid], labels[~is_valid]
    x_valid, y_valid = matrix[is_valid], labels[is_valid]
    for part, y in (("training", y_train), ("validation", y_valid)):
        if y.size == 0 or y.min() == y.max():
            raise BatchpredError(
                f"the {part} snapshots of {spec.training_model} hold {y.size} rows with a single label value; "
                f"check that raw data covers the window ending {as_of_date} (training.window_days={spec.training.window_days})"
            )

    params = dict(spec.training.params)
    log.info(
        "training %s on %d rows (%d snapshots), validating on %d rows", spec.name, y_train.size, len(train_dates), y_valid.size
    )
    booster = xgb.train(
        params,
        xgb.DMatrix(x_train, label=y_train, feature_names=list(spec.feature_names)),
        num_boost_round=spec.training.num_boost_round,
    )
    metrics = metrics_for(y_valid, booster.inplace_predict(x_valid))

    champion_metrics = None
    try:
        champion = registry.resolve(settings, spec.name, spec.alias)
    except ModelNotFound:
        champion = None
    if champion is not None:
        champion_booster = registry.load_booster(settings, champion)
        champion_metrics = metrics_for(y_valid, champion_booster.inplace_predict(x_valid))

    key = spec.training.promote_metric
    if champion_metrics is None:
        promoted = True
    elif key in _LOWER_IS_BETTER:
        promoted = metrics[key] < champion_metrics[key]
    else:
        promoted = metrics[key] > champion_metrics[key]

    example = pd.DataFrame(x_valid[:5], columns=list(spec.feature_names))
    logged = registry.log_model(
        settings,
        spec.name,
        booster,
        example,
        params={
            **params,
            "num_boost_round": spec.training.num_boost_round,
            "as_of_date": as_of_date.isoformat(),
            "training_dates": [d.isoformat() for d in train_dates],
            "validation_dates": [d.isoformat() for d in valid_dates],
            "features": list(spec.feature_names),
        },
        metrics={
            **{f"val_{k}": v for k, v in metrics.items()},
            **({f"champion_val_{k}": v for k, v in champion_metrics.items()} if champion_metrics else {}),
            "train_rows": float(y_train.size),
            "validation_rows": float(y_valid.size),
            "train_positive_share": float(y_train.mean()),
        },
        artifacts={"reference_distribution.json": reference_distribution(x_train, spec)},
    )
    registry.tag_version(
        settings, logged, {f"val_{k}": f"{v:.6f}" for k, v in metrics.items()} | {"promoted": str(promoted).lower()}
    )
    if promoted:
        registry.set_alias(settings, logged, spec.alias)
    return TrainResult(
        model=logged,
        metrics=metrics,
        champion_metrics=champion_metrics,
        promoted=promoted,
        train_rows=int(y_train.size),
        validation_rows=int(y_valid.size),
    )
