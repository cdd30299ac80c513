"""The hand-off between aggregation and pricing, shared by both engines.

Both engines (``reference`` in plain Python, ``rate`` with numba kernels)
reduce events to one ``LineUsage`` per (subscription, charge, filter bucket,
group, price window) with exact rational quantities, and one
``AdvanceEvent`` sequence per line of a pay-in-advance charge.  ``price.py``
turns those into ``RatedLine`` / ``InAdvanceFee`` values; the engines differ
only in how they aggregate, which is what the property tests hold equal.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Optional

import attrs


@attrs.frozen
class LineKey:
    sub: int  # index into the subscriptions
    charge: int  # index into the subscription's charges
    bucket: Optional[int]  # filter index, None = default bucket
    group: tuple  # one value per group_by key, None = missing
    window: Optional[int]  # index into the bucket's windows, None = no window

    def sort_key(self):
        return (
            self.sub,
            self.charge,
            (self.bucket is None, self.bucket or 0),
            tuple((v is not None, v or "") for v in self.group),
            (self.window is not None, self.window or 0),
        )


@attrs.frozen
class LineUsage:
    key: LineKey
    full: Fraction  # the aggregation (non-prorated)
    count: int  # events that entered the aggregation
    prorated: Optional[Fraction] = None  # exact prorated value (before the 5-decimal ceil)
    reasons: dict = attrs.field(factory=dict)  # end_reason -> (units Fraction, count)
    cents: Fraction = Fraction(0)  # dynamic: sum of precise_total_amount_cents
    values: Optional[tuple] = None  # percentage: per-event values in time order
    pror_events: Optional[tuple] = None  # prorated graduated: ((value, day weight), ...) in time order
    ignored: int = 0  # events of this bucket dropped as non-numeric / missing


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
