"""One contract's invoice for one period: every term's lines, then the document.

``invoice_of`` is the one function both the service and `gpubill test` call:
the rated usage of one subscription in one period (the engine's lines and
pay-in-advance fees) and the ledger the contract's earlier invoices left ->
the invoice and the ledger it leaves.  The lines, in this order: the plan's
fee (and a termination credit), reservations, usage lines, pay-in-advance
fees, usage covered by reservations, policy credits, commitment true-ups.
A progressive invoice bills only the in-arrears charges' lines.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from gpubill.contracts.commitment import commitment_fees
from gpubill.contracts.context import Billing
from gpubill.contracts.invoice import Invoice, Ledger, assemble, progressive_base
from gpubill.contracts.credits import Applied
from gpubill.contracts.lines import FeeLine, sum_amounts
from gpubill.contracts.spread import ZERO
from gpubill.contracts.reservation import covered, reservation_fees
from gpubill.contracts.subscription_fee import subscription_fees
from gpubill.contracts.usage import charge_fees, policy_credits


def usage_fees(b: Billing, spec, lines, in_advance) -> list[FeeLine]:
    """The fee lines of the rated usage: charges, coverage by reservations, policy credits."""
    cover, billed = covered(b, lines)
    return charge_fees(b, spec, lines, in_advance) + cover + policy_credits(b, lines, billed)


def invoice_of(b: Billing, spec, lines, in_advance, ledger: Ledger,
               earlier: Applied | None = None, adjustments: tuple[FeeLine, ...] = ()) -> tuple[Invoice, Ledger]:
    """The period's invoice (its final one, crediting ``earlier``: the latest
    progressive invoice of the period, if any) and the ledger it leaves.
    ``adjustments``: lines carried in from earlier invoices (late events)."""
    fees = subscription_fees(b) + reservation_fees(b) + usage_fees(b, spec, lines, in_advance) + list(adjustments)
    true_ups, commitments = commitment_fees(b, fees, ledger.commitments)
    return assemble(b, fees + true_ups, attrs.evolve(ledger, commitments=commitments), earlier=earlier)


def progressive_fees(b: Billing, spec, lines) -> list[FeeLine]:
    """What a progressive invoice bills: the in-arrears charges' usage so far
    (no spending-minimum true-up: that settles the whole period)."""
    return [f for f in usage_fees(b, spec, lines, ()) if progressive_base(f) and f.kind != "min_true_up"]


def progressive_amount(b: Billing, lines) -> Decimal:
    """What ``progressive_fees`` would bill, summed without building the
    usage lines (a daily check needs only the amount)."""
    cover, billed = covered(b, lines)
    extra = cover + policy_credits(b, lines, billed)
    return sum((ln.amount for ln in lines if ln.kind == "usage"), ZERO) + sum_amounts(extra)


def progressive_invoice_of(b: Billing, fees: list[FeeLine], ledger: Ledger, to_ms: int, thresholds: tuple,
                           earlier: Applied | None = None) -> tuple[Invoice, Ledger]:
    """A progressive invoice of ``progressive_fees`` up to ``to_ms``, for the thresholds it passed."""
    return assemble(b, fees, ledger, invoice_type="progressive_billing", to_ms=to_ms, earlier=earlier,
                    thresholds=thresholds)
