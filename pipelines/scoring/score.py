"""Score one as-of date's feature partition and publish it atomically.

The model is a pinned version (never an alias), read through its own input contract
(`pipelines.config.contract`). The partition is read as a stream of Arrow record batches
(memory bounded by the batch size, not the row count), minus exactly the rows the
date's validation quarantined, scored with the booster's `inplace_predict`, and
written to `predictions.<model>_scores` in one transaction that replaces exactly
that date, together with each row's reasons (`pipelines.scoring.explanations`).
Before anything becomes visible, scored plus quarantined must equal the partition
the validation counted.

Shadow versions (`shadow_aliases` in model.yaml, default `challenger`) score the same
batches in the same read, and go to `predictions.<model>_shadow_scores`, never to the
table dashboards treat as the truth. A shadow that fails is dropped, with why, and
never fails or delays the champion. The date's shadow rows are replaced in the
transaction that replaces its predictions (by none when no shadow scored), so they are
never older than the predictions they sit beside.

The date's profile for drift (every feature's rows per bin of the version's training
reference, and the score's: `pipelines.scoring.profile`) is counted from the same batches
as they are scored, and replaces the version's profile of the date in that transaction
too (with several shards, each stages its part and the publish adds them up), so
monitoring reads it instead of scanning the partition again.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from pipelines.adapters.resources import Resources
from pipelines.adapters.warehouse import queries, tables
from pipelines.adapters.warehouse.base import PartitionWrite
from pipelines.config.contract import InputContract
from pipelines.config.spec import ModelSpec
from pipelines.domain.errors import BatchpredError, ContractError, EmptyPartition, FeatureSchemaError, PartitionMismatch
from pipelines.domain.records import PinnedModel, ShadowFailure, ValidationRef
from pipelines.scoring.explanations import ReasonStream
from pipelines.scoring.prefetch import Prefetch
from pipelines.scoring.profile import ProfileCounter, merged, profile_bins

if TYPE_CHECKING:
    import xgboost as xgb

    from pipelines.adapters.warehouse.base import Warehouse

log = logging.getLogger(__name__)


@dataclass
class ScoreResult:
    rows_read: int
    rows_scored: int
    shadow_failures: list[ShadowFailure] = field(default_factory=list)
    abs_contribution: list[float] = field(default_factory=list)  # sum of |contribution| per feature, contract order
    explained_rows: int = 0


def check_accounted(spec: ModelSpec, as_of_date: dt.date, scored: int, validation: ValidationRef) -> None:
    """Refuse (PartitionMismatch) unless scored + quarantined = the validated partition."""
    if scored + validation.rows_quarantined != validation.rows:
        raise PartitionMismatch(
            f"{spec.name} {as_of_date}: {scored} rows scored and {validation.rows_quarantined} quarantined, but validation "
            f"{validation.validation_id} counted {validation.rows} rows in the partition (did the features change since "
            "it ran?); nothing was published, the previous predictions stay. Run the date again"
        )


def feature_columns(res: Resources, spec: ModelSpec, schema: str = "analytics") -> dict[str, str]:
    table = tables.features(spec, schema)
    columns = res.warehouse.table_columns(table.schema, table.name)
    if columns is None:
        raise FeatureSchemaError(f"feature table {table} does not exist; build it with dbt first")
    return columns


def check_features_table(res: Resources, spec: ModelSpec, model: PinnedModel, schema: str = "analytics") -> None:
    """Refuse (FeatureSchemaError) a feature table that lacks a column the version reads, or has one of the wrong kind."""
    res.registry.contract(model).check_columns(feature_columns(res, spec, schema), str(tables.features(spec, schema)))


class _Shadow:
    """A shadow version scoring beside the champion: its scores spool to a file as they come."""

    def __init__(
        self, model: PinnedModel, contract: InputContract, booster: xgb.Booster, same_inputs: bool, key_fields: list[pa.Field]
    ) -> None:
        self.model, self.contract, self.booster, self.same_inputs = model, contract, booster, same_inputs
        self.schema = pa.schema([*key_fields, pa.field("score", pa.float64(), nullable=False)])
        self.spool = tempfile.NamedTemporaryFile(prefix="batchpred-shadow-", suffix=".arrows", delete=False)
        self.writer = pa.ipc.new_stream(self.spool, self.schema)

    def failed(self, error: str) -> ShadowFailure:
        return _failure(self.model, error)

    @property
    def lineage(self) -> dict[str, Any]:
        return {"model_version": self.model.version, "mlflow_run_id": self.model.run_id, "alias": self.model.alias}

    def add(self, keys: list[pa.Array], batch: pa.RecordBatch, matrix: np.ndarray) -> None:
        scores = self.booster.inplace_predict(matrix if self.same_inputs else self.contract.matrix(batch))
        self.writer.write_batch(pa.RecordBatch.from_arrays([*keys, pa.array(scores, pa.float64())], schema=self.schema))

    def batches(self, schema: pa.Schema, constants: dict[str, Any]) -> Iterator[pa.RecordBatch]:
        self.writer.close()
        self.spool.close()
        with pa.OSFile(self.spool.name, "rb") as source:  # not a memory map: see explanations.Reasons.batches
            for batch in pa.ipc.open_stream(source):
                n = batch.num_rows
                columns = {name: batch.column(name) for name in batch.schema.names}
                yield pa.RecordBatch.from_arrays(
                    [
                        columns[f.name] if f.name in columns else pa.repeat(pa.scalar(constants[f.name], f.type), n)
                        for f in schema
                    ],
                    schema=schema,
                )

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - already closed
            pass
        self.spool.close()
        Path(self.spool.name).unlink(missing_ok=True)


def _failure(model: PinnedModel, error: str) -> ShadowFailure:
    # A shadow is always pinned through its alias (pipelines.usecases.steps.resolve_shadows).
    return ShadowFailure(alias=str(model.alias), version=model.version, error=error)


def _shadows(
    res: Resources,
    contract: InputContract,
    columns: dict[str, str],
    where: str,
    models: Sequence[PinnedModel],
    failures: list[ShadowFailure],
) -> list[_Shadow]:
    """The shadow versions that can score this partition; each one that cannot is left out, with why."""
    live = []
    for model in models:
        try:
            shadow_contract = res.registry.contract(model)
            if shadow_contract.key != contract.key:
                raise ContractError(f"is keyed by {shadow_contract.key}, the champion by {contract.key}")
            shadow_contract.check_columns(columns, where)
            booster = res.registry.load_booster(model)
        except BatchpredError as exc:
            failures.append(_failure(model, str(exc)))
            continue
        live.append(
            _Shadow(model, shadow_contract, booster, shadow_contract.features == contract.features, contract.key_fields())
        )
    return live


def score_partition(
    res: Resources,
    spec: ModelSpec,
    as_of_date: dt.date,
    model: PinnedModel,
    validation: ValidationRef,
    scoring_run_id: str,
    airflow_run_id: str | None = None,
    shard: int = 0,
    shards: int = 1,
    shadows: Sequence[PinnedModel] = (),
) -> ScoreResult:
    """Score one shard of `as_of_date` with the pinned `model` (and the `shadows` beside it).

    With one shard the date's predictions and reasons are replaced directly, in one
    transaction, and only if scored plus quarantined is the validated partition. With
    several, the shard's rows (a hash of the entity key picks them) replace that shard's
    rows in the staging tables, and `publish_predictions` checks the total and makes the
    whole date visible at once. With one shard the date's shadow scores are replaced in the
    same transaction (the shadows that failed, or none, leave the date without rows); with
    several they are staged after the champion's write, in a transaction of their own, and
    published with it. A shadow's failure is returned in `shadow_failures`. The date's drift
    profile goes with the predictions the same way (`pipelines.scoring.profile`).

    Refuses (FeatureSchemaError) a feature table missing a column the version reads or
    holding one of the wrong type. On any failure the previous predictions stay.
    """
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is outside 0..{shards - 1}")
    warehouse = res.warehouse
    where = str(tables.features(spec))
    columns = feature_columns(res, spec)
    contract = res.registry.contract(model)
    contract.check_columns(columns, where)
    booster = res.registry.load_booster(model)
    staged = shards > 1
    key_fields = contract.key_fields()
    schema = tables.staging_schema(key_fields) if staged else tables.predictions_schema(key_fields)
    now = res.now()
    constants = {
        "as_of_date": as_of_date,
        "model_name": spec.name,
        "model_version": model.version,
        "mlflow_run_id": model.run_id,
        "scoring_run_id": scoring_run_id,
        "airflow_run_id": airflow_run_id,
        "scored_at": now,
        "shard": shard,
    }
    failures: list[ShadowFailure] = []
    live = _shadows(res, contract, columns, where, shadows, failures)
    reasons = None
    if spec.reasons.method != "off":
        reasons_schema = tables.reasons_schema(key_fields, staged)
        expected = validation.rows - validation.rows_quarantined
        reasons = ReasonStream(booster, contract, spec.reasons, reasons_schema, constants, expected // shards + 1)
    scored_at = pa.scalar(now, pa.timestamp("us", tz="UTC"))
    read = 0
    profiler = ProfileCounter.of(res.registry.training_reference(model), contract)
    if profiler is not None and validation.rows_quarantined:
        _profile_quarantined(res, spec, as_of_date, validation, contract, profiler, shard, shards)

    def scored(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # Every column but the key and the score repeats one value. Repeating a string
        # costs about 8 ms per 100k rows, a tenth of the scoring time over all those
        # columns, so they are built once, at the largest batch seen, and sliced
        # (without copying) for each batch.
        values = [
            pa.scalar(as_of_date, pa.date32()),
            pa.scalar(spec.name),
            pa.scalar(model.version, pa.int64()),
            pa.scalar(model.run_id),
            pa.scalar(scoring_run_id),
            pa.scalar(airflow_run_id, pa.string()),
            scored_at,
            *([pa.scalar(shard, pa.int32())] if staged else []),
        ]
        repeated: list[pa.Array] = []
        for batch in batches:
            n = batch.num_rows
            if n == 0:
                continue
            matrix = contract.matrix(batch)
            scores = booster.inplace_predict(matrix)
            keys = contract.keys(batch)
            if profiler is not None:
                profiler.add_features(batch, matrix)
                profiler.add_scores(scores)
            if reasons is not None:
                reasons.add(keys, matrix, scores)
            for shadow in list(live):
                try:
                    shadow.add(keys, batch, matrix)
                except Exception as exc:  # noqa: BLE001 - a shadow must never stop the champion
                    failures.append(shadow.failed(f"{type(exc).__name__}: {exc}"))
                    live.remove(shadow)
                    shadow.close()
            if not repeated or len(repeated[0]) < n:
                repeated = [pa.repeat(value, n) for value in values]
            day, *lineage = (column.slice(0, n) for column in repeated)
            del batch
            yield pa.RecordBatch.from_arrays([*keys, day, pa.array(scores, pa.float64()), *lineage], schema=schema)

    def counted(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        nonlocal read
        for batch in batches:
            read += batch.num_rows
            yield batch
        if not staged:
            # Raised inside the write transaction, so the date's old predictions stay.
            if read == 0:
                raise EmptyPartition(
                    f"{where} has no rows to score for as_of_date {as_of_date}; build the features for that date first"
                )
            check_accounted(spec, as_of_date, read, validation)

    # Three stages overlap: a thread reads the next batch and another scores one while
    # this thread writes the last (pipelines.scoring.prefetch). Each hands over at most one
    # batch at a time, so memory stays bounded by the batch size. An error in any stage
    # reaches the write below as itself, and the write transaction rolls back.
    needed = list(
        dict.fromkeys([*contract.key_columns, *contract.feature_names, *(f for s in live for f in s.contract.feature_names)])
    )
    try:
        with (
            queries.read_for_scoring(
                warehouse, spec, needed, as_of_date, validation.validation_id, shard, shards, spec.batch_size
            ) as batches,
            Prefetch(batches, depth=1, name="batchpred-read") as read_ahead,
            Prefetch(scored(iter(read_ahead)), depth=1, name="batchpred-score") as predictions,
        ):
            target = tables.staging(spec) if staged else tables.predictions(spec)
            key = {"scoring_run_id": scoring_run_id, "shard": shard} if staged else None
            writes = [PartitionWrite(target.schema, target.name, schema, lambda: counted(iter(predictions)), key)]
            if reasons is not None:
                explained = tables.reasons_staging(spec) if staged else tables.reasons(spec)
                writes.append(PartitionWrite(explained.schema, explained.name, reasons.schema, reasons.batches, key))
            shadowed = tables.shadow(spec)
            if not staged and (live or warehouse.table_columns(shadowed.schema, shadowed.name) is not None):
                # Filled from the spools once the predictions have streamed; a shadow that failed
                # meanwhile has left `live`, so its old rows for the date go and none replace them.
                shadow_schema = tables.shadow_schema(key_fields)

                def shadow_rows() -> Iterator[pa.RecordBatch]:
                    for shadow in list(live):
                        yield from shadow.batches(shadow_schema, constants | shadow.lineage)

                writes.append(PartitionWrite(shadowed.schema, shadowed.name, shadow_schema, shadow_rows, None))
            if profiler is not None:
                writes.append(_profile_write(spec, as_of_date, model, validation, scoring_run_id, shard, staged, profiler))
            written = warehouse.replace_partitions(as_of_date, writes)[0]
        log.info("scored %d rows of %s for %s (shard %d of %d) with %s", written, where, as_of_date, shard + 1, shards, model.uri)
        if staged:
            _stage_shadows(warehouse, spec, as_of_date, key_fields, live, constants, scoring_run_id, shard, failures)
    finally:
        for shadow in live:
            shadow.close()
        if reasons is not None:
            reasons.close()
    return ScoreResult(
        rows_read=read,
        rows_scored=written,
        shadow_failures=failures,
        abs_contribution=reasons.abs_sum.tolist() if reasons is not None else [],
        explained_rows=reasons.rows if reasons is not None else 0,
    )


def _profile_write(
    spec: ModelSpec,
    as_of_date: dt.date,
    model: PinnedModel,
    validation: ValidationRef,
    scoring_run_id: str,
    shard: int,
    staged: bool,
    profiler: ProfileCounter,
) -> PartitionWrite:
    """The date's profile, counted once the predictions have streamed (and been checked against
    the validation): the version's in monitoring.feature_profiles, or, staged, the shard's part."""
    if not staged:
        rows_of = profiler.rows_of
        return queries.health_write(
            tables.FEATURE_PROFILES, spec.name, model.version, as_of_date, lambda: rows_of(validation.rows, scoring_run_id)
        )
    key = {"scoring_run_id": scoring_run_id, "shard": shard}
    schema = tables.profile_staging_schema()

    def rows() -> list[pa.RecordBatch]:
        found = [{"as_of_date": as_of_date, **key, **r} for r in profiler.staged_rows()]
        batches: list[pa.RecordBatch] = pa.Table.from_pylist(found, schema=schema).to_batches()
        return batches

    table = tables.profile_staging(spec)
    return PartitionWrite(table.schema, table.name, schema, rows, key)


def _published_profile(
    res: Resources, spec: ModelSpec, as_of_date: dt.date, model: PinnedModel, scoring_run_id: str, shards: int,
    validation: ValidationRef,
) -> list[PartitionWrite]:  # fmt: skip
    """What the publish of a sharded run writes of the date's profile, in its transaction: the
    shards' staged parts added up into monitoring.feature_profiles (when every shard staged
    one), and the staged parts removed. Refuses (PartitionMismatch) a profile that does not
    count the validated partition."""
    table = tables.profile_staging(spec)
    if not tables.exists(res.warehouse, table):
        return []
    reference = res.registry.training_reference(model)
    staged = queries.staged_profile(res.warehouse, spec, as_of_date, scoring_run_id)
    cleared = PartitionWrite(table.schema, table.name, tables.profile_staging_schema(), list, {"scoring_run_id": scoring_run_id})
    found = merged(reference, staged, shards, scoring_run_id) if reference is not None else None
    if reference is None or found is None:  # monitoring bins the date from the warehouse
        return [cleared]
    if found.rows != validation.rows:
        raise PartitionMismatch(
            f"{spec.name} {as_of_date}: the shards' profiles counted {found.rows} feature rows, but validation "
            f"{validation.validation_id} counted {validation.rows} (did the features change since it ran?); nothing was "
            "published, the previous predictions stay. Run the date again"
        )
    rows = [b.row() for b in profile_bins(reference, found)]
    return [queries.health_write(tables.FEATURE_PROFILES, spec.name, model.version, as_of_date, rows), cleared]


def _profile_quarantined(
    res: Resources,
    spec: ModelSpec,
    as_of_date: dt.date,
    validation: ValidationRef,
    contract: InputContract,
    profiler: ProfileCounter,
    shard: int,
    shards: int,
) -> None:
    """Count the features of the shard's rows that validation quarantined into the date's
    profile: they are not scored, but they are rows of the partition, and drift counts every
    row of it. Refuses (PartitionMismatch), unsharded, unless they are as many as validation
    quarantined (sharded, the publish checks the total)."""
    found = 0
    columns = list(dict.fromkeys([*contract.key_columns, *contract.feature_names]))
    with queries.read_for_scoring(
        res.warehouse, spec, columns, as_of_date, validation.validation_id, shard, shards, spec.batch_size, quarantined=True
    ) as batches:
        for batch in batches:
            found += batch.num_rows
            profiler.add_features(batch, contract.matrix(batch))
    if shards == 1 and found != validation.rows_quarantined:
        raise PartitionMismatch(
            f"{spec.name} {as_of_date}: validation {validation.validation_id} quarantined {validation.rows_quarantined} "
            f"rows, but {found} of them are in {tables.features(spec)} now (did the features change since it ran?); "
            "nothing was published, the previous predictions stay. Run the date again"
        )


def _stage_shadows(
    warehouse: Warehouse,
    spec: ModelSpec,
    as_of_date: dt.date,
    key_fields: list[pa.Field],
    live: list[_Shadow],
    constants: dict[str, Any],
    scoring_run_id: str,
    shard: int,
    failures: list[ShadowFailure],
) -> None:
    """Stage each shadow's scores, in a transaction of its own: a failure is recorded, not raised."""
    table = tables.shadow_staging(spec)
    schema = tables.shadow_schema(key_fields, staged=True)
    for shadow in live:
        try:
            key = {"scoring_run_id": scoring_run_id, "shard": shard, "alias": shadow.model.alias}
            warehouse.replace_partition(
                table.schema, table.name, as_of_date, schema, shadow.batches(schema, constants | shadow.lineage), key
            )
        except Exception as exc:  # noqa: BLE001 - a shadow must never stop the champion
            failures.append(shadow.failed(f"staging its scores failed: {type(exc).__name__}: {exc}"))


def publish_predictions(
    res: Resources,
    spec: ModelSpec,
    as_of_date: dt.date,
    model: PinnedModel,
    scoring_run_id: str,
    shards: int,
    validation: ValidationRef,
    rows_scored: int,
    failed_shadows: Sequence[str] = (),
) -> None:
    """Make a sharded scoring run's predictions (and their reasons and shadow scores) for
    `as_of_date` visible, all at once: the date's shadow rows become this run's staged
    ones, minus those of the `failed_shadows` aliases (a shadow that failed in any shard).

    Refuses, leaving the previous predictions in place, unless the staging table holds
    exactly `rows_scored` rows of this run, and those plus the quarantined rows are the
    validated partition. With one shard there is nothing to publish: the shard wrote
    the date directly (after the same check).
    """
    if shards == 1:
        return
    warehouse = res.warehouse
    if rows_scored == 0:
        raise EmptyPartition(
            f"{tables.features(spec)} has no rows to score for as_of_date {as_of_date}; build the features first"
        )
    staged = queries.staged_rows(warehouse, spec, as_of_date, scoring_run_id)
    if staged != rows_scored:
        raise BatchpredError(
            f"scoring run {scoring_run_id} staged {staged} rows for {as_of_date} but its {shards} shards reported "
            f"{rows_scored}; nothing was published, the previous predictions stay"
        )
    check_accounted(spec, as_of_date, rows_scored, validation)
    key_fields = res.registry.contract(model).key_fields()
    moves = [(tables.staging(spec), tables.predictions(spec), tables.predictions_schema(key_fields))]
    if spec.reasons.method != "off":
        moves.append((tables.reasons_staging(spec), tables.reasons(spec), tables.reasons_schema(key_fields)))
    shadow, shadow_staging = tables.shadow(spec), tables.shadow_staging(spec)
    if any(warehouse.table_columns(t.schema, t.name) is not None for t in (shadow, shadow_staging)):
        for alias in failed_shadows:
            warehouse.delete_partition(
                shadow_staging.schema, shadow_staging.name, as_of_date, {"scoring_run_id": scoring_run_id, "alias": alias}
            )
        # The move reads the staging table even when no shadow staged a row (it then empties the date).
        warehouse.ensure_table(shadow_staging.schema, shadow_staging.name, tables.shadow_schema(key_fields, staged=True))
        moves.append((shadow_staging, shadow, tables.shadow_schema(key_fields)))
    warehouse.move_partitions(
        as_of_date,
        [((s.schema, s.name), (t.schema, t.name), schema) for s, t, schema in moves],
        {"scoring_run_id": scoring_run_id},
        writes=_published_profile(res, spec, as_of_date, model, scoring_run_id, shards, validation),
    )
