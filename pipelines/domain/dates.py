"""Dates as users type them: parsed strictly, and ranges of them."""

from __future__ import annotations

import datetime as dt
import re

from pipelines.domain.errors import InputError


def parse_date(value: object, what: str = "as_of_date") -> dt.date:
    """Accept a date, a datetime (its date) or a YYYY-MM-DD string; refuse anything else,
    impossible dates (2026-02-30) included. Always returns a plain `datetime.date`."""
    if isinstance(value, dt.date):  # datetimes included: they are dates too
        return dt.date(value.year, value.month, value.day)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise InputError(f"{what} {value.strip()} is not a date that exists") from None
    raise InputError(f"{what} must be a date written YYYY-MM-DD; got {value!r}")


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise InputError(f"--end {end} is before --start {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
