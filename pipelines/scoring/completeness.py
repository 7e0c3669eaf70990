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

D's labels are complete when D + the label horizon is complete and, beyond that,
every `completeness.label_sources` table (the raw tables the labels model reads that
are not completeness sources, such as churn's raw.cancellations) has events on or
after D + the horizon: a label read from a table loaded only half way would be a
silent wrong number. `check_label_sources` refuses a labels model that reads a raw
table neither list names (found in dbt's manifest). A table of rare events holds
labels back until its next event after D + the horizon: late, never wrong.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from pipelines.adapters.warehouse import Warehouse
from pipelines.adapters.warehouse.queries import source_extent
from pipelines.config.spec import ModelSpec, Source
from pipelines.domain.errors import IncompleteDate, SpecError


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
    label_extents: tuple[Extent, ...] = ()  # read only for labels (`coverage(..., labels=True)`)

    @property
    def last_complete(self) -> dt.date | None:
        """The latest complete as-of date, or None when no date is complete."""
        if any(e.last is None for e in self.extents):
            return None
        last = min(min(cast(dt.date, e.last) for e in self.extents), self.today - dt.timedelta(days=1))
        return last if self.first_complete is not None and last >= self.first_complete else None

    @property
    def first_complete(self) -> dt.date | None:
        """The earliest as-of date with `lookback_days` of history in every source."""
        if any(e.first is None for e in self.extents):
            return None
        return max(cast(dt.date, e.first) for e in self.extents) + dt.timedelta(days=self.lookback_days - 1)

    @property
    def labels_through(self) -> dt.date | None:
        """The last day every source, label sources included, holds events for (and that is
        over): labels of D are complete when this is on or after D + the horizon."""
        lasts = [e.last for e in self.extents + self.label_extents]
        if not lasts or None in lasts:
            return None
        return min(*cast("list[dt.date]", lasts), self.today - dt.timedelta(days=1))

    def problem(self, as_of_date: dt.date, horizon_days: int = 0) -> str | None:
        """Why `as_of_date` (and, with `horizon_days`, the days after it up to D + horizon,
        in the label sources too) is not complete, or None when it is."""
        end = as_of_date + dt.timedelta(days=horizon_days)
        extents = self.extents + (self.label_extents if horizon_days else ())
        for e in extents:
            if e.last is None:
                return f"{e.source.name} has no rows"
        if end >= self.today:
            what = "is today, which is not over" if end == self.today else "is in the future"
            subject = f"as-of date {as_of_date}" if not horizon_days else f"{end} (as-of date {as_of_date} + {horizon_days} days)"
            return f"{subject} {what} (the current UTC date is {self.today})"
        for e in extents:
            if cast(dt.date, e.last) < end:
                subject = (
                    f"as-of date {as_of_date}" if not horizon_days else f"{end} (as-of date {as_of_date} + {horizon_days} days)"
                )
                return f"{subject} is not complete: the last event in {e.source.name} ({e.source.event_column}) is on {e.last}"
        start = as_of_date - dt.timedelta(days=self.lookback_days - 1)
        for e in self.extents:
            if cast(dt.date, e.first) > start:
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


def coverage(warehouse: Warehouse, spec: ModelSpec, now: dt.datetime, labels: bool = False) -> Coverage:
    """Read each completeness source's first and last event date (one small query each), and
    with `labels` each label source's too."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")

    def extents(sources: tuple[Source, ...]) -> tuple[Extent, ...]:
        return tuple(Extent(source, *source_extent(warehouse, source)) for source in sources)

    return Coverage(
        spec.name,
        extents(spec.completeness.sources),
        spec.completeness.lookback_days,
        now.astimezone(dt.UTC).date(),
        extents(spec.completeness.label_sources) if labels else (),
    )


def unlisted_label_sources(spec: ModelSpec, manifest: dict) -> list[str]:
    """The tables (schema.table) the labels model reads, other than through its features model,
    that neither `completeness.sources` nor `completeness.label_sources` lists, from a dbt
    manifest's `parent_map`. Refuses (SpecError) a manifest without the labels model."""
    labels = [k for k, n in manifest["nodes"].items() if n["resource_type"] == "model" and n["name"] == spec.labels_model]
    if not labels:
        raise SpecError(f"{spec.name}: the dbt project has no model {spec.labels_model!r} (labels_model in model.yaml)")
    features = {k for k, n in manifest["nodes"].items() if n["resource_type"] == "model" and n["name"] == spec.features_model}
    listed = {s.name for s in spec.completeness.sources + spec.completeness.label_sources}
    read, seen, todo = set(), set(), labels
    while todo:
        node = todo.pop()
        if node in seen or node in features:  # the features' own sources are the completeness rule's
            continue
        seen.add(node)
        if node in manifest["sources"]:
            source = manifest["sources"][node]
            read.add(f"{source['schema']}.{source['identifier']}")
        todo.extend(manifest["parent_map"].get(node, []))
    return sorted(read - listed)


def check_label_sources(spec: ModelSpec, manifest_path: Path) -> None:
    """Refuse (SpecError) a labels model that reads a table the label-completeness rule does not
    cover, naming the table and the model.yaml key to add it to. Reads the manifest dbt wrote
    when it built the labels; does nothing when there is none."""
    if not manifest_path.is_file():
        return
    unlisted = unlisted_label_sources(spec, json.loads(manifest_path.read_text()))
    if unlisted:
        where = spec.source_dir / "model.yaml" if spec.source_dir else "model.yaml"
        raise SpecError(
            f"{spec.name}: its labels model {spec.labels_model} reads {', '.join(unlisted)}, which completeness does "
            f"not list, so its labels could be read before that table is complete; add each to "
            f"completeness.label_sources in {where} with its event column (e.g. {unlisted[0]}: <date column>)"
        )
