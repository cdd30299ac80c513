"""One invoice line (a fee): what it bills, its amount and why.

Every term of a contract that changes what a customer owes is its own line
with its reason, never hidden in a unit price.  A fee's ``amount`` is its
``precise_amount`` rounded once (by the plan's rule for usage lines, to the
currency's minor unit for terms); invoice totals add rounded amounts.

Fee types are Lago's (``item.type``) where Lago has the concept, and two of
gpubill's own:

| type | line |
| --- | --- |
| ``subscription`` | the plan's fixed fee (prorated), and the termination credit of unused in-advance days |
| ``charge`` | a usage line of a charge; also its spending-minimum true-up and pay-in-advance fees |
| ``commitment`` | the true-up of a minimum commitment |
| ``reservation`` | reserved capacity billed, and the usage it covers (a negative line) |
| ``credit`` | an automatic policy credit (failed infrastructure, preemption) |
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from gpubill.engine.pricing.money import EXACT, round_amount
from gpubill.engine.spec.program import MoneyRounding

FEE_TYPES = ("subscription", "reservation", "charge", "credit", "commitment")


@attrs.frozen
class FeeLine:
    """One line of an invoice.

    ``charge``: the charge the line belongs to (None for the subscription fee
    and the commitment): what `for CHARGE` limits of coupons and credits and
    a test's `expect charge` select.  ``dimensions``: the filter and group
    values that identify a usage line, as sorted (key, value) pairs.
    ``clause``: file:line:col of the clause that priced the line.
    """

    fee_type: str
    code: str
    description: str
    reason: str
    units: Decimal
    unit_price: Decimal | None
    precise_amount: Decimal
    amount: Decimal
    from_ms: int
    to_ms: int
    charge: str | None = None
    dimensions: tuple = ()
    clause: str | None = None
    events_count: int = 0
    pay_in_advance: bool = False
    kind: str = ""  # what the line is within its type, e.g. usage | min_true_up | in_advance | covered | policy | late
    adjusts: str | None = None  # kind late: the number of the finalized invoice whose late events this line bills

    def __attrs_post_init__(self):
        if self.fee_type not in FEE_TYPES:
            raise ValueError(f"unknown fee type {self.fee_type!r}")


def dimensions_of(filter_values: dict | None, group: dict | None) -> tuple:
    """A usage line's identifying values as sorted (key, value) pairs; a filter
    listing several values for one key shows them joined by ``|``."""
    dims = {k: "|".join(str(v) for v in vs) for k, vs in (filter_values or {}).items()}
    dims.update({k: ("" if v is None else str(v)) for k, v in (group or {}).items()})
    return tuple(sorted(dims.items()))


REASON_RULE = MoneyRounding("ROUND_HALF_EVEN", Decimal("1e-6"))  # a reason's numbers; the fields keep every digit


def reason_number(d: Decimal | None) -> str:
    """A number in a line's reason: at most 6 decimals, marked "~" when cut."""
    if d is None:
        return "-"
    cut = round_amount(d, REASON_RULE) if d.as_tuple().exponent < -6 else d
    return ("~" if cut != d else "") + format(cut.normalize(EXACT), "f")


def sum_amounts(fees, field: str = "amount") -> Decimal:
    """The sum of the fees' rounded (or ``field``) amounts: an exact Decimal sum."""
    total = Decimal(0)
    for f in fees:
        total += getattr(f, field)
    return total
