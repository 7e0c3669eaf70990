"""Command figures: the interactive commands a person types, timed as a whole from launch to
exit (interpreter, imports, dbt, GX, MLflow, the warehouse), on the embedded default (a
DuckDB file, MLflow on SQLite) with one date of about 10k rows.

    uv run python -m bench.commands [--customers 18000] [--repeats 3]

The demo business is generated and churn trained on it with the real CLI (untimed), and the
date scored once (untimed: dbt's first parse of the project). Then each command runs
`--repeats` times in a fresh process:

  command_startup    `batchpred --help`: the interpreter and the CLI's own imports
  command_score      `batchpred score churn --date D` (replaces the date each time)
  command_monitor    `batchpred monitor churn --date D` (health, realized performance, report)
  command_report     `batchpred report churn --date D`
  command_unpublish  `batchpred unpublish churn --date D` (the date is scored again, untimed, after each)

Each figure's note gives where the time went in the median run, from when each line of its
`-v` log arrived: the time to the first line (interpreter and imports) and the longest gaps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import DAY, Figure, child_env
from pipelines.config.settings import REPO_ROOT, Settings

BATCHPRED = str(Path(sys.executable).with_name("batchpred"))
ACTIVE_SHARE = 0.56  # share of customers active on a date in the demo business (bench/backfill.py)


def _run(settings: Settings, *args: str, verbose: bool = False) -> tuple[float, list[tuple[float, str]]]:
    """Run `batchpred [-v] args`; return (wall seconds, each stderr line with the seconds since
    launch at which it arrived: Python's stderr is line-buffered, so that is when it was logged)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [BATCHPRED, *(["-v"] if verbose else []), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=child_env(settings), cwd=REPO_ROOT,
    )  # fmt: skip
    assert process.stderr is not None
    lines = [(time.perf_counter() - started, line.rstrip()) for line in process.stderr]
    code = process.wait()
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"batchpred {' '.join(args)} exited with {code}:\n" + "\n".join(line for _, line in lines[-30:]))
    return wall, lines


def _breakdown(wall: float, lines: list[tuple[float, str]]) -> str:
    """Where a run's time went: before its first log line (interpreter, imports, opening the
    warehouse and the registry), the three longest gaps between lines, and after the last."""
    if not lines:
        return f"{wall:.1f} s, no -v log to break down"
    parts = [f"{lines[0][0]:.1f} s to the first log line"]
    gaps = sorted(((b[0] - a[0], a[1][:60]) for a, b in zip(lines, lines[1:], strict=False)), reverse=True)[:3]
    parts += [f"{seconds:.1f} s after '{what}'" for seconds, what in gaps if seconds >= 0.3]
    parts.append(f"{wall - lines[-1][0]:.1f} s after the last")
    return "; ".join(parts)


def run(settings: Settings, customers: int, repeats: int, end: dt.date = DAY) -> list[Figure]:
    day = end.isoformat()
    _run(settings, "generate", "--customers", str(customers), "--end", day)
    _run(settings, "train", "churn", "--date", day)
    _run(settings, "score", "churn", "--date", day)
    rows = json.loads(subprocess.run(
        [BATCHPRED, "score", "churn", "--date", day, "--json"], capture_output=True, text=True, check=True,
        env=child_env(settings), cwd=REPO_ROOT,
    ).stdout)["rows_scored"]  # fmt: skip

    def timed(name: str, args: list[str], after: list[str] | None = None) -> Figure:
        runs = []
        for _ in range(repeats):
            runs.append(_run(settings, *args, verbose=True))
            if after:
                _run(settings, *after)
        median = statistics.median(r[0] for r in runs)
        wall, lines = min(runs, key=lambda r: abs(r[0] - median))
        note = f"`batchpred {' '.join(args)}`, {rows:,} rows; {_breakdown(wall, lines)}"
        return Figure(name, "duckdb", rows, [r[0] for r in runs], "s", note=note)

    figures = [Figure("command_startup", "duckdb", None, [_run(settings, "--help")[0] for _ in range(repeats)], "s",
                      note="`batchpred --help`: the interpreter and the CLI's imports")]  # fmt: skip
    figures.append(timed("command_score", ["score", "churn", "--date", day]))
    figures.append(timed("command_monitor", ["monitor", "churn", "--date", day]))
    figures.append(timed("command_report", ["report", "churn", "--date", day]))
    figures.append(timed("command_unpublish", ["unpublish", "churn", "--date", day], after=["score", "churn", "--date", day]))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=round(10_000 / ACTIVE_SHARE))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="batchpred-bench-commands-") as home:
        settings = Settings.from_env({"BATCHPRED_HOME": home})
        for f in run(settings, args.customers, args.repeats):
            d = f.as_dict()
            print(f"{f.figure:<18} median {d['median']:6.2f} s  (min {d['min']:.2f}, max {d['max']:.2f})  {f.note}")


if __name__ == "__main__":
    main()
