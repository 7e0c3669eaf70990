"""Every command's --json, walked the way a script would: generate, set up, train, score,
backfill, monitor, report, promote and unpublish, each printing one JSON object on stdout
(its lines for people go to stderr). `demo --json` and `ui --json` are in the system tier
(tests/system/test_demo.py, tests/system/test_ui.py).

On a DuckDB file in tmp_path only: the grammar is the CLI's, the same on either warehouse,
and each use case runs on both in its own tests. In-process through `main(args)`, the
console script's entry point, except the one command whose log lines are checked.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.faces.cli import main

AS_OF = dt.date(2026, 1, 31)
BEFORE = AS_OF - dt.timedelta(days=1)
BATCHPRED = str(Path(sys.executable).with_name("batchpred"))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHPRED_HOME", str(tmp_path))
    monkeypatch.delenv("BATCHPRED_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def json_of(capsys, *args: str) -> tuple[dict, str]:
    """`batchpred ARGS --json`: its JSON (it must succeed and print nothing else on stdout) and its stderr."""
    with pytest.raises(SystemExit) as ended:
        main([*args, "--json"])
    out, err = capsys.readouterr()
    assert ended.value.code == 0, err
    return json.loads(out), err


def test_every_command_prints_its_result_as_json(home, capsys):
    # The least data churn trains on (see tests/unit/test_usecases.py).
    made, _ = json_of(capsys, "generate", "--customers", "400", "--days", "148", "--end", str(AS_OF), "--seed", "7")
    assert made["end_date"] == str(AS_OF) and made["rows"]["customers"] == 400

    ready, _ = json_of(capsys, "setup-warehouse")
    assert ready == {"warehouse": f"duckdb:///{home / 'warehouse.duckdb'}", "bi_role": None}

    trained, _ = json_of(capsys, "train", "churn", "--date", str(AS_OF))
    assert trained["model_version"] == 1 and trained["promoted"] is True and trained["champion_version"] is None
    assert 0.5 < trained["metrics"]["auc"] <= 1

    # As a script runs it, with -v: the JSON on stdout, what each step does on stderr.
    run = subprocess.run([BATCHPRED, "-v", "score", "churn", "--date", str(AS_OF), "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    scored = json.loads(run.stdout)
    assert scored["model_version"] == 1 and scored["rows_scored"] > 0 and scored["table"] == "predictions.churn_scores"
    assert f"INFO scoring as-of date {AS_OF} with models:/churn/1 (alias @champion)" in run.stderr.splitlines()
    assert "DEBUG" not in run.stderr

    plan, _ = json_of(capsys, "backfill", "churn", "--start", str(BEFORE), "--end", str(AS_OF), "--only", "missing", "--dry-run")
    assert plan["dates"] == [{"as_of_date": str(BEFORE), "existing_versions": []}] and plan["outcomes"] == []

    done, err = json_of(capsys, "backfill", "churn", "--start", str(BEFORE), "--end", str(AS_OF), "--only", "missing")
    [outcome] = done["outcomes"]
    assert outcome["as_of_date"] == str(BEFORE) and outcome["ok"] is True and outcome["error"] is None
    totals = done["totals"]
    assert (totals["dates"], totals["ok"], totals["failed"]) == (1, 1, 0) and totals["rows"] == outcome["rows"] > 0
    # Not a terminal: a whole line per date on stderr, not a progress bar.
    assert f"[1/1] churn {BEFORE}  ok  {outcome['rows']:,} rows, 0 quarantined" in err

    monitored, _ = json_of(capsys, "monitor", "churn", "--date", str(AS_OF))
    [health] = monitored["health"]
    assert health["as_of_date"] == str(AS_OF) and health["version"] == 1 and health["status"] in ("ok", "warn", "alert")
    assert [Path(p).name for p in monitored["reports"]] == [f"{AS_OF}.html"]

    reported, _ = json_of(capsys, "report", "churn", "--date", str(AS_OF), "--days", "7", "--out", str(home / "r.html"))
    assert reported == {"model": "churn", "as_of_date": str(AS_OF), "days": 7, "path": str(home / "r.html")}
    assert (home / "r.html").read_text().startswith("<!doctype html>")

    promoted, err = json_of(capsys, "promote", "churn", "--version", "1", "--alias", "challenger", "--reason", "walk", "--force")
    moved = (promoted["alias"], promoted["before_version"], promoted["version"], promoted["forced"])
    assert moved == ("challenger", None, 1, True)
    assert promoted["shadow_record"]["summary"] == "no shadow history" and "version 1: no shadow history" in err

    # With -vv, dbt's own progress (which dbt prints to stdout) goes to stderr: stdout stays JSON.
    command = [BATCHPRED, "-vv", "unpublish", "churn", "--date", str(BEFORE), "--json"]
    run = subprocess.run(command, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    removed = json.loads(run.stdout)
    assert removed["dates"] == [str(BEFORE)] and removed["removed"]["predictions.churn_scores"] == outcome["rows"]
    assert "Running with dbt=" in run.stderr and "DEBUG sql: " in run.stderr


def test_vv_adds_the_sql_and_no_flag_is_quiet(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("BATCHPRED_WAREHOUSE_URL", "MLFLOW_TRACKING_URI")}

    def setup(*flags: str) -> subprocess.CompletedProcess:
        command = [BATCHPRED, *flags, "setup-warehouse"]
        return subprocess.run(command, capture_output=True, text=True, env=env | {"BATCHPRED_HOME": str(tmp_path)})

    quiet, info, debug = setup(), setup("-v"), setup("-vv")
    assert (quiet.returncode, quiet.stderr) == (0, "") and (info.returncode, info.stderr) == (0, "")
    assert debug.returncode == 0 and 'DEBUG sql: create schema if not exists "monitoring"' in debug.stderr.splitlines()
