"""Which as-of dates the warehouse holds complete data for.

A model declares, in `completeness` in its model.yaml, the raw tables that get rows
every day and the event column of each, plus the longest window any feature reads
(`lookback_days`). An as-of date D is complete when:

- D is over: it ended (midnight UTC) before now;
- every source's high-water mark (its latest event, as a UTC date) is on or after D;
- every source's first event is on or before D - lookback_days + 1, so no feature
  window is cut short by the start of the data.

A date is scored, used as a training snapshot, or has its labels read only when it
is complete (labels: when D + the label horizon is complete). Anything else is
refused with `IncompleteDate`, naming the source, its first or last event date and
the date asked for. Nothing is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from pipelines.errors import IncompleteDate
from pipelines.spec import ModelSpec, Source
from pipelines.warehouse import Warehouse
from pipelines.warehouse.catalog import source_extent


@dataclass(frozen=True)
class Extent:
    source: Source
    first: dt.date | None
    last: dt.date | None


@dataclass(frozen=True)
class Coverage:
    """What the warehouse holds for one model, read once; `today` is the current UTC date."""

    model: str
    extents: tuple[Extent, ...]
    lookback_days: int
    today: dt.date

    @property
    def last_complete(self) -> dt.date | None:
        """The latest complete as-of date, or None when no date is complete."""
        if any(e.last is None for e in self.extents):
            return None
        last = min(min(e.last for e in self.extents), self.today - dt.timedelta(days=1))  # type: ignore[type-var]
        return last if self.first_complete is not None and last >= self.first_complete else None

    @property
    def first_complete(self) -> dt.date | None:
        """The earliest as-of date with `lookback_days` of history in every source."""
        if any(e.first is None for e in self.extents):
            return None
        return max(e.first for e in self.extents) + dt.timedelta(days=self.lookback_days - 1)  # type: ignore[operator]

    def problem(self, as_of_date: dt.date, horizon_days: int = 0) -> str | None:
        """Why `as_of_date` (and, with `horizon_days`, the days after it up to D + horizon) is
        not complete, or None when it is."""
        end = as_of_date + dt.timedelta(days=horizon_days)
        for e in self.extents:
            if e.last is None:
                return f"{e.source.name} has no rows"
        if end >= self.today:
            what = "is today, which is not over" if end == self.today else "is in the future"
            subject = f"as-of date {as_of_date}" if not horizon_days else f"{end} (as-of date {as_of_date} + {horizon_days} days)"
            return f"{subject} {what} (the current UTC date is {self.today})"
        for e in self.extents:
            if e.last < end:  # type: ignore[operator]
                subject = (
                    f"as-of date {as_of_date}" if not horizon_days else f"{end} (as-of date {as_of_date} + {horizon_days} days)"
                )
                return f"{subject} is not complete: the last event in {e.source.name} ({e.source.event_column}) is on {e.last}"
        start = as_of_date - dt.timedelta(days=self.lookback_days - 1)
        for e in self.extents:
            if e.first > start:  # type: ignore[operator]
                return (
                    f"as-of date {as_of_date} needs {self.lookback_days} days of history, back to {start}, but "
                    f"{e.source.name} ({e.source.event_column}) starts on {e.first}"
                )
        return None

    def check(self, as_of_date: dt.date, horizon_days: int = 0) -> None:
        """Refuse (IncompleteDate) an as-of date that is not complete, saying which dates are."""
        problem = self.problem(as_of_date, horizon_days)
        if problem is not None:
            raise IncompleteDate(f"{self.model}: {problem}; {self.describe()}")

    def describe(self) -> str:
        first, last = self.first_complete, self.last_complete
        if last is None or first is None:
            return "no as-of date is complete yet"
        return f"complete as-of dates run from {first} to {last}"

    def split(self, dates: Iterable[dt.date], horizon_days: int = 0) -> tuple[list[dt.date], dict[dt.date, str]]:
        """(complete dates, {incomplete date: why}), in the order given."""
        complete, skipped = [], {}
        for day in dates:
            problem = self.problem(day, horizon_days)
            if problem is None:
                complete.append(day)
            else:
                skipped[day] = problem
        return complete, skipped


def coverage(warehouse: Warehouse, spec: ModelSpec, now: dt.datetime) -> Coverage:
    """Read each completeness source's first and last event date (one small query each)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    extents = tuple(Extent(source, *source_extent(warehouse, source)) for source in spec.completeness.sources)
    return Coverage(spec.name, extents, spec.completeness.lookback_days, now.astimezone(dt.UTC).date())
