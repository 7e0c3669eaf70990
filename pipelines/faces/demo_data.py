"""A synthetic subscription business for the demo and the tests (schema `raw`).

Deterministic for a seed, and vectorised with numpy: no Python loop runs per row,
so 100k customers over 180 days take seconds.

Churn is learnable on purpose. Each customer has a daily cancellation hazard that
depends on plan, channel and engagement, and in the 30 days before cancelling a
customer uses the product less, fails more payments and opens more tickets: the
signals the feature model measures.

With `drift_from`, behaviour shifts from that date on (less usage, more tickets,
more paid-search signups), so monitoring has something to find.

Beside the subscription tables, an accounts-receivable process (`ar_invoices`,
`ar_payment_attempts`) feeds the payment_risk model, whose entity key is text
('INV-00001234'). Its randomness comes from a second generator, drawn after
everything else, so adding it left the subscription tables exactly as they were.
Payment failures are learnable too: they depend on the customer's latent payment
risk (the same one that drives the subscription invoices), on the attempt number
and a little on the amount.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PLANS = ("basic", "standard", "premium")
PLAN_PRICE = np.array([9.99, 19.99, 39.99])
REGIONS = ("north", "south", "east", "west")
CHANNELS = ("organic", "paid_search", "referral", "partner")
TICKET_CATEGORIES = ("billing", "technical", "account", "other")
FAILURE_REASONS = ("card_declined", "insufficient_funds", "expired_card")
CANCEL_REASONS = ("price", "not_using", "competitor", "other")

# Days before cancellation over which the warning signs build up.
WARNING_DAYS = 30

# Accounts receivable: payment terms (days from issue to due) and how likely each
# plan is to be on each of them; seats billed per plan; dunning.
AR_TERMS_DAYS = np.array([7, 14, 30])
AR_TERMS_BY_PLAN = np.array([[0.5, 0.35, 0.15], [0.3, 0.4, 0.3], [0.15, 0.35, 0.5]])
AR_MEAN_EXTRA_SEATS = np.array([1.0, 2.0, 4.0])
AR_CYCLE_DAYS = 30
AR_RETRY_EVERY_DAYS = 3
AR_RETRIES = 3  # after the first attempt; an invoice failing all of them stays unpaid
# First attempt relative to the due date: mostly on it, some early, a few late.
AR_FIRST_ATTEMPT_OFFSETS = np.array([-3, -2, -1, 0, 1, 2])
AR_FIRST_ATTEMPT_P = np.array([0.05, 0.07, 0.08, 0.6, 0.12, 0.08])
AR_NEAR_MIDNIGHT_SECONDS = 600  # some attempts fall within 10 minutes either side of midnight UTC
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class DemoConfig:
    customers: int = 20_000
    days: int = 270
    end_date: dt.date = dt.date(2026, 1, 31)
    seed: int = 7
    drift_from: dt.date | None = None

    @property
    def start_date(self) -> dt.date:
        return self.end_date - dt.timedelta(days=self.days - 1)


def _day_number(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def _dates(day_numbers: np.ndarray) -> pa.Array:
    return pa.array(day_numbers.astype("int32"), type=pa.int32()).cast(pa.date32())


def generate(config: DemoConfig) -> dict[str, pa.Table]:
    """Build the raw tables: customers, usage_daily, invoices, payment_failures,
    support_tickets, cancellations, ar_invoices, ar_payment_attempts. Same config,
    same tables."""
    if config.customers < 1 or config.days < 1:
        raise ValueError("customers and days must be positive")
    rng = np.random.default_rng(config.seed)
    n = config.customers
    start = _day_number(config.start_date)
    end = _day_number(config.end_date)
    drift = _day_number(config.drift_from) if config.drift_from else None

    # -- customers -------------------------------------------------------------
    # 60% were already customers when the window opens, 40% sign up during it.
    existing = rng.random(n) < 0.6
    signup = np.where(
        existing,
        rng.integers(start - 540, start, n),
        rng.integers(start, end + 1, n),
    )
    signup.sort()  # customer ids in signup order, like a real sequence
    plan = rng.choice(len(PLANS), n, p=[0.5, 0.35, 0.15])
    region = rng.choice(len(REGIONS), n, p=[0.3, 0.25, 0.25, 0.2])
    channel = rng.choice(len(CHANNELS), n, p=[0.4, 0.3, 0.2, 0.1])
    if drift is not None:
        drifted = signup >= drift
        channel[drifted] = rng.choice(len(CHANNELS), int(drifted.sum()), p=[0.15, 0.6, 0.15, 0.1])
    engagement = rng.lognormal(mean=np.log(2.5), sigma=0.6, size=n)  # mean sessions per active day
    payment_risk = rng.beta(1.0, 25.0, n)  # chance that an invoice fails
    ticket_rate = rng.gamma(1.0, 0.01, n)  # tickets per day

    # -- cancellation ------------------------------------------------------------
    channel_effect = np.array([0.0, 0.5, -0.4, 0.3])[channel]
    plan_effect = np.array([0.3, 0.0, -0.4])[plan]
    engagement_effect = -0.8 * (np.log(engagement) - np.log(2.5))
    hazard = 0.0012 * np.exp(channel_effect + plan_effect + engagement_effect + 10.0 * payment_risk)
    lifetime = rng.exponential(1.0 / hazard)
    cancel = signup + np.ceil(lifetime).astype(np.int64)
    # Completeness asks every source for a row on or after the date. A small business can
    # go a day without a cancellation (about 3 a day at 1,500 customers), and the demo's
    # last day would then never be complete: the customer due to leave soonest after the
    # end leaves on it instead.
    if not (cancel == end).any():
        staying = np.flatnonzero((cancel > end) & (signup < end))
        if staying.size:
            cancel[staying[np.argmin(cancel[staying])]] = end
    cancelled = cancel <= end
    cancel = np.where(cancelled, cancel, np.iinfo(np.int32).max)

    customer_id = np.arange(1, n + 1, dtype=np.int64)
    customers = pa.table(
        {
            "customer_id": customer_id,
            "signup_date": _dates(signup),
            "plan": pa.array(np.array(PLANS)[plan]),
            "region": pa.array(np.array(REGIONS)[region]),
            "channel": pa.array(np.array(CHANNELS)[channel]),
        }
    )
    cancellations = pa.table(
        {
            "customer_id": customer_id[cancelled],
            "cancelled_at": _dates(cancel[cancelled]),
            "reason": pa.array(np.array(CANCEL_REASONS)[rng.choice(len(CANCEL_REASONS), int(cancelled.sum()))]),
        }
    )

    # -- one row per customer per day they are a customer inside the window --------
    first = np.maximum(signup, start)
    last = np.minimum(cancel - 1, end)  # the cancellation day itself has no usage
    n_days = np.clip(last - first + 1, 0, None)
    owner = np.repeat(np.arange(n), n_days)
    day = first[owner] + (np.arange(owner.size) - np.repeat(np.cumsum(n_days) - n_days, n_days))
    # 0 far from cancellation, rising to 1 on the day before it.
    warning = np.clip(1.0 - (cancel[owner] - day) / WARNING_DAYS, 0.0, 1.0)
    drifting = (day >= drift) if drift is not None else np.zeros(owner.size, dtype=bool)

    # Active on ~60% of days; a customer about to leave is active less and uses it less.
    active = rng.random(owner.size) < 0.6 * (1.0 - 0.6 * warning)
    sessions = rng.poisson(engagement[owner] * (1.0 - 0.5 * warning) * np.where(drifting, 0.6, 1.0))
    used = active & (sessions > 0)
    minutes = np.round(sessions[used] * rng.gamma(2.0, 6.0, int(used.sum())), 1)
    usage = pa.table(
        {
            "customer_id": customer_id[owner[used]],
            "usage_date": _dates(day[used]),
            "sessions": sessions[used].astype(np.int32),
            "minutes": minutes,
        }
    )

    tickets_per_day = rng.poisson(ticket_rate[owner] * (1.0 + 4.0 * warning) * np.where(drifting, 2.0, 1.0))
    has_ticket = tickets_per_day > 0
    ticket_owner = np.repeat(owner[has_ticket], tickets_per_day[has_ticket])
    ticket_day = np.repeat(day[has_ticket], tickets_per_day[has_ticket])
    n_tickets = ticket_owner.size
    billing_heavy = rng.random(n_tickets) < 0.5 * warning[np.repeat(np.flatnonzero(has_ticket), tickets_per_day[has_ticket])]
    category = np.where(billing_heavy, 0, rng.choice(len(TICKET_CATEGORIES), n_tickets))
    support_tickets = pa.table(
        {
            "ticket_id": np.arange(1, n_tickets + 1, dtype=np.int64),
            "customer_id": customer_id[ticket_owner],
            "opened_at": _dates(ticket_day),
            "category": pa.array(np.array(TICKET_CATEGORIES)[category]),
            "priority": pa.array(np.array(["low", "normal", "high"])[rng.choice(3, n_tickets, p=[0.3, 0.5, 0.2])]),
        }
    )

    # -- invoices: every 30 days from signup, while a customer ----------------------
    is_billing_day = ((day - signup[owner]) % 30) == 0
    inv_owner = owner[is_billing_day]
    inv_day = day[is_billing_day]
    n_invoices = inv_owner.size
    fail_chance = np.clip(payment_risk[inv_owner] + 0.25 * warning[is_billing_day], 0.0, 0.95)
    failed = rng.random(n_invoices) < fail_chance
    invoice_id = np.arange(1, n_invoices + 1, dtype=np.int64)
    invoices = pa.table(
        {
            "invoice_id": invoice_id,
            "customer_id": customer_id[inv_owner],
            "invoice_date": _dates(inv_day),
            "amount": PLAN_PRICE[plan[inv_owner]],
            "status": pa.array(np.where(failed, "failed", "paid")),
        }
    )
    payment_failures = pa.table(
        {
            "invoice_id": invoice_id[failed],
            "customer_id": customer_id[inv_owner[failed]],
            "failed_at": _dates(inv_day[failed]),
            "reason": pa.array(np.array(FAILURE_REASONS)[rng.choice(len(FAILURE_REASONS), int(failed.sum()))]),
        }
    )

    ar_invoices, ar_payment_attempts = _accounts_receivable(
        np.random.default_rng([config.seed, 1]), owner, day, signup, plan, payment_risk, customer_id, end
    )

    return {
        "customers": customers,
        "usage_daily": usage,
        "invoices": invoices,
        "payment_failures": payment_failures,
        "support_tickets": support_tickets,
        "cancellations": cancellations,
        "ar_invoices": ar_invoices,
        "ar_payment_attempts": ar_payment_attempts,
    }


def _accounts_receivable(
    rng: np.random.Generator,
    owner: np.ndarray,
    day: np.ndarray,
    signup: np.ndarray,
    plan: np.ndarray,
    payment_risk: np.ndarray,
    customer_id: np.ndarray,
    end: int,
) -> tuple[pa.Table, pa.Table]:
    """Invoices every AR_CYCLE_DAYS while a customer (from a per-customer phase, not the
    subscription billing day), and their payment attempts up to the end date.

    `owner` and `day` are the customer-days inside the window (none on or after the
    cancellation day), so a cancelled customer gets no new invoice. The first attempt
    falls on or around the due date; a failed one is retried every AR_RETRY_EVERY_DAYS
    days up to AR_RETRIES times; after the last failure the invoice stays unpaid.
    Attempts after the end date have not happened yet and are left out."""
    n = signup.size
    # -- per customer ------------------------------------------------------------------
    phase = rng.integers(0, AR_CYCLE_DAYS, n)
    terms_cdf = np.cumsum(AR_TERMS_BY_PLAN[plan], axis=1)
    terms = np.minimum((rng.random(n)[:, None] > terms_cdf).sum(axis=1), len(AR_TERMS_DAYS) - 1)
    seats = 1 + rng.poisson(AR_MEAN_EXTRA_SEATS[plan])

    # -- invoices, numbered in issue order ----------------------------------------------
    issuing = ((day - signup[owner] - phase[owner]) % AR_CYCLE_DAYS) == 0
    inv_owner, issued = owner[issuing], day[issuing]
    order = np.lexsort((inv_owner, issued))
    inv_owner, issued = inv_owner[order], issued[order]
    m = inv_owner.size
    due = issued + AR_TERMS_DAYS[terms[inv_owner]]
    amount = np.round(PLAN_PRICE[plan[inv_owner]] * seats[inv_owner], 2)
    numbers = pc.utf8_lpad(pa.array(np.arange(1, m + 1, dtype=np.int64)).cast(pa.string()), width=8, padding="0")
    invoice_number = pc.binary_join_element_wise("INV-", numbers, "")
    ar_invoices = pa.table(
        {
            "invoice_number": invoice_number,
            "customer_id": customer_id[inv_owner],
            "issued_on": _dates(issued),
            "due_on": _dates(due),
            "amount": amount,
            "currency": pa.array(np.full(m, "EUR")),
        }
    )

    # -- attempts: one column per attempt number, 0 the first --------------------------
    k = np.arange(AR_RETRIES + 1)
    first = due + rng.choice(AR_FIRST_ATTEMPT_OFFSETS, m, p=AR_FIRST_ATTEMPT_P)
    attempt_day = first[:, None] + AR_RETRY_EVERY_DAYS * k[None, :]
    logit = -3.1 + 30.0 * payment_risk[inv_owner][:, None] + 0.7 * k[None, :] + 0.3 * np.log(amount / 20.0)[:, None]
    failed = rng.random((m, k.size)) < 1.0 / (1.0 + np.exp(-logit))
    # Attempts stop at the first success; all of them are made when every one fails.
    n_attempts = np.where(failed.all(axis=1), k.size, failed.argmin(axis=1) + 1)
    # Time of day: mostly uniform, some within minutes after or before midnight UTC.
    kind = rng.choice(3, (m, k.size), p=[0.8, 0.1, 0.1])
    second = np.select(
        [kind == 1, kind == 2],
        [
            rng.integers(0, AR_NEAR_MIDNIGHT_SECONDS, (m, k.size)),
            rng.integers(SECONDS_PER_DAY - AR_NEAR_MIDNIGHT_SECONDS, SECONDS_PER_DAY, (m, k.size)),
        ],
        rng.integers(0, SECONDS_PER_DAY, (m, k.size)),
    )
    made = (k[None, :] < n_attempts[:, None]) & (attempt_day <= end)
    row, col = np.nonzero(made)  # by invoice, then attempt number
    micros = (attempt_day[row, col] * SECONDS_PER_DAY + second[row, col]) * 1_000_000
    ar_payment_attempts = pa.table(
        {
            "invoice_number": invoice_number.take(pa.array(row)),
            "attempted_at": pa.array(micros, type=pa.timestamp("us", tz="UTC")),
            "outcome": pa.array(np.where(failed[row, col], "failed", "paid")),
        }
    )
    return ar_invoices, ar_payment_attempts
