"""The README names the tables batchpred writes, and every column has a comment text, checked
without a warehouse (tests/integration/test_tables.py checks the tables themselves)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pyarrow as pa

from pipelines.adapters.warehouse import tables
from pipelines.config.spec import Monitoring
from tests.conftest import MODELS

README = Path(__file__).resolve().parents[2] / "README.md"
# The README writes model.yaml's monitoring keys as monitoring.<key>: those are not tables.
NOT_TABLES = {f"monitoring.{f.name}" for f in dataclasses.fields(Monitoring)}


def documented(model: str, shards: int = 1) -> set[str]:
    """Every table the README names, as schema.table for `model` (the staging copy only
    for a sharded model: "with shards: 1 the shard writes the date directly")."""
    text = README.read_text()
    names = set(re.findall(r"(?<![/\w])((?:monitoring|predictions|marts|analytics)\.(?:<model>)?[a-z_]+)", text))
    # The model-health table names its tables without their schema; the text names the labels model so too.
    health = re.search(r"^\| table \(schema `monitoring`\) \|.*?\n\n", text, re.M | re.S).group(0)
    names |= {f"monitoring.{n}" for n in re.findall(r"^\| `([a-z_]+)` \|", health, re.M)}
    names |= {f"analytics.{n}" for n in re.findall(r"`(<model>_labels)`", text)}
    names = {n.replace("<model>", model) for n in names - NOT_TABLES}
    others = tuple(f".{m}_" for m in MODELS if m != model)
    return {n for n in names if not any(o in n for o in others) and (shards > 1 or not n.endswith("_staging"))}


def test_the_readme_names_the_tables_this_test_checks():
    names = documented("churn", shards=2)
    assert {
        "predictions.churn_scores", "predictions.churn_shadow_scores", "predictions.churn_reasons",
        "monitoring.churn_quarantine", "monitoring.promotions", "monitoring.scoring_runs", "monitoring.validation_results",
        "monitoring.feature_drift", "monitoring.daily_health", "monitoring.shadow_comparison",
        "monitoring.feature_attributions", "marts.churn_latest_scores", "marts.churn_daily_summary", "marts.churn_health",
        "analytics.churn_features", "analytics.churn_labels", "analytics.churn_scores_staging",
    } <= names, names  # fmt: skip
    assert not any("payment_risk" in n for n in names) and "monitoring.attribution_ndcg_alert" not in names


def test_every_column_batchpred_writes_has_a_comment_text():
    key = [pa.field("customer_id", pa.int64(), nullable=False)]
    declared = [
        *tables._shared_tables(),
        *(tables._documented(tables._per_model(k, "m"), s, tables.documented_name(k), ["customer_id"])
          for k, s in [("predictions", tables.predictions_schema(key)), ("staging", tables.staging_schema(key)),
                       ("quarantine", tables.quarantine_schema(key)), ("shadow", tables.shadow_schema(key)),
                       ("shadow_staging", tables.shadow_schema(key, staged=True)), ("reasons", tables.reasons_schema(key)),
                       ("reasons_staging", tables.reasons_schema(key, staged=True)),
                       ("profile_staging", tables.profile_staging_schema())]),
    ]  # fmt: skip
    missing = [f"{t.schema}.{t.table}.{c}" for t in declared for c in t.arrow_schema.names if not t.columns.get(c)]
    assert not missing, f"add a comment text in pipelines/adapters/warehouse/comments.py for: {missing}"
    assert all(t.comment for t in declared)
