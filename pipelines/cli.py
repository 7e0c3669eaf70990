"""The `batchpred` command line: the same steps the Airflow tasks call, from a terminal."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time

import click

from pipelines.errors import BatchpredError
from pipelines.settings import Settings


def _yesterday() -> dt.date:
    """The last complete day in UTC: the default as-of date at a terminal."""
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


class _Date(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.date):
            return value
        from pipelines.steps import parse_date

        try:
            return parse_date(value, f"--{param.name.replace('_', '-')}" if param else "date")
        except BatchpredError as exc:
            self.fail(str(exc), param, ctx)


DATE = _Date()


def _spec(name: str):
    from pipelines.spec import load_spec

    return load_spec(name)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
def cli(verbose: bool) -> None:
    """Scheduled batch prediction: dbt features, GX checks, MLflow models, date-partitioned scores.

    Configuration comes from the environment: BATCHPRED_HOME, BATCHPRED_WAREHOUSE_URL,
    MLFLOW_TRACKING_URI (see the README).
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("mlflow", "alembic", "great_expectations", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@cli.command()
@click.option("--customers", default=20_000, show_default=True, help="Number of customers.")
@click.option("--days", default=180, show_default=True, help="Days of history, ending at --end.")
@click.option("--end", type=DATE, default=None, help="Last day of data [default: yesterday, UTC].")
@click.option("--seed", default=7, show_default=True, help="Random seed: same seed and dates, same data.")
@click.option("--drift-from", type=DATE, default=None, help="Shift usage, tickets and signup channels from this date on.")
def generate(customers: int, days: int, end: dt.date | None, seed: int, drift_from: dt.date | None) -> None:
    """Write a synthetic subscription business into schema raw (replacing it)."""
    from pipelines.demo import load_demo_data
    from pipelines.demo_data import DemoConfig

    config = DemoConfig(customers=customers, days=days, end_date=end or _yesterday(), seed=seed, drift_from=drift_from)
    started = time.perf_counter()
    counts = load_demo_data(Settings.from_env(), config)
    click.echo(f"raw data for {config.start_date}..{config.end_date} written in {time.perf_counter() - started:.1f}s:")
    for table, rows in counts.items():
        click.echo(f"  raw.{table:<17} {rows:>10,} rows")


@cli.command()
@click.argument("model")
@click.option("--date", "as_of_date", type=DATE, default=None, help="Train on data known up to this date [default: yesterday].")
def train(model: str, as_of_date: dt.date | None) -> None:
    """Train MODEL, register a version, and move its alias if the new version is better."""
    from pipelines import steps

    result = steps.train(Settings.from_env(), _spec(model), as_of_date or _yesterday())
    click.echo(json.dumps(result, indent=2))


@cli.command()
@click.argument("model")
@click.option("--date", "as_of_date", type=DATE, required=True, help="The as-of date to score.")
@click.option("--alias", default=None, help="Registry alias to score with [default: the spec's, usually champion].")
def score(model: str, as_of_date: dt.date, alias: str | None) -> None:
    """Build features, validate, score and publish MODEL for one as-of date (what the DAG does)."""
    from pipelines import steps

    result = steps.run_date(Settings.from_env(), _spec(model), as_of_date, alias)
    click.echo(json.dumps(result, indent=2))


@cli.command()
@click.argument("model")
@click.option("--start", type=DATE, required=True, help="First as-of date.")
@click.option("--end", type=DATE, required=True, help="Last as-of date (inclusive).")
@click.option("--alias", default=None, help="Registry alias to score with [default: the spec's]. Resolved once for the range.")
@click.option(
    "--only",
    type=click.Choice(["missing", "failed", "stale"]),
    default=None,
    help="Only dates with no predictions, whose last attempt failed, or scored by another version than the alias's.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and exit.")
def backfill(model: str, start: dt.date, end: dt.date, alias: str | None, only: str | None, dry_run: bool) -> None:
    """Score every as-of date from --start to --end with one model version.

    A date that fails does not stop the others; the exit code is 1 if any failed,
    and the summary says which, why, and the command that reruns them (usually with
    --only failed).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from pipelines import backfill as backfills
    from pipelines import steps

    settings, spec = Settings.from_env(), _spec(model)
    backfills.date_range(start, end)  # refuses --end before --start before any work
    pinned = steps.resolve_model(settings, spec, start, alias)
    dates = backfills.plan(settings, spec, start, end, only, pinned["model_version"])
    console = Console(stderr=True)
    what = f"models:/{spec.name}@{pinned['alias']} = version {pinned['model_version']}"
    if dry_run or not dates:
        click.echo(f"plan: {len(dates)} date(s) of {start}..{end}{f' ({only})' if only else ''} with {what}")
        for day in dates:
            click.echo(f"  {day}")
        return

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:>10,} rows  {task.fields[rate]:>9,.0f} rows/s"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        bar = progress.add_task(f"{spec.name} {dates[0]}", total=len(dates), rows=0, rate=0.0)
        totals = {"rows": 0, "seconds": 0.0}

        def advance(outcome) -> None:
            totals["rows"] += outcome.rows
            totals["seconds"] += outcome.seconds
            rate = totals["rows"] / totals["seconds"] if totals["seconds"] else 0.0
            following = outcome.as_of_date + dt.timedelta(days=1)
            progress.update(bar, advance=1, description=f"{spec.name} {following}", rows=totals["rows"], rate=rate)

        outcomes = backfills.run(settings, spec, dates, pinned, advance)

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
    Console().print(table)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        by_error: dict[str, list[str]] = {}  # a marts failure is every scored date's error: say it once
        for o in failed:
            by_error.setdefault(o.error or "", []).append(str(o.as_of_date))
        details = "\n".join(f"  {', '.join(days)}: {error}" for error, days in by_error.items())
        # A date whose marts were not rebuilt is logged as scored: `--only failed` would skip it.
        marts = any(backfills.MARTS_NOT_REBUILT in (o.error or "") for o in failed)
        raise click.ClickException(
            f"{len(failed)} of {len(outcomes)} date(s) failed:\n{details}\n"
            f"fix the cause, then rerun: batchpred backfill {spec.name} --start {start} --end {end}"
            + ("" if marts else " --only failed")
        )


@cli.command("setup-warehouse")
@click.option("--bi-role", default=None, help="Also create this read-only login role for dashboards (PostgreSQL).")
def setup_warehouse(bi_role: str | None) -> None:
    """Create the warehouse schemas and, optionally, the dashboards' read-only role.

    The role's password is read from BATCHPRED_BI_PASSWORD, never from the command line.
    """
    import os

    from pipelines.warehouse import open_warehouse, safe_url

    settings = Settings.from_env()
    warehouse = open_warehouse(settings.warehouse_url)
    warehouse.ensure_schemas()
    click.echo(f"schemas ready in {safe_url(settings.warehouse_url)}")
    if bi_role:
        warehouse.setup_read_only_role(bi_role, os.environ.get("BATCHPRED_BI_PASSWORD", ""))
        click.echo(f"role {bi_role!r} can log in and read marts and predictions, and nothing else")


@cli.command()
@click.option("--customers", default=20_000, show_default=True, help="Size of the demo business.")
@click.option("--end", type=DATE, default=None, help="Last day of demo data, and the date scored [default: yesterday, UTC].")
def demo(customers: int, end: dt.date | None) -> None:
    """Generate data, train, run the churn_score DAG through Airflow, and show the dashboards' view."""
    from pipelines.demo import run_demo

    run_demo(Settings.from_env(), customers=customers, end=end or _yesterday())


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BatchpredError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
