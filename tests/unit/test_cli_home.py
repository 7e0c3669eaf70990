"""The `batchpred` console script, run as a user runs it, on a home of its own (a DuckDB file in
tmp_path). Commands on the shared warehouses are in tests/integration/test_cli.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.adapters.warehouse import open_warehouse

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


@pytest.mark.parametrize("value, message", [("2026-02-30", "2026-02-30 is not a date that exists"), ("20261128", "YYYY-MM-DD")])
def test_a_malformed_date_is_refused_naming_the_option(tmp_path, value, message):
    result = run("score", "churn", "--date", value, home=tmp_path)
    assert result.returncode == 2
    assert f"--date {message}" in result.stderr or ("--date must" in result.stderr and message in result.stderr), result.stderr
    assert "--as-of-date" not in result.stderr  # the option is --date
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_an_empty_home_says_there_is_no_raw_data_and_writes_nothing(tmp_path):
    result = run("score", "churn", "--date", "2026-01-31", home=tmp_path)
    assert result.returncode == 1
    assert "no raw data" in result.stderr and "batchpred generate" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not list(tmp_path.iterdir())


def test_an_unknown_model_is_refused_with_the_known_ones(tmp_path):
    result = run("score", "churm", "--date", "2026-01-31", home=tmp_path)
    assert result.returncode == 1
    assert "churm" in result.stderr and "known models: churn" in result.stderr
    assert "Traceback" not in result.stderr
