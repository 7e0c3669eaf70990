"""One CLI grammar: every command has --help and --json, and a malformed command line gets
exit code 2 and the one error style (`error: ...`, no traceback), whatever the command.

Run in-process through `main(args)`, the console script's entry point, on an empty home in
tmp_path: a malformed command line is refused before anything is read or written. Each
command's --json output is checked in tests/integration/test_cli_json.py (and, for `demo`
and `ui`, in tests/system/test_demo.py and tests/system/test_ui.py).
"""

from __future__ import annotations

import pytest

from pipelines.faces.cli import cli, main

COMMANDS = sorted(cli.commands)


def batchpred(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `batchpred ARGS`."""
    with pytest.raises(SystemExit) as ended:
        main(list(args))
    out, err = capsys.readouterr()
    return int(ended.value.code or 0), out, err


@pytest.fixture(autouse=True)
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHPRED_HOME", str(tmp_path))
    monkeypatch.delenv("BATCHPRED_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield tmp_path
    assert not list(tmp_path.iterdir()), "a refused command line wrote to the home"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_json(capsys, command):
    code, out, err = batchpred(capsys, command, "--help")
    assert (code, err) == (0, "")
    assert f"Usage: batchpred {command}" in out and "--json" in out and "Print the result as JSON" in out


# One malformed command line per command, and the same mistake in every command that takes
# a range: the message names the option and the value.
AFTER = ["--start", "2026-01-31", "--end", "2026-01-30"]
MALFORMED = {
    "backfill": (["churn", *AFTER], "--start 2026-01-31 is after --end 2026-01-30"),
    "demo": (["--end", "20260131"], "'--end': --end must be a date written YYYY-MM-DD; got '20260131'"),
    "generate": (["--customers", "many"], "'--customers': 'many' is not a valid integer"),
    "monitor": (["churn", *AFTER], "--start 2026-01-31 is after --end 2026-01-30"),
    "promote": (["churn", "--alias", "champion"], "missing option '--version'"),
    "report": (["churn", "--date", "2026-02-30"], "--date 2026-02-30 is not a date that exists"),
    "score": (["churn"], "missing option '--date'"),
    "setup-warehouse": (["dashboards"], "got unexpected extra argument (dashboards)"),
    "train": (["churn", "--date", "2026-01-31", "--force-promote", "--nope"], "no such option '--nope'"),
    "ui": (["--port", "0"], "'--port': 0 is not in the range 1<=x<=65535"),
    "unpublish": (["churn", *AFTER], "--start 2026-01-31 is after --end 2026-01-30"),
}


def test_every_command_has_a_malformed_case():
    assert sorted(MALFORMED) == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_a_malformed_command_line_exits_2_in_the_one_style(capsys, command):
    args, message = MALFORMED[command]
    code, out, err = batchpred(capsys, command, *args)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"Usage: batchpred {command} ")
    assert lines[1].startswith("error: ") and message in lines[1], err
    assert lines[2] == f"try 'batchpred {command} --help'"
    assert "Traceback" not in err and "Error:" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["monitor", "churn"],
        ["monitor", "churn", "--date", "2026-01-31", "--start", "2026-01-01"],
        ["unpublish", "churn", "--start", "2026-01-01"],
    ],
)
def test_date_or_range_is_a_usage_error(capsys, args):
    code, _, err = batchpred(capsys, *args)
    assert code == 2 and "error: give --date D, or --start A and --end B" in err


def test_a_refused_request_exits_1_in_the_same_style(capsys):
    code, out, err = batchpred(capsys, "score", "churm", "--date", "2026-01-31")
    assert (code, out) == (1, "")
    assert err.startswith("error: no model spec at ") and "known models: churn" in err
    assert len(err.splitlines()) == 1
