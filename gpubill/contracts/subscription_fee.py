"""The plan's fixed fee: prorated by days, in advance or in arrears; the termination credit.

``fee AMOUNT [in advance | in arrears]`` (docs/language.md, Plans) bills
AMOUNT per period; in a partial period (the contract starts or ends inside
it) AMOUNT x days covered / days in the period, rounded once to the
currency's minor unit, as Lago does (5 000 x 24/31; a termination day is
billed: 3 100 x 18/31 = 1 800).  In arrears, that is the fee.  In advance the
fee was billed at the period's start for the rest of the period, so when the
contract ends inside the period a second, negative ``subscription`` line
credits the unused days (Lago's credit note on termination: 3 unused days of
a 60.00 fee in a 28-day month -> 6.43).
"""

from __future__ import annotations

from decimal import Decimal

from gpubill.contracts.context import Billing, local_date
from gpubill.contracts.lines import FeeLine
from gpubill.engine.pricing.money import EXACT


def fee_timing(b: Billing) -> str:
    """advance | arrears: the fee clause's, else the billing clause's, else arrears."""
    plan = b.plan
    if plan.fee is not None and plan.fee.timing is not None:
        return plan.fee.timing
    if plan.billing is not None and plan.billing.timing is not None:
        return plan.billing.timing
    return "arrears"


def prorated(b: Billing, amount: Decimal, days: int) -> Decimal:
    return EXACT.divide(EXACT.multiply(amount, Decimal(days)), Decimal(b.period_days))


def subscription_fees(b: Billing) -> list[FeeLine]:
    fee = b.plan.fee
    if fee is None or b.covered_days == 0:
        return []
    amount = fee.amount.value
    advance = fee_timing(b) == "advance"
    start_day = local_date(b.covered_from_ms, b.timezone)
    billed_days = (b.last_day - start_day).days + 1 if advance else b.covered_days
    out = [_line(b, prorated(b, amount, billed_days), billed_days, advance, b.covered_from_ms,
                 b.period.to_ms if advance else b.covered_to_ms, "plan fee", "fee")]
    if advance and b.terminates:
        unused = billed_days - b.covered_days
        out.append(_line(b, -prorated(b, amount, unused), -unused, advance, b.covered_to_ms + 1, b.period.to_ms,
                         f"termination on {local_date(b.covered_to_ms, b.timezone)}: unused days credited",
                         "termination_credit"))
    return out


def _line(b: Billing, precise: Decimal, days: int, advance: bool, from_ms: int, to_ms: int, what: str,
          kind: str) -> FeeLine:
    fee = b.plan.fee
    share = "" if abs(days) == b.period_days else f" x {abs(days)}/{b.period_days} days"
    return FeeLine(
        "subscription", "subscription", f"{b.plan.name.name} {what}",
        f"{fee.amount.value:f}{share}, {'in advance' if advance else 'in arrears'}",
        Decimal(1 if days > 0 else -1), fee.amount.value, precise, b.to_minor(precise), from_ms, to_ms,
        clause=b.clause(fee), pay_in_advance=advance, kind=kind)
