"""The model-health queries: computed by the warehouse, so only small results cross the wire.

Drift reads the profile the scorer stored with a date's predictions (`stored_profile`, for
the run `scoring_runs` names); a date without one is one aggregate: the reference's bin
edges go into a single scan of the partition (`histogram`). Estimated performance reads a
date's scores grouped into fine buckets (`score_buckets`); realized performance reads
scores joined to labels, grouped by distinct score (`labelled_groups`) plus a few
aggregates (`labelled_totals`). The tables themselves are declared in `tables`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.adapters.warehouse import queries, tables
from pipelines.adapters.warehouse.tables import Table
from pipelines.domain.identifiers import qualified, quote

if TYPE_CHECKING:
    import pyarrow as pa

    from pipelines.adapters.warehouse.base import Warehouse
    from pipelines.config.spec import ModelSpec
    from pipelines.domain.reference import Bins

# Fine buckets a date's scores are grouped into for the estimated performance: a bucket is
# 1/SCORE_BUCKETS wide, so rows that share one are treated as ties.
SCORE_BUCKETS = 10_000
# sklearn's log loss clips probabilities to [eps, 1 - eps], eps the float64 machine epsilon.
LOG_LOSS_EPS = 2.220446049250313e-16
# The smallest double that rounds to infinity as float32 (float32's largest value plus half
# its last step); and float32 infinity in SQL both backends read.
FLOAT32_OVERFLOW = 3.4028235677973366e38
# The largest double that rounds to zero as float32 (half float32's smallest step, 2^-150):
# PostgreSQL refuses such a cast ("underflow") where numpy gives 0.
FLOAT32_UNDERFLOW = 2.0**-150
_INF = "cast('Infinity' as real)"


@dataclass(frozen=True)
class Histogram:
    rows: int
    counts: dict[str, list[int]]  # per feature: rows per bin; numeric: the infinite bin, then the null bin, last
    sums: dict[str, float | None]  # numeric features: the sum of the finite values


def _value(column: str, kind: str) -> str:
    """How a column reads for binning: numbers as the model reads them (float64, then float32:
    NaN is null, a double beyond float32's range is an infinity and one below its smallest
    step zero, as numpy rounds them), text as it is."""
    if kind == "categorical":
        return f"t.{quote(column)}"
    d = f"cast(t.{quote(column)} as double precision)"
    return (
        f"case when {d} = cast('NaN' as double precision) then null when {d} >= {FLOAT32_OVERFLOW!r} then {_INF} "
        f"when {d} <= {-FLOAT32_OVERFLOW!r} then -{_INF} "
        f"when {d} >= {-FLOAT32_UNDERFLOW!r} and {d} <= {FLOAT32_UNDERFLOW!r} then cast(0 as real) else cast({d} as real) end"
    )


def histogram(
    warehouse: Warehouse,
    table: Table,
    as_of_date: dt.date,
    bins: Sequence[Bins],
    version: int | None = None,
    alias: str | None = None,
) -> Histogram:
    """Rows per bin of every feature in `bins` for one date of `table` (only the rows of
    `version`, and of the shadow `alias`, if given: a predictions table), in a single scan."""
    params: list[Any] = [as_of_date]

    def p(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    # Each value is read (and cast) once, in the inner select, as v<i> (behind the warehouse's
    # fence: PostgreSQL would copy it into each aggregate). Bins are counted as sum(case ...),
    # not count(*) filter (...): DuckDB evaluates ~500 filtered aggregates 10x slower (24 s
    # against 2 s per 1M rows of 40 features, measured). A bin index per value (a CASE chain),
    # then counted, measured no faster on DuckDB and 7% faster on PostgreSQL: not worth a
    # second form of this query.
    values = [f"{_value(b.name, b.kind)} as v{i}" for i, b in enumerate(bins)]

    def count_where(condition: str) -> str:
        return f"cast(sum(case when {condition} then 1 else 0 end) as bigint)"

    exprs = ["count(*) as n"]
    for i, b in enumerate(bins):
        v = f"v{i}"
        if b.kind == "categorical":
            listed = [p(c) for c in b.categories]
            exprs += [f"{count_where(f'{v} = {x}')} as b{i}_{j}" for j, x in enumerate(listed)]
            members = ", ".join(listed)
            exprs.append(f"{count_where(f'{v} is not null and {v} not in ({members})')} as b{i}_{len(listed)}")
            exprs.append(f"{count_where(f'{v} is null')} as b{i}_{len(listed) + 1}")
            continue
        cuts = [p(float(c)) for c in b.cuts]
        finite = f"{v} > -{_INF} and {v} < {_INF}"
        for j in range(len(cuts) + 1):
            lower = [f"{v} >= {cuts[j - 1]}"] if j > 0 else [f"{v} > -{_INF}"]
            upper = [f"{v} < {cuts[j]}"] if j < len(cuts) else [f"{v} < {_INF}"]
            exprs.append(f"{count_where(' and '.join(lower + upper))} as b{i}_{j}")
        exprs.append(f"{count_where(f'{v} = {_INF} or {v} = -{_INF}')} as b{i}_{len(cuts) + 1}")
        exprs.append(f"{count_where(f'{v} is null')} as b{i}_{len(cuts) + 2}")
        # Infinities are counted in their own bin, never summed: one would make the mean infinite or NaN.
        exprs.append(f"sum(case when {finite} then cast({v} as double precision) end) as s{i}")
    where = "t.as_of_date = $1" + (f" and t.model_version = {p(int(version))}" if version is not None else "")
    where += f" and t.alias = {p(alias)}" if alias is not None else ""
    row = warehouse.query(
        f"select {', '.join(exprs)} from (select {', '.join(values)} from {qualified(table.schema, table.name)} as t "
        f"where {where}{warehouse.subquery_fence}) as v",
        params,
    ).to_pylist()[0]
    counts, sums = {}, {}
    for i, b in enumerate(bins):
        size = len(b.categories) + 2 if b.kind == "categorical" else len(b.cuts) + 3
        counts[b.name] = [int(row[f"b{i}_{j}"] or 0) for j in range(size)]
        if b.kind != "categorical":
            sums[b.name] = row[f"s{i}"]
    return Histogram(int(row["n"]), counts, sums)


def threshold_shares(
    warehouse: Warehouse, spec: ModelSpec, version: int, dates: Sequence[dt.date], threshold: float
) -> dict[dt.date, float]:
    """The exact share of each date's scores by `version` at or above `threshold`, in one query
    (a date without scores is left out)."""
    t = tables.predictions(spec)
    marks = ", ".join(f"${i + 3}" for i in range(len(dates)))
    rows = warehouse.query(
        "select as_of_date, cast(sum(case when score >= $2 then 1 else 0 end) as double precision) / count(*) as share "
        f"from {qualified(t.schema, t.name)} where model_version = $1 and as_of_date in ({marks}) group by 1",
        [int(version), float(threshold), *dates],
    ).to_pylist()
    return {r["as_of_date"]: r["share"] for r in rows}


def score_buckets(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, version: int, alias: str | None = None) -> pa.Table:
    """The date's scores by `version` (a shadow's, with its `alias`) in SCORE_BUCKETS fine
    buckets: bucket, rows, mean_score."""
    t = tables.predictions(spec) if alias is None else tables.shadow(spec)
    params: list[Any] = [as_of_date, int(version)]
    if alias is not None:
        if not tables.exists(warehouse, t):
            return warehouse.query("select 0 as bucket, 0 as rows, 0.0 as mean_score where false")
        params.append(alias)
    return warehouse.query(
        f"select least(cast(floor(score * {SCORE_BUCKETS}) as integer), {SCORE_BUCKETS - 1}) as bucket, "
        f"count(*) as rows, avg(score) as mean_score from {qualified(t.schema, t.name)} "
        "where as_of_date = $1 and model_version = $2"
        + (" and alias = $3" if alias is not None else "")
        + " group by 1 order by 1",
        params,
    )


def shadow_versions(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date) -> list[tuple[str, int]]:
    """(alias, version) of every shadow version scored on the date."""
    t = tables.shadow(spec)
    if not tables.exists(warehouse, t):
        return []
    rows = warehouse.query(
        f"select distinct alias, model_version from {qualified(t.schema, t.name)} where as_of_date = $1 order by 1, 2",
        [as_of_date],
    ).to_pylist()
    return [(r["alias"], int(r["model_version"])) for r in rows]


def _pairs(spec: ModelSpec) -> str:
    """The champion's and a shadow version's scores of the same entities on a date: a, b, and the key."""
    p, sh = tables.predictions(spec), tables.shadow(spec)
    join = " and ".join(f"s.{quote(c)} = c.{quote(c)}" for c in spec.key_columns)
    keys = ", ".join(f"c.{quote(c)}" for c in spec.key_columns)
    return (
        f"select c.score as a, s.score as b, {keys} from {qualified(p.schema, p.name)} as c "
        f"inner join {qualified(sh.schema, sh.name)} as s on s.as_of_date = c.as_of_date and {join} "
        "where c.as_of_date = $1 and c.model_version = $2 and s.alias = $3 and s.model_version = $4"
    )


def shadow_stats(
    warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, version: int, alias: str, shadow_version: int, threshold: float
) -> dict[str, Any]:
    """Agreement of a shadow version with the champion on one date, in one query: rows, Pearson
    and Spearman correlation (ties get their average rank), mean and 95th-percentile absolute
    difference, Jaccard overlap of the two top deciles (the ceil(rows / 10) highest scores of
    each, ties broken by key), the share of rows whose decision at `threshold` flips, and the
    range (max - min) of each side's scores. A correlation is NULL or NaN (by backend) when a
    side is constant."""
    keys = ", ".join(quote(c) for c in spec.key_columns)
    stats: dict[str, Any] = warehouse.query(
        f"with j as ({_pairs(spec)}), ranked as (select a, b, "
        "cast(rank() over (order by a) + (count(*) over (partition by a) - 1) / 2.0 as double precision) as ra, "
        "cast(rank() over (order by b) + (count(*) over (partition by b) - 1) / 2.0 as double precision) as rb, "
        f"row_number() over (order by a desc, {keys}) as ta, row_number() over (order by b desc, {keys}) as tb, "
        "count(*) over () as n from j) "
        "select count(*) as rows, corr(a, b) as pearson, corr(ra, rb) as spearman, avg(abs(a - b)) as mean_abs_difference, "
        "max(a) - min(a) as champion_range, max(b) - min(b) as challenger_range, "
        "percentile_cont(0.95) within group (order by abs(a - b)) as p95_abs_difference, "
        "cast(sum(case when ta <= ceil(n / 10.0) and tb <= ceil(n / 10.0) then 1 else 0 end) as double precision) "
        "/ nullif(sum(case when ta <= ceil(n / 10.0) or tb <= ceil(n / 10.0) then 1 else 0 end), 0) as top_decile_jaccard, "
        "cast(avg(case when (a >= $5) <> (b >= $5) then 1 else 0 end) as double precision) as flip_share from ranked",
        [as_of_date, int(version), alias, int(shadow_version), float(threshold)],
    ).to_pylist()[0]
    return stats


def shadow_labelled(
    warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, version: int, alias: str, shadow_version: int
) -> pa.Table:
    """The champion's and the shadow's scores (a, b) with the label (y) of every labelled entity of the date."""
    lab = tables.labels(spec)
    join = " and ".join(f"l.{quote(c)} = j.{quote(c)}" for c in spec.key_columns)
    return warehouse.query(
        f"with j as ({_pairs(spec)}) select j.a, j.b, cast(l.{quote(spec.target)} as double precision) as y from j "
        f"inner join {qualified(lab.schema, lab.name)} as l on l.as_of_date = $1 and {join}",
        [as_of_date, int(version), alias, int(shadow_version)],
    )


def _labelled(spec: ModelSpec) -> str:
    p, lab = tables.predictions(spec), tables.labels(spec)
    join = " and ".join(f"l.{quote(c)} = p.{quote(c)}" for c in spec.key_columns)
    return (
        f"select p.score, cast(l.{quote(spec.target)} as double precision) as y, "
        + ", ".join(f"p.{quote(c)}" for c in spec.key_columns)
        + f" from {qualified(p.schema, p.name)} as p inner join {qualified(lab.schema, lab.name)} as l "
        f"on l.as_of_date = p.as_of_date and {join} where p.as_of_date = $1 and p.model_version = $2"
    )


def labelled_groups(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, version: int) -> pa.Table:
    """The date's labelled scores grouped by distinct score: score, rows, positives."""
    return warehouse.query(
        f"with j as ({_labelled(spec)}) select score, count(*) as rows, cast(sum(y) as double precision) as positives "
        "from j group by score order by score",
        [as_of_date, int(version)],
    )


def labelled_totals(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, version: int) -> dict[str, Any]:
    """Totals over the date's labelled scores: rows, positives, log-loss and Brier sums, and the
    positives among the top decile (the ceil(rows / 10) highest scores, ties broken by key)."""
    order = ", ".join(["score desc", *(quote(c) for c in spec.key_columns)])
    clipped = f"greatest(least(score, {1 - LOG_LOSS_EPS!r}), {LOG_LOSS_EPS!r})"
    totals: dict[str, Any] = warehouse.query(
        f"with j as ({_labelled(spec)}), ranked as (select score, y, row_number() over (order by {order}) as r, "
        "count(*) over () as total from j) "
        "select count(*) as rows, sum(y) as positives, "
        f"sum(-(y * ln({clipped}) + (1 - y) * ln(1 - {clipped}))) as log_loss_sum, sum((score - y) * (score - y)) as brier_sum, "
        "cast(sum(case when r <= ceil(total / 10.0) then y else 0 end) as double precision) as top_positives, "
        "cast(sum(case when r <= ceil(total / 10.0) then 1 else 0 end) as bigint) as top_rows from ranked",
        [as_of_date, int(version)],
    ).to_pylist()[0]
    return totals


def calibration_groups(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, version: int, bins: int = 10) -> pa.Table:
    """The date's labelled scores in `bins` equal-width score bins: bin, rows, mean_score, positive_rate."""
    return warehouse.query(
        f"with j as ({_labelled(spec)}) select least(cast(floor(score * {int(bins)}) as integer), {int(bins) - 1}) as bin, "
        "count(*) as rows, avg(score) as mean_score, avg(y) as positive_rate from j group by 1 order by 1",
        [as_of_date, int(version)],
    )


@dataclass(frozen=True)
class StoredProfile:
    """A date's profile as monitoring.feature_profiles holds it for one version."""

    counts: dict[str, list[int]]  # feature (and "score") -> rows per bin
    means: dict[str, float | None]  # numeric features and the score: the mean of the finite values
    scoring_run_ids: frozenset[str | None]  # the scoring run(s) its rows say they describe (empty when none)


def stored_profile(warehouse: Warehouse, model: str, version: int, as_of_date: dt.date) -> StoredProfile:
    """The feature (and score) profile stored for a date and version (empty when there is none)."""
    t = tables.FEATURE_PROFILES
    counts: dict[str, list[int]] = {}
    means: dict[str, float | None] = {}
    runs: set[str | None] = set()
    for r in warehouse.query(
        f"select feature, kind, bin, rows, mean, scoring_run_id from {qualified(t.schema, t.name)} "
        "where model_name = $1 and model_version = $2 and as_of_date = $3 order by feature, bin",
        [model, int(version), as_of_date],
    ).to_pylist():
        counts.setdefault(r["feature"], []).append(int(r["rows"]))
        if r["kind"] != "categorical":
            means[r["feature"]] = r["mean"]
        runs.add(r["scoring_run_id"])
    return StoredProfile(counts, means, frozenset(runs))


def has_rows(warehouse: Warehouse, table: Table, as_of_date: dt.date) -> bool:
    """Whether the table exists and holds a row of the date (reads one row at most)."""
    if warehouse.table_columns(table.schema, table.name) is None:
        return False
    where = qualified(table.schema, table.name)
    found: int = warehouse.query(f"select 1 as found from {where} where as_of_date = $1 limit 1", [as_of_date]).num_rows
    return found > 0


def scoring_runs(warehouse: Warehouse, spec: ModelSpec, version: int, dates: Sequence[dt.date]) -> dict[dt.date, str]:
    """The scoring run whose predictions by `version` each date holds (a date's predictions are
    replaced whole, so all of them come from one run), in one query reading one row per date;
    a date that holds none of that version is left out."""
    t = tables.predictions(spec)
    if not dates or not tables.exists(warehouse, t):
        return {}
    table = qualified(t.schema, t.name)
    one = [
        f"(select as_of_date, scoring_run_id from {table} where as_of_date = ${i + 2} and model_version = $1 limit 1)"
        for i in range(len(dates))
    ]
    rows = warehouse.query(" union all ".join(one), [int(version), *dates]).to_pylist()
    return {r["as_of_date"]: r["scoring_run_id"] for r in rows}


def scoring_run(warehouse: Warehouse, spec: ModelSpec, version: int, as_of_date: dt.date) -> str | None:
    """The scoring run whose predictions by `version` the date holds, or None (`scoring_runs`)."""
    return scoring_runs(warehouse, spec, version, [as_of_date]).get(as_of_date)


def versions_scored(warehouse: Warehouse, spec: ModelSpec, start: dt.date, end: dt.date) -> dict[dt.date, list[int]]:
    """The model versions whose predictions each date of start..end holds (one, unless mid-rewrite)."""
    return {day: sorted(versions) for day, versions in queries.scored_versions(warehouse, spec, start, end).items()}


def rows_of(warehouse: Warehouse, table: Table, model: str, start: dt.date, end: dt.date, version: int | None = None) -> pa.Table:
    """A model-health table's rows for a model over start..end (one version if given), oldest first."""
    params: list[Any] = [model, start, end]
    version_filter = ""
    if version is not None:
        params.append(int(version))
        version_filter = " and model_version = $4"
    return warehouse.query(
        f"select * from {qualified(table.schema, table.name)} where model_name = $1 and as_of_date between $2 and $3"
        f"{version_filter} order by as_of_date",
        params,
    )


def last_retrain_request(warehouse: Warehouse, model: str, on_or_before: dt.date) -> dt.date | None:
    """The latest as-of date on which monitoring asked for this model to be retrained."""
    t = tables.ALERTS
    row = warehouse.query(
        f"select max(as_of_date) as d from {qualified(t.schema, t.name)} "
        "where model_name = $1 and as_of_date <= $2 and action = 'retrain requested'",
        [model, on_or_before],
    ).to_pylist()[0]
    day: dt.date | None = row["d"]
    return day


def record_retrain_result(warehouse: Warehouse, model: str, as_of_date: dt.date, result: str) -> int:
    """Say on the alert rows that asked for a retrain what the retrain did."""
    t = tables.ALERTS
    return warehouse.update_rows(
        t.schema,
        t.name,
        {"model_name": model, "as_of_date": as_of_date, "action": "retrain requested"},
        {"action_result": result},
    )


def shadow_errors(warehouse: Warehouse, model: str, as_of_date: dt.date) -> str | None:
    """Why shadow scoring failed in the date's latest published attempt, if it did."""
    t = tables.SCORING_RUNS
    rows = warehouse.query(
        f"select shadow_error from {qualified(t.schema, t.name)} where model_name = $1 and as_of_date = $2 "
        "and status in ('published', 'succeeded', 'marts_failed') order by started_at desc limit 1",
        [model, as_of_date],
    ).to_pylist()
    return rows[0]["shadow_error"] if rows else None


def shadow_history(warehouse: Warehouse, model: str, version: int) -> pa.Table:
    """Every shadow_comparison row in which `version` was the challenger, oldest first."""
    t = tables.SHADOW_COMPARISON
    return warehouse.query(
        f"select * from {qualified(t.schema, t.name)} where model_name = $1 and challenger_version = $2 order by as_of_date",
        [model, int(version)],
    )


def record_promotion(warehouse: Warehouse, row: dict[str, Any]) -> None:
    import pyarrow as pa

    t = tables.PROMOTIONS
    warehouse.append(t.schema, t.name, pa.Table.from_pylist([row], schema=tables.promotions_schema()))


# -- what the model-health report reads (pipelines/report) ---------------------------


def recent_attempts(warehouse: Warehouse, model: str, as_of_date: dt.date, limit: int = 8) -> pa.Table:
    """The date's latest scoring attempts from the run log, newest first (at most `limit`)."""
    t = tables.SCORING_RUNS
    return warehouse.query(
        f"select * from {qualified(t.schema, t.name)} where model_name = $1 and as_of_date = $2 "
        f"order by started_at desc limit {int(limit)}",
        [model, as_of_date],
    )


def latest_validation(warehouse: Warehouse, model: str, as_of_date: dt.date) -> pa.Table:
    """Every expectation's result in the date's latest validation, failures first."""
    t = tables.VALIDATION_RESULTS
    return warehouse.query(
        f"with latest as (select validation_id from {qualified(t.schema, t.name)} where model_name = $1 "
        "and as_of_date = $2 order by validated_at desc limit 1) "
        f"select r.* from {qualified(t.schema, t.name)} as r inner join latest on latest.validation_id = r.validation_id "
        "where r.model_name = $1 order by r.success, r.unexpected_count desc nulls last, r.expectation_type, r.column_name",
        [model, as_of_date],
    )


def top_reasons(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, version: int, threshold: float) -> pa.Table:
    """Among the date's rows scored at or above `threshold`, how often each feature is the top
    reason, by direction: feature, raises (bool), rows, mean_contribution; most frequent first."""
    r, p = tables.reasons(spec), tables.predictions(spec)
    if not tables.exists(warehouse, r):
        return warehouse.query(
            "select cast(null as varchar) as feature, true as raises, 0 as rows, 0.0 as mean_contribution where false"
        )
    join = " and ".join(f"r.{quote(c)} = p.{quote(c)}" for c in spec.key_columns)
    return warehouse.query(
        f"select r.feature, r.contribution > 0 as raises, count(*) as rows, avg(r.contribution) as mean_contribution "
        f"from {qualified(r.schema, r.name)} as r inner join {qualified(p.schema, p.name)} as p "
        f"on p.as_of_date = r.as_of_date and {join} "
        "where r.as_of_date = $1 and r.rank = 1 and r.model_version = $2 and p.model_version = $2 and p.score >= $3 "
        "group by 1, 2 order by 3 desc, 1 limit 10",
        [as_of_date, int(version), float(threshold)],
    )


def shadow_pairs(
    warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, version: int, alias: str, shadow_version: int, limit: int
) -> pa.Table:
    """Up to `limit` (champion score a, shadow score b) pairs of the date, for a scatter plot:
    an even sample over the key order, so the same date always draws the same points."""
    keys = ", ".join(quote(c) for c in spec.key_columns)
    return warehouse.query(
        f"with j as ({_pairs(spec)}), numbered as (select a, b, row_number() over (order by {keys}) as i, "
        "count(*) over () as n from j) "
        f"select a, b from numbered where i % (cast(floor(n * 1.0 / {int(limit)}) as bigint) + 1) = 0",
        [as_of_date, int(version), alias, int(shadow_version)],
    )


# -- alert deliveries (pipelines.monitoring.alerts.deliver) ---------------------------


def queue_deliveries(warehouse: Warehouse, model: str, rows: list[dict[str, Any]]) -> int:
    """Add to monitoring.alert_deliveries the rows of `model` whose alert_id is not there yet
    (one already there keeps its state: a delivered alert stays delivered). Returns how many
    were added."""
    import pyarrow as pa

    t, schema = tables.ALERT_DELIVERIES, tables.alert_deliveries_schema()
    known = {
        r["alert_id"]
        for r in warehouse.query(f"select alert_id from {qualified(t.schema, t.name)} where model_name = $1", [model]).to_pylist()
    }
    new = list({r["alert_id"]: r for r in rows if r["alert_id"] not in known}.values())
    if new:
        warehouse.append(t.schema, t.name, pa.Table.from_pylist(new, schema=schema))
    return len(new)


def pending_deliveries(warehouse: Warehouse, model: str) -> list[dict[str, Any]]:
    """The alerts of `model` not delivered yet, from any date, oldest first."""
    t = tables.ALERT_DELIVERIES
    pending: list[dict[str, Any]] = warehouse.query(
        f"select * from {qualified(t.schema, t.name)} where model_name = $1 and delivered_at is null "
        "order by queued_at, alert_id",
        [model],
    ).to_pylist()
    return pending


def record_delivery(warehouse: Warehouse, alert_id: str, values: dict[str, Any]) -> int:
    """Set the outcome of an attempt (attempts, last_attempt_at, delivered_at, status, last_error) on one alert."""
    t = tables.ALERT_DELIVERIES
    return warehouse.update_rows(t.schema, t.name, {"alert_id": alert_id}, values)
