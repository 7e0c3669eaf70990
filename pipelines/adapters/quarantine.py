"""Rows that break a row-level expectation the suite tolerates (`mostly` < 1).

A suite may allow a share of rows to break a rule, e.g. `"mostly": 0.99` on a range
check. When a date passes validation thanks to `mostly`, the rows that broke such a
rule are not scored: they go to `monitoring.<model>_quarantine`, one row per entity
with every reason, keyed by the validation that found them, and scoring reads the
partition minus exactly those rows. Scored plus quarantined is the partition.

The rows are the ones Great Expectations itself reported as unexpected
(`unexpected_index_column_names`, the entity key), so every kwarg GX honours
(`value_set` with a null in it, `strict_min`, `row_condition`, ...) means the same
here as in the validation. Nothing re-derives GX's rules in SQL. Only expectations
whose unexpected rows GX can name are accepted with `mostly`; any other is refused
when the suite is read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pipelines.domain.errors import SpecError, ValidationFailed

# Expectations GX cannot name unexpected rows for on SQL (it skips the index query on
# purpose, or the check is not row-level at all): `mostly` on these is refused.
NO_ROW_INDEX = ("expect_compound_columns_to_be_unique",)


def check_tolerable(path: str, number: int, expectation: Any) -> None:
    """Refuse (SpecError) `mostly` on an expectation whose failing rows cannot be named."""
    mostly = getattr(expectation, "mostly", None)
    if mostly is None or mostly >= 1:
        return
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    row_level = isinstance(expectation, (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation))
    if not row_level or expectation.expectation_type in NO_ROW_INDEX:
        raise SpecError(
            f"{path}: expectation #{number} ({expectation.expectation_type}) sets mostly={mostly}, but Great "
            "Expectations cannot name the rows that break it, so batchpred could not keep them out of scoring; "
            "drop 'mostly' (then any bad row fails the date), or use a row-level expectation"
        )


def describe(config: Any) -> str:
    """A short reason for the quarantine table, e.g. 'plan: expect_column_values_to_be_in_set (mostly=0.95)'."""
    kwargs = config.kwargs
    columns = kwargs.get("column") or kwargs.get("column_list") or [kwargs.get("column_A"), kwargs.get("column_B")]
    columns = columns if isinstance(columns, str) else ",".join(str(c) for c in columns if c)
    return f"{columns}: {config.type} (mostly={kwargs.get('mostly')})"


def rows(
    key: Sequence[str], found: list[tuple[str, int, list[dict[str, Any]]]], table: str, as_of_date: dt.date
) -> dict[tuple[Any, ...], list[str]]:
    """{entity key: reasons} from the unexpected rows GX named, one (reason, count, index list) per
    tolerated expectation. Refuses (ValidationFailed) a list that does not account for every
    row GX counted: rows that cannot be kept out of scoring must not be scored."""
    held: dict[tuple[Any, ...], list[str]] = {}
    for reason, count, index in found:
        if len(index) != count:
            raise ValidationFailed(
                f"Great Expectations counted {count} unexpected rows of {table} for {as_of_date} under {reason}, "
                f"but named {len(index)}; nothing was scored, because those rows could not be kept out"
            )
        for entry in index:
            held.setdefault(tuple(entry[c] for c in key), []).append(reason)
    return held
