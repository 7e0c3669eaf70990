"""The model use cases: train a version (and say on the alerts that asked for it what it
did), and promote a version after looking at its shadow record."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipelines.adapters.resources import Resources
from pipelines.adapters.warehouse import health
from pipelines.config.spec import ModelSpec
from pipelines.domain.records import PinnedModel
from pipelines.training import promote as promotion
from pipelines.training.train import TrainResult, train_model
from pipelines.usecases.steps import last_complete_date

log = logging.getLogger(__name__)


def train(
    res: Resources,
    spec: ModelSpec,
    as_of_date: dt.date | None = None,
    force: bool = False,
    reason: str | None = None,
    alias: str | None = None,
    progress: Callable[[str, float], None] | None = None,
    retrain_requested_for: Sequence[dt.date] = (),
) -> TrainResult:
    """Train on data known up to `as_of_date` (the last complete day if None), register a
    version, and move `alias` (default: the spec's) to it if it is better, or if forced with
    a reason. The alerts of `retrain_requested_for` (dates whose monitoring asked for this
    retrain) are told what it did. `progress(stage, done)` hears each stage."""
    as_of_date = as_of_date or last_complete_date(res, spec)
    result = train_model(res, spec, as_of_date, force=force, reason=reason, alias=alias, progress=progress)
    outcome = f"version {result.model.version} trained on data up to {as_of_date}: {result.verdict}"
    for day in retrain_requested_for:
        health.record_retrain_result(res.warehouse, spec.name, day, outcome[:2000])
    return result


@dataclass(frozen=True)
class Promotion:
    """What `promote` did: the version the alias pointed at before, the new one, the new
    version's shadow record, and the shadow aliases left at the new champion's version."""

    alias: str
    before: PinnedModel | None
    after: PinnedModel
    record: promotion.Record
    shadows_at_champion: list[str]


def shadow_record(res: Resources, spec: ModelSpec, version: int) -> promotion.Record:
    """A version's record as a shadow: what `promote` looks at before it moves an alias."""
    return promotion.shadow_record(res, spec, version)


def promote(
    res: Resources, spec: ModelSpec, alias: str, version: int, reason: str | None, force: bool = False
) -> Promotion:
    """Point models:/<model>@<alias> at `version` (see `pipelines.training.promote.promote`)."""
    before, after, record = promotion.promote(res, spec, alias, version, reason, force)
    shadows = promotion.shadows_at(res, spec, after.version) if alias == spec.alias else []
    return Promotion(alias, before, after, record, shadows)
