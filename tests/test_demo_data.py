import datetime as dt

import pyarrow.compute as pc

from pipelines.demo_data import DemoConfig, generate

CONFIG = DemoConfig(customers=3_000, days=120, end_date=dt.date(2026, 1, 31), seed=11)


def test_same_seed_same_tables():
    first, second = generate(CONFIG), generate(CONFIG)
    assert first.keys() == second.keys()
    assert all(first[name].equals(second[name]) for name in first)


def test_other_seed_other_tables():
    other = generate(DemoConfig(customers=3_000, days=120, end_date=CONFIG.end_date, seed=12))
    assert not other["usage_daily"].equals(generate(CONFIG)["usage_daily"])


def test_no_usage_after_cancellation_or_outside_the_window():
    tables = generate(CONFIG)
    cancelled = dict(
        zip(
            tables["cancellations"].column("customer_id").to_pylist(),
            tables["cancellations"].column("cancelled_at").to_pylist(),
            strict=True,
        )
    )
    usage = tables["usage_daily"]
    assert pc.min(usage.column("usage_date")).as_py() >= CONFIG.start_date
    assert pc.max(usage.column("usage_date")).as_py() <= CONFIG.end_date
    for customer, day in zip(usage.column("customer_id").to_pylist(), usage.column("usage_date").to_pylist(), strict=True):
        if customer in cancelled:
            assert day < cancelled[customer]


def test_drift_reduces_usage_after_the_drift_date():
    drift_from = dt.date(2026, 1, 1)
    plain = generate(CONFIG)["usage_daily"]
    drifted = generate(DemoConfig(**{**CONFIG.__dict__, "drift_from": drift_from}))["usage_daily"]

    def mean_sessions(usage):
        late = pc.greater_equal(usage.column("usage_date"), drift_from)
        return pc.mean(pc.filter(usage.column("sessions"), late)).as_py()

    assert mean_sessions(drifted) < 0.8 * mean_sessions(plain)
