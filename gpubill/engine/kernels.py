"""numba kernels: fixed-point conversion and the one-pass line accumulator.

Private ``_``-functions are ``@njit(cache=True)`` (no fastmath, no globals
but constants); the plain wrappers below them are what the rest of the
engine calls.  A rating program arrives as arrays (see ``plan.py``), so the
kernels compile once per machine and are loaded from the on-disk cache after.

Accumulator row layout (``acc[row, :]``, int64):
``COUNT, SUM, MAX, LAST_VAL, LAST_TS, LAST_ROW, PROR, CENTS`` then ``R`` end
reason sums and ``R`` end reason counts.  Every addition and multiplication
is overflow-checked; on overflow the kernel stops and reports the charge
instance, and the wrapper raises ``EngineOverflow``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

COUNT, SUM, MAX, LAST_VAL, LAST_TS, LAST_ROW, PROR, CENTS, NFIXED = range(9)
MISSING = -128
I64_MIN = np.int64(-(2**63))
I64_MAX = np.int64(2**63 - 1)
P10 = np.array([10**k for k in range(19)], dtype=np.int64)
HASH_MUL = np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15 as int64

# charge-program flags
F_GROUPED, F_SIDE, F_PRORATED, F_CENTS, F_UTIL = 1, 2, 4, 8, 16
# status codes
OK, OVERFLOW, FULL = 0, 1, 2


@njit(cache=True)
def _add(a, b):
    s = a + b
    return s, ((a ^ s) & (b ^ s)) < 0


@njit(cache=True)
def _mul(a, b):
    if -2147483648 < a < 2147483648 and -2147483648 < b < 2147483648:
        return a * b, False
    if a == 0 or b == 0:
        return np.int64(0), False
    if (a == -1 and b == I64_MIN) or (b == -1 and a == I64_MIN):
        return np.int64(0), True
    p = a * b
    return p, p // b != a


@njit(cache=True)
def _to_fixed(m, e, scale, p10):
    n = m.shape[0]
    values = np.zeros(n, dtype=np.int64)
    valid = np.zeros(n, dtype=np.bool_)
    inexact = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        ex = np.int64(e[i])
        if ex == MISSING:
            continue
        d = ex - scale
        if d >= 0:
            if d > 18:
                if m[i] != 0:
                    return values, valid, inexact, i
                valid[i] = True
                continue
            v, o = _mul(m[i], p10[d])
            if o:
                return values, valid, inexact, i
            values[i] = v
            valid[i] = True
        else:
            if -d > 18:
                if m[i] != 0:
                    inexact[i] = True
                    continue
                valid[i] = True
                continue
            q = m[i] // p10[-d]
            if q * p10[-d] != m[i]:
                inexact[i] = True
                continue
            values[i] = q
            valid[i] = True
    return values, valid, inexact, -1


def to_fixed(m, e, scale):
    return _to_fixed(m, e, np.int64(scale), P10)


@njit(cache=True)
def _finest_exponent(m, e):
    best = 127
    for i in range(m.shape[0]):
        ex = np.int64(e[i])
        if ex == MISSING:
            continue
        v = m[i]
        if v == 0:
            continue
        while v % 10 == 0:
            v //= 10
            ex += 1
        if ex < best:
            best = ex
    return best


def finest_exponent(m, e):
    return int(_finest_exponent(m, e))


@njit(cache=True)
def _fixed_at(mant, expo, sc, i, p10):
    """(value, valid, overflow) of row i of a numeric column at scale sc."""
    ex = np.int64(expo[i])
    if ex == MISSING:
        return np.int64(0), False, False
    d = ex - sc
    if d >= 0:
        if d > 18:
            return np.int64(0), mant[i] == 0, mant[i] != 0
        v, o = _mul(mant[i], p10[d])
        return v, True, o
    if -d > 18:
        return np.int64(0), mant[i] == 0, False
    return mant[i] // p10[-d], True, False


@njit(cache=True)
def _ceil_div(a, b):
    return -((-a) // b)


@njit(cache=True)
def _per_event(x, flags, inc, mn, mx):
    """M if x <= M else M + ceil((x-M)/I)*I; ceil(x/I)*I without M; cap."""
    q = x
    o = False
    if flags & 2:
        if x <= mn:
            q = mn
        elif flags & 1:
            q, o = _mul(_ceil_div(x - mn, inc), inc)
            q, o2 = _add(q, mn)
            o = o or o2
    elif flags & 1:
        q, o = _mul(_ceil_div(x, inc), inc)
    if flags & 4 and q > mx:
        q = mx
    return q, o


@njit(cache=True)
def _slot(keys, vals, mask, key, next_row, cap):
    """Find or insert ``key`` in the open-addressing table -> (row, next_row)."""
    h = key * HASH_MUL
    h ^= h >> 29
    j = h & mask
    while True:
        k = keys[j]
        if k == key:
            return vals[j], next_row
        if k == -1:
            if next_row >= cap:
                return -1, next_row
            keys[j] = key
            vals[j] = next_row
            return next_row, next_row + 1
        j = (j + 1) & mask
