"""Every table batchpred owns, declared once: schema, name (derived from the model spec),
columns (Arrow) and grain; and the creation of those tables, each with its comments.

The named queries run on these tables are in `queries`. Table names derive from the
model name (`pipelines.domain.names`); pyarrow is imported inside the functions that
need it, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.domain.names import PER_MODEL

if TYPE_CHECKING:
    import pyarrow as pa

    from pipelines.adapters.warehouse.base import DocumentedTable, Warehouse
    from pipelines.config.spec import ModelSpec


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
# The tables every model shares: they exist whenever batchpred works on a warehouse (`prepare`).
SHARED = (SCORING_RUNS, VALIDATION_RESULTS, PROMOTIONS, *HEALTH_TABLES, ALERT_DELIVERIES)


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


def profile_staging(spec: ModelSpec) -> Table:
    return _per_model("profile_staging", spec.name)


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


def profile_staging_schema() -> pa.Schema:
    """analytics.<model>_profile_staging: one shard's profile of a date (`pipelines.scoring.profile`),
    which the publish adds up over the shards into monitoring.feature_profiles. `finite_sum` is the
    sum of the feature's finite values in the shard (on each of its bins; NULL for a categorical one)."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("as_of_date", pa.date32(), nullable=False),
            pa.field("scoring_run_id", pa.string(), nullable=False),
            pa.field("shard", pa.int32(), nullable=False),
            pa.field("feature", pa.string(), nullable=False),
            pa.field("bin", pa.int32(), nullable=False),
            pa.field("rows", pa.int64(), nullable=False),
            pa.field("finite_sum", pa.float64()),
        ]
    )


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
            ("status", pa.string()),  # see pipelines.domain.status.RunStatus
            ("step", pa.string()),  # the step that failed, or refused the request
            ("error", pa.string()),
            ("started_at", pa.timestamp("us", tz="UTC")),
            ("ended_at", pa.timestamp("us", tz="UTC")),
            ("triggered_by", pa.string()),  # who: the OS user, or "airflow"
            ("shadow_error", pa.string()),  # why a shadow version did not score (the champion was published)
            ("rows_removed", pa.int64()),  # an `unpublished` row: the predictions `batchpred unpublish` removed
            ("shadow_skipped", pa.string()),  # a shadow alias not scored, and why (it is the champion's version)
            ("waited_for_data_s", pa.int64()),  # a scheduled run: how long it waited for its date to be complete
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


def _health_key() -> list[pa.Field]:
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
            ("reference_rows", i64), ("mean", f64), ("scoring_run_id", txt),
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


def prepare(warehouse: Warehouse) -> None:
    """Make every table all models share exist (the run log, validation results, promotions,
    model health, alert deliveries), empty if new, each with its grain as table comment and a
    comment on every column, so no query on them needs to ask whether it is there.

    Called once per command or task, where the warehouse is opened. Idempotent, and cheap
    once done: when every table, column and comment is there it is one catalogue read, with
    no lock and no DDL. A column a later batchpred added is added (old rows hold null)."""
    warehouse.ensure_tables(_shared_tables())


def exists(warehouse: Warehouse, table: Table) -> bool:
    """Whether a model's own table (or a dbt model) is there yet. A model's tables are created
    at its first publish, keyed by its version's key columns, so a read before then finds
    none; the shared tables always are (`prepare`), so asking about one is a mistake."""
    if table in SHARED:
        raise ValueError(f"{table} is shared by every model and always exists (tables.prepare): read it")
    return warehouse.table_columns(table.schema, table.name) is not None


def ensure_shared_tables(warehouse: Warehouse) -> None:
    """Set a warehouse up: its schemas, and every table the README documents that all models
    share (the run log, validation results, promotions, model health, alert deliveries),
    empty if new, each with its grain as table comment and a comment on every column.
    Running it again writes nothing (a column added since gets its comment)."""
    warehouse.ensure_schemas()
    prepare(warehouse)


def ensure_model_tables(warehouse: Warehouse, spec: ModelSpec, key: Sequence[pa.Field]) -> None:
    """At a model's publish: the shared tables and the model's own (predictions, quarantine,
    shadow scores unless it has no shadow aliases, reasons unless `off`, and the staging
    tables of a sharded model, its shards' profiles among them), keyed by the version's `key`
    fields, with their comments; in one transaction, and only reads when they are already there."""
    kinds = ["predictions", "quarantine"]
    kinds += ["shadow"] if spec.shadow_aliases else []
    kinds += ["reasons"] if spec.reasons.method != "off" else []
    if spec.shards > 1:
        kinds += [f"{k}_staging" if k != "predictions" else "staging" for k in kinds if k != "quarantine"]
        kinds.append("profile_staging")
    schemas = {
        "predictions": predictions_schema(key),
        "staging": staging_schema(key),
        "quarantine": quarantine_schema(key),
        "shadow": shadow_schema(key),
        "shadow_staging": shadow_schema(key, staged=True),
        "reasons": reasons_schema(key),
        "reasons_staging": reasons_schema(key, staged=True),
        "profile_staging": profile_staging_schema(),
    }
    names = [f.name for f in key]
    own = [_documented(_per_model(k, spec.name), schemas[k], documented_name(k), names) for k in kinds]
    warehouse.ensure_tables([*_shared_tables(), *own])


def documented_name(kind: str) -> str:
    """How the README names a per-model table: 'predictions.<model>_scores'."""
    schema, suffix, _ = PER_MODEL[kind]
    return f"{schema}.<model>{suffix}"


def _documented(table: Table, arrow_schema: pa.Schema, documented: str | None = None, key: Sequence[str] = ()) -> DocumentedTable:
    from pipelines.adapters.warehouse.base import DocumentedTable
    from pipelines.adapters.warehouse.comments import column_comments

    columns = column_comments(documented or str(table), arrow_schema.names, key)
    return DocumentedTable(table.schema, table.name, arrow_schema, table.grain, columns)


def _health_tables() -> list[DocumentedTable]:
    return [
        *(_documented(t, health_schema(t)) for t in HEALTH_TABLES),
        _documented(ALERT_DELIVERIES, alert_deliveries_schema()),
    ]


def _shared_tables() -> list[DocumentedTable]:
    return [
        _documented(SCORING_RUNS, scoring_runs_schema()),
        _documented(VALIDATION_RESULTS, validation_results_schema()),
        _documented(PROMOTIONS, promotions_schema()),
        *_health_tables(),
    ]
