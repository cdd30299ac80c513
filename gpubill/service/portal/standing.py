"""Where a customer stands now against its contract terms: commitment, reservation, budget, credits.

Receives the final invoices of the billing periods containing now, as
``gpubill invoice`` computes them (the live drafts), the contracts and the
control store; answers one plain row per subscription. Every figure is read
from what the billing code already decided, never decided again here:

* commitment: its window (``contracts.commitment``'s settlement window of
  this period), the fees counted toward it (the live draft's fees but
  true-ups, plus the stored invoices of the window's earlier periods: a
  window whose earlier periods were never stored as invoices counts only
  what is stored), and the true-up the draft bills now;
* reservation: the GPU-hours reserved in the period
  (``contracts.reservation.reserved_units``) and those the draft's
  ``covered`` lines used (``estimate.reservations_left``);
* budget: the draft's spend as the alerts count it (``alerts.spend``), and
  the thresholds already fired in the period (``store.alerts.fired``);
* credits: the contract's prepaid credits and what the stored invoices used
  (``review._credits``), and the credit left on the customer's credit notes.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from gpubill.contracts import budget as rules
from gpubill.contracts.commitment import _settlement as settlement_window
from gpubill.contracts.context import local_date
from gpubill.contracts.reservation import reserved_units
from gpubill.service.alerts import spend
from gpubill.service.estimate import reservations_left
from gpubill.service.review import CreditTerm, _credits as contract_credits, credit_notes_left
from gpubill.store import alerts as records
from gpubill.store import ledger

ZERO = Decimal(0)
COMMITMENT = "commitment"  # the fee type of a true-up line (alerts.COMMITMENT)


@attrs.frozen
class CommitmentRow:
    amount: Decimal
    per: str  # period | month | quarter | year | term
    true_up: str  # period (settled each period) | term (at term end)
    window_from: str  # ISO dates: the window this period's fees count toward
    window_to: str
    counted: Decimal  # fees counted toward it so far (see the module's docstring)
    percent: Decimal  # counted as a % of amount, floored to 0.01
    true_up_amount: Decimal  # what the live draft bills as true-up now (0: none, or settled later)


@attrs.frozen
class ReservationRow:
    gpu_type: str
    count: Decimal  # GPUs reserved
    unit: str  # the reservation's unit (GPU-hour)
    reserved: Decimal  # units reserved in the period
    used: Decimal  # units of usage the reservation covered so far (the draft's covered lines)
    utilization: Decimal  # used as a % of reserved, floored to 0.01


@attrs.frozen
class BudgetRow:
    amount: Decimal
    interval: str | None  # monthly, ... as the contract writes it (None: each billing period)
    spend: Decimal  # the live draft's spend (alerts.spend: fees but true-ups, less discounts, before taxes)
    percent: Decimal  # spend as a % of amount, floored to 0.01
    thresholds: tuple[str, ...]  # "50%", "80%", ...
    fired: tuple[str, ...]  # the thresholds that fired in this period, in the thresholds' order


@attrs.frozen
class SubscriptionStanding:
    subscription: str
    contract: str
    currency: str
    period_label: str  # the billing period containing now
    commitments: tuple[CommitmentRow, ...]
    reservations: tuple[ReservationRow, ...]
    budget: BudgetRow | None
    credits: tuple[CreditTerm, ...]  # the contract's prepaid credits: amount, kind, expires, scope, used
    credit_notes_left: Decimal  # credit left on the customer's credit notes in this currency


@attrs.frozen
class Standing:
    customer: str
    as_of_ms: int
    subscriptions: tuple[SubscriptionStanding, ...]
    unrated: tuple[str, ...] = ()  # why a contract could not be invoiced (one line each)


def standing_of(store, customer: str, invoices, unrated: tuple[str, ...], as_of_ms: int) -> Standing:
    """Where the customer stands, from the live drafts of the periods containing now."""
    db = store._read()
    notes = credit_notes_left(db)
    rows = []
    for inv in invoices:
        b = inv.billing
        stored = _live_rows(db, b.contract)
        rows.append(SubscriptionStanding(
            b.subscription_id, b.contract.name.name, inv.currency, b.period.label,
            _commitments(inv, stored), _reservations(inv), _budget(store, inv),
            contract_credits(b.contract, stored), notes.get((customer, inv.currency), ZERO)))
    return Standing(customer, as_of_ms, tuple(rows), unrated)


def stored_invoices(db, contracts) -> list:
    """The contracts' stored invoices (``InvoiceRow``), found through their subscriptions' index: no scan of
    every stored invoice (10 000 documents)."""
    names = {c.name.name for c in contracts}
    subs = sorted({c.subscription.value for c in contracts if c.subscription is not None})
    ids = [i for s in subs for (i,) in db.execute("SELECT id FROM invoices WHERE subscription = ?", (s,))]
    return [r for r in (ledger.get_invoice(db, i) for i in ids) if r is not None and r.contract in names]


def _live_rows(db, contract) -> list:
    """The contract's stored invoices, not voided and not replaced."""
    rows = stored_invoices(db, [contract])
    replaced = {r.replaces for r in rows}
    return [r for r in rows if r.status != "voided" and r.id not in replaced]


def _counted_fees(fees) -> Decimal:
    """Fees a commitment counts: every fee line but true-ups (document dicts)."""
    return sum((Decimal(f["amount"]) for f in fees if f["item"]["type"] != COMMITMENT), ZERO)


def _commitments(inv, stored: list) -> tuple[CommitmentRow, ...]:
    b = inv.billing
    now = sum((f.amount for f in inv.fees if f.fee_type != COMMITMENT), ZERO)
    due = sum((f.amount for f in inv.fees if f.fee_type == COMMITMENT), ZERO)
    out = []
    for c in b.contract.commits:
        first, last, _ = settlement_window(b, c)
        earlier = sum((_counted_fees(r.doc["fees"]) for r in stored
                       if r.invoice_type == "subscription" and r.period_to_ms < b.period.from_ms
                       and local_date(r.period_from_ms, b.timezone) >= first), ZERO)
        counted = now + earlier
        out.append(CommitmentRow(c.amount.value, c.per or "period", c.true_up or "period", first.isoformat(),
                                 last.isoformat(), counted, rules.share(counted, c.amount.value), due))
    return tuple(out)


def _reservations(inv) -> tuple[ReservationRow, ...]:
    b = inv.billing
    left = reservations_left(b, inv, inv)
    out = []
    for r, (_, unit, remaining, _) in zip(b.contract.reserves, left):
        reserved = reserved_units(b, r)
        used = reserved - remaining
        out.append(ReservationRow(r.gpu_type.value, r.count.value, unit, reserved, used,
                                  rules.share(used, reserved) if reserved else ZERO))
    return tuple(out)


def _budget(store, inv) -> BudgetRow | None:
    b = inv.billing
    budget = b.contract.budget
    if budget is None:
        return None
    thresholds = tuple(rules.threshold_label(p) for p in rules.percents(budget))
    fired = records.fired(store, b.subscription_id, b.period.from_ms, rules.BUDGET)
    spent = spend(inv)
    return BudgetRow(budget.amount.value, budget.interval, spent, rules.share(spent, budget.amount.value),
                     thresholds, tuple(t for t in thresholds if t in fired))
