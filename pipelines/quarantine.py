"""Rows that break a row-level expectation the suite tolerates (`mostly` < 1).

A suite may allow a share of rows to break a rule, e.g. `"mostly": 0.99` on a range
check. When a date passes validation thanks to `mostly`, the rows that broke such a
rule are not scored: they go to `monitoring.<model>_quarantine`, one row per entity
with every reason, and scoring reads the others. Scored plus quarantined is the input.
If more rows break the rule than `mostly` allows, validation fails and the whole date
is refused, so nothing here runs.

The rules are read from the suite file itself (no Great Expectations import): each
tolerated expectation becomes a SQL condition whose values travel as bound parameters.
Only expectations whose failing rows SQL can name are accepted with `mostly`; any other
is refused when the suite is read, rather than letting rows slip through unaccounted.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipelines.errors import SpecError
from pipelines.identifiers import check_identifier, qualified, quote
from pipelines.spec import ModelSpec
from pipelines.warehouse import Warehouse

SUPPORTED = (
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
)


@dataclass(frozen=True)
class Rule:
    """One tolerated expectation: `condition` is true for the rows that break it."""

    reason: str
    condition: str  # SQL with placeholders {0}, {1}, ... for `params`
    params: tuple[Any, ...]


def table_name(spec: ModelSpec) -> str:
    return f"{spec.name}_quarantine"


def schema(spec: ModelSpec) -> pa.Schema:
    return pa.schema(
        [
            pa.field(spec.entity_key, pa.int64(), nullable=False),
            pa.field("as_of_date", pa.date32(), nullable=False),
            pa.field("reasons", pa.string(), nullable=False),
            pa.field("validation_id", pa.string(), nullable=False),
            pa.field("quarantined_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )


def rules(suite_path: Path) -> list[Rule]:
    """The suite's tolerated row-level expectations, as SQL conditions."""
    try:
        entries = json.loads(suite_path.read_text()).get("expectations", [])
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecError(f"cannot read expectation suite {suite_path}: {exc}") from None
    found = []
    for i, entry in enumerate(entries, 1):
        kwargs = entry.get("kwargs") or {}
        mostly = kwargs.get("mostly", 1)
        if mostly is None or mostly >= 1:
            continue
        kind = entry.get("type")
        if kind not in SUPPORTED:
            raise SpecError(
                f"{suite_path}: expectation #{i} ({kind}) sets mostly={mostly}, but batchpred can only quarantine the "
                f"failing rows of {', '.join(SUPPORTED)}; drop 'mostly' or use one of those"
            )
        column = check_identifier(kwargs.get("column"), f"{suite_path}: expectation #{i} column")
        found.append(_rule(kind, column, kwargs, mostly))
    return found


def _rule(kind: str, column: str, kwargs: dict[str, Any], mostly: float) -> Rule:
    col = quote(column)
    tolerated = f"(tolerated by mostly={mostly})"
    if kind == "expect_column_values_to_not_be_null":
        return Rule(f"{column} is null {tolerated}", f"{col} is null", ())
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        inside, params = [], []
        if low is not None:
            inside.append(f"{col} {'>' if kwargs.get('strict_min') else '>='} {{{len(params)}}}")
            params.append(low)
        if high is not None:
            inside.append(f"{col} {'<' if kwargs.get('strict_max') else '<='} {{{len(params)}}}")
            params.append(high)
        if not inside:
            raise SpecError(f"expect_column_values_to_be_between on {column} needs min_value or max_value")
        return Rule(
            f"{column} outside [{low}, {high}] {tolerated}", f"{col} is not null and not ({' and '.join(inside)})", tuple(params)
        )
    values = list(kwargs.get("value_set") or [])
    placeholders = ", ".join(f"{{{i}}}" for i in range(len(values)))
    if kind == "expect_column_values_to_be_in_set":
        return Rule(
            f"{column} not in {values} {tolerated}", f"{col} is not null and {col} not in ({placeholders})", tuple(values)
        )
    return Rule(f"{column} in {values} {tolerated}", f"{col} in ({placeholders})", tuple(values))


def _sql(rule: Rule, first_param: int) -> str:
    """The rule's condition (never null), its values numbered from `$first_param`."""
    return f"coalesce({rule.condition.format(*(f'${first_param + i}' for i in range(len(rule.params))))}, false)"


def condition(found: list[Rule], first_param: int) -> tuple[str, list[Any]]:
    """SQL true for the rows that break any rule, numbering parameters from `$first_param`."""
    parts, params = [], []
    for rule in found:
        parts.append(_sql(rule, first_param + len(params)))
        params.extend(rule.params)
    return (" or ".join(parts) or "false"), params


def replace(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, validation_id: str) -> int:
    """Replace the date's quarantine with the feature rows that break a tolerated rule.
    Returns how many entities were quarantined."""
    found = rules(spec.suite_path)
    table = table_name(spec)
    if not found:
        # Nothing is tolerated, so nothing can be quarantined; keep an existing table truthful.
        if warehouse.table_columns("monitoring", table) is not None:
            warehouse.execute(f"delete from {qualified('monitoring', table)} where as_of_date = $1", [as_of_date])
        return 0
    # $1 is the date, $2 the validation id; then each rule's values and its reason.
    params: list[Any] = [as_of_date, validation_id]
    reasons = []
    for rule in found:
        test = _sql(rule, len(params) + 1)
        params.extend([*rule.params, rule.reason])
        reasons.append(f"case when {test} then cast(${len(params)} as text) end")
    key = quote(spec.entity_key)
    select = (
        f"select {key}, as_of_date, reasons, cast($2 as text), current_timestamp from ("
        f"select {key}, as_of_date, concat_ws('; ', {', '.join(reasons)}) as reasons "
        f"from {qualified('analytics', spec.features_model)} where as_of_date = $1) as checked where reasons <> ''"
    )
    return warehouse.replace_partition_select("monitoring", table, as_of_date, schema(spec), select, params)


def count(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, validation_id: str) -> int:
    """How many rows of the date that validation quarantined."""
    table = table_name(spec)
    if warehouse.table_columns("monitoring", table) is None:
        return 0
    return warehouse.query(
        f"select count(*) as n from {qualified('monitoring', table)} where as_of_date = $1 and validation_id = $2",
        [as_of_date, validation_id],
    ).to_pylist()[0]["n"]
