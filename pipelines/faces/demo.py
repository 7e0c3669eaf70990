"""`batchpred demo`: the whole product on the embedded default, in one command.

It generates a demo warehouse, trains and registers both demo models (churn, with
integer customer ids, and payment_risk, with text invoice numbers) on the data known
before the history starts, fills the history (the dates before the last, scored as
`batchpred backfill` scores them and monitored as `batchpred monitor` monitors them),
runs each model's real `<model>_score` and `<model>_monitor` DAGs through Airflow
(`airflow dags test`, SQLite metadata, no server) for the last date, then prints what a
dashboard would see and what to do next.
Running it again rebuilds the same tables: every write replaces, none appends.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipelines import report
from pipelines.adapters.resources import Resources
from pipelines.adapters.warehouse import queries, safe_url, tables
from pipelines.config.settings import DAGS_DIR, Settings
from pipelines.config.spec import ModelSpec, load_spec
from pipelines.domain.errors import BatchpredError
from pipelines.faces.demo_data import DemoConfig, generate
from pipelines.usecases.models import train

if TYPE_CHECKING:
    import pyarrow as pa

WAREHOUSE_POOL = "batchpred_warehouse"
DEMO_MODELS = ("churn", "payment_risk")
CHALLENGER = "challenger"
HISTORY_DAYS = 60  # dates scored before the last, so the report has a history to draw
DRIFT_DAYS = 21  # by default the business's behaviour shifts this many days before the last date
PROGRESS_EVERY = 10  # dates between progress lines


def load_demo_data(res: Resources, config: DemoConfig) -> dict[str, int]:
    """Generate the demo business and replace schema raw with it, in one transaction. A new
    DuckDB file is made only if `res` was built to create one (`Resources.from_settings(settings, create=True)`)."""
    raw = generate(config)
    tables.ensure_shared_tables(res.warehouse)  # the documented tables exist before anything is scored
    res.warehouse.replace_tables("raw", raw)
    return {name: table.num_rows for name, table in raw.items()}


# What the embedded Airflow needs before its first run: its metadata database, and the pool
# that serialises the DAGs' writers to the DuckDB file.
SETUP_AIRFLOW = (
    ["db", "migrate"],
    ["pools", "set", WAREHOUSE_POOL, "1", "Serialises writers to the DuckDB warehouse"],
)


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment for an embedded Airflow: SQLite metadata under $BATCHPRED_HOME, this repo's DAGs."""
    home = settings.home / "airflow"
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "BATCHPRED_HOME": str(settings.home),
        "BATCHPRED_WAREHOUSE_URL": settings.warehouse_url,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        # Airflow's own start-up warnings (no graphviz for rendering graphs; starlette's
        # deprecation inside `dags test`'s in-process API client) say nothing about the run.
        "PYTHONWARNINGS": "ignore:Could not import graphviz:UserWarning,ignore:Using `httpx` with:UserWarning",
    }


def write_airflow_cfg(settings: Settings) -> Path:
    """The embedded Airflow's airflow.cfg, written before Airflow first runs (it would write one
    pointing at a DAG folder that does not exist, with the example DAGs on)."""
    import secrets

    from cryptography.fernet import Fernet

    path = settings.home / "airflow" / "airflow.cfg"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)  # it holds this home's keys
        path.write_text(
            "# Written by batchpred for the embedded default (pipelines/faces/demo.py); Airflow's defaults apply to the rest.\n"
            f"[core]\ndags_folder = {DAGS_DIR}\nload_examples = False\nunit_test_mode = False\n"
            f"fernet_key = {Fernet.generate_key().decode()}\n\n"
            f"[api_auth]\njwt_secret = {secrets.token_urlsafe(32)}\n"
        )
    return path


def run_airflow(settings: Settings, *commands: list[str], log_name: str) -> None:
    """Run `airflow` CLI commands in order, in one process (dags/airflow_commands.py: Airflow's
    start-up is paid once), with the embedded environment; their output goes to a log file."""
    write_airflow_cfg(settings)
    log_path = settings.home / "logs" / f"{log_name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    runner = [sys.executable, str(DAGS_DIR / "airflow_commands.py"), json.dumps(commands)]
    with log_path.open("w") as out:
        code = subprocess.call(runner, env=airflow_env(settings), stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-40:])
        what = "; ".join(f"airflow {' '.join(c)}" for c in commands)
        raise BatchpredError(f"`{what}` failed (exit {code}); its log is {log_path}:\n{tail}")


def run_demo(
    settings: Settings,
    customers: int,
    end: dt.date,
    drift_from: dt.date | None = None,
    models: tuple[str, ...] = DEMO_MODELS,
    history: int = HISTORY_DAYS,
) -> dict[str, Any]:
    """Generate the demo business ending `end` (its behaviour shifting from `drift_from`, if
    given), train each model on the data known before the `history` dates before `end`,
    score and monitor those dates as a backfill does, run each model's score and monitor
    DAGs through Airflow for `end`, and print what the dashboards see, the date's health
    and what to do next. Returns what was made and where it lives (what `batchpred demo
    --json` prints)."""
    specs = [load_spec(model) for model in models]
    first = end - dt.timedelta(days=history)  # the first date scored
    settings.home.mkdir(parents=True, exist_ok=True)
    res = Resources.from_settings(settings, create=True)  # the demo makes the warehouse file
    versions: dict[str, dict[str, int]] = {spec.name: {} for spec in specs}

    def stage(message: str) -> float:
        click.echo(click.style(f"==> {message}", bold=True))
        return time.perf_counter()

    drifting = f", behaviour shifting from {drift_from}" if drift_from else ""
    began = stage(f"generating {customers:,} customers of demo data ending {end}{drifting}")
    config = DemoConfig(customers=customers, end_date=end, drift_from=drift_from)
    counts = load_demo_data(res, config)
    click.echo("    " + ", ".join(f"raw.{t}: {n:,}" for t, n in counts.items()))

    for spec in specs:
        # Each champion knows only the data before the first date it scores, so every date
        # of the history is new to it (and is monitored as such). The first model also gets
        # a challenger, trained on all the data, which scores beside it in the shadow.
        shadowed = spec is specs[0] and CHALLENGER in spec.shadow_aliases
        known = min(first, end - dt.timedelta(days=14)) if shadowed else first
        plan = [(spec.alias, known), (CHALLENGER, end)] if shadowed else [(spec.alias, known)]
        for alias, day in plan:
            started = stage(f"training {spec.name} on data known up to {day}" + (f" (@{alias})" if shadowed else ""))
            trained = train(res, spec, day, alias=alias)
            versions[spec.name][alias] = trained.model.version
            click.echo(
                f"    version {trained.model.version}: validation AUC {trained.metrics['auc']:.3f}, "
                f"PR-AUC {trained.metrics['pr_auc']:.3f} in {time.perf_counter() - started:.0f}s; {trained.verdict}"
            )

    filled = {spec.name: fill_history(res, spec, first, end - dt.timedelta(days=1), stage) for spec in specs} if history else {}

    started = stage(f"running {', '.join(s.score_dag_id for s in specs)} through Airflow for as-of date {end}")
    # No logical date: each run is dated now, so it never takes the logical date of a
    # scheduled run (unpausing the DAG later just works); the date is a run parameter.
    conf = json.dumps({"as_of_date": end.isoformat()})
    run_airflow(
        settings,
        *SETUP_AIRFLOW,
        *[["dags", "test", dag_id, "-c", conf] for spec in specs for dag_id in (spec.score_dag_id, spec.monitor_dag_id)],
        log_name=f"airflow-dag-runs-{end}",
    )
    click.echo(f"    DAG runs succeeded in {time.perf_counter() - started:.0f}s (logs: {settings.home / 'logs'})")

    for spec in specs:
        show_dashboard(res, spec, end)
    click.echo(click.style(f"\nModel health of {end} (monitoring.daily_health, monitoring.alerts):", bold=True))
    for spec in specs:
        show_health(res, spec, end)
    click.echo(click.style(f"\nModel-health reports of {end} (written by the monitor DAGs; open in a browser):", bold=True))
    reports = {spec.name: report.default_path(settings, spec.name, end) for spec in specs}
    for name, path in reports.items():
        click.echo(f"  {name:<14} {path.as_uri() if path.exists() else 'missing: see the monitor DAG log'}")
    embedded_mlflow = settings.mlflow_tracking_uri.startswith("sqlite:")
    artifacts = f"  (artifacts: {settings.mlflow_artifact_root})" if embedded_mlflow else ""
    where = {
        "warehouse": safe_url(settings.warehouse_url),
        "MLflow": safe_url(settings.mlflow_tracking_uri) + artifacts,
        "Airflow": f"{settings.home / 'airflow'}  (AIRFLOW_HOME; DAGs from {DAGS_DIR})",
        "logs": str(settings.home / "logs"),
        "reports": str(settings.home / "reports"),
    }
    seconds = time.perf_counter() - began
    click.echo(click.style(f"\nDone in {seconds:.0f}s. Where everything lives:", bold=True))
    for label, place in where.items():
        click.echo(f"  {label:<10} {place}")
    name = specs[0].name
    click.echo(click.style("\nWhat next:", bold=True))
    steps = {
        "open the report": str(reports[name]) if reports[name].exists() else None,
        "the Airflow UI": "make ui   (or batchpred ui), then trigger or unpause the DAGs",
        "score a range again": f"batchpred backfill {name} --start {first} --end {end}   (each date is replaced)",
        "monitor it again": f"batchpred monitor {name} --start {first} --end {end}",
        "your own model": "docs/adding-a-model.md",
    }
    for label, step in steps.items():
        if step is not None:
            click.echo(f"  {label:<22}{step}")
    return {
        "as_of_date": end,
        "seconds": round(seconds, 1),
        "models": {
            spec.name: {
                "versions": versions[spec.name],
                "history": filled.get(spec.name, {"dates": 0}),
                "predictions": tables.predictions(spec),
                "report": str(reports[spec.name]) if reports[spec.name].exists() else None,
            }
            for spec in specs
        },
        "where": {label.lower(): place for label, place in where.items()},
    }


def fill_history(
    res: Resources, spec: ModelSpec, start: dt.date, end: dt.date, stage: Callable[[str], float]
) -> dict[str, Any]:
    """Score start..end with the champion as `batchpred backfill` does, then monitor those
    dates as `batchpred monitor` does, saying how far it got every PROGRESS_EVERY dates.
    Refuses (BatchpredError) a date that fails: the demo's data has every date complete."""
    from pipelines.usecases import backfill
    from pipelines.usecases.health import monitor_dates

    began = stage(f"filling {spec.name}'s history: scoring {start}..{end} as `batchpred backfill` does")
    # Without the shadow: the demo's challenger learned from these dates (it is trained on all
    # the data), and judging it on them would favour it. It shadows the champion from the last date on.
    planned = replace(backfill.plan(res, spec, start, end, only=None), shadows=[], shadow_skipped=[])
    total = len(planned.dates)
    done = {"scored": 0, "monitored": 0}

    def progress(what: str, since: float) -> None:
        done[what] += 1
        if done[what] % PROGRESS_EVERY == 0 or done[what] == total:
            click.echo(f"    {what} {done[what]}/{total} dates ({time.perf_counter() - since:.0f}s)")

    outcomes = backfill.run(res, spec, planned, lambda _: progress("scored", began))
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise BatchpredError(f"{spec.name}: scoring {failed[0].as_of_date} for the history failed: {failed[0].error}")
    rows = sum(o.rows for o in outcomes)
    began_monitoring = stage(f"monitoring {spec.name}'s {total} dates as `batchpred monitor` does")
    dates = {str(d) for d in planned.dates}  # monitor_dates names each date, then its other stages
    found = monitor_dates(
        res, spec, dict.fromkeys(planned.dates), lambda label: progress("monitored", began_monitoring) if label in dates else None
    )
    alerts = sum(len(h.alerts) for h in found.health)
    click.echo(
        f"    {total} dates, {rows:,} rows scored, {len(found.realized)} with realized performance (labels complete), "
        f"{alerts} alert(s), in {time.perf_counter() - began:.0f}s"
    )
    return {"dates": total, "first": start, "last": end, "rows": rows, "realized": len(found.realized), "alerts": alerts}


def show_dashboard(res: Resources, spec: ModelSpec, as_of_date: dt.date) -> None:
    """Say the rows a dashboard would read from the marts."""
    top, summary = queries.dashboard_view(res.warehouse, spec, as_of_date)
    click.echo(click.style(f"\nmarts.{spec.name}_latest_scores (highest risk first):", bold=True))
    click.echo(_table(top))
    click.echo(click.style(f"\nmarts.{spec.name}_daily_summary for {as_of_date}:", bold=True))
    click.echo(_table(summary))


def show_health(res: Resources, spec: ModelSpec, as_of_date: dt.date) -> None:
    """Print the date's health in a few lines: drift, estimated AUC, alerts."""
    from pipelines.adapters.warehouse import health

    warehouse = res.warehouse
    rows = health.rows_of(warehouse, tables.DAILY_HEALTH, spec.name, as_of_date, as_of_date).to_pylist()
    if not rows:
        click.echo(f"  {spec.name}: not monitored")
        return
    day = rows[-1]
    line = f"  {spec.name} (version {day['model_version']}): {day['status']}; drift {day['drift_status']}"
    if day["worst_feature"]:
        line += f", most drifted {day['worst_feature']} (PSI {day['worst_psi']:.3f})"
    if day["expected_auc"] is not None:
        line += f"; estimated AUC {day['expected_auc']:.3f} [{day['expected_auc_lower']:.3f}, {day['expected_auc_upper']:.3f}]"
    click.echo(line + f"; {day['alerts']} alert(s); realized AUC once labels complete on {day['labels_due']}")
    alerts = health.rows_of(warehouse, tables.ALERTS, spec.name, as_of_date, as_of_date).to_pylist()
    for alert in [a for a in alerts if a["severity"] == "alert"][:5]:
        click.echo(f"    ALERT {alert['message']}" + (f" ({alert['action']})" if alert["action"] else ""))
    for c in health.rows_of(warehouse, tables.SHADOW_COMPARISON, spec.name, as_of_date, as_of_date).to_pylist():
        click.echo(
            f"    shadow {c['challenger_alias']} (version {c['challenger_version']}) beside version {c['model_version']}: "
            f"Spearman {_number(c['spearman'])}, decisions flipped {c['flip_share']:.1%}, estimated AUC "
            f"{_number(c['challenger_expected_auc'])} vs {_number(c['champion_expected_auc'])} (monitoring.shadow_comparison)"
        )


def _number(value: float | None) -> str:
    """A statistic to 3 decimals, or "–" where it is undefined (NULL: a constant score, no estimate)."""
    return "–" if value is None else f"{value:.3f}"


def _table(table: pa.Table) -> str:
    rows = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()] for row in table.to_pylist()]
    header = table.column_names
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)
