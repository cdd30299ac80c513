"""Sequence aggregations: the events of one line in time order.

The main pass appends the (rare) events of sequence programs to a side
buffer: ``(slot, row, value, aux)`` where value is the fixed-point quantity
(the uid's dictionary id for unique_count) and aux the local day index
(``2 * (day + 1) + remove`` for unique_count).  ``order`` sorts them by
(line, timestamp, ingestion) -- or by (line, uid, timestamp, ingestion) for
unique_count -- and a kernel per aggregation walks the segments:

* ``_weighted``: sum of level x milliseconds from the period start to the
  end row (levels before the start are the initial level);
* ``_unique``: ids whose last operation is an add, and the prorated active
  days (removal day included) of every id.

Both are exact int64 with overflow detection; ``_weighted`` flags a line
whose products overflow and ``rate.py`` recomputes that line with Python
integers instead (never a wrapped number).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from gpubill.engine.fast.kernels import _add, _mul


@njit(cache=True, nogil=True)
def _weighted(starts, ends, val, tss, lo, wsend):
    """Per segment k: sum(level * dt) from lo[k] to wsend[k]; ok[k] False on overflow."""
    n = starts.shape[0]
    out = np.zeros(n, np.int64)
    ok = np.ones(n, np.bool_)
    for k in range(n):
        level = np.int64(0)
        acc = np.int64(0)
        t = lo[k]
        good = True
        for j in range(starts[k], ends[k]):
            x = tss[j]
            if x < lo[k]:
                level, o = _add(level, val[j])
                good = good and not o
                continue
            p, o1 = _mul(level, x - t)
            acc, o2 = _add(acc, p)
            level, o3 = _add(level, val[j])
            good = good and not (o1 or o2 or o3)
            t = x
        p, o1 = _mul(level, wsend[k] - t)
        acc, o2 = _add(acc, p)
        ok[k] = good and not (o1 or o2)
        out[k] = acc
    return out, ok


@njit(cache=True, nogil=True)
def _unique(starts, ends, uid, aux, lastday):
    """Per segment (events sorted by uid, then time): ids active at the end,
    and the sum over ids of active days (removal day included)."""
    n = starts.shape[0]
    full = np.zeros(n, np.int64)
    days = np.zeros(n, np.int64)
    for k in range(n):
        j = starts[k]
        while j < ends[k]:
            u = uid[j]
            prev = -1  # none
            start = np.int64(0)
            open_ = False
            covered = np.int64(-1)
            last_op = 0
            while j < ends[k] and uid[j] == u:
                op = aux[j] & 1
                day = (aux[j] >> 1) - 1
                last_op = op
                j += 1
                if op == prev or (op == 1 and prev == -1):
                    continue
                if op == 0:
                    start = day if day > 0 else 0
                    open_ = True
                else:
                    b = day if day < lastday[k] else lastday[k]
                    a = start if start > covered + 1 else covered + 1
                    if b >= a:
                        days[k] += b - a + 1
                        covered = b
                    open_ = False
                prev = op
            if open_:
                b = lastday[k]
                a = start if start > covered + 1 else covered + 1
                if b >= a:
                    days[k] += b - a + 1
            if last_op == 0:
                full[k] += 1
    return full, days


def segments(keys):
    """(starts, ends) of the runs of equal values in a sorted array."""
    if keys.size == 0:
        z = np.zeros(0, np.int64)
        return z, z
    cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    return np.r_[0, cuts].astype(np.int64), np.r_[cuts, keys.size].astype(np.int64)


def weighted_python(val, tss, lo, wsend) -> int:
    """The same sum with Python integers (for a line whose int64 products overflow)."""
    level = acc = 0
    t = lo
    for v, x in zip(val.tolist(), tss.tolist()):
        if x < lo:
            level += v
            continue
        acc += level * (x - t)
        level += v
        t = x
    return acc + level * (wsend - t)
