"""Minimum commitments and their true-up, Lago's way.

``commit AMOUNT [per WINDOW] [, true-up each period | at term end]``
(docs/language.md, Commitments).  As in Lago, the commitment is compared with
the pre-tax, pre-discount fees of its window (the subscription fee, every
charge line, reservations and policy credits: every fee but the true-up),
and the commitment of a window the contract covers only in part is prorated
by days, rounded half up to the minor unit (Lago's commitment base: 1 000 000
x 25/28 = 892 857).  When the fees fall short, a ``commitment`` fee bills the
difference.

Windows other than ``period`` run from the contract's start (contract
months, quarters, years; ``term`` is the whole contract).  ``true-up each
period`` settles each window on the invoice of the period that closes it (a
window shorter than the billing period is settled with its period, every
window the period touches added up); ``true-up at term end`` settles once, on
the last invoice of the term, the whole term's fees against the commitments
of all its windows.  Fees of a window's earlier periods are carried in the
ledger.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs

from gpubill.contracts.context import Billing, local_date
from gpubill.contracts.lines import FeeLine, sum_amounts
from gpubill.contracts.spread import ZERO
from gpubill.dsl import ast
from gpubill.engine.calendar.period import period_containing
from gpubill.engine.pricing.money import EXACT

WINDOW_INTERVALS = {"month": "monthly", "quarter": "quarterly", "year": "yearly"}


@attrs.frozen
class CommitState:
    """The open settlement window of one commitment: its first day and the fees so far."""

    first: dt.date | None = None
    fees: Decimal = ZERO


def commitment_fees(b: Billing, fees: list[FeeLine], states: tuple) -> tuple[list[FeeLine], tuple]:
    """The true-up lines of the contract's commitments on this invoice, and the new states."""
    out, new = [], []
    period_fees = sum_amounts(f for f in fees if f.fee_type != "commitment")
    for c, st in zip(b.contract.commits, states):
        first, last, settle = _settlement(b, c)
        carried = st.fees if st.first == first else ZERO
        total = carried + period_fees
        if not settle:
            new.append(CommitState(first, total))
            continue
        new.append(CommitState())
        base = b.to_minor(_base(b, c, first, last))
        if total < base:
            out.append(_true_up(b, c, first, last, base, total))
    return out, tuple(new)


def _settlement(b: Billing, c: ast.Commit) -> tuple[dt.date, dt.date, bool]:
    """The window this period's fees count towards: (first day, last day, settled now?)."""
    term_first, term_last = _term(b)
    per = c.per or "period"
    if c.true_up == "term" or per == "term":
        return term_first, term_last or b.last_day, b.is_last
    if per == "period":
        return b.first_day, b.last_day, True
    w = period_containing(b.first_day, WINDOW_INTERVALS[per], "anniversary", b.timezone, term_first)
    w_first, w_last = local_date(w.from_ms, b.timezone), local_date(w.to_ms, b.timezone)
    if w_first >= b.first_day and w_last <= b.last_day:  # inside the period: settled with it
        return b.first_day, b.last_day, True
    return w_first, w_last, b.last_day >= w_last or b.is_last


def _term(b: Billing) -> tuple[dt.date, dt.date | None]:
    r = b.resolved
    first = local_date(r.started_ms, b.timezone) if r.started_ms is not None else b.first_day
    last = local_date(r.terminated_ms, b.timezone) if r.terminated_ms is not None else None
    return first, last


def _base(b: Billing, c: ast.Commit, first: dt.date, last: dt.date) -> Decimal:
    """The commitment of the days [first, last] the contract covers, prorated by days per window."""
    per = c.per or "period"
    term_first, term_last = _term(b)
    lo, hi = max(first, term_first), min(last, term_last) if term_last else last
    if per == "term":
        return c.amount.value
    if per == "period":
        return EXACT.divide(EXACT.multiply(c.amount.value, Decimal((hi - lo).days + 1)), Decimal(b.period_days))
    total, day = ZERO, lo
    while day <= hi:
        w = period_containing(day, WINDOW_INTERVALS[per], "anniversary", b.timezone, term_first)
        w_first, w_last = local_date(w.from_ms, b.timezone), local_date(w.to_ms, b.timezone)
        end = min(w_last, hi)
        days, w_days = (end - day).days + 1, (w_last - w_first).days + 1
        total += EXACT.divide(EXACT.multiply(c.amount.value, Decimal(days)), Decimal(w_days))
        day = end + dt.timedelta(days=1)
    return total


def _true_up(b: Billing, c: ast.Commit, first: dt.date, last: dt.date, base: Decimal, fees: Decimal) -> FeeLine:
    amount = base - fees
    return FeeLine(
        "commitment", "commitment", f"minimum commitment true-up ({first}..{last})",
        f"commitment {c.amount.value:f} per {c.per or 'period'}: {base:f} for {first}..{last}, fees {fees:f}, "
        f"short by {amount:f}",
        Decimal(1), amount, amount, amount, b.covered_from_ms, b.covered_to_ms, clause=b.clause(c), kind="true_up")
