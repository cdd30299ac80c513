"""Exact decimal numbers as (mantissa int64, exponent int8) pairs: the one number form.

The store keeps every strictly numeric value in this form and the engine
counts with it, so both import it from here (pure Python, no numpy: ``check``
may import it too).

value = mantissa * 10**exponent exactly, with the exponent in -126..127. Two
exponents are reserved sentinels (the mantissa is 0 with either):

* ``MISSING`` (-128): no value, or one that is not strictly numeric;
* ``UNHOLDABLE`` (-127): a strictly numeric value the pair cannot hold exactly.

"Strictly numeric" is Lago's rule with ASCII digits only: ``^-?[0-9]+(\\.[0-9]+)?$``.

JSON numbers are read through their shortest round-trip decimal form (what
``repr`` prints), so ``0.87`` is (87, -2) and ``8.0`` is (80, -1). The string
form of a JSON number (what Lago compares in filters) is ``format_decimal`` of
that pair: ``8`` -> "8", ``8.0`` -> "8.0", ``1e20`` -> "100000000000000000000".

This module is the one number parser: ``parse_strict`` and
``from_number`` never raise, whatever their input (a 5 000-digit string
included: no ``int()`` ever sees more than ``MAX_DIGITS`` digits).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

MISSING = -128
UNHOLDABLE = -127
"""Exponent of a strictly numeric value the (int64, int8) pair cannot hold exactly.

More than 19 significant digits (the mantissa passes 2**63 - 1), or an
exponent outside -126..127: a 24-digit identifier sent as a string, say. Such
a string is kept as a string (its dictionary form is exact), but its numeric
column says UNHOLDABLE instead of MISSING: it *is* a number, just not one the
engine can count with, so rating must treat it as an error, never as 0 or as
absent. JSON numbers and canonical quantities that cannot be held are refused
at ingestion instead (``validate.py``).
"""
MIN_EXPONENT, MAX_EXPONENT = -126, 127   # the exponents of real values
MAX_DIGITS = 19                          # significant digits that may fit an int64
MAX_FRACTION_DIGITS = 18                 # decimals a quantity may have (engine scale >= 1e-18)
STRICT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
I64_MAX = 2**63 - 1
_I64 = I64_MAX
_UNHELD = (0, UNHOLDABLE)
_MAX_BITS = 500  # |int| >= 2**500 (> 1e150) is beyond I64_MAX * 10**MAX_EXPONENT


def held(e):
    """True where exponent ``e`` (a scalar or an array) is a real value, not a sentinel."""
    return e > UNHOLDABLE


def parse_strict(s: str) -> tuple[int, int] | None:
    """(mantissa, exponent) of a strictly numeric string, or None if not strict.

    A strict string the pair cannot hold returns ``(0, UNHOLDABLE)``. Digits
    are kept ("1.50" -> (150, -2)); leading zeros and, only when there are too
    many digits, trailing zeros are dropped. Never raises.
    """
    if STRICT.fullmatch(s) is None:
        return None
    neg = s[0] == "-"
    ip, _, fp = s[neg:].partition(".")
    sig = (ip + fp).lstrip("0")
    e = -len(fp)
    if len(sig) > MAX_DIGITS:
        cut = len(sig) - MAX_DIGITS
        if sig[-cut:].strip("0"):
            return _UNHELD
        sig, e = sig[:MAX_DIGITS], e + cut
    m = int(sig) if sig else 0
    return _fit(-m if neg else m, e)


def _fit(m: int, e: int) -> tuple[int, int]:
    """The pair of m * 10**e: trailing zeros dropped only as needed to fit; else UNHOLDABLE."""
    if m == 0:
        return (0, min(max(e, -MAX_FRACTION_DIGITS), 0))
    while (abs(m) > _I64 or e < -MAX_FRACTION_DIGITS) and m % 10 == 0:
        m //= 10
        e += 1
    if abs(m) > _I64 or not MIN_EXPONENT <= e <= MAX_EXPONENT:
        return _UNHELD
    return (m, e)


def from_number(v) -> tuple[int, int]:
    """(mantissa, exponent) of a Python int or float; UNHOLDABLE if it cannot be held. Never raises."""
    if type(v) is int:
        if -_I64 <= v <= _I64:
            return (v, 0)
        return _fit(v, 0) if v.bit_length() < _MAX_BITS else _UNHELD
    if not math.isfinite(v):
        return (0, MISSING)
    sign, digits, exp = Decimal(repr(v)).as_tuple()
    m = int("".join(map(str, digits)))
    return _fit(-m if sign else m, exp)


def fits_quantity(m: int, e: int, max_scale: int = 0) -> bool:
    """Whether m * 10**e is a quantity the engine can hold exactly.

    At most ``MAX_FRACTION_DIGITS`` decimals, and an integer part that fits an
    int64 counted in units of 10**max_scale (``max_scale`` 0: at most 2**63 - 1).
    """
    if not held(e):
        return False
    if m == 0:
        return True
    while m % 10 == 0:
        m //= 10
        e += 1
    if e < -MAX_FRACTION_DIGITS:
        return False
    return e <= max_scale or abs(m) * 10 ** (e - max_scale) <= _I64


def format_decimal(m: int, e: int) -> str:
    """The canonical string of m * 10**e: no exponent, e fractional digits."""
    if e >= 0:
        return str(m * 10**e) if m else "0"
    s = str(abs(m)).rjust(-e + 1, "0")
    out = s[:e] + "." + s[e:]
    return "-" + out if m < 0 else out
