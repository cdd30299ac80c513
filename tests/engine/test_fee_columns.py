"""Pay-in-advance fees kept as columns (``engine/pricing/fees.py``) are the per-event path's fees.

A standard price on a count or sum gives one ``FeeBlock`` per line; its fee
objects, built on demand, equal ``price.advance_fees``' (the reference
engine's path) field for field, Decimal for Decimal, and its totals equal
the sum of those fees' amounts.
"""

from decimal import Decimal as D

import numpy as np
import pytest

from gpubill.engine.fast.columns import InMemoryColumns
from gpubill.engine.pricing.fees import FeeBlock, Fees, rises, running_sum, totals
from gpubill.engine.spec.program import ChargeSpec, Graduated, MetricSpec, MoneyRounding, Standard, SubscriptionSpec, Tier
from gpubill.engine.fast.rate import rate
from gpubill.engine.reference.engine import rate_reference

DAY = 86_400_000
T0 = 1_717_200_000_000  # 2024-06-01T00:00:00Z
T1 = T0 + 30 * DAY - 1


def _events(values, sub="s", code="e", field="v"):
    return [dict(transaction_id=f"t{i}", external_subscription_id=sub, code=code, timestamp_ms=T0 + 1000 * i,
                 properties={field: v} if v is not None else {}) for i, v in enumerate(values)]


def _both(charges, evs, subs=("s",)):
    specs = [SubscriptionSpec(s, tuple(charges), T0, T1) for s in subs]
    return rate(specs, InMemoryColumns.from_events(evs)), rate_reference(specs, evs)


SUM_H = MetricSpec("h", "e", "sum", field="v", unit_scale=D("0.25"))


@pytest.mark.parametrize("metric, price, values", [
    (MetricSpec("n", "e", "count"), D("25.00"), ["1"] * 5),
    (MetricSpec("x", "e", "sum", field="v"), D("1.5"), ["10", "-4", "8", "0", "2.25", "-100", "101", "x", None]),
    (SUM_H, D("3.49"), ["3600", "1", "7200", "-1800", "5400", "1e3"]),
])
def test_fee_block_equals_per_event_fees(metric, price, values):
    fast, ref = _both([ChargeSpec("c", metric, Standard(price), pay_in_advance=True, group_by=("g",))],
                      _events(values))
    assert all(isinstance(p, FeeBlock) for p in fast.in_advance.parts)
    assert fast.in_advance == ref.in_advance and list(ref.in_advance) == list(fast.in_advance)
    fees = list(fast.in_advance)
    assert [fast.in_advance[i] for i in range(len(fees))] == fees
    assert fast.in_advance[-1] == fees[-1] and fast.in_advance[1:3] == tuple(fees[1:3])
    for f, g in zip(fees, ref.in_advance):  # the same Decimals, exponent included
        assert (str(f.units), str(f.precise_amount), str(f.amount)) == (str(g.units), str(g.precise_amount),
                                                                         str(g.amount))
    assert totals(fast.in_advance) == {"s": sum((f.amount for f in fees), D(0))}
    assert str(totals(fast.in_advance)["s"]) == str(sum((f.amount for f in ref.in_advance), D(0)))


def test_fees_read_as_a_sequence_of_fee_objects():
    m = MetricSpec("n", "e", "count")
    evs = _events(["1"] * 3, sub="a") + _events(["1"] * 2, sub="b")
    fast, ref = _both([ChargeSpec("c", m, Standard(2), pay_in_advance=True)], evs, subs=("a", "b"))
    assert len(fast.in_advance) == 5 and len(fast.in_advance.parts) == 2
    assert fast.in_advance == tuple(ref.in_advance) and tuple(ref.in_advance) == fast.in_advance
    assert fast == ref
    assert [f.subscription for f in fast.in_advance] == ["a", "a", "a", "b", "b"]
    with pytest.raises(IndexError):
        fast.in_advance[5]
    assert fast.in_advance + () == tuple(ref.in_advance)
    assert hash(Fees()) == hash(()) and Fees() == ()
    assert totals(fast.in_advance) == {"a": D("6.00"), "b": D("4.00")}
    f = fast.in_advance[0]
    f.group["x"] = 1  # each fee object has its own dicts
    assert fast.in_advance[0].group == {}


def test_other_models_keep_the_per_event_path():
    g = Graduated((Tier(0, 1, D("0.05"), D("0.02")), Tier(2, None, D("0.01"))))
    fast, ref = _both([ChargeSpec("c", MetricSpec("n", "e", "count"), g, pay_in_advance=True)], _events(["1"] * 3))
    assert not any(isinstance(p, FeeBlock) for p in fast.in_advance.parts)
    assert fast.in_advance == ref.in_advance


def test_rises_are_the_running_total_above_every_earlier_one():
    assert rises(np.asarray([10, 6, 14, 14, 20, -5, 21], np.int64)).tolist() == [10, 0, 4, 0, 6, 0, 1]
    assert rises(np.asarray([-3, -1, 2], np.int64)).tolist() == [0, 0, 2]
    assert rises(np.zeros(0, np.int64)).tolist() == []


def test_running_sum_beyond_int64_is_exact():
    big = 2**62
    vals = np.asarray([big, big, big, -big], np.int64)
    run = running_sum(vals)
    assert run.dtype == object and run.tolist() == [big, 2 * big, 3 * big, 2 * big]
    assert rises(run).tolist() == [big, big, big, 0]
    block = FeeBlock({"subscription": "s", "charge_id": "c", "metric": "x", "filter": None, "group": {},
                      "window": None}, (1, 100), lambda u: u * 2, MoneyRounding(), rises(run),
                     np.arange(4), np.arange(4), ["a", "b", "c", "d"])
    fees = list(block)
    assert [f.units for f in fees] == [D(big) / 100] * 3 + [0]
    assert block.amount_total() == sum((f.amount for f in fees), D(0))
    assert Fees([block]) == fees


def test_sum_beyond_int64_goes_the_exact_way():
    """A line whose sum the kernels cannot hold is rated by the exact path, fees included."""
    m = MetricSpec("x", "e", "sum", field="v")
    values = ["9223372036854775000", "9223372036854775000", "-5", "7"]
    fast, ref = _both([ChargeSpec("c", m, Standard(D("0.5")), pay_in_advance=True)], _events(values))
    assert fast == ref and len(fast.in_advance) == 4
    assert [f.units for f in fast.in_advance] == [D("9223372036854775000"), D("9223372036854775000"), 0, 2]
