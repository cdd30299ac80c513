"""The kernels' division by an invariant increment (multiply-high) equals integer division."""

from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from gpubill.engine.fast.kernels import _ceil_div_by, _udiv_by, divider

I63 = 2**63 - 1


@njit(cache=True)
def _div(n, magic, shift):
    return _udiv_by(n, magic, shift)


@njit(cache=True)
def _ceil(a, b, magic, shift):
    return _ceil_div_by(a, b, magic, shift)


EDGES = [2, 3, 5, 7, 10, 60, 1000, 3600, 86_400_000, 2**31, 2**32 - 1, 2**32 + 1, 10**18, 2**62, 2**62 + 1, I63 - 1, I63]


def test_edges():
    for d in EDGES:
        m, s = divider(d)
        for n in (0, 1, d - 1, d, d + 1, 2 * d - 1, I63 - 1, I63, I63 // d * d, I63 // d * d - 1):
            if 0 <= n <= I63:
                assert _div(n, m, s) == n // d, (n, d)


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, I63), st.one_of(st.integers(2, 10**6), st.integers(2, I63)))
def test_any_dividend_and_divisor(n, d):
    assert _div(n, *divider(d)) == n // d


@settings(max_examples=1000, deadline=None)
@given(st.integers(-(2**62), 2**62), st.integers(1, 10**12))
def test_ceil_of_any_sign(a, b):
    m, s = divider(b) if b >= 2 else (0, -1)
    assert _ceil(a, b, m, s) == -((-a) // b)
