"""The model-health queries: computed by the warehouse, so only small results cross the wire.

Drift is one aggregate per date: the reference's bin edges go into a single scan of the
partition (`histogram`). Estimated performance reads a date's scores grouped into fine
buckets (`score_buckets`); realized performance reads scores joined to labels, grouped
by distinct score (`labelled_groups`) plus a few aggregates (`labelled_totals`). The
tables themselves are declared in `catalog`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.identifiers import qualified, quote
from pipelines.warehouse import catalog
from pipelines.warehouse.catalog import Table

if TYPE_CHECKING:
    import pyarrow as pa

    from pipelines.monitoring.reference import Bins
    from pipelines.spec import ModelSpec
    from pipelines.warehouse.base import Warehouse

# Fine buckets a date's scores are grouped into for the estimated performance: a bucket is
# 1/SCORE_BUCKETS wide, so rows that share one are treated as ties.
SCORE_BUCKETS = 10_000
# sklearn's log loss clips probabilities to [eps, 1 - eps], eps the float64 machine epsilon.
LOG_LOSS_EPS = 2.220446049250313e-16


@dataclass(frozen=True)
class Histogram:
    rows: int
    counts: dict[str, list[int]]  # per feature: rows per bin, the null bin last
    sums: dict[str, tuple[float | None, float | None]]  # numeric features: (sum, sum of squares) of the non-null values


def _value(column: str, kind: str) -> str:
    """How a column reads for binning: numbers as the model reads them (float64, then float32;
    NaN is null), text as it is."""
    if kind == "categorical":
        return f"t.{quote(column)}"
    return f"nullif(cast(cast(t.{quote(column)} as double precision) as real), cast('NaN' as real))"


def histogram(
    warehouse: Warehouse, table: Table, as_of_date: dt.date, bins: Sequence[Bins], version: int | None = None
) -> Histogram:
    """Rows per bin of every feature in `bins` for one date of `table` (only the rows of
    `version` if given: a predictions table), in a single scan."""
    params: list[Any] = [as_of_date]

    def p(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    exprs = ["count(*) as n"]
    for i, b in enumerate(bins):
        v = _value(b.name, b.kind)
        if b.kind == "categorical":
            listed = [p(c) for c in b.categories]
            exprs += [f"count(*) filter (where {v} = {x}) as b{i}_{j}" for j, x in enumerate(listed)]
            exprs.append(f"count(*) filter (where {v} is not null and {v} not in ({', '.join(listed)})) as b{i}_{len(listed)}")
            exprs.append(f"count(*) filter (where {v} is null) as b{i}_{len(listed) + 1}")
            continue
        cuts = [p(float(c)) for c in b.cuts]
        for j in range(len(cuts) + 1):
            lower = [f"{v} >= {cuts[j - 1]}"] if j > 0 else []
            upper = [f"{v} < {cuts[j]}"] if j < len(cuts) else []
            exprs.append(f"count(*) filter (where {' and '.join(lower + upper) or f'{v} is not null'}) as b{i}_{j}")
        exprs.append(f"count(*) filter (where {v} is null) as b{i}_{len(cuts) + 1}")
        exprs.append(f"sum(cast({v} as double precision)) as s{i}")
        exprs.append(f"sum(cast({v} as double precision) * cast({v} as double precision)) as q{i}")
    where = "t.as_of_date = $1" + (f" and t.model_version = {p(int(version))}" if version is not None else "")
    row = warehouse.query(
        f"select {', '.join(exprs)} from {qualified(table.schema, table.name)} as t where {where}", params
    ).to_pylist()[0]
    counts, sums = {}, {}
    for i, b in enumerate(bins):
        size = len(b.categories) + 2 if b.kind == "categorical" else len(b.cuts) + 2
        counts[b.name] = [int(row[f"b{i}_{j}"] or 0) for j in range(size)]
        if b.kind != "categorical":
            sums[b.name] = (row[f"s{i}"], row[f"q{i}"])
    return Histogram(int(row["n"]), counts, sums)


def score_buckets(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, version: int) -> pa.Table:
    """The date's scores by `version` in SCORE_BUCKETS fine buckets: bucket, rows, mean_score."""
    t = catalog.predictions(spec)
    return warehouse.query(
        f"select least(cast(floor(score * {SCORE_BUCKETS}) as integer), {SCORE_BUCKETS - 1}) as bucket, "
        f"count(*) as rows, avg(score) as mean_score from {qualified(t.schema, t.name)} "
        "where as_of_date = $1 and model_version = $2 group by 1 order by 1",
        [as_of_date, int(version)],
    )


def _labelled(spec: ModelSpec) -> str:
    p, lab = catalog.predictions(spec), catalog.labels(spec)
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
    return warehouse.query(
        f"with j as ({_labelled(spec)}), ranked as (select score, y, row_number() over (order by {order}) as r, "
        "count(*) over () as total from j) "
        "select count(*) as rows, sum(y) as positives, "
        f"sum(-(y * ln({clipped}) + (1 - y) * ln(1 - {clipped}))) as log_loss_sum, sum((score - y) * (score - y)) as brier_sum, "
        "cast(sum(case when r <= ceil(total / 10.0) then y else 0 end) as double precision) as top_positives, "
        "cast(sum(case when r <= ceil(total / 10.0) then 1 else 0 end) as bigint) as top_rows from ranked",
        [as_of_date, int(version)],
    ).to_pylist()[0]


def calibration_groups(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, version: int, bins: int = 10) -> pa.Table:
    """The date's labelled scores in `bins` equal-width score bins: bin, rows, mean_score, positive_rate."""
    return warehouse.query(
        f"with j as ({_labelled(spec)}) select least(cast(floor(score * {int(bins)}) as integer), {int(bins) - 1}) as bin, "
        "count(*) as rows, avg(score) as mean_score, avg(y) as positive_rate from j group by 1 order by 1",
        [as_of_date, int(version)],
    )


def stored_profile(warehouse: Warehouse, model: str, version: int, as_of_date: dt.date) -> dict[str, list[int]]:
    """The feature (and score) profile stored for a date and version: {feature: rows per bin}; {} if none."""
    t = catalog.FEATURE_PROFILES
    if warehouse.table_columns(t.schema, t.name) is None:
        return {}
    found: dict[str, list[int]] = {}
    for r in warehouse.query(
        f"select feature, bin, rows from {qualified(t.schema, t.name)} "
        "where model_name = $1 and model_version = $2 and as_of_date = $3 order by feature, bin",
        [model, int(version), as_of_date],
    ).to_pylist():
        found.setdefault(r["feature"], []).append(int(r["rows"]))
    return found


def stored_means(warehouse: Warehouse, model: str, version: int, as_of_date: dt.date) -> dict[str, float | None]:
    """The numeric features' (and the score's) means on a date, from its stored baseline drift rows."""
    t = catalog.FEATURE_DRIFT
    if warehouse.table_columns(t.schema, t.name) is None:
        return {}
    rows = warehouse.query(
        f"select feature, mean from {qualified(t.schema, t.name)} "
        "where model_name = $1 and model_version = $2 and as_of_date = $3 and comparison = 'baseline'",
        [model, int(version), as_of_date],
    ).to_pylist()
    return {r["feature"]: r["mean"] for r in rows}


def versions_scored(warehouse: Warehouse, spec: ModelSpec, start: dt.date, end: dt.date) -> dict[dt.date, list[int]]:
    """The model versions whose predictions each date of start..end holds (one, unless mid-rewrite)."""
    return {day: sorted(versions) for day, versions in catalog.scored_versions(warehouse, spec, start, end).items()}


def rows_of(warehouse: Warehouse, table: Table, model: str, start: dt.date, end: dt.date, version: int | None = None) -> pa.Table:
    """A model-health table's rows for a model over start..end (one version if given), oldest first."""
    if warehouse.table_columns(table.schema, table.name) is None:
        from pipelines.warehouse.catalog import health_schema

        return health_schema(table).empty_table()
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
    t = catalog.ALERTS
    if warehouse.table_columns(t.schema, t.name) is None:
        return None
    row = warehouse.query(
        f"select max(as_of_date) as d from {qualified(t.schema, t.name)} "
        "where model_name = $1 and as_of_date <= $2 and action = 'retrain requested'",
        [model, on_or_before],
    ).to_pylist()[0]
    return row["d"]


def record_retrain_result(warehouse: Warehouse, model: str, as_of_date: dt.date, result: str) -> int:
    """Say on the alert rows that asked for a retrain what the retrain did."""
    t = catalog.ALERTS
    return warehouse.update_rows(
        t.schema,
        t.name,
        {"model_name": model, "as_of_date": as_of_date, "action": "retrain requested"},
        {"action_result": result},
    )
