"""Percentage with per-transaction min/max and free limits, as Lago prices it (on both engines).

Lago (`charge_models/percentage_service.rb`, `compute_amount_with_transaction_min_max`)
walks the events in time order with two counters, the free events left (N) and
the free amount left (F):

* while either is positive the event is in the free allowance: N drops by one;
  with no free amount left (F = 0) the event is wholly free;
* otherwise the free amount absorbs the event when F > value (strictly);
  when it does not, the event pays on value - F and both counters end at 0;
* a paying event is priced value x rate / 100 + fixed, then clamped to the
  minimum (raised) and the maximum (lowered).

So with a free amount set the free allowance ends when the amount runs out,
part-way through an event (the rest of that event pays and is clamped); the
free event count only matters when there is no free amount.

Lago's spec events are 10, 80, 10 000 at 2.99 %, minimum 1.75, maximum 12.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpubill.engine.pricing import models
from gpubill.engine.spec.program import Percentage
from lago_bill import compile_bill, event, one

VALUES = "metric spend { event spend sum value }\n"
SPEC_EVENTS = (10, 80, 10000)
CLAMPS = "minimum 1.75 per event, maximum 12 per event"


def spend(*values):
    return [event("spend", f"2024-05-{1 + i:02d}T12:00:00Z", value=v) for i, v in enumerate(values)]


def priced(engine, options: str, values=SPEC_EVENTS) -> D:
    spec = compile_bill(VALUES, f"  charge spend percentage 2.99%, {options}")
    return one(engine([spec], spend(*values))).precise_amount


def test_both_free_limits_end_with_the_free_amount_part_way_through_an_event(engine):
    """Lago spec, N = 3 and F = 10 000: 10 and 80 are free (F left 9 910); 10 000 pays on 10 000 - 9 910 = 90.

    90 x 2.99 % = 2.691, inside [1.75, 12]. The third free event does not make 10 000 free.
    """
    assert priced(engine, f"free 3 events, free 10000, {CLAMPS}") == D("2.691")


def test_the_rest_of_the_crossing_event_is_clamped_to_the_minimum(engine):
    """Constructed, N = 3 and F = 50: 10 is free (F left 40); 80 pays on 40: 40 x 2.99 % = 1.196 -> 1.75;
    10 000 pays in full: 299 -> 12. Total 13.75."""
    assert priced(engine, f"free 3 events, free 50, {CLAMPS}") == D("13.75")


def test_the_crossing_event_pays_its_rest_with_the_fixed_fee(engine):
    """Constructed, N = 3, F = 50, fixed 2: 10 free; 80 pays 40 x 2.99 % + 2 = 3.196; 10 000 -> 12. Total 15.196."""
    assert priced(engine, f"fixed 2 per event, free 3 events, free 50, {CLAMPS}") == D("15.196")


@pytest.mark.parametrize("events", ["", "free 5 events, "])
def test_a_free_amount_used_up_exactly_leaves_a_paying_event_at_the_minimum(engine, events):
    """Constructed, F = 90 (with or without N = 5): 10 is free (F left 80); 80 is not below 80, so it pays
    on 80 - 80 = 0: 0 x 2.99 % = 0 -> raised to 1.75; 10 000 -> 12. Total 13.75."""
    assert priced(engine, f"{events}free 90, {CLAMPS}") == D("13.75")


def test_free_events_alone_make_whole_events_free(engine):
    """Lago spec, N = 2, no free amount: 10 and 80 are free, 10 000 x 2.99 % = 299 -> 12."""
    assert priced(engine, f"free 2 events, {CLAMPS}") == D("12")


def test_free_amount_alone(engine):
    """Lago spec, F = 30: 10 is free (F left 20); 80 pays on 60: 1.794; 10 000 -> 12. Total 13.794."""
    assert priced(engine, f"free 30, {CLAMPS}") == D("13.794")


# ------------------------------------------------------------ properties


amounts = st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(amounts, max_size=12), n=st.none() | st.integers(1, 6),
       free=amounts.filter(lambda d: d > 0))
def test_with_a_free_amount_the_free_event_count_changes_nothing(values, n, free):
    """Lago: once a free amount is set, only the amount ends the free allowance."""
    with_n = Percentage(rate="2.99", fixed_amount=1, free_events=n, free_amount=free, min_per_event=2, max_per_event=9)
    without = Percentage(rate="2.99", fixed_amount=1, free_amount=free, min_per_event=2, max_per_event=9)
    assert models.percentage(values, with_n).amount == models.percentage(values, without).amount


@settings(max_examples=200, deadline=None)
@given(values=st.lists(amounts, max_size=12), free=st.none() | amounts)
def test_unclamped_per_transaction_rate_is_the_rate_on_what_the_free_amount_leaves(values, free):
    """With a minimum of 0, no maximum and no fixed fee, the per-transaction path charges
    rate x (units - free amount), or 0 when the free amount covers the units (non-negative values)."""
    m = Percentage(rate="2.99", free_amount=free, min_per_event=0)
    paid = max(sum(values, D(0)) - (free or 0), D(0))
    assert models.percentage(values, m).amount == paid * D("2.99") / 100


@settings(max_examples=200, deadline=None)
@given(values=st.lists(amounts, max_size=12), n=st.integers(1, 6))
def test_unclamped_free_events_alone_skip_the_first_events(values, n):
    """No free amount: the first N events are wholly free, the rest pay the rate."""
    m = Percentage(rate="2.99", free_events=n, min_per_event=0)
    assert models.percentage(values, m).amount == sum(values[n:], D(0)) * D("2.99") / 100
