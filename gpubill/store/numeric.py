"""Exact decimal numbers for the store: the number form (``gpubill.numbers``) and its vectorized reader.

``floats_to_decimal`` turns a float column into the pairs ``from_number`` gives
one value at a time; everything else is ``gpubill.numbers``, re-exported.
"""

from __future__ import annotations

import math

import numpy as np

from gpubill.numbers import (I64_MAX, MAX_DIGITS, MAX_EXPONENT, MAX_FRACTION_DIGITS, MIN_EXPONENT, MISSING,  # noqa: F401
                             STRICT, UNHOLDABLE, fits_quantity, format_decimal, from_number, held, parse_strict)

_EXACT_FLOAT = 2.0**53
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
