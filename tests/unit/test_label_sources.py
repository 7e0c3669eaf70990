"""A label source counts only for labels (the rest of label completeness, on a real warehouse,
is in tests/integration/test_labels.py)."""

import datetime as dt
from dataclasses import replace

from pipelines.config.spec import Source
from pipelines.scoring.completeness import Coverage, Extent
from tests.conftest import AS_OF

LABELLED = AS_OF - dt.timedelta(days=32)  # its 30-day labels are complete by AS_OF; not a training snapshot
LAG = LABELLED + dt.timedelta(days=10)  # the example: cancellations loaded only up to L + 10


def test_a_label_source_counts_only_for_labels():
    usage = Source("raw", "usage_daily", "usage_date")
    cancellations = Source("raw", "cancellations", "cancelled_at")
    cover = Coverage(
        "churn",
        (Extent(usage, dt.date(2025, 1, 1), dt.date(2026, 1, 31)),),
        90,
        dt.date(2026, 12, 1),
        (Extent(cancellations, dt.date(2025, 2, 1), LAG),),
    )
    assert cover.problem(AS_OF) is None  # scoring never waits for a label source
    assert cover.problem(LABELLED - dt.timedelta(days=30), 30) is None  # its horizon ends on LAG - 10: complete
    why = cover.problem(LABELLED, 30)
    assert f"raw.cancellations (cancelled_at) is on {LAG}" in why and str(LABELLED + dt.timedelta(days=30)) in why
    assert cover.labels_through == LAG
    assert replace(cover, label_extents=()).labels_through == AS_OF
