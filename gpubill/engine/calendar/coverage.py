"""What one subscription covers of its billing period: bounds, days, day index.

The billing period itself (which one, its bounds, its label) is
``billing_calendar.Period``, decided once in ``subscription``; a ``Coverage``
is what the engines need to know about time for one compiled subscription,
computed once in Python (the kernels receive the resulting integers):

* ``lo``/``hi``: the inclusive window of the period the subscription covers
  (period bounds cut by started_at / terminated_at);
* ``duration_days``: calendar days of the full period in the subscription's
  timezone (Lago's charges_duration_days);
* ``eff_days``: calendar days of the covered part;
* ``day_bounds``: UTC ms of each local midnight inside the covered part, so
  that ``day_index(ts)`` is the 0-based local day of ``ts`` (-1 before ``lo``);
* ``ws_end``: ``hi`` rounded up to the whole second (weighted_sum end row).
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import attrs

DAY_MS = 86_400_000
NEG_INF = -(2**62)


@attrs.frozen
class Coverage:
    """The part of a billing period one subscription covers, in its local days."""

    lo: int
    hi: int
    duration_days: int
    eff_days: int
    day_bounds: tuple
    ws_end: int

    @property
    def empty(self) -> bool:
        return self.hi < self.lo

    def day_index(self, ts: int) -> int:
        return -1 if ts < self.lo else bisect_right(self.day_bounds, ts)


def _local_date(ms: int, tz):
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).astimezone(tz).date()


def _midnight_ms(d, tz) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()) * 1000


def coverage_of(sub) -> Coverage:
    tz = ZoneInfo(sub.timezone)
    lo = sub.period_from_ms if sub.started_at_ms is None else max(sub.period_from_ms, sub.started_at_ms)
    hi = sub.period_to_ms if sub.terminated_at_ms is None else min(sub.period_to_ms, sub.terminated_at_ms)
    duration = (_local_date(sub.period_to_ms, tz) - _local_date(sub.period_from_ms, tz)).days + 1
    if hi < lo:
        return Coverage(lo, hi, duration, 0, (), hi)
    d0, d1 = _local_date(lo, tz), _local_date(hi, tz)
    eff = (d1 - d0).days + 1
    bounds = tuple(_midnight_ms(d0 + timedelta(days=k), tz) for k in range(1, eff))
    ws_end = -((-(hi)) // 1000) * 1000
    return Coverage(lo, hi, duration, eff, bounds, ws_end)
