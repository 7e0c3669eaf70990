import datetime as dt
import hashlib
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.faces.demo_data import DemoConfig, generate

CONFIG = DemoConfig(customers=3_000, days=120, end_date=dt.date(2026, 1, 31), seed=11)


def _day(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


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


# Digests of the subscription tables as generated before the accounts-receivable tables
# were added (same CONFIG). The AR process draws from its own generator, after
# everything else, so these tables must stay bit-identical for the same seed.
SUBSCRIPTION_DIGESTS = {
    "customers": (3000, "aca0dd020ddcda73"),
    "usage_daily": (92666, "b2d719df6993fdab"),
    "invoices": (6484, "6ddabc38a5538830"),
    "payment_failures": (279, "35a3c01346dd89ab"),
    "support_tickets": (1937, "f459e4a008e51955"),
    "cancellations": (1158, "ffd1b7333b054bb7"),
}


def _digest(table: pa.Table) -> str:
    digest = hashlib.sha256(str(table.schema).encode())
    for column in table.columns:
        values = column.combine_chunks()
        if pa.types.is_string(values.type):
            digest.update("\x1f".join(values.to_pylist()).encode())
        elif pa.types.is_date(values.type):
            digest.update(values.cast(pa.int32()).to_numpy().tobytes())
        else:
            digest.update(values.to_numpy().tobytes())
    return digest.hexdigest()[:16]


def test_subscription_tables_unchanged_by_accounts_receivable():
    tables = generate(CONFIG)
    assert {name: (tables[name].num_rows, _digest(tables[name])) for name in SUBSCRIPTION_DIGESTS} == SUBSCRIPTION_DIGESTS


def test_ar_invoices():
    tables = generate(CONFIG)
    invoices = tables["ar_invoices"]
    assert invoices.schema.field("invoice_number").type == pa.string()
    numbers = np.array(invoices.column("invoice_number").to_pylist())
    assert len(set(numbers)) == numbers.size > 0
    assert all(re.fullmatch(r"INV-\d{8}", n) for n in numbers)
    assert numbers[0] == "INV-00000001"
    issued = invoices.column("issued_on").cast(pa.int32()).to_numpy()
    due = invoices.column("due_on").cast(pa.int32()).to_numpy()
    assert set(np.unique(due - issued)) <= {7, 14, 30}
    assert issued.min() >= _day(CONFIG.start_date) and issued.max() <= _day(CONFIG.end_date)
    assert set(invoices.column("currency").to_pylist()) == {"EUR"}
    assert pc.min(invoices.column("amount")).as_py() > 0
    # Every 30 days per customer, and none on or after a cancellation.
    customer = invoices.column("customer_id").to_numpy()
    order = np.lexsort((issued, customer))
    same = customer[order][1:] == customer[order][:-1]
    assert set(np.unique(np.diff(issued[order])[same])) == {30}
    cancelled = dict(
        zip(
            tables["cancellations"].column("customer_id").to_pylist(),
            tables["cancellations"].column("cancelled_at").cast(pa.int32()).to_pylist(),
            strict=True,
        )
    )
    cancel_day = np.array([cancelled.get(c, np.iinfo(np.int32).max) for c in customer.tolist()])
    assert (issued < cancel_day).all()


def test_ar_payment_attempts():
    tables = generate(CONFIG)
    invoices, attempts = tables["ar_invoices"], tables["ar_payment_attempts"]
    assert attempts.schema.field("attempted_at").type == pa.timestamp("us", tz="UTC")
    assert set(attempts.column("outcome").to_pylist()) == {"paid", "failed"}
    due = dict(
        zip(invoices.column("invoice_number").to_pylist(), invoices.column("due_on").cast(pa.int32()).to_pylist(), strict=True)
    )
    micros = attempts.column("attempted_at").cast(pa.int64()).to_numpy()
    day, second = micros // 86_400_000_000, (micros // 1_000_000) % 86_400
    assert day.max() <= _day(CONFIG.end_date)
    # Some attempts within minutes of midnight UTC, on both sides.
    assert (second < 600).sum() > 0 and (second >= 86_400 - 600).sum() > 0
    numbers = np.array(attempts.column("invoice_number").to_pylist())
    assert set(numbers) <= set(due)
    offset = day - np.array([due[n] for n in numbers.tolist()])
    # Rows are by invoice, then attempt: the first on or around the due date, then every 3 days.
    first = np.r_[True, numbers[1:] != numbers[:-1]]
    assert offset[first].min() >= -3 and offset[first].max() <= 2 and (offset[first] < 0).any()
    assert (np.diff(day)[~first[1:]] == 3).all()
    # At most 4 attempts; attempts stop at the first success.
    _, counts = np.unique(numbers, return_counts=True)
    assert counts.max() == 4
    paid = np.array(attempts.column("outcome").to_pylist()) == "paid"
    last = np.r_[numbers[1:] != numbers[:-1], True]
    assert not (paid & ~last).any()
    assert 0.03 < (~paid[first]).mean() < 0.3  # first attempts that fail


@pytest.mark.parametrize(
    ("customers", "drift_from"), [(1500, None), (1500, dt.date(2026, 1, 28)), (500, None), (300, dt.date(2026, 1, 20))]
)
def test_every_source_a_model_waits_for_has_a_row_on_the_last_day(customers, drift_from):
    """The demo's last day is complete for both models, however small the business: each
    of these generated a business whose last cancellation came days before its end."""

    config = DemoConfig(customers=customers, end_date=dt.date(2026, 1, 31), drift_from=drift_from)
    raw = generate(config)
    sources = {
        "cancellations": "cancelled_at", "usage_daily": "usage_date", "invoices": "invoice_date",
        "ar_invoices": "issued_on", "ar_payment_attempts": "attempted_at",
    }  # fmt: skip
    last = {t: pc.max(raw[t][c]).as_py() for t, c in sources.items()}
    last = {t: v.date() if isinstance(v, dt.datetime) else v for t, v in last.items()}  # attempts are timestamps
    assert last == dict.fromkeys(sources, config.end_date)
