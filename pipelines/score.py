"""Score one as-of date's feature partition and publish it atomically.

The model alias is resolved once to a pinned version; the partition is read as a
stream of Arrow record batches (memory bounded by the batch size, not the row
count), scored with the booster's `inplace_predict`, and written to
`predictions.<model>_scores` in one transaction that replaces exactly that date.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from pipelines import quarantine, registry
from pipelines.errors import BatchpredError, EmptyPartition, FeatureSchemaError
from pipelines.identifiers import qualified
from pipelines.matrix import check_feature_columns, feature_matrix
from pipelines.prefetch import Prefetch
from pipelines.settings import Settings
from pipelines.spec import ModelSpec
from pipelines.warehouse import open_warehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreResult:
    rows_read: int
    rows_scored: int
    model: registry.ResolvedModel


def predictions_schema(spec: ModelSpec) -> pa.Schema:
    """The columns of predictions.<model>_scores: the key, the score, and its lineage."""
    return pa.schema(
        [
            pa.field(spec.entity_key, pa.int64(), nullable=False),
            pa.field("as_of_date", pa.date32(), nullable=False),
            pa.field("score", pa.float64(), nullable=False),
            pa.field("model_name", pa.string(), nullable=False),
            pa.field("model_version", pa.string(), nullable=False),
            pa.field("mlflow_run_id", pa.string(), nullable=False),
            pa.field("scoring_run_id", pa.string(), nullable=False),
            pa.field("airflow_run_id", pa.string()),
            pa.field("scored_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )


def check_signature(spec: ModelSpec, signature_columns: list[str], model: registry.ResolvedModel) -> None:
    """Refuse a model version whose input signature is not the spec's feature list."""
    if signature_columns and signature_columns != list(spec.feature_names):
        missing = [c for c in signature_columns if c not in spec.feature_names]
        extra = [c for c in spec.feature_names if c not in signature_columns]
        raise FeatureSchemaError(
            f"{model.uri} was trained on features {signature_columns}, but models/{spec.name}/model.yaml lists "
            f"{list(spec.feature_names)} (in the model only: {missing}; in the spec only: {extra}); "
            "retrain the model or point the alias at a version trained on these features"
        )


def staging_schema(spec: ModelSpec) -> pa.Schema:
    """Staged shard output: the prediction columns plus the shard number."""
    return predictions_schema(spec).append(pa.field("shard", pa.int32(), nullable=False))


def staging_table(spec: ModelSpec) -> str:
    return f"{spec.predictions_table}_staging"


def score_partition(
    settings: Settings,
    spec: ModelSpec,
    as_of_date: dt.date,
    model: registry.ResolvedModel,
    scoring_run_id: str,
    airflow_run_id: str | None = None,
    shard: int = 0,
    shards: int = 1,
) -> ScoreResult:
    """Score one shard of `as_of_date` with the pinned `model`.

    With one shard the date's predictions are replaced directly, in one transaction.
    With several, the shard's rows (a hash of the entity key picks them) replace
    that shard's rows in the staging table `analytics.<model>_scores_staging`, and
    `publish_predictions` makes the whole date visible at once.

    Refuses (FeatureSchemaError) a feature table missing a feature column or holding
    one of the wrong type, and a model whose signature does not match the spec. On
    any failure the previous predictions for the date stay as they were.
    """
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is outside 0..{shards - 1}")
    warehouse = open_warehouse(settings.warehouse_url)
    where = f"analytics.{spec.features_model}"
    columns = warehouse.table_columns("analytics", spec.features_model)
    if columns is None:
        raise FeatureSchemaError(f"feature table {where} does not exist; build it with dbt first")
    check_feature_columns(spec, columns, where)

    check_signature(spec, registry.input_columns(settings, model), model)
    booster = registry.load_booster(settings, model)
    staged = shards > 1
    schema = staging_schema(spec) if staged else predictions_schema(spec)
    scored_at = pa.scalar(dt.datetime.now(dt.UTC), pa.timestamp("us", tz="UTC"))
    read = 0

    def scored(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # Every column but the key and the score repeats one value. Repeating a string
        # costs about 8 ms per 100k rows, a tenth of the scoring time over all those
        # columns, so they are built once, at the largest batch seen, and sliced
        # (without copying) for each batch.
        values = [
            pa.scalar(as_of_date, pa.date32()),
            pa.scalar(spec.name),
            pa.scalar(model.version),
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
            scores = booster.inplace_predict(feature_matrix(batch, spec))
            if not repeated or len(repeated[0]) < n:
                repeated = [pa.repeat(value, n) for value in values]
            day, *lineage = (column.slice(0, n) for column in repeated)
            key = batch.column(spec.entity_key).cast(pa.int64())
            del batch
            yield pa.RecordBatch.from_arrays([key, day, pa.array(scores, pa.float64()), *lineage], schema=schema)

    def counted(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        nonlocal read
        for batch in batches:
            read += batch.num_rows
            yield batch
        if read == 0 and not staged:
            # Raised inside the write transaction, so the date's old predictions stay.
            raise EmptyPartition(f"{where} has no rows for as_of_date {as_of_date}; build the features for that date first")

    # Quarantined rows (see pipelines.quarantine) are not scored.
    quarantined, params = quarantine.condition(quarantine.rules(spec.suite_path), first_param=2)
    predicate = f"not ({quarantined})"
    if staged:
        predicate += f" and {warehouse.shard_predicate(spec.entity_key, shards, shard)}"
    # Three stages overlap: a thread reads the next batch and another scores one while
    # this thread writes the last (pipelines.prefetch). Each hands over at most one
    # batch at a time, so memory stays bounded by the batch size. An error in any stage
    # reaches the write below as itself, and the write transaction rolls back.
    with (
        warehouse.read_partition(
            "analytics",
            spec.features_model,
            as_of_date,
            [spec.entity_key, *spec.feature_names],
            spec.batch_size,
            predicate,
            params,
        ) as batches,
        Prefetch(batches, depth=1, name="batchpred-read") as read_ahead,
        Prefetch(scored(iter(read_ahead)), depth=1, name="batchpred-score") as predictions,
    ):
        target = ("analytics", staging_table(spec)) if staged else ("predictions", spec.predictions_table)
        key = {"scoring_run_id": scoring_run_id, "shard": shard} if staged else None
        written = warehouse.replace_partition(*target, as_of_date, schema, counted(iter(predictions)), key)
    log.info("scored %d rows of %s for %s (shard %d of %d) with %s", written, where, as_of_date, shard + 1, shards, model.uri)
    return ScoreResult(rows_read=read, rows_scored=written, model=model)


def publish_predictions(
    settings: Settings, spec: ModelSpec, as_of_date: dt.date, scoring_run_id: str, shards: int, expected_rows: int
) -> None:
    """Make a sharded scoring run's predictions for `as_of_date` visible, all at once.

    Refuses, leaving the previous predictions in place, unless the staging table holds
    exactly `expected_rows` rows of this run from all `shards` shards' results. With one
    shard there is nothing to publish: the shard wrote the date directly.
    """
    if shards == 1:
        return
    warehouse = open_warehouse(settings.warehouse_url)
    where = f"analytics.{spec.features_model}"
    if expected_rows == 0:
        raise EmptyPartition(f"{where} has no rows for as_of_date {as_of_date}; build the features for that date first")
    staged = warehouse.query(
        f"select count(*) as n from {qualified('analytics', staging_table(spec))} where as_of_date = $1 and scoring_run_id = $2",
        [as_of_date, scoring_run_id],
    ).to_pylist()[0]["n"]
    if staged != expected_rows:
        raise BatchpredError(
            f"scoring run {scoring_run_id} staged {staged} rows for {as_of_date} but its {shards} shards reported "
            f"{expected_rows}; nothing was published, the previous predictions stay"
        )
    warehouse.move_partition(
        ("analytics", staging_table(spec)),
        ("predictions", spec.predictions_table),
        as_of_date,
        predictions_schema(spec),
        {"scoring_run_id": scoring_run_id},
    )
