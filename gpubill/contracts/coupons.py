"""Discounts as Lago coupons: before tax, spread pro rata over the eligible fees.

``discount (RATE% | AMOUNT) FREQUENCY [for CHARGE]`` (docs/language.md,
Discounts).  Lago's order: coupons limited to a charge first, then the
unrestricted ones, each group in the order written.  A percentage takes
round(base x rate / 100) of the eligible fees (capped at the base); a fixed
amount at most the base.  ``once`` applies to one invoice, but a fixed amount
not used up carries its remainder to later invoices; ``recurring N periods``
applies to N invoices; ``forever`` to every one; a recurring or forever fixed
amount unused on an invoice is lost.  An invoice whose eligible fees come to
0 or less takes nothing and uses up nothing.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from gpubill.contracts.context import Billing
from gpubill.contracts.credits import Applied
from gpubill.contracts.spread import ZERO, eligible_total, percent_of, spread
from gpubill.dsl import ast
from gpubill.engine.pricing.money import round_amount
from gpubill.engine.spec.program import MoneyRounding


@attrs.frozen
class CouponState:
    """One discount's use so far: invoices it applied to, and for a once
    fixed amount what is left of it (None: never applied)."""

    used: int = 0
    remaining: Decimal | None = None


def exhausted(d: ast.Discount, st: CouponState) -> bool:
    if d.frequency == "forever":
        return False
    if d.frequency == "recurring":
        return st.used >= int(d.periods.value)
    if isinstance(d.value, ast.Percent):  # once, percentage: one invoice
        return st.used >= 1
    return st.remaining is not None and st.remaining <= 0


def order(contract: ast.Contract) -> list[int]:
    """Lago's order: discounts limited to a charge first, then the others; each as written."""
    ds = contract.discounts
    return [i for i, d in enumerate(ds) if d.scope is not None] + [i for i, d in enumerate(ds) if d.scope is None]


def apply_coupons(b: Billing, fees, bases: list[Decimal], states: tuple) -> tuple[list, list[Decimal], tuple]:
    """Apply the contract's discounts to the fees whose remaining amounts are
    ``bases``: (the coupons applied, each fee's coupon share, the new states)."""
    states = list(states)
    shares = [ZERO] * len(fees)
    applied: list[Applied] = []
    for i in order(b.contract):
        d, st = b.contract.discounts[i], states[i]
        if exhausted(d, st):
            continue
        eligible = [d.scope is None or f.charge == d.scope.name for f in fees]
        base = eligible_total(bases, eligible)
        if base <= 0:
            continue
        amount, remaining = _amount(b, d, st, base)
        if amount <= 0:
            continue
        part = spread(amount, bases, eligible)
        bases = [x - s for x, s in zip(bases, part)]
        shares = [x + s for x, s in zip(shares, part)]
        states[i] = CouponState(st.used + 1, remaining)
        applied.append(Applied("coupon", f"discount_{i + 1}", _describe(d, st), amount, b.clause(d)))
    return applied, shares, tuple(states)


def _amount(b: Billing, d: ast.Discount, st: CouponState, base: Decimal) -> tuple[Decimal, Decimal | None]:
    """The coupon's amount on this invoice and what a once fixed amount keeps."""
    if isinstance(d.value, ast.Percent):
        return min(b.to_minor(percent_of(base, d.value.value)), base), None
    available = st.remaining if st.remaining is not None else d.value.value
    amount = round_amount(min(available, base), MoneyRounding("ROUND_DOWN", b.minor.quantum))
    return amount, (available - amount if d.frequency == "once" else None)


def _describe(d: ast.Discount, st: CouponState) -> str:
    what = f"{d.value.value.normalize():f}%" if isinstance(d.value, ast.Percent) else d.value.text
    when = {"once": "once", "forever": "forever"}.get(d.frequency)
    if when is None:
        when = f"recurring {st.used + 1} of {int(d.periods.value)} periods"
    scope = f" for {d.scope.name}" if d.scope is not None else ""
    return f"discount {what} {when}{scope}"
