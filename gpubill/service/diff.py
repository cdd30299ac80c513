"""`gpubill diff`'s report: what two revisions of the contract repository do to
the same stored events' invoices (issue 12).

The data model is shared: the renderers (gpubill/service/diff_render.py), the
gates and the CLI read these names.  Amounts are the invoices' rounded
Decimals; None marks a line or an invoice that one side does not have.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

import attrs

# Percentages are shown to two places; computed in a local context (never
# the ambient one).
PCT_QUANTUM = Decimal("0.01")
_PCT_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)

CHANGE_KINDS = ("metric", "plan", "version", "contract", "entity")
CHANGE_WHATS = ("added", "removed", "changed")


def _delta(before: Decimal | None, after: Decimal | None) -> Decimal:
    return (after or Decimal(0)) - (before or Decimal(0))


def _pct(before: Decimal | None, after: Decimal | None) -> Decimal | None:
    """The change relative to before, in percent; None when before is 0/None."""
    if not before:
        return None
    ratio = _PCT_CONTEXT.divide(_PCT_CONTEXT.multiply(_delta(before, after), Decimal(100)), before)
    return ratio.quantize(PCT_QUANTUM, context=_PCT_CONTEXT)


@attrs.frozen
class LineDelta:
    """One invoice line identity (fee type, code, charge, dimensions) of one invoice."""
    name: str
    key: tuple
    before: Decimal | None          # rounded amount; None: absent on that side
    after: Decimal | None
    clause_before: str | None       # file:line:col
    clause_after: str | None

    @property
    def delta(self) -> Decimal:
        return _delta(self.before, self.after)

    @property
    def pct(self) -> Decimal | None:
        return _pct(self.before, self.after)


@attrs.frozen
class CustomerDelta:
    """One contract's invoice(s) of one period; totals are sub_total_excluding_taxes."""
    customer: str
    contract: str
    currency: str
    period: str
    before: Decimal | None
    after: Decimal | None
    lines: tuple[LineDelta, ...]    # only the lines that changed

    @property
    def delta(self) -> Decimal:
        return _delta(self.before, self.after)

    @property
    def pct(self) -> Decimal | None:
        return _pct(self.before, self.after)


@attrs.frozen
class Change:
    """What changed between the two revisions' catalogs."""
    kind: str                       # one of CHANGE_KINDS
    name: str
    what: str                       # one of CHANGE_WHATS
    clauses: tuple[str, ...]        # head file:line:col of changed clauses (base's for removed)
    customers: tuple[str, ...]      # the contracts it reaches


@attrs.frozen
class DiffReport:
    base: str
    head: str
    periods: tuple[str, ...]
    customers: tuple[CustomerDelta, ...]   # every contract invoiced in either, by |delta| desc
    changes: tuple[Change, ...]
    finalized: tuple[tuple[str, str, Decimal, Decimal], ...]  # (number, customer, stored, head total)
    unrated: tuple[str, ...]               # contracts either revision could not invoice, with why
    notices: tuple[str, ...] = ()          # notice-period violations (file:line:col: message)

    def totals(self) -> dict[str, tuple[Decimal, Decimal]]:
        """currency -> (before, after) over every customer and period."""
        sums: dict[str, tuple[Decimal, Decimal]] = {}
        for c in self.customers:
            before, after = sums.get(c.currency, (Decimal(0), Decimal(0)))
            sums[c.currency] = (before + (c.before or Decimal(0)), after + (c.after or Decimal(0)))
        return dict(sorted(sums.items()))
