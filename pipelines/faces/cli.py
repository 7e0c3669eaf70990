"""The `batchpred` command line: the same steps the Airflow tasks call, from a terminal.

Every command prints a short summary for people, or with `--json` its result as one JSON
object on stdout for scripts (progress and warnings go to stderr). One error style,
`error: <what to fix>` on stderr with no traceback, and one exit-code rule: 2 for a
malformed command line (an unknown option, a bad date, --start after --end), 1 for a
request that was refused or failed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from pipelines.config.settings import Settings
from pipelines.domain.dates import parse_date
from pipelines.domain.errors import BatchpredError

if TYPE_CHECKING:

    from pipelines.adapters.resources import Resources
    from pipelines.config.spec import ModelSpec
    from pipelines.usecases import backfill as backfills


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


# Where `--json` output goes: the stdout `main` found. While a --json command runs, anything
# else printed to stdout (dbt's console log, a library's print) goes to stderr instead.
_json_out: TextIO | None = None


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, default=str), file=_json_out)


def _one_or_range(as_of_date: dt.date | None, start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
    """--date D, or --start A --end B with A <= B: the first and last date (a usage error otherwise)."""
    if as_of_date is not None and start is None and end is None:
        return as_of_date, as_of_date
    if as_of_date is None and start is not None and end is not None:
        return _range(start, end)
    raise click.UsageError("give --date D, or --start A and --end B")


def _range(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    if start > end:
        raise click.UsageError(f"--start {start} is after --end {end}")
    return start, end


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batchpred")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="-v: what each step does (INFO). -vv: also the SQL batchpred runs and dbt's own progress (DEBUG).",
)
def cli(verbose: int) -> None:
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
    logging.getLogger("pipelines").setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG))


@cli.command()
@click.option("--customers", default=20_000, show_default=True, help="Number of customers.")
@click.option("--days", default=270, show_default=True, help="Days of history, ending at --end.")
@click.option("--end", type=DATE, default=None, help="Last day of data [default: yesterday, UTC].")
@click.option("--seed", default=7, show_default=True, help="Random seed: same seed and dates, same data.")
@click.option("--drift-from", type=DATE, default=None, help="Shift usage, tickets and signup channels from this date on.")
@JSON
def generate(customers: int, days: int, end: dt.date | None, seed: int, drift_from: dt.date | None, as_json: bool) -> None:
    """Write a synthetic subscription business into schema raw (replacing it)."""
    from pipelines.faces.demo import load_demo_data
    from pipelines.faces.demo_data import DemoConfig

    config = DemoConfig(customers=customers, days=days, end_date=end or _yesterday(), seed=seed, drift_from=drift_from)
    started = time.perf_counter()
    counts = load_demo_data(_resources(create=True), config)
    if as_json:
        _echo_json({"start_date": config.start_date, "end_date": config.end_date, "rows": counts})
        return
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
@JSON
def backfill(model: str, start: dt.date, end: dt.date, alias: str | None, only: str | None, dry_run: bool, as_json: bool) -> None:
    """Score every complete as-of date from --start to --end with one model version.

    Dates that are not complete are skipped, and the plan says why. A date that fails
    does not stop the others; the exit code is 1 if any failed, and the summary says
    which, why, and the command that reruns them (usually with --only failed).
    """
    from pipelines.faces.console import stderr
    from pipelines.usecases import backfill as backfills

    _range(start, end)  # a malformed command line is refused before anything is read
    spec = _spec(model)
    res = _resources()
    planned = backfills.plan(res, spec, start, end, only, alias)
    what = f"models:/{spec.name}@{planned.model.alias} = version {planned.model.version}"
    plan_json = {
        "model": spec.name,
        "alias": planned.model.alias,
        "model_version": planned.model.version,
        "dates": [{"as_of_date": d, "existing_versions": sorted(planned.existing.get(d, ()))} for d in planned.dates],
        "skipped": {str(d): why for d, why in planned.skipped.items()},
    }
    if dry_run or not planned.dates:
        if as_json:
            _echo_json(plan_json | {"outcomes": [], "totals": _totals([])})
            return
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

    if stderr.is_terminal:
        outcomes = _backfill_with_bar(res, spec, planned)
    else:  # a log file or a pipe: one whole line per date, as it finishes
        done = 0

        def line(outcome: backfills.DateOutcome) -> None:
            nonlocal done
            done += 1
            click.echo(f"[{done}/{len(planned.dates)}] {spec.name} {_outcome_line(outcome)}", err=True)

        outcomes = backfills.run(res, spec, planned, line)
    totals = _totals(outcomes)
    failed = [o for o in outcomes if not o.ok]
    if as_json:
        _echo_json(plan_json | {"outcomes": [vars(o) for o in outcomes], "totals": totals})
    else:
        click.echo(f"backfill {spec.name} {start}..{end} with {what}:")
        for o in outcomes:
            click.echo(f"  {_outcome_line(o)}")
        click.echo(
            f"total: {totals['dates']} date(s), {totals['ok']} ok, {totals['failed']} failed; "
            f"{totals['rows']:,} rows scored, {totals['quarantined']:,} quarantined, in {totals['seconds']:.1f}s "
            f"({totals['rows_per_second']:,.0f} rows/s)"
        )
        if planned.skipped:
            click.echo(f"skipped {len(planned.skipped)} date(s) that are not complete (see --dry-run)")
    if failed:
        by_error: dict[str, list[str]] = {}  # a marts failure is every scored date's error: say it once
        for o in failed:
            by_error.setdefault(o.error or "", []).append(str(o.as_of_date))
        details = "\n".join(f"  {', '.join(days)}: {error}" for error, days in by_error.items())
        raise click.ClickException(
            f"{len(failed)} of {len(outcomes)} date(s) failed:\n{details}\n"
            f"fix the cause, then rerun: batchpred backfill {spec.name} --start {start} --end {end} --only failed"
        )


def _backfill_with_bar(res: Resources, spec: ModelSpec, planned: backfills.Plan) -> list[backfills.DateOutcome]:
    """Run a backfill under a progress bar (a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipelines.faces.console import stderr
    from pipelines.usecases import backfill as backfills

    progress = Progress(
        TextColumn("{task.description:<32}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:>10,} rows  {task.fields[rate]:>9,.0f} rows/s"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    )
    with progress:
        bar = progress.add_task(f"{spec.name}: starting", total=len(planned.dates), rows=0, rate=0.0)
        seen: list[backfills.DateOutcome] = []

        def advance(outcome: backfills.DateOutcome) -> None:
            seen.append(outcome)
            totals = _totals(seen)
            progress.update(bar, advance=1, rows=totals["rows"], rate=totals["rows_per_second"])

        def stage(label: str) -> None:
            progress.update(bar, description=f"{spec.name}: {label}")

        return backfills.run(res, spec, planned, advance, stage)


def _outcome_line(o: backfills.DateOutcome) -> str:
    if not o.ok:
        return f"{o.as_of_date}  FAILED  {(o.error or '').splitlines()[0] if o.error else ''}"
    return f"{o.as_of_date}  ok  {o.rows:,} rows, {o.quarantined:,} quarantined, {o.seconds:.1f}s"


def _totals(outcomes: list[backfills.DateOutcome]) -> dict[str, Any]:
    rows, seconds = sum(o.rows for o in outcomes), sum(o.seconds for o in outcomes)
    return {
        "dates": len(outcomes),
        "ok": sum(o.ok for o in outcomes),
        "failed": sum(not o.ok for o in outcomes),
        "rows": rows,
        "quarantined": sum(o.quarantined for o in outcomes),
        "seconds": round(seconds, 3),
        "rows_per_second": rows / seconds if seconds else 0.0,
    }


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

    start, end = _one_or_range(as_of_date, start, end)
    spec = _spec(model)
    res = _resources()
    days = [as_of_date] if as_of_date is not None else health.scored_dates(res, spec, start, end)
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn(), console=stderr, transient=True) as bar:
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
@JSON
def ui(port: int | None, host: str, as_json: bool) -> None:
    """Start the Airflow UI of the embedded default (api-server, scheduler, dag-processor); Ctrl-C stops it.

    With --json, one line once the UI answers: its URL, the user and the file that keeps
    the password (the password itself is printed only for people)."""
    from pipelines.faces.ui import Running, run_ui

    def ready(ui: Running) -> None:
        if as_json:
            where = {"url": ui.url, "user": ui.user, "password_file": ui.passwords_file, "dags_folder": ui.dags_folder}
            click.echo(json.dumps(where | {"logs": ui.logs}, default=str), file=_json_out)
            return
        click.echo(f"\nAirflow UI: {ui.url}\n  login: {ui.user} / {ui.password}   (kept in {ui.passwords_file})")
        click.echo(f"  DAGs from {ui.dags_folder}; logs in {ui.logs}/ui-*.log")
        click.echo("  Ctrl-C stops it.")

    run_ui(Settings.from_env(), host, port, ready)


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

    start, end = _one_or_range(as_of_date, start, end)
    spec = _spec(model)
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
@JSON
def report(model: str, as_of_date: dt.date, days: int, out: Path | None, as_json: bool) -> None:
    """Write MODEL's model-health report for a date: one self-contained HTML page."""
    from pipelines.usecases import health

    spec = _spec(model)
    res = _resources()
    started = time.perf_counter()
    path = health.write_report(res, spec, as_of_date, days, out)
    if as_json:
        _echo_json({"model": spec.name, "as_of_date": as_of_date, "days": days, "path": str(path.resolve())})
        return
    click.echo(f"{spec.name} report for {as_of_date} ({days} days) in {time.perf_counter() - started:.1f}s: {path}")
    click.echo(f"  open it in a browser: file://{path.resolve()}")


@cli.command()
@click.argument("model")
@click.option("--alias", default="champion", show_default=True, help="The alias to move.")
@click.option("--version", type=int, required=True, help="The version to point it at.")
@click.option("--reason", default=None, help="Why (recorded in monitoring.promotions and on the MLflow version).")
@click.option("--force", is_flag=True, help="Promote without a shadow record, or despite a worse realized AUC.")
@JSON
def promote(model: str, alias: str, version: int, reason: str | None, force: bool, as_json: bool) -> None:
    """Move MODEL's alias to a version, after looking at its shadow record."""
    from pipelines.usecases import models

    say = click.echo
    spec = _spec(model)
    res = _resources()
    record = models.shadow_record(res, spec, version)
    say(f"version {version}: {record.describe()}")
    for row in record.rows[-10:]:
        say(f"  {row['as_of_date']} against version {row['model_version']}: {_comparison(row)}")
    done = models.promote(res, spec, alias, version, reason, force)
    before, after = done.before, done.after
    if as_json:
        _echo_json(
            {
                "model": spec.name,
                "alias": alias,
                "before_version": before.version if before else None,
                "version": after.version,
                "forced": force,
                "shadow_record": {k: v for k, v in vars(record).items() if k != "rows"} | {"summary": record.describe()},
                "shadows_at_champion": done.shadows_at_champion,
            }
        )
        return
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
@JSON
def setup_warehouse(bi_role: str | None, as_json: bool) -> None:
    """Create the warehouse schemas and the tables every model shares (empty, with their
    comments) and, optionally, the dashboards' read-only role.

    The role's password is read from BATCHPRED_BI_PASSWORD, never from the command line.
    """
    import os

    from pipelines.adapters.warehouse import safe_url
    from pipelines.usecases import setup

    res = _resources(create=True)
    setup.setup_warehouse(res)
    if bi_role:
        setup.add_read_only_role(res, bi_role, os.environ.get("BATCHPRED_BI_PASSWORD", ""))
    if as_json:
        _echo_json({"warehouse": safe_url(res.settings.warehouse_url), "bi_role": bi_role})
        return
    click.echo(f"schemas and shared tables ready in {safe_url(res.settings.warehouse_url)}")
    if bi_role:
        click.echo(f"role {bi_role!r} can log in and read marts and predictions, and nothing else")


@cli.command()
@click.option("--customers", default=5_000, show_default=True, help="Size of the demo business.")
@click.option("--end", type=DATE, default=None, help="Last day of demo data, and the date scored [default: yesterday, UTC].")
@click.option(
    "--history",
    type=click.IntRange(min=0),
    default=60,
    show_default=True,
    help="Days scored and monitored before --end (as a backfill does), for the report to draw.",
)
@click.option(
    "--drift-from",
    type=DATE,
    default=None,
    help="Shift the business's behaviour from this date on, for monitoring to find "
    "[default: 21 days before --end; a date after --end: no shift].",
)
@JSON
def demo(customers: int, end: dt.date | None, history: int, drift_from: dt.date | None, as_json: bool) -> None:
    """Generate data, train both demo models, score and monitor --history days before --end,
    run the score and monitor DAGs through Airflow for --end, and show the dashboards' view,
    the date's health and what to do next."""
    from pipelines.faces.demo import DRIFT_DAYS, run_demo

    settings = Settings.from_env()
    end = end or _yesterday()
    drift_from = drift_from or end - dt.timedelta(days=DRIFT_DAYS)
    made = run_demo(settings, customers=customers, end=end, drift_from=drift_from if drift_from <= end else None, history=history)
    if as_json:
        _echo_json(made)


def main(args: list[str] | None = None) -> None:
    """Run the command line (`args`, default sys.argv): one error style (`error: ...` on
    stderr, no traceback) and one exit-code rule (2 for a malformed command line, 1 for a
    refused or failed request). Always ends in SystemExit with that code."""
    global _json_out
    argv = sys.argv[1:] if args is None else args
    _json_out = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr) if "--json" in argv else contextlib.nullcontext():
            code = cli(args=argv, prog_name="batchpred", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:  # `batchpred` alone: the help, as usual
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        if exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
        hint = f"try '{exc.ctx.command_path if exc.ctx else 'batchpred'} --help'"
        _fail(_lower(exc.format_message()), hint=hint, code=2)
    except click.ClickException as exc:
        _fail(_lower(exc.format_message()), code=1)
    except BatchpredError as exc:
        from pipelines.domain import redact

        _fail(redact.text(exc), code=1)
    sys.exit(code if isinstance(code, int) else 0)


def _lower(message: str) -> str:
    """Click's own messages are sentences ("Missing option ..."): in the one style, lower case."""
    return message[0].lower() + message[1:] if message[:2].istitle() else message


def _fail(message: str, code: int, hint: str | None = None) -> None:
    click.echo(f"error: {message}", err=True)
    if hint:
        click.echo(hint, err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
