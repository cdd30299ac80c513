"""The invoice document, and the one order in which it is computed (Lago's).

``assemble`` turns an invoice's fee lines into the document, in Lago's
computation order (lago-semantics.md, "Invoice computation order"):

1. ``fees_amount`` = the sum of the rounded fee lines;
2. minus the progressive-billing credit (the latest earlier progressive
   invoice of the period, capped at this invoice's fees of the same charges);
3. minus the coupons (before tax, spread pro rata over the eligible fees)
   = ``sub_total_excluding_taxes``;
4. plus the taxes (each fee taxed on what remains of it; the invoice's tax is
   the rounded sum of the unrounded per-tax amounts)
   = ``sub_total_including_taxes``;
5. minus credit-note credits (a subscription invoice only: the balances of
   the contract's credit notes issued on or before its issuing day, oldest
   first);
6. minus prepaid credits = ``total``, the amount due.

Each credit is spread over fees and every share kept exact, so each fee shows
what it was discounted and taxed, and the totals are sums of rounded amounts.
What carries from one invoice to the next (coupon uses and remainders,
prepaid balances, lifetime usage) is the ``Ledger``, threaded through the
contract's invoices in order.  Pure: no clock, no I/O.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs

from gpubill.contracts.context import Billing, local_date
from gpubill.contracts.commitment import CommitState
from gpubill.contracts.coupons import CouponState, apply_coupons
from gpubill.contracts.credits import (
    Applied, CreditNoteBalance, apply_credit_notes, apply_wallets, opening_balances, total_of,
)
from gpubill.contracts.lines import FeeLine, sum_amounts
from gpubill.contracts.spread import ZERO, eligible_total, spread
from gpubill.contracts.taxes import AppliedTax, apply_taxes
from gpubill.dsl import ast

INVOICE_TYPES = ("subscription", "progressive_billing")
PROGRESSIVE_BILLING = INVOICE_TYPES[1]  # an invoice a crossed usage threshold issues inside the period


@attrs.frozen
class Ledger:
    """What one invoice leaves to the contract's next: coupon uses and
    remainders, prepaid balances, the commitments' open windows, and lifetime usage (the in-arrears charge
    fees invoiced so far, which progressive thresholds compare), and the credit notes' balances."""

    coupons: tuple
    balances: tuple
    commitments: tuple
    lifetime_usage: Decimal = ZERO
    credit_notes: tuple[CreditNoteBalance, ...] = ()


def opening_ledger(contract: ast.Contract, credit_notes: tuple[CreditNoteBalance, ...] = ()) -> Ledger:
    """The ledger before the contract's first invoice; ``credit_notes``: the
    credit notes issued on its invoices (their whole credit, oldest first)."""
    return Ledger(tuple(CouponState() for _ in contract.discounts), opening_balances(contract),
                  tuple(CommitState() for _ in contract.commits), credit_notes=credit_notes)


@attrs.frozen
class Invoice:
    """One invoice: per subscription and billing period (or progressive
    threshold), its fee lines and every credit and tax, with Lago's totals."""

    invoice_type: str
    billing: Billing = attrs.field(eq=False, repr=False)
    from_ms: int  # the charges' service period (a progressive invoice: up to its check)
    to_ms: int
    issuing_date: dt.date
    fees: tuple[FeeLine, ...]
    progressive_shares: tuple[Decimal, ...]
    coupon_shares: tuple[Decimal, ...]
    fee_taxes: tuple[Decimal, ...]  # unrounded, per fee
    credits: tuple[Applied, ...]  # coupons, progressive credit, credit notes, prepaid: in the order applied
    taxes: tuple[AppliedTax, ...]
    taxes_amount: Decimal
    thresholds: tuple = ()  # a progressive invoice: the thresholds it crossed

    @property
    def currency(self) -> str:
        return self.billing.currency

    @property
    def fees_amount(self) -> Decimal:
        return sum_amounts(self.fees)

    @property
    def progressive_billing_credit_amount(self) -> Decimal:
        return total_of(self.credits, "progressive")

    @property
    def coupons_amount(self) -> Decimal:
        return total_of(self.credits, "coupon")

    @property
    def sub_total_excluding_taxes_amount(self) -> Decimal:
        return self.fees_amount - self.progressive_billing_credit_amount - self.coupons_amount

    @property
    def sub_total_including_taxes_amount(self) -> Decimal:
        return self.sub_total_excluding_taxes_amount + self.taxes_amount

    @property
    def credit_notes_amount(self) -> Decimal:
        return total_of(self.credits, "credit_note")

    @property
    def prepaid_credit_amount(self) -> Decimal:
        return total_of(self.credits, "prepaid")

    @property
    def prepaid_granted_credit_amount(self) -> Decimal:
        return sum((a.amount for a in self.credits if a.kind == "prepaid" and a.granted), ZERO)

    @property
    def prepaid_purchased_credit_amount(self) -> Decimal:
        return self.prepaid_credit_amount - self.prepaid_granted_credit_amount

    @property
    def total_amount(self) -> Decimal:
        return self.sub_total_including_taxes_amount - self.credit_notes_amount - self.prepaid_credit_amount

    def charge_fees(self, charge: str) -> list[FeeLine]:
        return [f for f in self.fees if f.charge == charge]


def progressive_base(fee: FeeLine) -> bool:
    """The fees progressive billing counts: the lines of in-arrears charges
    (usage, with the reservation coverage and policy credits on it)."""
    return fee.charge is not None and not fee.pay_in_advance


def billed_usage(fees) -> Decimal:
    """What an invoice adds to the lifetime usage that progressive thresholds compare."""
    return sum_amounts(f for f in fees if progressive_base(f))


def assemble(b: Billing, fees: list[FeeLine], ledger: Ledger, *, invoice_type: str = "subscription",
             to_ms: int | None = None, earlier: Applied | None = None, thresholds: tuple = ()) -> tuple[Invoice, Ledger]:
    """The invoice of these fees, and the ledger it leaves.  ``earlier``: the
    progressive credit of the latest earlier progressive invoice of the period
    (its amount before the cap)."""
    bases = [f.amount for f in fees]
    credits: list[Applied] = []
    progressive_shares = [ZERO] * len(fees)
    if earlier is not None:
        eligible = [progressive_base(f) for f in fees]
        amount = min(earlier.amount, max(eligible_total(bases, eligible), ZERO))
        if amount > 0:
            progressive_shares = spread(amount, bases, eligible)
            bases = [x - s for x, s in zip(bases, progressive_shares)]
            credits.append(attrs.evolve(earlier, amount=amount))
    coupons, coupon_shares, coupon_states = apply_coupons(b, fees, bases, ledger.coupons)
    credits += coupons
    taxable = [x - s for x, s in zip(bases, coupon_shares)]
    taxes, fee_taxes, taxes_amount = apply_taxes(b, taxable)
    to_ms = b.period.to_ms if to_ms is None else to_ms
    day = local_date(to_ms, b.timezone)
    due = [x + t for x, t in zip(taxable, fee_taxes)]
    final = invoice_type == "subscription"
    issued = day + dt.timedelta(days=1) if final else day
    notes, notes_left = apply_credit_notes(ledger.credit_notes, sum(taxable, ZERO) + taxes_amount,
                                           issued) if final else ([], ledger.credit_notes)
    credits += notes
    remaining = sum(taxable, ZERO) + taxes_amount - total_of(credits, "credit_note")
    prepaid, balances = apply_wallets(b, fees, due, remaining, ledger.balances, day)
    credits += prepaid
    usage = billed_usage(fees) if final else ZERO
    inv = Invoice(invoice_type, b, b.covered_from_ms, to_ms, issued, tuple(fees),
                  tuple(progressive_shares), tuple(coupon_shares), tuple(fee_taxes), tuple(credits), tuple(taxes),
                  taxes_amount, thresholds)
    return inv, attrs.evolve(ledger, coupons=coupon_states, balances=balances, credit_notes=notes_left,
                             lifetime_usage=ledger.lifetime_usage + usage)
