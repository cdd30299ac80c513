"""Exact numbers: Decimal rounding, rational -> Decimal.

The one module that turns the engines' exact rationals into Decimal money.
Nothing here reads the ambient decimal context: every operation uses a local
context with enough precision, and rounding mode and quantum always come from
the caller (the plan's rule).

It also names the number form's exponent sentinels for the engine (the
store's columns hold ``mantissa * 10**exponent``; gpubill/numbers.py) and the
engine's error type.  Importing this module does not import numba (the
contracts layer uses the rounding helpers).
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from fractions import Fraction

from gpubill.numbers import MISSING, UNHOLDABLE

from gpubill.engine.spec.program import MoneyRounding

# Local contexts: big enough that +, -, * of any amounts we see are exact.
EXACT = decimal.Context(prec=200, Emax=999999, Emin=-999999, traps=[decimal.InvalidOperation])
# Significant digits kept when a rational has no finite decimal expansion
# (e.g. seconds / 3600).  Both engines use this one function.
UNITS_PRECISION = 40
# The number form's exponent sentinels (gpubill/numbers.py): not a number
# (missing, or not strictly numeric: ignored, as Lago does), and a strictly
# numeric value too large or too precise to hold (an error for its
# subscription, never ignored).
MISSING_EXPONENT = MISSING
UNHOLDABLE_EXPONENT = UNHOLDABLE
ROUNDING_MODES = {
    "ROUND_HALF_UP", "ROUND_HALF_EVEN", "ROUND_HALF_DOWN", "ROUND_UP",
    "ROUND_DOWN", "ROUND_CEILING", "ROUND_FLOOR", "ROUND_05UP",
}


class EngineError(Exception):
    """A rating program or input the engine cannot rate exactly."""


def round_amount(value: Decimal, rule) -> Decimal:
    """The one rounding of money: ``value`` to a multiple of ``rule.quantum``
    (a power of ten) by ``rule.mode`` (a ``decimal`` ROUND_* name).

    ``rule`` is the plan's rounding (``program.MoneyRounding``: mode, quantum),
    never the ambient decimal context.  Every amount is rounded once, on its
    own line (or in-advance fee): totals add rounded amounts and are never
    rounded again.  Negative amounts round by the same mode (ROUND_HALF_UP:
    half away from zero, -0.005 -> -0.01; ROUND_CEILING towards +inf).
    The result has exactly the quantum's exponent (2.5 -> 2.50 at 0.01).
    """
    check_rounding(rule)
    return value.quantize(rule.quantum, rounding=rule.mode, context=EXACT)


def check_rounding(rule) -> None:
    """ValueError unless ``rule.mode`` is a ``decimal`` ROUND_* name."""
    if rule.mode not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode {rule.mode!r}")


def ceil_decimals(value: Decimal, places: int) -> Decimal:
    """``value`` rounded up (towards +inf) to ``places`` decimals: a quantity
    (Lago's prorated units), not money; exponent exactly ``-places``."""
    return round_amount(value, MoneyRounding("ROUND_CEILING", Decimal(1).scaleb(-places)))


_DENS: dict = {}  # denominator -> (m, c, k, Decimal(den)): den = 2**a * 5**b * m, gcd(m, 10) = 1, k = max(a, b), c = 10**k // (den // m)
_UNITS_CTX = decimal.Context(prec=UNITS_PRECISION, rounding=decimal.ROUND_HALF_EVEN)


def _den_info(den: int) -> tuple:
    d, twos, fives = den, 0, 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    k = max(twos, fives)
    t = (d, 10**k // (den // d), k, Decimal(den))
    if len(_DENS) > 65536:
        _DENS.clear()
    _DENS[den] = t
    return t


def ratio_to_decimal(num: int, den: int = 1) -> Decimal:
    """num/den as a Decimal: exact when the expansion terminates, otherwise
    ``UNITS_PRECISION`` significant digits, half-even.  The representation
    depends only on the rational, never on how it was written: an exact
    value has the fewest decimals that hold it (never a positive exponent),
    a rounded one is correctly rounded, so reducing the fraction first
    would change nothing.

    No gcd per call: with ``den = 2**a * 5**b * m`` (``m`` prime to 10), the
    expansion terminates iff ``m`` divides ``num``, and then ``num / den =
    (num // m) * c / 10**k``; trailing zeros are stripped down to the
    fewest decimals.
    """
    if den == 1:
        return Decimal(num)
    if den <= 0:
        if den == 0:
            raise ZeroDivisionError("ratio with zero denominator")
        num, den = -num, -den
        if den == 1:
            return Decimal(num)
    t = _DENS.get(den)
    if t is None:
        t = _den_info(den)
    m = t[0]
    if m == 1 or num % m == 0:
        n = (num // m) * t[1]
        k = t[2]
        while k and n % 10 == 0:
            n //= 10
            k -= 1
        return Decimal(n).scaleb(-k, context=EXACT) if k else Decimal(n)
    return _UNITS_CTX.divide(Decimal(num), t[3])


def fraction_to_decimal(f: Fraction) -> Decimal:
    return ratio_to_decimal(f.numerator, f.denominator)
