"""Progressive billing: Lago's usage thresholds, checked as a daily job would.

``progressive billing at T1, T2, ..., every R`` (docs/language.md) compares
**lifetime** pre-tax usage of in-arrears charges with the thresholds, as
Lago's check does (lago-semantics.md, Progressive billing):

* ``invoiced`` = the usage billed by the contract's earlier periods + P, the
  fees of the latest progressive invoice of the current period;
  ``actual`` = the period's usage so far - P (nothing passes when negative);
  ``total`` = invoiced + actual;
* while ``invoiced`` is below the largest fixed threshold, every fixed
  threshold t with invoiced < t <= total passes, and R passes when
  total - largest >= R; otherwise R passes when actual + (invoiced mod R) >= R.

A check that passes anything issues one progressive invoice: all in-arrears
usage of the period so far, crediting the latest earlier progressive invoice
of the period (``credit_of``: its fees - its coupons - credit notes on it,
floored at 0; each progressive invoice bills the usage so far, so the latest
one's fees are all that was billed before).  The period's final invoice
credits the latest one.  This is Lago's spec example (progressive invoices of
20 000, then 40 000, then a final invoice with fees 3 100 + 60 000, credit
60 000, total 3 100); the summary in lago-semantics.md also subtracts the
earlier invoice's own progressive credit, which would bill the usage of the
first progressive invoice twice, so gpubill follows the example.
gpubill checks at the end of each local day of the period, over the events
the store holds (Lago's job runs every few minutes, so its invoices may
overshoot a threshold by a few minutes of usage; gpubill's by up to a day).
"""

from __future__ import annotations

from decimal import Decimal

from gpubill.contracts.credits import Applied
from gpubill.contracts.spread import ZERO
from gpubill.dsl import ast


def thresholds_of(contract: ast.Contract, plan: ast.Plan) -> ast.Progressive | None:
    """The contract's thresholds, else its plan's (a contract's replace the plan's)."""
    return contract.progressive if contract.progressive is not None else plan.progressive


def passed(p: ast.Progressive, invoiced: Decimal, actual: Decimal) -> tuple[Decimal, ...]:
    """The thresholds a check passes: fixed ones in order, then R at most once."""
    if actual < 0:
        return ()
    fixed = [t.value for t in p.thresholds]
    every = p.every[0].value if p.every else None
    total = invoiced + actual
    largest = fixed[-1] if fixed else ZERO
    if fixed and invoiced < largest:
        out = [t for t in fixed if invoiced < t <= total]
        if every is not None and total - largest >= every:
            out.append(every)
        return tuple(out)
    if every is not None and actual + invoiced % every >= every:
        return (every,)
    return ()


def credit_of(inv) -> Applied:
    """The progressive credit a later invoice of the period takes for ``inv``:
    its fees - its coupons - credit notes, floored at 0."""
    amount = max(inv.fees_amount - inv.coupons_amount - inv.credit_notes_amount, ZERO)
    return Applied("progressive", f"progressive invoice of {inv.issuing_date.isoformat()}",
                   f"progressive invoice of {inv.issuing_date.isoformat()} credited", amount)
