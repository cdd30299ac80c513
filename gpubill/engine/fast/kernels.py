"""numba primitives: exact int64 arithmetic, column loads, column statistics.

Everything here is ``@njit(cache=True, nogil=True)`` (no fastmath): compiled
once per machine, loaded from numba's on-disk cache after, and callable from
several Python threads at once.  The store's columns reach the kernels as
*addresses* (``arr.ctypes.data`` in an int64 array, one per column): one
kernel signature whatever the number of property columns, no tuples of
arrays and no copies.  The caller keeps the arrays alive for the call.

Overflow-checked ``_add``/``_mul`` return ``(value, overflowed)``; a kernel
that sees an overflow (or a value it cannot hold exactly) marks the event's
subscription and goes on, and ``rate`` rates the marked subscriptions on the
exact path: a quantity never wraps and is never dropped.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from gpubill.engine.fast.layout import PE_INC, PE_MAX, PE_MIN
from gpubill.engine.pricing.money import MISSING_EXPONENT as MISSING, UNHOLDABLE_EXPONENT as UNHOLDABLE

I64_MIN = np.int64(-(2**63))
P10 = np.array([10**k for k in range(19)], dtype=np.int64)
HASH_MUL = np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15 as int64
NO_EXPONENT = 127  # _min_exponent of an all-missing column

# status codes of the accumulator kernel
OK, FULL = 0, 2


def _loader(bits):
    @intrinsic
    def load(typingctx, addr, i):
        sig = getattr(types, f"int{bits}")(types.int64, types.int64)

        def codegen(context, builder, signature, args):
            a, idx = args
            ptr = builder.inttoptr(a, ir.PointerType(ir.IntType(bits)))
            return builder.load(builder.gep(ptr, [idx]))

        return sig, codegen

    return load


_ld8, _ld32, _ld64 = _loader(8), _loader(32), _loader(64)


def address(arr) -> int:
    """The data address of a C-contiguous array (for the kernels' pointer tables)."""
    if not arr.flags.c_contiguous:
        raise ValueError("kernel columns must be C-contiguous")
    return int(arr.ctypes.data)


def _checked(op):
    """LLVM's ``llvm.s{op}.with.overflow.i64``: (result, overflowed).  Plain
    int64 arithmetic followed by a test would not do: signed overflow is
    undefined behaviour to the optimizer, which may fold the test away."""

    @intrinsic
    def checked(typingctx, a, b):
        sig = types.Tuple((types.int64, types.boolean))(types.int64, types.int64)

        def codegen(context, builder, signature, args):
            x = context.cast(builder, args[0], signature.args[0], types.int64)
            y = context.cast(builder, args[1], signature.args[1], types.int64)
            res = getattr(builder, f"s{op}_with_overflow")(x, y)
            return context.make_tuple(builder, signature.return_type,
                                      (builder.extract_value(res, 0), builder.extract_value(res, 1)))

        return sig, codegen

    return checked


_sadd, _smul = _checked("add"), _checked("mul")


@njit(cache=True, nogil=True)
def _add(a, b):
    return _sadd(np.int64(a), np.int64(b))


@njit(cache=True, nogil=True)
def _mul(a, b):
    return _smul(np.int64(a), np.int64(b))


@njit(cache=True, nogil=True)
def _ceil_div(a, b):
    return -((-a) // b)


@intrinsic
def _udiv_by(typingctx, n, magic, shift):
    """``n // d`` for unsigned 64-bit n and an invariant divisor d >= 2, as a
    multiply-high and two shifts (the branch-free scheme of libdivide;
    ``divider(d)`` gives magic and shift).  A hardware 64-bit divide costs
    tens of cycles per event; this costs three."""
    sig = types.int64(types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        x, m, sh = args
        i128 = ir.IntType(128)
        hi = builder.trunc(builder.lshr(builder.mul(builder.zext(x, i128), builder.zext(m, i128)),
                                        ir.Constant(i128, 64)), ir.IntType(64))
        t = builder.add(builder.lshr(builder.sub(x, hi), ir.Constant(ir.IntType(64), 1)), hi)
        return builder.lshr(t, sh)

    return sig, codegen


def divider(d: int) -> tuple[int, int]:
    """(magic, shift) of ``_udiv_by`` for the divisor d >= 2 (magic as a signed int64 bit pattern)."""
    if d < 2 or d >= 2**63:
        raise ValueError(f"divider: {d} is not in 2 .. 2**63-1")
    log = d.bit_length() - 1
    if d & (d - 1) == 0:
        return 0, log - 1
    m, rem = divmod(1 << (64 + log), d)
    m = (2 * m + (1 if 2 * rem >= d else 0) + 1) % 2**64
    return (m - 2**64 if m >= 2**63 else m), log


@njit(cache=True, nogil=True)
def _ceil_div_by(a, b, magic, shift):
    """ceil(a / b) for b >= 1, with ``divider(b)``'s magic when b >= 2 (shift -1: b is 1)."""
    if shift < 0:
        return a
    if a > 0:
        return _udiv_by(a - 1, magic, shift) + 1
    return _ceil_div(a, b)


@njit(cache=True, nogil=True)
def _fixed(mptr, eptr, sc, i):
    """(value, valid, unheld) of row i of a numeric column at scale sc.

    ``valid`` is False for a missing or non-numeric value (the event is
    ignored); ``unheld`` is True when the value cannot be held exactly at sc
    (too large, finer than sc, or a value the store could not hold): the
    caller hands its subscription to the exact path, never drops it."""
    ex = np.int64(_ld8(eptr, i))
    if ex == MISSING:
        return np.int64(0), False, False
    if ex == UNHOLDABLE:
        return np.int64(0), True, True
    m = _ld64(mptr, i)
    d = ex - sc
    if d == 0:
        return m, True, False
    if d > 0:
        if d > 18:
            return np.int64(0), True, m != 0
        v, o = _mul(m, P10[d])
        return v, True, o
    if -d > 18:
        return np.int64(0), True, m != 0
    q = m // P10[-d]
    return q, True, q * P10[-d] != m


@njit(cache=True, nogil=True)
def _per_event(x, flags, inc, mn, mx, magic, shift):
    """M if x <= M else M + ceil((x-M)/I)*I; ceil(x/I)*I without M; cap
    (magic, shift: ``divider(I)``, shift -1 when I is 1)."""
    q = x
    o = False
    if flags & PE_MIN:
        if x <= mn:
            q = mn
        elif flags & PE_INC:
            q, o = _mul(_ceil_div_by(x - mn, inc, magic, shift), inc)
            q, o2 = _add(q, mn)
            o = o or o2
    elif flags & PE_INC:
        q, o = _mul(_ceil_div_by(x, inc, magic, shift), inc)
    if flags & PE_MAX and q > mx:
        q = mx
    return q, o


@njit(cache=True, nogil=True)
def _slot(keys, vals, mask, key, next_row, cap):
    """Find or insert ``key`` in an open-addressing table -> (row, next_row);
    row -1 when the table is full."""
    h = key * HASH_MUL
    h ^= h >> 29
    j = h & mask
    probes = 0
    while True:
        k = keys[j]
        if k == key:
            return vals[j], next_row
        if k == -1:
            if next_row >= cap or probes > mask:
                return np.int64(-1), next_row
            keys[j] = key
            vals[j] = next_row
            return next_row, next_row + 1
        j = (j + 1) & mask
        probes += 1


# ------------------------------------------------------------ column statistics


@njit(cache=True, nogil=True)
def _min_exponent(e, lo, hi):
    """Smallest exponent of the valid rows in [lo, hi) (127 if none)."""
    best = np.int8(NO_EXPONENT)
    for i in range(lo, hi):  # branch-free: LLVM vectorizes it
        x = e[i]
        best = min(best, np.int8(NO_EXPONENT) if (x == MISSING) | (x == UNHOLDABLE) else x)
    return np.int64(best)


@njit(cache=True, nogil=True)
def _finest_exponent(m, e):
    best = 127
    for i in range(m.shape[0]):
        ex = np.int64(e[i])
        if ex == MISSING or ex == UNHOLDABLE:
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


@njit(cache=True, nogil=True)
def _mark_present(col, lo, hi, present):
    """present[id + 1] = 1 for every dictionary id in col[lo:hi] (-1 -> 0);
    returns the largest id seen (-1 if none)."""
    size = present.shape[0]
    top = np.int64(-1)
    for i in range(lo, hi):
        v = np.int64(col[i]) + 1
        top = max(top, v)
        present[v if 0 <= v < size else 0] = 1  # an id out of range marks "missing" (the caller refuses it by top)
    return top - 1
