"""Pay-in-advance fees as columns; ``InAdvanceFee`` objects only on demand.

A pay-in-advance charge bills each event that raises its line's running
total, so a month of events makes hundreds of thousands of fees.  The fast
engine keeps the fees of a standard price on a count or sum as columns: a
``FeeBlock`` holds one line's event rows (rowid, timestamp, transaction id)
and each event's rise as an int64 at the line's fixed-point scale, and
prices each distinct rise once with ``price.linear_fee`` -- the function
``price.advance_fees`` uses for the same fees -- so a fee read from a block
is the fee the per-event path makes, Decimal for Decimal.

``Fees`` is a run's fees in canonical order: blocks and tuples of
``InAdvanceFee`` (the per-event path: other models, proration, unique
counts, dynamic and percentage prices), one subscription per part.
Indexing or iterating builds the fee objects; ``totals`` and an exporter
(``parts_by_subscription``, then a block's ``transaction_ids``,
``timestamp_ms``, ``which`` and ``values``) read the columns.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from decimal import Decimal
from itertools import accumulate

import numpy as np

from gpubill.engine.pricing.money import EXACT, ratio_to_decimal, round_amount
from gpubill.engine.spec.program import InAdvanceFee

INT64_MAX = 2**63 - 1


def rises(running: np.ndarray) -> np.ndarray:
    """Each event's billable rise: how far its running total goes above every
    earlier one and above 0 (int64, or object for exact Python numbers)."""
    peak = np.maximum.accumulate(np.maximum(running, 0))
    return np.diff(peak, prepend=0)


def running_sum(values: np.ndarray) -> np.ndarray:
    """The running totals of int64 ``values``: int64 where no partial sum can overflow, else Python ints."""
    if values.size and max(int(values.max()), -int(values.min())) * values.size > INT64_MAX:
        values = values.astype(object)
    return np.cumsum(values)


class FeeBlock:
    """The fees of one line at a standard price: one per event, in time order.

    ``head``: the fields every fee of the line shares (subscription,
    charge_id, metric, filter, group, window); ``scale``: the line's
    quantity scale ``(num, den)`` (an event's units are ``rise * num /
    den``); ``fee_of``: units -> precise amount (``price.linear_fee`` at the
    line's price); ``rule``: the money rounding.  Columns: ``rowid``,
    ``timestamp_ms``, ``transaction_ids`` and ``which`` (each fee's rise as
    an index into ``values``: the (units, precise_amount, amount) of each
    distinct rise).
    """

    __slots__ = ("head", "rowid", "timestamp_ms", "transaction_ids", "which", "values")

    def __init__(self, head: dict, scale: tuple, fee_of, rule, rise, rowid, timestamp_ms, transaction_ids):
        self.head = head
        # own copies: the engine's arrays may be views into a whole run's buffers
        self.rowid, self.timestamp_ms = np.array(rowid, np.int64), np.array(timestamp_ms, np.int64)
        self.transaction_ids = transaction_ids
        distinct, self.which = np.unique(rise, return_inverse=True)
        num, den = scale
        self.values = []  # (units, precise_amount, amount) of each distinct rise
        for r in distinct.tolist():
            units = ratio_to_decimal(r * num, den)
            precise = fee_of(units)
            self.values.append((units, precise, round_amount(precise, rule)))

    @property
    def subscription(self) -> str:
        return self.head["subscription"]

    def __len__(self) -> int:
        return len(self.rowid)

    def fee(self, i: int) -> InAdvanceFee:
        h = self.head
        units, precise, amount = self.values[self.which[i]]
        return InAdvanceFee(
            subscription=h["subscription"], charge_id=h["charge_id"], metric=h["metric"],
            filter=None if h["filter"] is None else dict(h["filter"]), group=dict(h["group"]), window=h["window"],
            transaction_id=self.transaction_ids[i], rowid=int(self.rowid[i]), timestamp_ms=int(self.timestamp_ms[i]),
            units=units, precise_amount=precise, amount=amount,
        )

    def __iter__(self):
        return (self.fee(i) for i in range(len(self)))

    def amount_total(self) -> Decimal:
        """The sum of the fees' rounded amounts, exactly."""
        return self.sums()[2]

    def sums(self) -> tuple[Decimal, Decimal, Decimal]:
        """The sums of the fees' units, precise amounts and rounded amounts,
        exactly, without building a fee object."""
        counts = np.bincount(self.which, minlength=len(self.values)).tolist()
        totals = [Decimal(0)] * 3
        for values, n in zip(self.values, counts):
            totals = [EXACT.add(t, EXACT.multiply(v, Decimal(n))) for t, v in zip(totals, values)]
        return totals[0], totals[1], totals[2]


class Fees(Sequence):
    """A run's in-advance fees: ``parts`` (``FeeBlock`` values and tuples
    of ``InAdvanceFee``, each of one subscription) read as one sequence of
    ``InAdvanceFee``, equal to any sequence of the same fees."""

    def __init__(self, parts=()):
        self.parts = tuple(p for p in parts if len(p))
        self._ends = list(accumulate(len(p) for p in self.parts))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self)[i]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("fee index out of range")
        j = bisect_right(self._ends, i)
        part = self.parts[j]
        off = i - (self._ends[j - 1] if j else 0)
        return part.fee(off) if isinstance(part, FeeBlock) else part[off]

    def __iter__(self):
        for part in self.parts:
            yield from part

    def __eq__(self, other):
        if not isinstance(other, (Fees, tuple, list)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __hash__(self):
        return hash(tuple(self))  # as the tuple of fees it stands for (a fee's dicts are unhashable)

    def __add__(self, other):
        return tuple(self) + tuple(other)

    def __radd__(self, other):
        return tuple(other) + tuple(self)

    def __repr__(self) -> str:
        return f"Fees({list(self)!r})"


def parts_by_subscription(fees) -> dict:
    """Subscription id -> its fees as parts (``FeeBlock`` values and lists
    of ``InAdvanceFee``), in order, from ``Fees`` or any sequence of fees."""
    out: dict = {}
    if isinstance(fees, Fees):
        for part in fees.parts:
            out.setdefault(part.subscription if isinstance(part, FeeBlock) else part[0].subscription, []).append(part)
        return out
    for f in fees:
        parts = out.setdefault(f.subscription, [[]])
        parts[-1].append(f)
    return out


def merged(subs, *runs) -> Fees:
    """The fees of runs over disjoint subscriptions as one ``Fees``, in the order of ``subs``."""
    by_sub: dict = {}
    for fees in runs:
        for sub, parts in parts_by_subscription(fees).items():
            by_sub.setdefault(sub, []).extend(parts)
    return Fees(p if isinstance(p, FeeBlock) else tuple(p) for s in subs for p in by_sub.get(s.external_id, ()))


def totals(fees) -> dict:
    """Subscription id -> the sum of its fees' rounded amounts (exact)."""
    out: dict = {}
    for sub, parts in parts_by_subscription(fees).items():
        total = Decimal(0)
        for part in parts:
            if isinstance(part, FeeBlock):
                total = EXACT.add(total, part.amount_total())
            else:
                for f in part:
                    total = EXACT.add(total, f.amount)
        out[sub] = total
    return out
