"""Taxes per billing entity, Lago's way.

Each fee is taxed on what remains of it after the before-tax credits
(progressive credit and coupons): its taxable base x each of the entity's tax
rates, kept unrounded.  Each applied tax is round(sum of its unrounded
per-fee amounts); the invoice's tax is round(sum over the taxes of their
unrounded amounts), so it may differ from the sum of rounded per-fee taxes
(Lago's example: 1 889, where rounded per-fee taxes add up to 1 887).
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from gpubill.contracts.spread import ZERO, percent_of


@attrs.frozen
class AppliedTax:
    """One tax of the invoice: ``base`` the taxable fees, ``precise_amount``
    unrounded, ``amount`` rounded to the currency's minor unit."""

    name: str
    rate: Decimal  # percent
    base: Decimal
    precise_amount: Decimal
    amount: Decimal


def apply_taxes(b, taxable: list[Decimal]) -> tuple[list[AppliedTax], list[Decimal], Decimal]:
    """(the applied taxes, each fee's unrounded tax, the invoice's tax)."""
    entity = b.entity
    taxes = entity.taxes if entity is not None else ()
    per_fee = [ZERO] * len(taxable)
    applied: list[AppliedTax] = []
    precise_total = ZERO
    for t in taxes:
        rate = t.rate.value
        parts = [percent_of(x, rate) for x in taxable]
        precise = sum(parts, ZERO)
        per_fee = [a + p for a, p in zip(per_fee, parts)]
        precise_total += precise
        applied.append(AppliedTax(t.name.value, rate, sum(taxable, ZERO), precise, b.to_minor(precise)))
    return applied, per_fee, b.to_minor(precise_total)
