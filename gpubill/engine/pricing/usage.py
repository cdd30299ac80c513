"""The hand-off between aggregation and pricing, shared by both engines.

Both engines (``reference`` in plain Python, ``rate`` with numba kernels)
reduce events to one ``LineUsage`` per (subscription, charge, filter bucket,
group, price window) and one ``AdvanceEvent`` sequence per line of a
pay-in-advance charge.  ``price.py`` turns those into ``RatedLine`` /
``InAdvanceFee`` values; the engines differ only in how they aggregate,
which is what the property tests hold equal.

Exact rationals travel as ``(numerator, denominator)`` int pairs
(denominator > 0, not necessarily reduced): the fast engine produces tens
of thousands of lines and a ``Fraction`` per value would cost more than the
pricing itself.
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple, Optional

import attrs

ZERO_ND = (0, 1)


class ScaledInts:
    """Per-event values ``ints[i] * num / den`` from an int64 array (the fast
    engine's percentage values): iterating gives the ``(num, den)`` pairs,
    ``price.decimal_values`` converts them in bulk."""

    __slots__ = ("ints", "num", "den")

    def __init__(self, ints, num: int, den: int):
        self.ints, self.num, self.den = ints, num, den

    def __len__(self) -> int:
        return len(self.ints)

    def __iter__(self):
        num, den = self.num, self.den
        return ((v * num, den) for v in self.ints.tolist())


def line_sort_key(k) -> tuple:
    """The canonical order of lines: subscription, charge, filter bucket (default
    last), group values (missing first), window (none last)."""
    return (
        k.sub,
        k.charge,
        (k.bucket is None, k.bucket or 0),
        tuple((v is not None, v or "") for v in k.group),
        (k.window is not None, k.window or 0),
    )


def nd(f: Fraction) -> tuple:
    return (f.numerator, f.denominator)


class LineUsage:
    """One line's aggregation.

    ``full``: the aggregation (non-prorated), ``(num, den)``; ``count``:
    events that entered it; ``prorated``: exact prorated value before the
    5-decimal ceil (or None); ``reasons``: ``((end_reason, num, den, count),
    ...)``; ``cents``: dynamic sum of precise_total_amount_cents; ``values``:
    percentage per-event values in time order (pairs, or ``ScaledInts``); ``pror_events``: prorated
    graduated ``((num, den, day weight), ...)``; ``ignored``: events of the
    bucket dropped as non-numeric / missing.
    """

    __slots__ = ("sub", "charge", "bucket", "group", "window", "full", "count", "prorated", "reasons", "cents",
                 "values", "pror_events", "ignored")

    def __init__(self, sub, charge, bucket, group, window, full, count, prorated=None, reasons=(), cents=ZERO_ND,
                 values=None, pror_events=None, ignored=0):
        self.sub = sub
        self.charge = charge
        self.bucket = bucket  # filter index, None = default bucket
        self.group = group  # one value per group_by key, None = missing
        self.window = window  # index into the bucket's windows, None = no window
        self.full = full
        self.count = count
        self.prorated = prorated
        self.reasons = reasons
        self.cents = cents
        self.values = values
        self.pror_events = pror_events
        self.ignored = ignored

    @property
    def key(self) -> "LineKey":
        return LineKey(self.sub, self.charge, self.bucket, self.group, self.window)

    def sort_key(self):
        return line_sort_key(self)


class LineKey(NamedTuple):
    """The identity of a line inside a run, shared by both engines: subscription
    and charge (indices), filter bucket (None: the default), group values (one
    per group_by key, None: missing), price window (None: none).  Outside a run
    a line is named by its ``RatedLine`` fields (``reference.trace.LineRef``)."""

    sub: int
    charge: int
    bucket: Optional[int]
    group: tuple
    window: Optional[int]

    def sort_key(self):
        return line_sort_key(self)


@attrs.frozen
class AdvanceEvent:
    """One event of a pay-in-advance charge, as the engines hand it over (in
    (timestamp, rowid) order within its line)."""

    timestamp_ms: int
    rowid: int
    transaction_id: str
    value: Fraction  # the per-event quantity (1 for count)
    cents: Fraction = Fraction(0)
    uid: Optional[str] = None  # unique_count id
    remove: bool = False  # unique_count operation_type == "remove"
    weight: Optional[int] = None  # prorated sum: local days from the event's day to the covered period's end
