"""Every table the README documents exists once the warehouse is set up and a model has
published, empty or not, and carries its grain as table comment and a comment on every
column (COMMENT ON), so BI tools show what each column means."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines.adapters import transform
from pipelines.adapters.warehouse import catalog, comments, open_warehouse
from pipelines.adapters.warehouse.base import DocumentedTable
from pipelines.config.spec import Monitoring
from pipelines.usecases import steps
from tests.conftest import AS_OF, MODELS, score_date

README = Path(__file__).resolve().parent.parent / "README.md"
BATCHPRED = str(Path(sys.executable).with_name("batchpred"))
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


def readme_queries() -> list[str]:
    """Each SQL statement of the README's sql blocks, without its comment lines."""
    statements = []
    for block in re.findall(r"```sql\n(.*?)```", README.read_text(), re.S):
        for statement in block.split(";"):
            sql = "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--")).strip()
            if sql:
                statements.append(sql)
    return statements


def described(warehouse, schemas) -> dict[str, dict[str | None, str | None]]:
    """{'schema.table': {None: table comment, column: comment}} read from the catalogue as a
    BI tool does: DuckDB's duckdb_tables/duckdb_views/duckdb_columns, PostgreSQL's
    obj_description/col_description."""
    found: dict[str, dict[str | None, str | None]] = {}
    if warehouse.kind == "duckdb":
        in_schemas = "schema_name in (" + ", ".join(f"'{s}'" for s in schemas) + ")"
        for r in warehouse.query(
            f"select schema_name as s, table_name as t, comment from duckdb_tables() where {in_schemas} "
            f"union all select schema_name, view_name, comment from duckdb_views() where {in_schemas}"
        ).to_pylist():
            found[f"{r['s']}.{r['t']}"] = {None: r["comment"]}
        columns = f"select schema_name as s, table_name as t, column_name as c, comment from duckdb_columns() where {in_schemas}"
        for r in warehouse.query(columns).to_pylist():
            found[f"{r['s']}.{r['t']}"][r["c"]] = r["comment"]
        return found
    rows = warehouse.query(
        "select n.nspname as s, c.relname as t, a.attname as c, obj_description(c.oid, 'pg_class') as table_comment, "
        "col_description(c.oid, a.attnum) as comment from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped "
        "where c.relkind in ('r', 'v', 'm', 'p') and n.nspname = any(string_to_array($1, ','))",
        [",".join(schemas)],
    ).to_pylist()
    for r in rows:
        found.setdefault(f"{r['s']}.{r['t']}", {None: r["table_comment"]})[r["c"]] = r["comment"]
    return found


def uncommented(found: dict[str, dict[str | None, str | None]], tables) -> list[str]:
    missing = []
    for table in sorted(tables):
        texts = found.get(table)
        if texts is None:
            missing.append(f"{table} does not exist")
            continue
        missing += [f"{table}.{c}" if c else f"{table} (table)" for c, text in texts.items() if not (text or "").strip()]
    return missing


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
    tables = [
        *catalog._shared_tables(),
        *(catalog._documented(catalog._per_model(k, "m"), s, catalog.documented_name(k), ["customer_id"])
          for k, s in [("predictions", catalog.predictions_schema(key)), ("staging", catalog.staging_schema(key)),
                       ("quarantine", catalog.quarantine_schema(key)), ("shadow", catalog.shadow_schema(key)),
                       ("shadow_staging", catalog.shadow_schema(key, staged=True)), ("reasons", catalog.reasons_schema(key)),
                       ("reasons_staging", catalog.reasons_schema(key, staged=True))]),
    ]  # fmt: skip
    missing = [f"{t.schema}.{t.table}.{c}" for t in tables for c in t.arrow_schema.names if not t.columns.get(c)]
    assert not missing, f"add a comment text in pipelines/adapters/warehouse/comments.py for: {missing}"
    assert all(t.comment for t in tables)


@pytest.mark.parametrize("model", ["churn", "payment_risk"])
def test_every_documented_table_exists_after_a_first_publish_with_its_comments(settings, backend, model):
    from pipelines.config.spec import load_spec

    spec = load_spec(model)
    attempt, _, published = score_date(settings, spec)
    steps.build_marts(settings, spec, [attempt])
    warehouse = open_warehouse(settings.warehouse_url)
    if warehouse.table_columns("analytics", spec.labels_model) is None:
        # dbt creates the labels model when training first builds it, and the PostgreSQL
        # base was never trained on: build it as training does, for a labelled date.
        labelled = AS_OF - dt.timedelta(days=spec.training.label_horizon_days + 1)
        transform.build_labels(settings, spec, [labelled], with_features=True)
    tables = documented(model, spec.shards)
    found = described(warehouse, sorted({t.split(".")[0] for t in tables}))
    assert not uncommented(found, tables), f"{backend}: tables missing or columns without a comment: {uncommented(found, tables)}"
    # The comment is what batchpred says, read back exactly as written.
    assert found[f"predictions.{model}_scores"][None] == catalog.predictions(spec).grain
    assert found["monitoring.feature_drift"]["psi"] == comments.TABLES["monitoring.feature_drift"]["psi"]
    assert found[f"monitoring.{model}_quarantine"][spec.key_columns[0]] == comments.DOCUMENTED_KEY
    # Empty, but there: nothing was promoted, no challenger scored, no date monitored.
    for empty in ("monitoring.promotions", f"predictions.{model}_shadow_scores", "monitoring.daily_health"):
        assert warehouse.query(f"select count(*) as n from {empty}").to_pylist() == [{"n": 0}], empty
    quarantined = warehouse.query(f"select count(*) as n from monitoring.{model}_quarantine where as_of_date = $1", [AS_OF])
    assert quarantined.to_pylist() == [{"n": published.rows_quarantined}]


def test_the_readme_queries_run_after_a_first_publish(settings, spec, backend):
    attempt, _, published = score_date(settings, spec)
    steps.build_marts(settings, spec, [attempt])
    warehouse = open_warehouse(settings.warehouse_url)
    results = {}
    for sql in readme_queries():
        try:
            results[sql] = warehouse.query(sql).to_pylist()
        except Exception as exc:  # noqa: BLE001 - the message names the query that failed
            pytest.fail(f"{backend}: the README's query failed: {sql}\n{type(exc).__name__}: {exc}")
    quarantine = next(q for q in results if "from monitoring.churn_quarantine" in q)
    assert len(results[quarantine]) == published.rows_quarantined
    promotions = next(q for q in results if "from monitoring.promotions" in q)
    assert results[promotions] == []
    runs = next(q for q in results if "from monitoring.scoring_runs" in q)
    assert [(r["as_of_date"], r["status"]) for r in results[runs]] == [(AS_OF, "succeeded")]


@pytest.fixture(params=["duckdb", "postgres"])
def empty_warehouse_url(request, tmp_path):
    """The URL of a warehouse that does not exist yet (DuckDB) or is an empty database."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    from tests.services import create_database

    return create_database(request.getfixturevalue("postgres"), f"empty_{uuid.uuid4().hex[:12]}")


def test_setup_warehouse_creates_every_shared_table_with_comments(empty_warehouse_url, tmp_path):
    env = {**os.environ, "BATCHPRED_HOME": str(tmp_path), "BATCHPRED_WAREHOUSE_URL": empty_warehouse_url}
    for _ in range(2):  # running it again is harmless
        result = subprocess.run([BATCHPRED, "setup-warehouse"], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
    warehouse = open_warehouse(empty_warehouse_url)
    shared = {str(t) for t in (catalog.SCORING_RUNS, catalog.VALIDATION_RESULTS, catalog.PROMOTIONS, *catalog.HEALTH_TABLES)}
    shared.add(str(catalog.ALERT_DELIVERIES))
    assert shared >= {n for n in documented("churn") if "churn" not in n and n.startswith("monitoring.")}
    found = described(warehouse, ["monitoring"])
    assert not uncommented(found, shared), uncommented(found, shared)
    assert found["monitoring.promotions"][None] == catalog.PROMOTIONS.grain
    for table in sorted(shared):
        assert warehouse.query(f"select count(*) as n from {table}").to_pylist() == [{"n": 0}], table


def test_a_column_added_by_a_later_batchpred_gets_its_comment(empty_warehouse_url):
    warehouse = open_warehouse(empty_warehouse_url, create=True)
    t = catalog.DAILY_HEALTH
    full = catalog.health_schema(t)
    older = full.remove(full.get_field_index("null_reason"))  # as an older batchpred created it
    warehouse.ensure_schemas()
    warehouse.ensure_table(t.schema, t.name, older)
    warehouse.execute(
        "insert into monitoring.daily_health (model_name, model_version, as_of_date, status) values ('churn', 1, $1, 'ok')",
        [AS_OF],
    )
    catalog.ensure_shared_tables(warehouse)
    found = described(warehouse, ["monitoring"])["monitoring.daily_health"]
    assert found["null_reason"] == comments.TABLES["monitoring.daily_health"]["null_reason"]
    assert found[None] == t.grain
    rows = warehouse.query("select status, null_reason from monitoring.daily_health").to_pylist()
    assert rows == [{"status": "ok", "null_reason": None}]  # the old row kept, the new column empty


def test_comment_texts_are_quoted_as_sql_strings(empty_warehouse_url):
    warehouse = open_warehouse(empty_warehouse_url, create=True)
    text = "it's a 'quoted' text; -- not a comment */ $$ nor a dollar quote"
    table = DocumentedTable("monitoring", "quoting", pa.schema([("a", pa.int64())]), text, {"a": text + " (column)"})
    warehouse.ensure_tables([table])
    warehouse.ensure_tables([table])
    found = described(warehouse, ["monitoring"])["monitoring.quoting"]
    assert found == {None: text, "a": text + " (column)"}
    with pytest.raises(ValueError, match="backslash"):
        warehouse.ensure_tables([DocumentedTable("monitoring", "quoting", table.arrow_schema, "a \\ b", {})])
