"""The fast engine's bulk conversions in line pricing give ``ratio_to_decimal``'s Decimals exactly."""

from fractions import Fraction

import numpy as np
import pytest

from gpubill.engine.pricing.money import ratio_to_decimal
from gpubill.engine.pricing.price import decimal_values
from gpubill.engine.pricing.usage import ScaledInts

INTS = [0, 1, -1, 10, -10, 120, -1200, 7, 123456789, -987654321000, 2**40, 10**15, -(10**15) + 1]


@pytest.mark.parametrize("scale", [Fraction(1), Fraction(1, 100), Fraction(3, 1000), Fraction(1, 3600),
                                   Fraction(1, 8), Fraction(5, 2), Fraction(7, 3), Fraction(1, 10**12),
                                   Fraction(10**6), Fraction(3, 40)])
def test_scaled_values_are_the_decimals_of_their_ratios(scale):
    ints = np.asarray(INTS, np.int64)
    for num, den in ((scale.numerator, scale.denominator), (scale.numerator * 6, scale.denominator * 6)):
        got = decimal_values(ScaledInts(ints, num, den))
        want = [ratio_to_decimal(v * num, den) for v in INTS]
        assert [str(x) for x in got] == [str(x) for x in want]  # the same Decimals, exponent included
        assert list(ScaledInts(ints, num, den)) == [(v * num, den) for v in INTS]


def test_scaled_values_beyond_int64_are_exact():
    ints = np.asarray([2**62, -(2**62), 3], np.int64)
    got = decimal_values(ScaledInts(ints, 1000, 1))
    assert [str(x) for x in got] == [str(ratio_to_decimal(v * 1000)) for v in ints.tolist()]
    assert decimal_values(ScaledInts(np.zeros(0, np.int64), 1, 100)) == []


@pytest.mark.parametrize("n, lines, t_span, r_span", [(0, 1, 1, 1), (1, 1, 1, 1), (50, 3, 5, 60), (5000, 40, 10**6, 10**5), (3000, 5, 20, 40),
                                                      (500, 7, 2**40, 2**30)])
def test_time_order_is_the_three_key_sort(n, lines, t_span, r_span):
    """Events by line, then timestamp, then rowid (ties in time broken by ingestion), the one-key path and the
    fallback (spans too wide for one int64) alike."""
    from gpubill.engine.fast.rate import time_order

    rng = np.random.default_rng(n)
    line = rng.integers(0, lines, n)
    ts = rng.integers(0, t_span, n) - 10**12
    rowid = rng.choice(r_span, n, replace=False) if n <= r_span else rng.integers(0, r_span, n)
    assert time_order(line, ts, rowid).tolist() == np.lexsort((rowid, ts, line)).tolist()


@pytest.mark.parametrize("n, lines, ids, t_span", [(0, 1, 1, 1), (1, 1, 1, 1), (400, 4, 9, 30), (5000, 30, 200, 10**6)])
def test_uid_order_is_the_four_key_sort(n, lines, ids, t_span):
    """unique_count events by line, then id, then time, then rowid, from the time order."""
    from gpubill.engine.fast.rate import time_order, uid_order

    rng = np.random.default_rng(n + 1)
    line, uid = rng.integers(0, lines, n), rng.integers(0, ids, n)
    ts, rowid = rng.integers(0, t_span, n), rng.permutation(n) + 7
    chosen = rng.random(n) < 0.6
    u = np.flatnonzero(chosen)
    got = uid_order(time_order(line, ts, rowid), chosen, line, uid, ts, rowid)
    assert got.tolist() == u[np.lexsort((rowid[u], ts[u], uid[u], line[u]))].tolist()
