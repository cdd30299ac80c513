"""Exactness at the edges of int64: an overflow is never wrapped; the exact path rates it."""

from decimal import Decimal as D

import numpy as np
import pytest

from gpubill.engine.fast.columns import InMemoryColumns
from gpubill.engine.fast.kernels import _add, _mul
from gpubill.engine.pricing.money import ratio_to_decimal
from gpubill.engine.spec.program import ChargeSpec, MetricSpec, Standard, SubscriptionSpec
from gpubill.engine.fast.rate import rate
from gpubill.engine.reference.engine import rate_reference

T0 = 1_717_200_000_000
T1 = T0 + 30 * 86_400_000 - 1
BIG = 2**63 - 1


@pytest.mark.parametrize("a, b", [(BIG, 1), (-(2**63), -1), (2**62, 2), (3 * 10**9, 4 * 10**9), (-5, 7), (BIG, -BIG)])
def test_checked_arithmetic_matches_python(a, b):
    for f, exact in ((_add, a + b), (_mul, a * b)):
        v, o = f(np.int64(a), np.int64(b))
        assert bool(o) == (not -(2**63) <= exact < 2**63)
        if not o:
            assert int(v) == exact


def _ev(v, i, ts=T0):
    return dict(transaction_id=f"t{i}", external_subscription_id="s", code="e", timestamp_ms=ts + i,
                properties={"v": v})


def test_a_sum_beyond_int64_is_rated_exactly_on_the_exact_path():
    m = MetricSpec("big", "e", "sum", field="v")
    subs = [SubscriptionSpec("s", (ChargeSpec("c", m, Standard(1)),), T0, T1)]
    evs = [_ev(str(BIG), 0), _ev(str(BIG), 1)]
    fast = rate(subs, InMemoryColumns.from_events(evs))
    assert fast == rate_reference(subs, evs)
    assert fast.lines[0].units == 2 * BIG and fast.unrated == ()


def test_a_quantity_beyond_int64_at_the_property_scale_is_rated_exactly():
    """2**62 at a scale of 0.1 does not fit int64: the subscription goes to the exact path."""
    m = MetricSpec("fine", "e", "sum", field="v", property_scales={"v": -1})
    subs = [SubscriptionSpec("s", (ChargeSpec("c", m, Standard(1)),), T0, T1)]
    evs = [_ev("1", 0), _ev(str(2**62), 1)]
    fast = rate(subs, InMemoryColumns.from_events(evs))
    assert fast == rate_reference(subs, evs)
    assert fast.lines[0].units == 2**62 + 1


def test_weighted_sum_beyond_int64_is_recomputed_exactly():
    """level x milliseconds overflows int64 here; the fast engine falls back to Python integers."""
    m = MetricSpec("lvl", "e", "weighted_sum", field="v", property_scales={"v": -6})
    subs = [SubscriptionSpec("s", (ChargeSpec("c", m, Standard(1)),), T0, T1)]
    evs = [_ev("123456.789012", 0), _ev("-1.5", 5_000_000)]
    fast = rate(subs, InMemoryColumns.from_events(evs))
    assert fast == rate_reference(subs, evs)
    assert D("123455") < fast.lines[0].units < D("123456.79")


@pytest.mark.parametrize("num, den, text", [(1, 2, "0.5"), (50, 100, "0.5"), (100, 1, "100"), (0, 7, "0"),
                                            (-3, 4, "-0.75"), (1, 3, "0.3333333333333333333333333333333333333333")])
def test_ratio_to_decimal_depends_only_on_the_rational(num, den, text):
    assert str(ratio_to_decimal(num, den)) == text
    assert str(ratio_to_decimal(num * 7, den * 7)) == text
