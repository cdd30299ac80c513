"""Credits applied to an invoice, and prepaid credits as Lago wallets.

``Applied`` is one credit on an invoice: a coupon (before tax), the
progressive-billing credit (before tax), a credit note's credit or a prepaid
credit (after tax, in that order).

``credit AMOUNT [granted | paid] [, expires DATE] [, priority N] [, for
CHARGE]`` (docs/language.md, Prepaid credits) is a balance that pays
invoices after tax: lowest priority first (no priority: Lago's lowest, 50),
then in the order written; each covers at most min(its balance, what remains
due of the fees it may pay, what remains of the invoice).  A credit covers the
invoices of periods that end on or before its expiry day; after that its
balance is void.  Balances carry across invoices.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs

from gpubill.contracts.spread import ZERO, eligible_total, spread
from gpubill.dsl import ast

APPLIED_KINDS = ("coupon", "progressive", "credit_note", "prepaid")
LOWEST_PRIORITY = 50  # Lago: priorities 1..50, lower applied first


@attrs.frozen
class Applied:
    """One credit applied to an invoice.  ``kind``: coupon | progressive |
    credit_note | prepaid; ``code``: which one (discount_2, credit_1, the
    credited invoice); ``amount``: rounded to the currency's minor unit."""

    kind: str
    code: str
    description: str
    amount: Decimal
    clause: str | None = None
    granted: bool = False  # prepaid: a granted (free) credit, else a paid one


def wallet_order(contract: ast.Contract) -> list[int]:
    def key(i: int):
        p = contract.credits[i].priority
        return (int(p.value) if p is not None else LOWEST_PRIORITY, i)
    return sorted(range(len(contract.credits)), key=key)


def opening_balances(contract: ast.Contract) -> tuple[Decimal, ...]:
    return tuple(c.amount.value for c in contract.credits)


def expired(c: ast.Credit, invoice_day: dt.date) -> bool:
    if c.expires is None or c.expires.value is None:
        return False
    last = c.expires.value.date() if isinstance(c.expires.value, dt.datetime) else c.expires.value
    return invoice_day > last


def apply_wallets(b, fees, due: list[Decimal], remaining: Decimal, balances: tuple, invoice_day: dt.date):
    """Pay what is due (per fee, after tax) from the prepaid credits:
    (the credits applied, the new balances).  ``remaining``: the invoice's
    total after tax and credit notes."""
    balances = list(balances)
    applied: list[Applied] = []
    for i in wallet_order(b.contract):
        c = b.contract.credits[i]
        if balances[i] <= 0 or remaining <= 0 or expired(c, invoice_day):
            continue
        eligible = [c.scope is None or f.charge == c.scope.name for f in fees]
        amount = b.to_minor(min(balances[i], eligible_total(due, eligible), remaining))
        amount = min(amount, balances[i], remaining)
        if amount <= 0:
            continue
        due = [x - s for x, s in zip(due, spread(amount, due, eligible))]
        balances[i] -= amount
        remaining -= amount
        kind = c.kind or "granted"
        scope = f" for {c.scope.name}" if c.scope is not None else ""
        applied.append(Applied("prepaid", f"credit_{i + 1}", f"{kind} credit{scope}, balance left {balances[i]:f}",
                               amount, b.clause(c), granted=kind == "granted"))
    return applied, tuple(balances)


@attrs.frozen
class CreditNoteBalance:
    """A credit note's credit left for the contract's later invoices (Lago's
    credit-note wallet): ``code`` its number, usable by invoices issued on or
    after ``available`` (its issuing day)."""

    code: str
    amount: Decimal
    available: dt.date


def apply_credit_notes(notes: tuple, remaining: Decimal, invoice_day: dt.date) -> tuple[list[Applied], tuple]:
    """Credit notes pay what remains after tax, oldest first, before the
    prepaid credits: (the credits applied, the balances left)."""
    applied: list[Applied] = []
    left = []
    for n in notes:
        amount = min(n.amount, max(remaining, ZERO)) if n.available <= invoice_day else ZERO
        if amount > 0:
            applied.append(Applied("credit_note", n.code, f"credit note {n.code}", amount))
            remaining -= amount
        left.append(attrs.evolve(n, amount=n.amount - amount))
    return applied, tuple(left)


def total_of(applied, kind: str | None = None) -> Decimal:
    return sum((a.amount for a in applied if kind is None or a.kind == kind), ZERO)
