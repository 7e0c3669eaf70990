"""The `batchpred` command line: the same steps the Airflow tasks call, from a terminal.

Commands print a short summary for people; `--json` prints the result for scripts.
Errors a user can act on are printed without a traceback, with exit code 1 (2 for a
malformed option).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipelines.config.settings import Settings
from pipelines.domain.dates import date_range, parse_date
from pipelines.domain.errors import BatchpredError

if TYPE_CHECKING:
    from pipelines.adapters.resources import Resources
    from pipelines.config.spec import ModelSpec


def _yesterday() -> dt.date:
    """The last day that is over, in UTC (for generating demo data)."""
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


class _Date(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value

        option = param.opts[0] if param is not None and param.opts else "date"
        try:
            return parse_date(value, option)
        except BatchpredError as exc:
            self.fail(str(exc), param, ctx)


DATE = _Date()
JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON, for scripts.")


def _spec(name: str) -> ModelSpec:
    from pipelines.config.spec import load_spec

    return load_spec(name)


def _resources(create: bool = False) -> Resources:
    """The warehouse, registry, dbt, GX and clock for this command, from the environment. A
    command that creates the warehouse sets it up itself; any other finds the shared tables there."""
    from pipelines.adapters.resources import Resources

    res = Resources.from_settings(Settings.from_env(), create=create)
    return res if create else res.ready()


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batchpred")
@click.option("-v", "--verbose", is_flag=True, help="Show what each step does (INFO logging; -v -v for debug).")
def cli(verbose: bool) -> None:
    """Scheduled batch prediction: dbt features, GX checks, MLflow models, date-partitioned scores.

    Configuration comes from the environment: BATCHPRED_HOME, BATCHPRED_WAREHOUSE_URL,
    MLFLOW_TRACKING_URI (see the README).
    """
    from pipelines.faces.console import stderr

    if stderr.is_terminal:  # log lines print above progress bars instead of tearing through them
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=stderr, show_time=False, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:  # a file or a pipe: one plain line per record
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    from pipelines.domain import redact

    handler.addFilter(redact.RedactingFilter())  # no URL's token or password reaches the terminal
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("pipelines").setLevel(logging.INFO if verbose else logging.WARNING)


@cli.command()
@click.option("--customers", default=20_000, show_default=True, help="Number of customers.")
@click.option("--days", default=270, show_default=True, help="Days of history, ending at --end.")
@click.option("--end", type=DATE, default=None, help="Last day of data [default: yesterday, UTC].")
@click.option("--seed", default=7, show_default=True, help="Random seed: same seed and dates, same data.")
@click.option("--drift-from", type=DATE, default=None, help="Shift usage, tickets and signup channels from this date on.")
def generate(customers: int, days: int, end: dt.date | None, seed: int, drift_from: dt.date | None) -> None:
    """Write a synthetic subscription business into schema raw (replacing it)."""
    from pipelines.faces.demo import load_demo_data
    from pipelines.faces.demo_data import DemoConfig

    config = DemoConfig(customers=customers, days=days, end_date=end or _yesterday(), seed=seed, drift_from=drift_from)
    started = time.perf_counter()
    counts = load_demo_data(_resources(create=True), config)
    click.echo(f"raw data for {config.start_date}..{config.end_date} written in {time.perf_counter() - started:.1f}s:")
    for table, rows in counts.items():
        click.echo(f"  raw.{table:<20} {rows:>10,} rows")


@cli.command()
@click.argument("model")
@click.option(
    "--date", "as_of_date", type=DATE, default=None, help="Train on data known up to this date [default: the last complete day]."
)
@click.option(
    "--force-promote", is_flag=True, help="Move the alias to the new version even if it is not better (needs --reason)."
)
@click.option("--reason", default=None, help="Why --force-promote: recorded on the version.")
@click.option(
    "--alias", default=None, help="The alias to move if the new version is better [default: the spec's], e.g. challenger."
)
@JSON
def train(
    model: str, as_of_date: dt.date | None, force_promote: bool, reason: str | None, alias: str | None, as_json: bool
) -> None:
    """Train MODEL, register a version, and move its alias if the new version is better."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pipelines.faces.console import stderr
    from pipelines.usecases import models, steps

    spec = _spec(model)
    res = _resources()
    as_of_date = as_of_date or steps.last_complete_date(res, spec)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=stderr, transient=True) as bar:
        task = bar.add_task(f"{spec.name}: starting", total=1.0)

        def progress(stage: str, done: float) -> None:
            bar.update(task, description=f"{spec.name}: {stage}", completed=done)

        result = models.train(res, spec, as_of_date, force=force_promote, reason=reason, alias=alias, progress=progress)
    if as_json:
        _echo_json(
            {
                "model_version": result.model.version,
                "mlflow_run_id": result.model.run_id,
                "metrics": result.metrics,
                "champion_version": result.champion.version if result.champion else None,
                "champion_metrics": result.champion_metrics,
                "promoted": result.promoted,
                "verdict": result.verdict,
                "skipped_snapshots": {str(d): why for d, why in result.skipped.items()},
            }
        )
        return
    m = result.metrics
    click.echo(
        f"{spec.name} version {result.model.version}: validation AUC {m['auc']:.3f}, PR-AUC {m['pr_auc']:.3f}, "
        f"log loss {m['log_loss']:.3f}, on {result.validation_rows:,} rows ({result.train_rows:,} to train, "
        f"{len(result.snapshots)} snapshots up to {as_of_date}) in {time.perf_counter() - started:.0f}s"
    )
    click.echo(f"  {result.verdict}")
    if result.skipped:
        first = min(result.skipped)
        click.echo(f"  {len(result.skipped)} snapshot(s) skipped as incomplete, e.g. {first}: {result.skipped[first]}")


@cli.command()
@click.argument("model")
@click.option("--date", "as_of_date", type=DATE, required=True, help="The as-of date to score.")
@click.option("--alias", default=None, help="Registry alias to score with [default: the spec's, usually champion].")
@JSON
def score(model: str, as_of_date: dt.date, alias: str | None, as_json: bool) -> None:
    """Build features, validate, score and publish MODEL for one as-of date (what the DAG does)."""
    from pipelines.domain import records
    from pipelines.usecases import steps

    spec = _spec(model)
    res = _resources()
    started = time.perf_counter()
    published = steps.score_date(res, spec, as_of_date, alias)
    if as_json:
        _echo_json(records.to_xcom(published))
        return
    click.echo(
        f"{spec.name} {as_of_date}: {published.rows_scored:,} rows scored, {published.rows_quarantined:,} quarantined, "
        f"with models:/{spec.name}/{published.model_version} (@{published.alias}) in {time.perf_counter() - started:.1f}s"
    )
    click.echo(f"  predictions in {published.table}; run log: monitoring.scoring_runs, scoring_run_id {published.scoring_run_id}")
    for why in published.shadow_skipped:
        click.echo(f"  {why}")
    if published.rows_quarantined:
        from pipelines.adapters.warehouse import tables

        click.echo(f"  quarantined rows and why: {tables.quarantine(spec)}")


@cli.command()
@click.argument("model")
@click.option("--start", type=DATE, required=True, help="First as-of date.")
@click.option("--end", type=DATE, required=True, help="Last as-of date (inclusive).")
@click.option("--alias", default=None, help="Registry alias to score with [default: the spec's]. Resolved once for the range.")
@click.option(
    "--only",
    type=click.Choice(["missing", "failed", "stale"]),
    default=None,
    help="Only dates with no predictions, whose latest attempt failed (a refused request does not count), "
    "or scored by another version than the alias's.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan (which dates, which already have rows) and exit.")
def backfill(model: str, start: dt.date, end: dt.date, alias: str | None, only: str | None, dry_run: bool) -> None:
    """Score every complete as-of date from --start to --end with one model version.

    Dates that are not complete are skipped, and the plan says why. A date that fails
    does not stop the others; the exit code is 1 if any failed, and the summary says
    which, why, and the command that reruns them (usually with --only failed).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from pipelines.faces.console import stderr, stdout
    from pipelines.usecases import backfill as backfills

    spec = _spec(model)
    date_range(start, end)  # refuses --end before --start before any work
    res = _resources()
    planned = backfills.plan(res, spec, start, end, only, alias)
    what = f"models:/{spec.name}@{planned.model.alias} = version {planned.model.version}"
    if dry_run or not planned.dates:
        click.echo(f"plan: {len(planned.dates)} date(s) of {start}..{end}{f' ({only})' if only else ''} with {what}")
        for day in planned.dates:
            versions = planned.existing.get(day)
            has = f"has rows of version {', '.join(map(str, sorted(versions)))}: replaced" if versions else "no rows yet"
            click.echo(f"  {day}  {has}")
        if planned.skipped:
            click.echo(f"skipped {len(planned.skipped)} date(s) that are not complete:")
            for day, why in planned.skipped.items():
                click.echo(f"  {day}  {why}")
        return

    progress = Progress(
        TextColumn("{task.description:<32}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:>10,} rows  {task.fields[rate]:>9,.0f} rows/s"),
        TimeElapsedColumn(),
        console=stderr,
    )
    with progress:
        bar = progress.add_task(f"{spec.name}: starting", total=len(planned.dates), rows=0, rate=0.0)
        totals = {"rows": 0, "seconds": 0.0}

        def advance(outcome: backfills.DateOutcome) -> None:
            totals["rows"] += outcome.rows
            totals["seconds"] += outcome.seconds
            rate = totals["rows"] / totals["seconds"] if totals["seconds"] else 0.0
            progress.update(bar, advance=1, rows=totals["rows"], rate=rate)

        def stage(label: str) -> None:
            progress.update(bar, description=f"{spec.name}: {label}")

        outcomes = backfills.run(res, spec, planned, advance, stage)
        progress.update(bar, description=f"{spec.name}: done")

    table = Table(title=f"backfill {spec.name} {start}..{end} with {what}")
    for column in ("as_of_date", "status", "rows", "quarantined", "seconds", "error"):
        table.add_column(column)
    for o in outcomes:
        table.add_row(
            str(o.as_of_date),
            "ok" if o.ok else "FAILED",
            f"{o.rows:,}",
            f"{o.quarantined:,}",
            f"{o.seconds:.1f}",
            (o.error or "").splitlines()[0] if o.error else "",
        )
    stdout.print(table)
    if planned.skipped:
        click.echo(f"skipped {len(planned.skipped)} date(s) that are not complete (see --dry-run)")
    failed = [o for o in outcomes if not o.ok]
    if failed:
        by_error: dict[str, list[str]] = {}  # a marts failure is every scored date's error: say it once
        for o in failed:
            by_error.setdefault(o.error or "", []).append(str(o.as_of_date))
        details = "\n".join(f"  {', '.join(days)}: {error}" for error, days in by_error.items())
        raise click.ClickException(
            f"{len(failed)} of {len(outcomes)} date(s) failed:\n{details}\n"
            f"fix the cause, then rerun: batchpred backfill {spec.name} --start {start} --end {end} --only failed"
        )


@cli.command()
@click.argument("model")
@click.option("--date", "as_of_date", type=DATE, default=None, help="A scored as-of date to monitor.")
@click.option("--start", type=DATE, default=None, help="First as-of date of a range (dates without predictions are skipped).")
@click.option("--end", type=DATE, default=None, help="Last as-of date of the range (inclusive).")
@click.option("--version", type=int, default=None, help="The model version to monitor [default: the one that scored each date].")
@JSON
def monitor(
    model: str, as_of_date: dt.date | None, start: dt.date | None, end: dt.date | None, version: int | None, as_json: bool
) -> None:
    """Model health of scored dates: drift, estimated performance and alerts (monitoring.* tables);
    then realized performance of the dates given (however old) and of the recent ones, once
    their label horizon is over (provisional until every table the labels read reaches it);
    then each date's report. What the <model>_monitor DAG does."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pipelines.domain.status import Severity
    from pipelines.faces.console import stderr
    from pipelines.usecases import health

    spec = _spec(model)
    if (as_of_date is None) == (start is None or end is None):
        raise click.UsageError("give --date D, or --start A and --end B")
    res = _resources()
    if as_of_date is not None:
        days = [as_of_date]
    else:
        assert start is not None and end is not None  # the check above: --date, or both --start and --end
        days = health.scored_dates(res, spec, start, end)
    with Progress(
        TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn(), console=stderr, transient=True
    ) as bar:
        task = bar.add_task(f"{spec.name}: monitoring", total=None)
        result = health.monitor_dates(
            res, spec, dict.fromkeys(days, version), lambda stage: bar.update(task, description=f"{spec.name}: {stage}")
        )
    if as_json:
        _echo_json(
            {
                "health": [
                    {k: v for k, v in vars(h).items() if k != "alerts"} | {"alerts": len(h.alerts)} for h in result.health
                ],
                "realized": [
                    {"as_of_date": r.as_of_date, "model_version": r.version, **(r.performance.row() if r.performance else {})}
                    for r in result.realized
                ],
                "reports": [str(p) for p in result.reports],
            }
        )
        return
    for h in result.health:
        click.echo(h.summary())
        for a in h.alerts:
            if a.severity == Severity.ALERT:
                click.echo(f"  ALERT {a.message}")
        if h.retrain:
            click.echo(f"  retrain requested: {h.retrain_reason}")
    for r in result.realized:
        if r.provisional:
            click.echo(f"  {r.as_of_date}: realized performance is provisional, not final: {r.provisional}")
    labelled = [r for r in result.realized if r.performance and r.performance.roc_auc is not None and not r.provisional]
    if labelled:
        day, last = labelled[-1].as_of_date, labelled[-1].performance
        assert last is not None
        click.echo(
            f"realized performance of {len(labelled)} labelled date(s), latest {day}: AUC {last.roc_auc:.3f} "
            f"(estimated {last.expected_auc:.3f})"
            if last.expected_auc is not None
            else f"realized AUC {last.roc_auc:.3f}"
        )
    click.echo("  tables: monitoring.daily_health, feature_drift, estimated_performance, realized_performance, alerts")
    for path in result.reports:
        click.echo(f"  report: {path}")
    for day, why in result.report_failures.items():
        click.echo(f"  the report of {day} could not be written: {why}", err=True)


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port for the UI [default: the first free from 8080].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def ui(port: int | None, host: str) -> None:
    """Start the Airflow UI of the embedded default (api-server, scheduler, dag-processor); Ctrl-C stops it."""
    from pipelines.faces.ui import run_ui

    run_ui(Settings.from_env(), host, port)


@cli.command()
@click.argument("model")
@click.option("--date", "as_of_date", type=DATE, default=None, help="The as-of date to remove.")
@click.option("--start", type=DATE, default=None, help="First as-of date of a range to remove.")
@click.option("--end", type=DATE, default=None, help="Last as-of date of the range (inclusive).")
@JSON
def unpublish(model: str, as_of_date: dt.date | None, start: dt.date | None, end: dt.date | None, as_json: bool) -> None:
    """Take published dates back: remove their predictions (and shadow scores, reasons,
    quarantine and health rows) in one transaction, log who did it, rebuild the marts."""
    import dataclasses

    from pipelines.usecases.unpublish import unpublish as unpublish_dates

    spec = _spec(model)
    if (as_of_date is None) == (start is None or end is None):
        raise click.UsageError("give --date D, or --start A and --end B")
    if as_of_date is not None:
        start = end = as_of_date
    assert start is not None and end is not None  # the check above: --date, or both --start and --end
    if start > end:
        raise click.UsageError(f"--start {start} is after --end {end}")
    res = _resources()
    result = unpublish_dates(res, spec, start, end)
    if as_json:
        _echo_json(dataclasses.asdict(result))
        return
    removed = ", ".join(f"{t}: {n:,}" for t, n in result.removed.items() if n)
    click.echo(f"unpublished {spec.name} for {', '.join(str(d) for d in result.dates)}: removed {removed}")
    if result.skipped:
        click.echo(f"  {len(result.skipped)} date(s) of the range had no predictions and were left as they were")
    click.echo("  marts rebuilt; monitoring.scoring_runs has an 'unpublished' row per date")
    click.echo(f"  to score them again: batchpred backfill {spec.name} --start {start} --end {end} --only missing")


@cli.command()
@click.argument("model")
@click.option("--date", "as_of_date", type=DATE, required=True, help="The as-of date to report on.")
@click.option("--days", type=click.IntRange(min=1), default=60, show_default=True, help="How many days of history to draw.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The HTML file to write [default: $BATCHPRED_HOME/reports/MODEL/DATE.html].",
)
def report(model: str, as_of_date: dt.date, days: int, out: Path | None) -> None:
    """Write MODEL's model-health report for a date: one self-contained HTML page."""
    from pipelines.usecases import health

    spec = _spec(model)
    res = _resources()
    started = time.perf_counter()
    path = health.write_report(res, spec, as_of_date, days, out)
    click.echo(f"{spec.name} report for {as_of_date} ({days} days) in {time.perf_counter() - started:.1f}s: {path}")
    click.echo(f"  open it in a browser: file://{path.resolve()}")


@cli.command()
@click.argument("model")
@click.option("--alias", default="champion", show_default=True, help="The alias to move.")
@click.option("--version", type=int, required=True, help="The version to point it at.")
@click.option("--reason", default=None, help="Why (recorded in monitoring.promotions and on the MLflow version).")
@click.option("--force", is_flag=True, help="Promote without a shadow record, or despite a worse realized AUC.")
def promote(model: str, alias: str, version: int, reason: str | None, force: bool) -> None:
    """Move MODEL's alias to a version, after looking at its shadow record."""
    from pipelines.usecases import models

    spec = _spec(model)
    res = _resources()
    record = models.shadow_record(res, spec, version)
    click.echo(f"version {version}: {record.describe()}")
    for row in record.rows[-10:]:
        click.echo(f"  {row['as_of_date']} against version {row['model_version']}: {_comparison(row)}")
    done = models.promote(res, spec, alias, version, reason, force)
    before, after = done.before, done.after
    click.echo(
        f"models:/{spec.name}@{alias}: version {before.version if before else 'none'} -> {after.version}"
        + (" (forced)" if force else "")
    )
    click.echo(
        f"  recorded in monitoring.promotions; rescore the history: batchpred backfill {spec.name} --start A --end B --only stale"
    )
    for shadow in done.shadows_at_champion:
        click.echo(
            f"  @{shadow} also points at version {after.version}, now the champion: it is left there and no longer "
            f"shadow-scored; for a new challenger: batchpred train {spec.name} --alias {shadow}"
        )


def _comparison(row: dict) -> str:
    """One shadow_comparison row in words."""
    parts = []
    if row["challenger_expected_auc"] is not None and row["champion_expected_auc"] is not None:
        parts.append(f"estimated AUC {row['challenger_expected_auc']:.4f} vs {row['champion_expected_auc']:.4f}")
    if row["challenger_realized_auc"] is not None:
        parts.append(
            f"realized AUC {row['challenger_realized_auc']:.4f} vs {row['champion_realized_auc']:.4f} "
            f"(DeLong p {row['delong_p_value']:.3g})"
        )
    parts.append(f"decisions flip for {row['flip_share']:.2%}")
    return ", ".join(parts)


@cli.command("setup-warehouse")
@click.option("--bi-role", default=None, help="Also create this read-only login role for dashboards (PostgreSQL).")
def setup_warehouse(bi_role: str | None) -> None:
    """Create the warehouse schemas and the tables every model shares (empty, with their
    comments) and, optionally, the dashboards' read-only role.

    The role's password is read from BATCHPRED_BI_PASSWORD, never from the command line.
    """
    import os

    from pipelines.adapters.warehouse import safe_url
    from pipelines.usecases import setup

    res = _resources(create=True)
    setup.setup_warehouse(res)
    click.echo(f"schemas and shared tables ready in {safe_url(res.settings.warehouse_url)}")
    if bi_role:
        setup.add_read_only_role(res, bi_role, os.environ.get("BATCHPRED_BI_PASSWORD", ""))
        click.echo(f"role {bi_role!r} can log in and read marts and predictions, and nothing else")


@cli.command()
@click.option("--customers", default=20_000, show_default=True, help="Size of the demo business.")
@click.option("--end", type=DATE, default=None, help="Last day of demo data, and the date scored [default: yesterday, UTC].")
@click.option(
    "--drift-from", type=DATE, default=None, help="Shift the business's behaviour from this date on, for monitoring to find."
)
def demo(customers: int, end: dt.date | None, drift_from: dt.date | None) -> None:
    """Generate data, train both demo models, run their score and monitor DAGs through Airflow,
    and show the dashboards' view and the date's health."""
    from pipelines.faces.demo import run_demo

    run_demo(Settings.from_env(), customers=customers, end=end or _yesterday(), drift_from=drift_from)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BatchpredError as exc:
        from pipelines.domain import redact

        click.echo(f"error: {redact.text(exc)}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
