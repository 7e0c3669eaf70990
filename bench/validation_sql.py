"""The bench suite's checks as one hand-written aggregate query: a single scan of the
partition that counts, per expectation, the rows breaking it.

It covers the expectation types bench/bench_features.json uses. The column-set check
costs nothing extra: the query names every column, so a missing one is an error.
"""

from __future__ import annotations

import datetime as dt
import json

from pipelines.adapters.warehouse import Warehouse
from pipelines.config.spec import ModelSpec
from pipelines.domain.identifiers import qualified, quote


def _literal(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"only numeric values are supported here, got {value!r}")
    return repr(value)


def suite_query(spec: ModelSpec) -> tuple[str, list[tuple[str, float]]]:
    """The query, and for each of its columns after `n` the share of rows allowed to break it."""
    entries = json.loads(spec.suite_path.read_text())["expectations"]
    columns, allowed = ["count(*) as n"], []
    for i, entry in enumerate(entries):
        kind, kwargs = entry["type"], entry["kwargs"]
        column = quote(kwargs["column"]) if "column" in kwargs else None
        if kind in ("expect_table_row_count_to_be_between", "expect_table_columns_to_match_set"):
            continue  # row count is `n`; the columns are all named below
        if kind == "expect_column_values_to_not_be_null":
            broken = f"count(*) - count({column})"
        elif kind == "expect_column_values_to_be_unique":
            broken = f"count({column}) - count(distinct {column})"
        elif kind == "expect_column_values_to_be_in_set":
            values = ", ".join(_literal(v) for v in kwargs["value_set"])
            broken = f"count(*) filter (where {column} not in ({values}))"
        elif kind == "expect_column_values_to_be_between":
            low, high = _literal(kwargs["min_value"]), _literal(kwargs["max_value"])
            broken = f"count(*) filter (where {column} < {low} or {column} > {high})"
        else:
            raise ValueError(f"no SQL for {kind}")
        columns.append(f"{broken} as e{i}")
        allowed.append((f"e{i}", 1 - kwargs.get("mostly", 1)))
    return ",\n  ".join(columns), allowed


def validate_sql(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date) -> dict:
    """Run the query over the date's rows; return the counts and whether every check passed."""
    select, allowed = suite_query(spec)
    sql = f"select\n  {select}\nfrom {qualified('analytics', spec.features_model)} where as_of_date = $1"
    row = warehouse.query(sql, [as_of_date]).to_pylist()[0]
    bounds = next(e["kwargs"] for e in json.loads(spec.suite_path.read_text())["expectations"]
                  if e["type"] == "expect_table_row_count_to_be_between")  # fmt: skip
    ok = bounds["min_value"] <= row["n"] <= bounds["max_value"]
    ok = ok and all(row[name] <= share * row["n"] for name, share in allowed)
    return {"success": ok, **row}
