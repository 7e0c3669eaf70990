"""Which as-of dates are complete, from each source's first and last event (no warehouse needed)."""

import datetime as dt

import pytest

from pipelines.config.spec import Source
from pipelines.domain.errors import IncompleteDate
from pipelines.scoring.completeness import Coverage, Extent

USAGE, INVOICES = Source("raw", "usage_daily", "usage_date"), Source("raw", "invoices", "invoice_date")
TODAY = dt.date(2026, 3, 1)


def coverage(usage=(dt.date(2025, 10, 1), dt.date(2026, 2, 27)), invoices=(dt.date(2025, 10, 5), dt.date(2026, 2, 28))):
    return Coverage("churn", (Extent(USAGE, *usage), Extent(INVOICES, *invoices)), 90, TODAY)


def test_the_complete_dates_run_from_the_latest_start_plus_the_lookback_to_the_earliest_end():
    cover = coverage()
    assert cover.first_complete == dt.date(2025, 10, 5) + dt.timedelta(days=89)
    assert cover.last_complete == dt.date(2026, 2, 27)  # usage stops first
    assert cover.problem(dt.date(2026, 2, 27)) is None
    assert cover.problem(cover.first_complete) is None


@pytest.mark.parametrize(
    "day, horizon, message",
    [
        (dt.date(2026, 2, 28), 0, "the last event in raw.usage_daily (usage_date) is on 2026-02-27"),
        (TODAY, 0, "is today, which is not over"),
        (dt.date(2026, 6, 1), 0, "is in the future"),
        (
            dt.date(2025, 12, 1),
            0,
            "needs 90 days of history, back to 2025-09-03, but raw.usage_daily (usage_date) starts on 2025-10-01",
        ),
        (dt.date(2026, 2, 1), 30, "2026-03-03 (as-of date 2026-02-01 + 30 days) is in the future"),
        (dt.date(2026, 1, 29), 30, "2026-02-28 (as-of date 2026-01-29 + 30 days) is not complete"),
    ],
)
def test_an_incomplete_date_names_the_source_and_its_event_date(day, horizon, message):
    cover = coverage()
    with pytest.raises(IncompleteDate) as excinfo:
        cover.check(day, horizon)
    assert message in str(excinfo.value)
    assert "complete as-of dates run from 2026-01-02 to 2026-02-27" in str(excinfo.value)


def test_labels_are_complete_once_the_horizon_is_inside_the_data():
    assert coverage().problem(dt.date(2026, 1, 28), horizon_days=30) is None


def test_the_end_of_data_is_capped_at_the_last_day_that_is_over():
    cover = coverage(usage=(dt.date(2025, 10, 1), TODAY), invoices=(dt.date(2025, 10, 1), TODAY + dt.timedelta(days=3)))
    assert cover.last_complete == TODAY - dt.timedelta(days=1)


def test_an_empty_source_makes_no_date_complete():
    cover = coverage(usage=(None, None))
    assert cover.last_complete is None and cover.first_complete is None
    with pytest.raises(IncompleteDate, match="raw.usage_daily has no rows"):
        cover.check(dt.date(2026, 1, 1))


def test_split_keeps_the_complete_dates_in_order_and_says_why_for_the_rest():
    days = [dt.date(2026, 2, 26) + dt.timedelta(days=i) for i in range(4)]
    complete, skipped = coverage().split(days)
    assert complete == days[:2]
    assert set(skipped) == set(days[2:]) and all("raw.usage_daily" in why or "today" in why for why in skipped.values())
