"""Train a model on a time-based split and promote it only if it beats the champion.

The training set is the model's feature partitions on a series of snapshot dates,
joined to its labels model (the same label definition monitoring uses). Only
complete snapshots are used: each needs its full feature history, and its label
horizon must have passed within the data, label sources included (see
`pipelines.scoring.completeness`); the others are dropped and reported. Snapshots on the latest `validation_days` are held out;
the new version and the current champion are both scored on exactly those rows,
each through its own input contract, and the alias moves only when the new one is
better on `promote_metric` (or when there is no champion yet). A champion that
cannot be scored on today's data (a feature it needs is gone) is not replaced unless
`force` is given with a reason, which is recorded on the new version.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.adapters.registry import check_alias
from pipelines.adapters.resources import Resources, current_user
from pipelines.adapters.warehouse import queries
from pipelines.config.contract import InputContract
from pipelines.config.spec import ModelSpec
from pipelines.domain.errors import BatchpredError, ContractError, IncompleteDate, InputError, ModelNotFound
from pipelines.domain.records import PinnedModel
from pipelines.monitoring.reference import training_reference
from pipelines.scoring import completeness
from pipelines.scoring.explanations import contributions

log = logging.getLogger(__name__)

# Metrics where lower is better.
_LOWER_IS_BETTER = {"log_loss"}


@dataclass(frozen=True)
class TrainResult:
    model: PinnedModel
    metrics: dict[str, float]
    champion: PinnedModel | None
    champion_metrics: dict[str, float] | None
    promoted: bool
    verdict: str  # why the alias moved or stayed, in words
    train_rows: int
    validation_rows: int
    snapshots: list[dt.date] = field(default_factory=list)
    skipped: dict[dt.date, str] = field(default_factory=dict)


def snapshot_dates(spec: ModelSpec, as_of_date: dt.date) -> list[dt.date]:
    """Candidate snapshot dates for data known up to `as_of_date`, oldest first.

    The newest is `label_horizon_days` before `as_of_date`, so its label is known by
    then; they step back `snapshot_every_days` over `window_days`.
    """
    t = spec.training
    newest = as_of_date - dt.timedelta(days=t.label_horizon_days)
    return sorted(
        newest - dt.timedelta(days=k * t.snapshot_every_days) for k in range(t.window_days // t.snapshot_every_days + 1)
    )


def split_snapshots(spec: ModelSpec, dates: list[dt.date]) -> tuple[list[dt.date], list[dt.date]]:
    """(training dates, validation dates): those within the latest `validation_days` are held out."""
    if not dates:
        return [], []
    cutoff = max(dates) - dt.timedelta(days=spec.training.validation_days)
    return [d for d in dates if d <= cutoff], [d for d in dates if d > cutoff]


def metrics_for(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    return {
        "auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "log_loss": float(log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1])),
    }


def plan_snapshots(
    res: Resources, spec: ModelSpec, as_of_date: dt.date, now: dt.datetime
) -> tuple[list[dt.date], list[dt.date], dict[dt.date, str]]:
    """(training dates, validation dates, {skipped date: why}) for training on data known up to
    `as_of_date`. Refuses (IncompleteDate) a training date that is not complete itself (its
    newest labels would not be known), and a window that leaves no complete snapshot on
    either side of the split."""
    cover = completeness.coverage(res.warehouse, spec, now, labels=True)
    problem = cover.problem(as_of_date)
    if problem:
        raise IncompleteDate(
            f"cannot train {spec.name} on data known up to {as_of_date}: {problem}, so the labels of its newest "
            f"snapshots are not known; {cover.describe()}"
        )
    candidates = snapshot_dates(spec, as_of_date)
    usable, skipped = cover.split(candidates, horizon_days=spec.training.label_horizon_days)
    train, valid = split_snapshots(spec, candidates)
    train = [d for d in train if d in usable]
    valid_usable = [d for d in valid if d in usable]
    if len(valid_usable) != len(valid):
        raise IncompleteDate(
            f"cannot train {spec.name} on data known up to {as_of_date}: validation snapshot(s) "
            + "; ".join(f"{d}: {skipped[d]}" for d in valid if d in skipped)
            + " — a version is never judged on a partly unlabelled validation window"
        )
    if not train or not valid:
        raise IncompleteDate(
            f"training.window_days={spec.training.window_days} and validation_days={spec.training.validation_days} "
            f"leave {len(train)} complete training and {len(valid)} validation snapshot(s) for data known up to "
            f"{as_of_date} ({cover.describe()}); both need at least one"
        )
    return train, valid, skipped


def train_model(
    res: Resources,
    spec: ModelSpec,
    as_of_date: dt.date,
    force: bool = False,
    reason: str | None = None,
    alias: str | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> TrainResult:
    """Build the training set for `as_of_date`, train, log and register a version (with its
    input contract and training reference), and move `alias` (default: the spec's, champion)
    to it if it beats the alias's current version on the same validation rows, or if `force`
    is given with a `reason`. `alias="challenger"` trains a candidate to shadow-score.
    `progress(stage, done)` hears each stage, and the fit's share of rounds done (0..1)."""
    import pandas as pd
    import xgboost as xgb

    say = progress or (lambda stage, done: None)

    alias = check_alias(alias or spec.alias)
    if force and not (reason and reason.strip()):
        raise InputError("--force-promote needs --reason: why this version should replace the champion")
    train_dates, valid_dates, skipped = plan_snapshots(res, spec, as_of_date, res.now())
    if skipped:  # expected near the start of the data: said once, and in the result's summary
        first = min(skipped)
        log.info("%d training snapshot(s) skipped as incomplete, e.g. %s: %s", len(skipped), first, skipped[first])
    say(f"building the features and labels of {len(train_dates) + len(valid_dates)} snapshots (dbt)", 0.0)
    res.dbt.build_labels(spec, train_dates + valid_dates, with_features=True)
    completeness.check_label_sources(spec, res.settings.dbt_target_dir / "target" / "manifest.json")

    columns = [*spec.key_columns, "as_of_date", *spec.feature_names]
    table = queries.training_rows(res.warehouse, spec, columns, train_dates + valid_dates)
    contract = InputContract.for_spec(spec, {c: table.schema.field(c).type for c in spec.key_columns})
    is_valid = pc.greater(table.column("as_of_date"), pa.scalar(train_dates[-1])).to_numpy(zero_copy_only=False)
    matrix = contract.matrix(table)
    labels = table.column(spec.target).to_numpy(zero_copy_only=False).astype(np.float32)
    x_train, y_train = matrix[~is_valid], labels[~is_valid]
    x_valid, y_valid = matrix[is_valid], labels[is_valid]
    for part, y in (("training", y_train), ("validation", y_valid)):
        if y.size == 0 or y.min() == y.max():
            raise BatchpredError(
                f"the {part} snapshots of {spec.name} hold {y.size} rows with a single label value; "
                f"check that raw data covers the window ending {as_of_date} (training.window_days={spec.training.window_days})"
            )

    params = dict(spec.training.params)
    log.info(
        "training %s on %d rows (%d snapshots), validating on %d rows (%d snapshots)",
        spec.name, y_train.size, len(train_dates), y_valid.size, len(valid_dates),
    )  # fmt: skip
    rounds = spec.training.num_boost_round

    class Rounds(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: xgb.callback.TrainingCallback.EvalsLog) -> bool:
            say(f"fitting XGBoost on {y_train.size:,} rows: round {epoch + 1} of {rounds}", (epoch + 1) / rounds)
            return False  # never stop early

    booster = xgb.train(
        params,
        xgb.DMatrix(x_train, label=y_train, feature_names=list(contract.feature_names)),
        num_boost_round=rounds,
        callbacks=[Rounds()],
    )
    valid_scores = booster.inplace_predict(x_valid)
    metrics = metrics_for(y_valid, valid_scores)
    say(f"comparing with @{alias} on the validation rows", 1.0)

    judged = _judge(res, spec, alias, metrics, table.filter(pa.array(is_valid)), y_valid)
    promoted, verdict = judged.promoted, judged.verdict
    if not promoted and force:
        promoted, verdict = True, f"promoted by force ({verdict}): {reason}"

    train_rows = table.filter(pa.array(~is_valid))
    reference = training_reference(
        contract,
        x_train,
        {name: train_rows.column(name) for name in spec.categorical_features},
        valid_scores,
        y_valid,
        metrics,
        # One number per feature for a gain importance (lists are a linear booster's weights).
        cast("dict[str, float]", booster.get_score(importance_type="total_gain")),
        spec.action_threshold,
        dict(
            zip(
                contract.feature_names,
                np.abs(contributions(booster, x_valid, contract.feature_names, False)[:, :-1]).mean(axis=0).tolist(),
                strict=True,
            )
        ),
        entities=train_rows.group_by(list(spec.key_columns)).aggregate([]).num_rows,
        valid_entities=table.filter(pa.array(is_valid)).group_by(list(spec.key_columns)).aggregate([]).num_rows,
    )
    say("registering the version in MLflow", 1.0)
    example = pd.DataFrame(x_valid[:5], columns=list(contract.feature_names))
    logged = res.registry.log_model(
        spec.name,
        booster,
        contract,
        example,
        params={
            **params,
            "num_boost_round": spec.training.num_boost_round,
            "as_of_date": as_of_date.isoformat(),
            "training_dates": [d.isoformat() for d in train_dates],
            "validation_dates": [d.isoformat() for d in valid_dates],
            "features": list(contract.feature_names),
        },
        metrics={
            **{f"val_{k}": v for k, v in metrics.items()},
            **({f"champion_val_{k}": v for k, v in judged.champion_metrics.items()} if judged.champion_metrics else {}),
            "train_rows": float(y_train.size),
            "validation_rows": float(y_valid.size),
            "train_positive_share": float(y_train.mean()),
        },
        artifacts={"training_reference.json": reference},
    )
    tags = {f"val_{k}": f"{v:.6f}" for k, v in metrics.items()} | {"promoted": str(promoted).lower(), "verdict": verdict[:4000]}
    if force and promoted:
        tags |= {"promotion_reason": cast(str, reason).strip(), "promoted_by": current_user()}  # checked on entry
    res.registry.tag_version(logged, tags)
    if promoted:
        res.registry.set_alias(logged, alias)
    return TrainResult(
        model=logged,
        metrics=metrics,
        champion=judged.champion,
        champion_metrics=judged.champion_metrics,
        promoted=promoted,
        verdict=verdict,
        train_rows=int(y_train.size),
        validation_rows=int(y_valid.size),
        snapshots=train_dates + valid_dates,
        skipped=skipped,
    )


@dataclass(frozen=True)
class Judgement:
    """The new version against the alias's current one (the champion), on the same validation rows."""

    champion: PinnedModel | None
    champion_metrics: dict[str, float] | None  # None when there is no champion, or it cannot be scored
    promoted: bool  # the decision
    verdict: str  # the decision and why, in words


def _judge(
    res: Resources, spec: ModelSpec, alias: str, metrics: dict[str, float], valid_rows: pa.Table, y_valid: np.ndarray
) -> Judgement:
    """Whether the new version takes `alias`. The champion is scored through its own input
    contract; if it cannot be, the new version is not promoted and the verdict says why."""
    key = spec.training.promote_metric
    try:
        champion = res.registry.resolve(spec.name, alias)
    except ModelNotFound:
        return Judgement(None, None, True, f"promoted to @{alias}: there was no version at @{alias}")
    try:
        champion_contract = res.registry.contract(champion)
        missing = [c for c in champion_contract.feature_names if c not in valid_rows.column_names]
        if missing:
            raise ContractError(f"the training data no longer has its feature(s) {missing}")
        scores = res.registry.load_booster(champion).inplace_predict(champion_contract.matrix(valid_rows))
    except (ContractError, ModelNotFound) as exc:
        return Judgement(champion, None, False, (
            f"not promoted: the champion (version {champion.version}) cannot be scored on today's data ({exc}), so "
            "the new version cannot be compared with it; promote it anyway with --force-promote --reason"
        ))  # fmt: skip
    champion_metrics = metrics_for(y_valid, scores)
    better = metrics[key] < champion_metrics[key] if key in _LOWER_IS_BETTER else metrics[key] > champion_metrics[key]
    comparison = f"{key} {metrics[key]:.4f} against @{alias}'s (version {champion.version}) {champion_metrics[key]:.4f}"
    if better:
        verdict = f"promoted to @{alias}: {comparison}"
    else:
        verdict = f"not promoted, @{alias} stays on version {champion.version}: {comparison}"
    return Judgement(champion, champion_metrics, better, verdict)
