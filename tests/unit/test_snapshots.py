"""Training snapshots leave room for their label (training itself is in tests/integration/test_train.py)."""

import datetime as dt

from pipelines.training.train import snapshot_dates, split_snapshots
from tests.conftest import AS_OF


def test_snapshot_dates_leave_room_for_the_label(spec):
    dates = snapshot_dates(spec, AS_OF)
    train_dates, valid = split_snapshots(spec, dates)
    horizon = dt.timedelta(days=spec.training.label_horizon_days)
    assert max(valid) == AS_OF - horizon
    assert max(train_dates) < min(valid)
    assert {(b - a).days for a, b in zip(dates, dates[1:], strict=False)} == {spec.training.snapshot_every_days}
