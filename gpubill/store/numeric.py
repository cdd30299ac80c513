"""Exact decimal numbers as (mantissa int64, exponent int8) pairs.

value = mantissa * 10**exponent exactly. Exponent -128 (``MISSING``) marks a
missing value, or one that is not strictly numeric (Lago's ``^-?\\d+(\\.\\d+)?$``),
or one too large to represent (more than 18 significant digits).

JSON numbers are read through their shortest round-trip decimal form (what
``repr`` prints), so ``0.87`` is (87, -2) and ``8.0`` is (80, -1). The string
form of a JSON number (what Lago compares in filters) is ``format_decimal`` of
that pair: ``8`` -> "8", ``8.0`` -> "8.0", ``1e20`` -> "100000000000000000000".
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

import numpy as np

MISSING = -128
STRICT = re.compile(r"-?\d+(\.\d+)?")
_I64 = 2**63 - 1
_EXACT_FLOAT = 2.0**53


def parse_strict(s: str) -> tuple[int, int] | None:
    """(mantissa, exponent) of a strict numeric string, or None if not strict.

    A strict string too large for int64/int8 returns (0, MISSING).
    """
    if not STRICT.fullmatch(s):
        return None
    if "." in s:
        ip, fp = s.split(".")
        return _fit(int(ip + fp), -len(fp))
    return _fit(int(s), 0)


def _fit(m: int, e: int) -> tuple[int, int]:
    while abs(m) > _I64 and m % 10 == 0:
        m //= 10
        e += 1
    if abs(m) > _I64 or not -127 <= e <= 127:
        return (0, MISSING)
    return (m, e)


def from_number(v) -> tuple[int, int]:
    """(mantissa, exponent) of a Python int or finite float."""
    if type(v) is int:
        return _fit(v, 0) if abs(v) > _I64 else (v, 0)
    if not math.isfinite(v):
        return (0, MISSING)
    sign, digits, exp = Decimal(repr(v)).as_tuple()
    m = int("".join(map(str, digits)))
    return _fit(-m if sign else m, exp)


def format_decimal(m: int, e: int) -> str:
    """The canonical string of m * 10**e: no exponent, e fractional digits."""
    if e >= 0:
        return str(m * 10**e) if m else "0"
    s = str(abs(m)).rjust(-e + 1, "0")
    out = s[:e] + "." + s[e:]
    return "-" + out if m < 0 else out


_POW = [10.0**k for k in range(18)]


def floats_to_decimal(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized shortest decimal (at least one fractional digit, as repr) of floats.

    Finds, for each value, the smallest k in 1..17 with an integer m such that
    m / 10**k rounds to exactly x (IEEE division is correctly rounded, so this
    is the decimal->float parse of "m e-k"). Values it cannot settle (huge,
    tiny, non-finite) are done one by one with ``from_number``.
    """
    n = x.shape[0]
    m = np.zeros(n, np.int64)
    e = np.full(n, MISSING, np.int8)
    todo = np.isfinite(x) & (np.abs(x) < 1e15)
    idx = np.flatnonzero(todo)
    xs = x[idx]
    with np.errstate(all="ignore"):
        for k in range(1, 18):
            if idx.size == 0:
                break
            cand = np.rint(xs * _POW[k])
            ok = (np.abs(cand) < _EXACT_FLOAT) & (cand / _POW[k] == xs)
            if ok.any():
                hit = idx[ok]
                m[hit] = cand[ok].astype(np.int64)
                e[hit] = -k
                idx, xs = idx[~ok], xs[~ok]
    rest = np.flatnonzero(e == MISSING)
    for i in rest.tolist():
        v = float(x[i])
        if math.isfinite(v):
            m[i], e[i] = from_number(v)
    return m, e
