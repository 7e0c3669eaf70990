"""Every table the README documents exists once the warehouse is set up and a model has
published, empty or not, and carries its grain as table comment and a comment on every
column (COMMENT ON), so BI tools show what each column means."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import resources

from pipelines.adapters.warehouse import comments, open_warehouse, tables
from pipelines.adapters.warehouse.base import DocumentedTable
from pipelines.usecases import steps
from tests.conftest import AS_OF, score_date
from tests.unit.test_table_docs import README, documented

BATCHPRED = str(Path(sys.executable).with_name("batchpred"))


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


@pytest.mark.parametrize("model", ["churn", "payment_risk"])
def test_every_documented_table_exists_after_a_first_publish_with_its_comments(settings, backend, model):
    from pipelines.config.spec import load_spec

    spec = load_spec(model)
    attempt, _, published = score_date(settings, spec)
    steps.build_marts(resources(settings), spec, [attempt])
    warehouse = open_warehouse(settings.warehouse_url)
    if warehouse.table_columns("analytics", spec.labels_model) is None:
        # dbt creates the labels model when training first builds it, and the PostgreSQL
        # base was never trained on: build it as training does, for a labelled date.
        labelled = AS_OF - dt.timedelta(days=spec.training.label_horizon_days + 1)
        resources(settings).dbt.build_labels(spec, [labelled], with_features=True)
    wanted = documented(model, spec.shards)
    found = described(warehouse, sorted({t.split(".")[0] for t in wanted}))
    assert not uncommented(found, wanted), f"{backend}: tables missing or columns without a comment: {uncommented(found, wanted)}"
    # The comment is what batchpred says, read back exactly as written.
    assert found[f"predictions.{model}_scores"][None] == tables.predictions(spec).grain
    assert found["monitoring.feature_drift"]["psi"] == comments.TABLES["monitoring.feature_drift"]["psi"]
    assert found[f"monitoring.{model}_quarantine"][spec.key_columns[0]] == comments.DOCUMENTED_KEY
    # Empty, but there: nothing was promoted, no challenger scored, no date monitored.
    for empty in ("monitoring.promotions", f"predictions.{model}_shadow_scores", "monitoring.daily_health"):
        assert warehouse.query(f"select count(*) as n from {empty}").to_pylist() == [{"n": 0}], empty
    quarantined = warehouse.query(f"select count(*) as n from monitoring.{model}_quarantine where as_of_date = $1", [AS_OF])
    assert quarantined.to_pylist() == [{"n": published.rows_quarantined}]


def test_the_readme_queries_run_after_a_first_publish(settings, spec, backend):
    attempt, _, published = score_date(settings, spec)
    steps.build_marts(resources(settings), spec, [attempt])
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
    shared = {str(t) for t in (tables.SCORING_RUNS, tables.VALIDATION_RESULTS, tables.PROMOTIONS, *tables.HEALTH_TABLES)}
    shared.add(str(tables.ALERT_DELIVERIES))
    assert shared >= {n for n in documented("churn") if "churn" not in n and n.startswith("monitoring.")}
    found = described(warehouse, ["monitoring"])
    assert not uncommented(found, shared), uncommented(found, shared)
    assert found["monitoring.promotions"][None] == tables.PROMOTIONS.grain
    for table in sorted(shared):
        assert warehouse.query(f"select count(*) as n from {table}").to_pylist() == [{"n": 0}], table


def test_a_column_added_by_a_later_batchpred_gets_its_comment(empty_warehouse_url):
    warehouse = open_warehouse(empty_warehouse_url, create=True)
    t = tables.DAILY_HEALTH
    full = tables.health_schema(t)
    older = full.remove(full.get_field_index("null_reason"))  # as an older batchpred created it
    warehouse.ensure_schemas()
    warehouse.ensure_table(t.schema, t.name, older)
    warehouse.execute(
        "insert into monitoring.daily_health (model_name, model_version, as_of_date, status) values ('churn', 1, $1, 'ok')",
        [AS_OF],
    )
    tables.ensure_shared_tables(warehouse)
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
