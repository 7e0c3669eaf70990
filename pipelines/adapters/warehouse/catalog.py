"""Every table batchpred owns, declared once: schema, name (derived from the model spec),
columns (Arrow) and grain; and the named queries the pipeline runs on them.

The rest of `pipelines` calls these functions and never writes SQL itself
(tests/test_layout.py holds it to that). Identifiers are checked and quoted; values
are bound parameters.

Table names derive from the model name (`pipelines.domain.names`); pyarrow and the
drivers are imported inside the functions that need them, not here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.domain.errors import BatchpredError, SpecError
from pipelines.domain.identifiers import check_identifier, qualified, quote
from pipelines.domain.names import PER_MODEL, SCRATCH_PREFIX

if TYPE_CHECKING:
    import pyarrow as pa

    from pipelines.adapters.warehouse.base import Warehouse
    from pipelines.config.spec import ModelSpec, Source


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    grain: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"



SCORING_RUNS = Table("monitoring", "scoring_runs", "one row per scoring attempt (and per unpublish)")
VALIDATION_RESULTS = Table("monitoring", "validation_results", "one row per expectation per validation")

# Model health: shared by every model, keyed by model, version and as-of date (plus feature).
FEATURE_PROFILES = Table(
    "monitoring", "feature_profiles", "one row per bin per feature (and the score) per as_of_date per version"
)
FEATURE_DRIFT = Table(
    "monitoring", "feature_drift", "one row per feature (and the score) per as_of_date per version per comparison"
)
ESTIMATED_PERFORMANCE = Table("monitoring", "estimated_performance", "one row per as_of_date per version")
REALIZED_PERFORMANCE = Table(
    "monitoring",
    "realized_performance",
    "one row per as_of_date per version once its label horizon is over; status provisional until its labels are complete",
)
CALIBRATION_BINS = Table("monitoring", "calibration_bins", "one row per score bin per labelled as_of_date per version")
ALERTS = Table("monitoring", "alerts", "one row per check that fired per as_of_date per version")
DAILY_HEALTH = Table("monitoring", "daily_health", "one row per as_of_date per version: the day's health in one line")
FEATURE_ATTRIBUTIONS = Table(
    "monitoring", "feature_attributions", "one row per feature per as_of_date per version: mean |contribution|"
)
SHADOW_COMPARISON = Table("monitoring", "shadow_comparison", "one row per as_of_date per (champion version, challenger version)")
HEALTH_TABLES = (
    FEATURE_PROFILES, FEATURE_DRIFT, ESTIMATED_PERFORMANCE, REALIZED_PERFORMANCE, CALIBRATION_BINS, ALERTS, DAILY_HEALTH,
    FEATURE_ATTRIBUTIONS, SHADOW_COMPARISON,
)  # fmt: skip
PROMOTIONS = Table("monitoring", "promotions", "one row per alias move made with `batchpred promote`")
ALERT_DELIVERIES = Table(
    "monitoring", "alert_deliveries", "one row per alert (alert_id) sent or to send to the webhook: its latest delivery state"
)

# A dry run builds its features here (one schema per run, dropped at the end).


def _per_model(kind: str, model: str) -> Table:
    schema, suffix, grain = PER_MODEL[kind]
    return Table(schema, f"{model}{suffix}", grain)


def predictions(spec: ModelSpec) -> Table:
    return _per_model("predictions", spec.name)


def staging(spec: ModelSpec) -> Table:
    return _per_model("staging", spec.name)


def quarantine(spec: ModelSpec) -> Table:
    return _per_model("quarantine", spec.name)


def shadow(spec: ModelSpec) -> Table:
    return _per_model("shadow", spec.name)


def shadow_staging(spec: ModelSpec) -> Table:
    return _per_model("shadow_staging", spec.name)


def reasons(spec: ModelSpec) -> Table:
    return _per_model("reasons", spec.name)


def reasons_staging(spec: ModelSpec) -> Table:
    return _per_model("reasons_staging", spec.name)


def features(spec: ModelSpec, schema: str = "analytics") -> Table:
    return Table(schema, spec.features_model, "one row per entity per as_of_date (dbt)")


def labels(spec: ModelSpec) -> Table:
    return Table("analytics", spec.labels_model, "one row per entity per as_of_date: the target (dbt)")


def marts(spec: ModelSpec) -> dict[str, Table]:
    return {
        "latest_scores": Table("marts", f"{spec.name}_latest_scores", "one row per entity of the latest scored date"),
        "daily_summary": Table("marts", f"{spec.name}_daily_summary", "one row per as_of_date per segment, and one for all"),
    }


# -- Arrow schemas -----------------------------------------------------------------


def predictions_schema(key: Sequence[pa.Field]) -> pa.Schema:
    """predictions.<model>_scores: the key, the score, and its lineage."""
    import pyarrow as pa

    return pa.schema(
        [
            *key,
            pa.field("as_of_date", pa.date32(), nullable=False),
            pa.field("score", pa.float64(), nullable=False),
            pa.field("model_name", pa.string(), nullable=False),
            pa.field("model_version", pa.int64(), nullable=False),
            pa.field("mlflow_run_id", pa.string(), nullable=False),
            pa.field("scoring_run_id", pa.string(), nullable=False),
            pa.field("airflow_run_id", pa.string()),
            pa.field("scored_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )


def staging_schema(key: Sequence[pa.Field]) -> pa.Schema:
    """Staged shard output: the prediction columns plus the shard number."""
    import pyarrow as pa

    return predictions_schema(key).append(pa.field("shard", pa.int32(), nullable=False))


def shadow_schema(key: Sequence[pa.Field], staged: bool = False) -> pa.Schema:
    """predictions.<model>_shadow_scores: the prediction columns plus the shadow alias (and the shard, staged)."""
    import pyarrow as pa

    schema = predictions_schema(key).append(pa.field("alias", pa.string(), nullable=False))
    return schema.append(pa.field("shard", pa.int32(), nullable=False)) if staged else schema


def reasons_schema(key: Sequence[pa.Field], staged: bool = False) -> pa.Schema:
    """predictions.<model>_reasons: per entity and date, the top-k features by |contribution| to the margin.

    `value` is the feature's value as the model read it (a category's code); `value_label`
    the category itself; `contribution` and `base_value` are in log-odds, and the base value
    plus every feature's contribution is the row's margin. `reason_method` is
    `approximate` (Saabas) or `tree_shap` (exact)."""
    import pyarrow as pa

    schema = pa.schema(
        [
            *key,
            pa.field("as_of_date", pa.date32(), nullable=False),
            pa.field("rank", pa.int32(), nullable=False),
            pa.field("feature", pa.string(), nullable=False),
            pa.field("value", pa.float64()),
            pa.field("value_label", pa.string()),
            pa.field("contribution", pa.float64(), nullable=False),
            pa.field("base_value", pa.float64(), nullable=False),
            pa.field("reason_method", pa.string(), nullable=False),
            pa.field("model_version", pa.int64(), nullable=False),
            pa.field("scoring_run_id", pa.string(), nullable=False),
        ]
    )
    return schema.append(pa.field("shard", pa.int32(), nullable=False)) if staged else schema


def promotions_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("model_name", pa.string()),
            ("alias", pa.string()),
            ("from_version", pa.int64()),
            ("to_version", pa.int64()),
            ("reason", pa.string()),
            ("forced", pa.bool_()),
            ("evidence", pa.string()),
            ("promoted_by", pa.string()),
            ("promoted_at", pa.timestamp("us", tz="UTC")),
        ]
    )


def alert_deliveries_schema() -> pa.Schema:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            pa.field("alert_id", pa.string(), nullable=False),  # stable: model, version, date, check, subject
            ("model_name", pa.string()),
            ("model_version", pa.int64()),  # null for a task failure
            ("as_of_date", pa.date32()),  # null for a task failure
            ("check_name", pa.string()),
            ("subject", pa.string()),
            ("severity", pa.string()),
            ("payload", pa.string()),  # the JSON posted, secrets redacted
            ("destination", pa.string()),  # the webhook, redacted to scheme://host
            ("status", pa.string()),  # pending | delivered
            ("attempts", pa.int32()),
            ("queued_at", ts),
            ("last_attempt_at", ts),
            ("delivered_at", ts),
            ("last_error", pa.string()),  # redacted
        ]
    )


def quarantine_schema(key: Sequence[pa.Field]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            *key,
            pa.field("as_of_date", pa.date32(), nullable=False),
            pa.field("reasons", pa.string(), nullable=False),
            pa.field("validation_id", pa.string(), nullable=False),
            pa.field("quarantined_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )


def scoring_runs_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("scoring_run_id", pa.string()),
            ("model_name", pa.string()),
            ("model_alias", pa.string()),
            ("model_version", pa.int64()),
            ("mlflow_run_id", pa.string()),
            ("as_of_date", pa.date32()),
            ("airflow_run_id", pa.string()),
            ("rows_read", pa.int64()),
            ("rows_scored", pa.int64()),
            ("rows_quarantined", pa.int64()),
            ("validation_outcome", pa.string()),  # passed | failed
            ("validation_id", pa.string()),
            ("status", pa.string()),  # see pipelines.scoring.runlog.STATUSES
            ("step", pa.string()),  # the step that failed, or refused the request
            ("error", pa.string()),
            ("started_at", pa.timestamp("us", tz="UTC")),
            ("ended_at", pa.timestamp("us", tz="UTC")),
            ("triggered_by", pa.string()),  # who: the OS user, or "airflow"
            ("shadow_error", pa.string()),  # why a shadow version did not score (the champion was published)
            ("rows_removed", pa.int64()),  # an `unpublished` row: the predictions `batchpred unpublish` removed
            ("shadow_skipped", pa.string()),  # a shadow alias not scored, and why (it is the champion's version)
        ]
    )


def validation_results_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("validation_id", pa.string()),
            ("model_name", pa.string()),
            ("as_of_date", pa.date32()),
            ("suite", pa.string()),
            ("expectation_type", pa.string()),
            ("column_name", pa.string()),
            ("success", pa.bool_()),
            ("observed_value", pa.string()),  # JSON
            ("element_count", pa.int64()),
            ("unexpected_count", pa.int64()),
            ("unexpected_percent", pa.float64()),
            ("partial_unexpected", pa.string()),  # JSON list, at most 20 values
            ("error", pa.string()),
            ("validated_at", pa.timestamp("us", tz="UTC")),
        ]
    )


def _health_key() -> list:
    import pyarrow as pa

    return [
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.int64(), nullable=False),
        pa.field("as_of_date", pa.date32(), nullable=False),
    ]


def health_schema(table: Table) -> pa.Schema:
    """The columns of a model-health table (see README, "Model health")."""
    import pyarrow as pa

    f64, i64, txt = pa.float64(), pa.int64(), pa.string()
    columns = {
        FEATURE_PROFILES: [
            ("feature", txt), ("kind", txt), ("bin", pa.int32()), ("label", txt), ("lower", f64), ("upper", f64), ("rows", i64),
            ("reference_rows", i64),
        ],
        FEATURE_DRIFT: [
            ("feature", txt), ("kind", txt), ("comparison", txt), ("compared_date", pa.date32()), ("rows", i64),
            ("reference_rows", i64), ("null_share", f64), ("reference_null_share", f64), ("null_share_delta", f64),
            ("inf_share", f64), ("reference_inf_share", f64),
            ("mean", f64), ("reference_mean", f64), ("mean_delta_std", f64), ("psi", f64), ("js_distance", f64),
            ("linf_distance", f64), ("tv_distance", f64), ("action_threshold", f64), ("share_above_threshold", f64),
            ("reference_share_above_threshold", f64), ("importance", f64), ("psi_noise", f64), ("psi_warn", f64),
            ("psi_alert", f64), ("js_distance_alert", f64), ("linf_distance_alert", f64), ("null_share_increase_alert", f64),
            ("status", txt), ("reason", txt), ("decides", pa.bool_()),
        ],
        ESTIMATED_PERFORMANCE: [
            ("rows", i64), ("expected_auc", f64), ("sampling_error", f64), ("expected_auc_lower", f64),
            ("expected_auc_upper", f64), ("expected_positive_rate", f64), ("expected_precision_top_decile", f64),
            ("validation_auc", f64), ("alert_below", f64), ("status", txt),
        ],
        REALIZED_PERFORMANCE: [
            ("rows_labelled", i64), ("positives", i64), ("roc_auc", f64), ("pr_auc", f64), ("log_loss", f64),
            ("brier_score", f64), ("expected_calibration_error", f64), ("precision_top_decile", f64),
            ("recall_top_decile", f64), ("expected_auc", f64), ("estimation_error", f64), ("validation_auc", f64),
            ("labels_complete_through", pa.date32()), ("status", txt),
        ],
        CALIBRATION_BINS: [
            ("bin", pa.int32()), ("lower", f64), ("upper", f64), ("rows", i64), ("mean_score", f64), ("positive_rate", f64),
        ],
        ALERTS: [
            ("check_name", txt), ("subject", txt), ("severity", txt), ("value", f64), ("threshold", f64),
            ("consecutive_days", pa.int32()), ("message", txt), ("action", txt), ("action_result", txt),
        ],
        DAILY_HEALTH: [
            ("status", txt), ("message", txt), ("rows_scored", i64), ("drift_status", txt), ("features_warn", pa.int32()),
            ("features_alert", pa.int32()), ("worst_feature", txt), ("worst_psi", f64), ("expected_auc", f64),
            ("expected_auc_lower", f64), ("expected_auc_upper", f64), ("realized_auc", f64), ("labels_due", pa.date32()),
            ("alerts", pa.int32()), ("attribution_ndcg", f64), ("challengers", pa.int32()), ("null_reason", txt),
        ],
        FEATURE_ATTRIBUTIONS: [("feature", txt), ("rank", pa.int32()), ("mean_abs_contribution", f64), ("rows", i64)],
        SHADOW_COMPARISON: [
            ("challenger_alias", txt), ("challenger_version", i64), ("rows", i64), ("pearson", f64), ("spearman", f64),
            ("mean_abs_difference", f64), ("p95_abs_difference", f64), ("top_decile_jaccard", f64), ("flip_share", f64),
            ("psi", f64), ("champion_expected_auc", f64), ("challenger_expected_auc", f64), ("labelled_rows", i64),
            ("champion_realized_auc", f64), ("challenger_realized_auc", f64), ("delong_z", f64), ("delong_p_value", f64),
            ("null_reason", txt), ("delong_null_reason", txt),
        ],
    }[table]  # fmt: skip
    return pa.schema(
        [*_health_key(), *(pa.field(n, t) for n, t in columns), pa.field("computed_at", pa.timestamp("us", tz="UTC"))]
    )


def ensure_health_tables(warehouse: Warehouse) -> None:
    """Create the model-health tables if they are missing (the health marts are views over
    them), with their comments."""
    warehouse.ensure_tables(_health_tables())


def ensure_shared_tables(warehouse: Warehouse) -> None:
    """Set a warehouse up: its schemas, and every table the README documents that all models
    share (the run log, validation results, promotions, model health, alert deliveries),
    empty if new, each with its grain as table comment and a comment on every column.
    Running it again writes nothing (a column added since gets its comment)."""
    warehouse.ensure_schemas()
    warehouse.ensure_tables(_shared_tables())


def ensure_model_tables(warehouse: Warehouse, spec: ModelSpec, key: Sequence[pa.Field]) -> None:
    """At a model's publish: the shared tables and the model's own (predictions, quarantine,
    shadow scores unless it has no shadow aliases, reasons unless `off`, and the staging
    tables of a sharded model), keyed by the version's `key` fields, with their comments;
    in one transaction, and only reads when they are already there."""
    kinds = ["predictions", "quarantine"]
    kinds += ["shadow"] if spec.shadow_aliases else []
    kinds += ["reasons"] if spec.reasons.method != "off" else []
    if spec.shards > 1:
        kinds += [f"{k}_staging" if k != "predictions" else "staging" for k in kinds if k != "quarantine"]
    schemas = {
        "predictions": predictions_schema(key),
        "staging": staging_schema(key),
        "quarantine": quarantine_schema(key),
        "shadow": shadow_schema(key),
        "shadow_staging": shadow_schema(key, staged=True),
        "reasons": reasons_schema(key),
        "reasons_staging": reasons_schema(key, staged=True),
    }
    names = [f.name for f in key]
    own = [_documented(_per_model(k, spec.name), schemas[k], documented_name(k), names) for k in kinds]
    warehouse.ensure_tables([*_shared_tables(), *own])


def documented_name(kind: str) -> str:
    """How the README names a per-model table: 'predictions.<model>_scores'."""
    schema, suffix, _ = PER_MODEL[kind]
    return f"{schema}.<model>{suffix}"


def _documented(table: Table, arrow_schema: pa.Schema, documented: str | None = None, key: Sequence[str] = ()):
    from pipelines.adapters.warehouse.base import DocumentedTable
    from pipelines.adapters.warehouse.comments import column_comments

    columns = column_comments(documented or str(table), arrow_schema.names, key)
    return DocumentedTable(table.schema, table.name, arrow_schema, table.grain, columns)


def _health_tables() -> list:
    return [
        *(_documented(t, health_schema(t)) for t in HEALTH_TABLES),
        _documented(ALERT_DELIVERIES, alert_deliveries_schema()),
    ]


def _shared_tables() -> list:
    return [
        _documented(SCORING_RUNS, scoring_runs_schema()),
        _documented(VALIDATION_RESULTS, validation_results_schema()),
        _documented(PROMOTIONS, promotions_schema()),
        *_health_tables(),
    ]


def health_write(
    table: Table, model: str, version: int, as_of_date: dt.date, rows: list[dict], narrow: dict[str, Any] | None = None
):
    """One date's rows of a model-health table for one model version (narrowed by more key
    columns), as a `PartitionWrite` for `Warehouse.replace_partitions`: several tables'
    rows of a date are then replaced in one transaction. Refuses a NaN or infinite value
    (ValueError naming the table and column): an undefined statistic is NULL, with a reason."""
    import pyarrow as pa

    from pipelines.adapters.warehouse.base import PartitionWrite

    schema = health_schema(table)
    now = dt.datetime.now(dt.UTC)
    for r in rows:
        check_finite(table, r)
    data = pa.Table.from_pylist(
        [{"model_name": model, "model_version": version, "as_of_date": as_of_date, "computed_at": now, **r} for r in rows],
        schema=schema,
    )
    key = {"model_name": model, "model_version": version, **(narrow or {})}
    return PartitionWrite(table.schema, table.name, schema, data.to_batches, key)


def check_finite(table: Table | str, row: dict[str, Any]) -> None:
    """Refuse a row holding NaN or an infinity (no table batchpred writes holds one)."""
    for column, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(
                f"{table}.{column} would hold {value} ({', '.join(f'{k}={v}' for k, v in row.items() if k in _ROW_NAMES)}): "
                "an undefined statistic must be NULL with a reason"
            )


_ROW_NAMES = ("feature", "comparison", "check_name", "subject", "challenger_alias", "bin")


def replace_health(warehouse: Warehouse, table: Table, model: str, version: int, as_of_date: dt.date, rows: list[dict]) -> int:
    """Replace one date's rows of a model-health table for one model version."""
    return warehouse.replace_partitions(as_of_date, [health_write(table, model, version, as_of_date, rows)])[0]


def update_health(
    warehouse: Warehouse,
    table: Table,
    model: str,
    version: int,
    as_of_date: dt.date,
    values: dict[str, Any],
    narrow: dict[str, Any] | None = None,
) -> int:
    """Set some columns of one date's model-health row(s) for one version (narrowed by more columns)."""
    check_finite(table, values)
    key = {"model_name": model, "model_version": int(version), "as_of_date": as_of_date, **(narrow or {})}
    return warehouse.update_rows(table.schema, table.name, key, values)


# -- named queries -------------------------------------------------------------------


def _one(warehouse: Warehouse, sql: str, params: list[Any] | None = None) -> dict[str, Any]:
    rows = warehouse.query(sql, params).to_pylist()
    return rows[0] if rows else {}


def source_extent(warehouse: Warehouse, source: Source) -> tuple[dt.date | None, dt.date | None]:
    """(first, last) event date of a completeness source, as UTC dates; (None, None) when it is empty.

    Refuses (BatchpredError) a table or column that does not exist, or an event column
    that is not a date or timestamp, naming the source and the spec key.
    """
    from pipelines.domain.sql_types import type_family

    columns = warehouse.table_columns(source.schema, source.table)
    where = f"completeness source {source.name}"
    if columns is None:
        raise BatchpredError(
            f"{where} does not exist in the warehouse; load the raw data first (for the demo: batchpred generate)"
        )
    if source.event_column not in columns:
        raise SpecError(f"{where} has no column {source.event_column!r} (it has {sorted(columns)}); fix completeness.sources")
    if type_family(columns[source.event_column]) not in ("date", "timestamp"):
        raise SpecError(
            f"{where} column {source.event_column!r} has type {columns[source.event_column]}; an event column must be "
            "a date or a timestamp"
        )
    column = quote(source.event_column)
    # Sessions run in UTC, so a timestamp's date is its UTC date.
    row = _one(
        warehouse,
        f"select cast(min({column}) as date) as first, cast(max({column}) as date) as last "
        f"from {qualified(source.schema, source.table)}",
    )
    return row.get("first"), row.get("last")


def partition_query(table: Table, as_of_date: dt.date) -> str:
    """The SELECT of one date of a table, for Great Expectations (whose query assets take no
    bind parameters). The date is a `datetime.date`, whose isoformat() is always YYYY-MM-DD."""
    if type(as_of_date) is not dt.date:
        raise TypeError("as_of_date must be a datetime.date")
    return f"select * from {qualified(table.schema, table.name)} where as_of_date = date '{as_of_date.isoformat()}'"


def columns_only(query: str) -> str:
    """A query with the same columns as `query` and no rows (for GX's column lookup)."""
    return f"select * from ({query}) as columns_only limit 0"


def count_partition(warehouse: Warehouse, table: Table, as_of_date: dt.date) -> int:
    if warehouse.table_columns(table.schema, table.name) is None:
        return 0
    return int(
        _one(warehouse, f"select count(*) as n from {qualified(table.schema, table.name)} where as_of_date = $1", [as_of_date])[
            "n"
        ]
    )


@contextmanager
def read_for_scoring(
    warehouse: Warehouse,
    spec: ModelSpec,
    columns: Sequence[str],
    as_of_date: dt.date,
    validation_id: str,
    shard: int,
    shards: int,
    batch_size: int,
) -> Iterator[Iterator[pa.RecordBatch]]:
    """Stream the rows of `as_of_date` to score: the feature partition minus exactly the rows
    that validation `validation_id` quarantined, and only the shard's rows when sharded."""
    q = quarantine(spec)
    predicates, params = [], []
    if warehouse.table_columns(q.schema, q.name) is not None:
        match = " and ".join(f"q.{quote(c)} = t.{quote(c)}" for c in spec.key_columns)
        predicates.append(
            f"not exists (select 1 from {qualified(q.schema, q.name)} as q "
            f"where q.as_of_date = t.as_of_date and q.validation_id = $2 and {match})"
        )
        params.append(validation_id)
    if shards > 1:
        predicates.append(warehouse.shard_predicate(spec.key_columns, shards, shard))
    table = features(spec)
    with warehouse.read_partition(
        table.schema, table.name, as_of_date, columns, batch_size, " and ".join(predicates), params
    ) as batches:
        yield batches


def staged_rows(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, scoring_run_id: str) -> int:
    t = staging(spec)
    if warehouse.table_columns(t.schema, t.name) is None:
        return 0
    return int(
        _one(
            warehouse,
            f"select count(*) as n from {qualified(t.schema, t.name)} where as_of_date = $1 and scoring_run_id = $2",
            [as_of_date, scoring_run_id],
        )["n"]
    )


def training_rows(warehouse: Warehouse, spec: ModelSpec, columns: Sequence[str], dates: Sequence[dt.date]) -> pa.Table:
    """Features joined to labels for the snapshot `dates`, ordered by date and key."""
    f, lab = features(spec), labels(spec)
    select = ", ".join([*(f"f.{quote(c)}" for c in columns), f"l.{quote(spec.target)}"])
    join = " and ".join(f"l.{quote(c)} = f.{quote(c)}" for c in spec.key_columns)
    placeholders = ", ".join(f"${i}" for i in range(1, len(dates) + 1))
    order = ", ".join(["f.as_of_date", *(f"f.{quote(c)}" for c in spec.key_columns)])
    return warehouse.query(
        f"select {select} from {qualified(f.schema, f.name)} as f "
        f"inner join {qualified(lab.schema, lab.name)} as l on l.as_of_date = f.as_of_date and {join} "
        f"where f.as_of_date in ({placeholders}) order by {order}",
        list(dates),
    )


def quarantine_count(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, validation_id: str) -> int:
    t = quarantine(spec)
    if warehouse.table_columns(t.schema, t.name) is None:
        return 0
    return int(
        _one(
            warehouse,
            f"select count(*) as n from {qualified(t.schema, t.name)} where as_of_date = $1 and validation_id = $2",
            [as_of_date, validation_id],
        )["n"]
    )


def validation_outcome(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, validation_id: str) -> dict[str, Any]:
    """{'n': expectations stored, 'ok': all passed} for one validation of one date."""
    t = VALIDATION_RESULTS
    if warehouse.table_columns(t.schema, t.name) is None:
        return {"n": 0, "ok": False}
    return _one(
        warehouse,
        f"select count(*) as n, coalesce(bool_and(success), false) as ok from {qualified(t.schema, t.name)} "
        "where validation_id = $1 and model_name = $2 and as_of_date = $3",
        [validation_id, spec.name, as_of_date],
    )


def scored_versions(warehouse: Warehouse, spec: ModelSpec, start: dt.date, end: dt.date) -> dict[dt.date, set[int]]:
    """The model versions whose predictions each date of start..end holds."""
    t = predictions(spec)
    if warehouse.table_columns(t.schema, t.name) is None:
        return {}
    found: dict[dt.date, set[int]] = {}
    for row in warehouse.query(
        f"select distinct as_of_date, model_version from {qualified(t.schema, t.name)} where as_of_date between $1 and $2",
        [start, end],
    ).to_pylist():
        found.setdefault(row["as_of_date"], set()).add(int(row["model_version"]))
    return found


def latest_statuses(warehouse: Warehouse, model: str, start: dt.date, end: dt.date) -> dict[dt.date, str]:
    """The status of each date's latest real attempt in start..end: a refused request touched
    nothing and an unpublish is not an attempt, so neither counts."""
    t = SCORING_RUNS
    if warehouse.table_columns(t.schema, t.name) is None:
        return {}
    latest: dict[dt.date, str] = {}
    for row in warehouse.query(
        f"select as_of_date, status from {qualified(t.schema, t.name)} "
        "where model_name = $1 and as_of_date between $2 and $3 and status not in ('unpublished', 'refused') "
        "order by started_at",
        [model, start, end],
    ).to_pylist():
        latest[row["as_of_date"]] = row["status"]
    return latest


def record_run(warehouse: Warehouse, row: dict[str, Any]) -> None:
    """Write an attempt's run-log row, replacing the one it had (one row per attempt)."""
    import pyarrow as pa

    t = SCORING_RUNS
    rows = pa.Table.from_pylist([row], schema=scoring_runs_schema())
    warehouse.replace_partition(t.schema, t.name, None, rows.schema, rows.to_batches(), {"scoring_run_id": row["scoring_run_id"]})


def update_run(warehouse: Warehouse, scoring_run_id: str, values: dict[str, Any]) -> bool:
    """Change some columns of an attempt's run-log row; False if the attempt has no row."""
    t = SCORING_RUNS
    return warehouse.update_rows(t.schema, t.name, {"scoring_run_id": scoring_run_id}, values) > 0


def unpublish(
    warehouse: Warehouse, spec: ModelSpec, as_of_dates: Sequence[dt.date], log_rows: list[dict[str, Any]]
) -> dict[str, int]:
    """Remove the dates' predictions, shadow scores, reasons, quarantine and model-health rows
    of the model, and write `log_rows` to the run log, in one transaction. Returns the rows
    removed per table."""
    import pyarrow as pa

    own = [predictions(spec), shadow(spec), reasons(spec), quarantine(spec)]
    tables = [(t.schema, t.name, None) for t in own] + [(t.schema, t.name, {"model_name": spec.name}) for t in HEALTH_TABLES]
    log = (SCORING_RUNS.schema, SCORING_RUNS.name, pa.Table.from_pylist(log_rows, schema=scoring_runs_schema()))
    return warehouse.delete_dates(as_of_dates, tables, log)


def store_validation(warehouse: Warehouse, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa

    t = VALIDATION_RESULTS
    warehouse.append(t.schema, t.name, pa.Table.from_pylist(rows, schema=validation_results_schema()))


def replace_quarantine(
    warehouse: Warehouse, spec: ModelSpec, key: Sequence[pa.Field], as_of_date: dt.date, rows: pa.Table
) -> int:
    t = quarantine(spec)
    return warehouse.replace_partition(t.schema, t.name, as_of_date, quarantine_schema(key), rows.to_batches())


def clear_quarantine(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date) -> None:
    t = quarantine(spec)
    warehouse.delete_partition(t.schema, t.name, as_of_date)


def drop_scratch(warehouse: Warehouse, schema: str) -> None:
    """Drop a dry run's scratch schema, and nothing else."""
    if not schema.startswith(SCRATCH_PREFIX):
        raise ValueError(f"{schema!r} is not a scratch schema")
    warehouse.drop_schema(check_identifier(schema, "scratch schema"))


def dashboard_view(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, top: int = 5) -> tuple[pa.Table, pa.Table]:
    """What the demo prints: the highest scores of the latest date, and the date's summary."""
    m = marts(spec)
    latest, summary = m["latest_scores"], m["daily_summary"]
    key = ", ".join(quote(c) for c in spec.key_columns)
    reason = ", top_reason" if "top_reason" in (warehouse.table_columns(latest.schema, latest.name) or {}) else ""
    highest = warehouse.query(
        f"select {key}, as_of_date, score, risk_band, {quote(spec.segment)}, model_version{reason} "
        f"from {qualified(latest.schema, latest.name)} order by score desc, {key} limit {int(top)}"
    )
    day = warehouse.query(
        f"select as_of_date, {quote(spec.segment)}, entities, mean_score, p90_score, high_risk "
        f"from {qualified(summary.schema, summary.name)} where as_of_date = $1 order by {quote(spec.segment)} nulls last",
        [as_of_date],
    )
    return highest, day
