"""The `batchpred` console script, run as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

from pipelines.warehouse import open_warehouse

BATCHPRED = str(Path(sys.executable).with_name("batchpred"))


def run(*args, home, **env):
    return subprocess.run(
        [BATCHPRED, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "BATCHPRED_HOME": str(home), **env},
    )


def test_generate_writes_raw_tables(tmp_path):
    result = run("generate", "--customers", "300", "--days", "40", "--end", "2026-01-31", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "raw.customers" in result.stdout
    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    assert warehouse.query("select count(*) as n from raw.customers").to_pylist() == [{"n": 300}]


def test_a_malformed_date_is_refused_naming_the_option(tmp_path):
    result = run("score", "churn", "--date", "2026-02-30", home=tmp_path)
    assert result.returncode == 2
    assert "--date" in result.stderr and "YYYY-MM-DD" in result.stderr
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_an_unknown_model_is_refused_with_the_known_ones(tmp_path):
    result = run("score", "churm", "--date", "2026-01-31", home=tmp_path)
    assert result.returncode == 1
    assert "churm" in result.stderr and "known models: churn" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_alias_is_refused_and_nothing_is_scored(settings, warehouse):
    result = run(
        "score",
        "churn",
        "--date",
        "2026-01-31",
        "--alias",
        "nope",
        home=settings.home,
        MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri,
        BATCHPRED_WAREHOUSE_URL=settings.warehouse_url,
    )
    assert result.returncode == 1
    assert "no alias 'nope'" in result.stderr
    assert warehouse.table_columns("predictions", "churn_scores") is None
