"""Spreading one amount over fees in proportion: coupons and progressive credits.

Lago spreads a before-tax credit over the eligible fees in proportion to what
remains of each fee.  gpubill keeps every share exact to 10
decimals and gives the last eligible fee the remainder, so the shares add up
to the amount exactly and each fee's taxable base is exact.
"""

from __future__ import annotations

from decimal import Decimal

from gpubill.engine.pricing.money import EXACT, round_amount
from gpubill.engine.spec.program import MoneyRounding

SHARE_RULE = MoneyRounding("ROUND_HALF_EVEN", Decimal("1e-10"))
ZERO = Decimal(0)


def spread(amount: Decimal, bases: list[Decimal], eligible: list[bool]) -> list[Decimal]:
    """Shares of ``amount`` per fee, proportional to ``bases`` among the
    eligible fees (0 for the others); their sum is exactly ``amount``.
    A fee with a negative base (a credit line) takes a negative share: the
    amount scales the eligible net total down proportionally."""
    idx = [i for i, ok in enumerate(eligible) if ok and bases[i] != 0]
    shares = [ZERO] * len(bases)
    total = sum((bases[i] for i in idx), ZERO)
    if not idx or total <= 0 or amount == 0:
        return shares
    given = ZERO
    for i in idx[:-1]:
        share = round_amount(EXACT.divide(EXACT.multiply(amount, bases[i]), total), SHARE_RULE)
        shares[i] = share
        given += share
    shares[idx[-1]] = amount - given
    return shares


def percent_of(value: Decimal, rate: Decimal) -> Decimal:
    """``rate`` percent of ``value``, exact."""
    return EXACT.divide(EXACT.multiply(value, rate), Decimal(100))


def eligible_total(bases: list[Decimal], eligible: list[bool]) -> Decimal:
    """What remains of the eligible fees, summed."""
    return sum((b for b, ok in zip(bases, eligible) if ok), ZERO)
