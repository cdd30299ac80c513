"""The fast path's shaped kernels, shape by shape, against the reference engine.

``fast._program_shaped`` is compiled once per combination of absent pieces
(filter key, price windows, first and second group key, quantity, max, end
reasons) and ``fast._quantity_shaped`` once per quantity shape (one or two
factors, utilization); programs and quantities of other shapes go to the
table-driven kernels.  Every piece is drawn present and absent here, every
shape is checked to reach the kernel meant for it, and the lines must equal
the reference engine's exactly.
"""

from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpubill.engine.fast import shaped as fast

from gpubill.engine.fast import tables
from gpubill.engine.fast.columns import InMemoryColumns
from gpubill.engine.spec.program import (
    Add, ChargeSpec, Const, Filter, MetricSpec, Mul, PerEvent, PriceWindow, Prop, Standard, SubscriptionSpec,
    Utilization,
)
from gpubill.engine.fast.rate import rate
from gpubill.engine.reference.engine import rate_reference

DAY = 86_400_000
T0 = 1_717_200_000_000
T1 = T0 + 30 * DAY - 1
EXPRS = {"one factor": Prop("v"), "two factors": Mul(Prop("v"), Prop("w")),
         "two terms": Add(Prop("v"), Mul(Const(2), Prop("w")))}
FILTERS = {"none": (), "one key": ({"k1": {"a"}}, {"k1": {"b", "c"}}), "two keys": ({"k1": {"a"}, "k2": {"b"}},)}
GROUPS = {0: (), 1: ("g",), 2: ("g", "k2"), 3: ("g", "k1", "k2")}


def charge(agg, expr, filters, windows, groups, util, per_event, recurring=False):
    metric = MetricSpec("m", "e1", agg, expr=None if agg == "count" else EXPRS[expr],
                        per_event=(PerEvent("v", "0.5", 2),) if per_event and agg != "count" else (),
                        property_scales={"v": -3, "w": 0}, recurring=recurring and agg == "sum")
    wins = ()
    if windows:
        wins = (PriceWindow(T0 + 5 * DAY, T0 + 10 * DAY, Standard(D("2"))),
                PriceWindow(T0 + 12 * DAY, T0 + 20 * DAY, Standard(D("3"))))
    return ChargeSpec(
        "c", metric, Standard(D("1.5")), tuple(Filter(f, Standard(D(i + 1)), wins) for i, f in enumerate(FILTERS[filters])),
        GROUPS[groups], windows=wins,
        utilization=Utilization("u", D("0.25"), D(1)) if util and agg != "count" else None,
    )


@st.composite
def shaped_case(draw):
    ch = charge(draw(st.sampled_from(["count", "sum", "max"])), draw(st.sampled_from(sorted(EXPRS))),
                draw(st.sampled_from(sorted(FILTERS))), draw(st.booleans()), draw(st.sampled_from(sorted(GROUPS))),
                draw(st.booleans()), draw(st.booleans()), draw(st.booleans()))
    with_reason = draw(st.booleans())
    evs = []
    for i in range(draw(st.integers(1, 30))):
        props = {k: draw(st.sampled_from(vals)) for k, vals in (
            ("v", ["1", "2.5", "0.125", "61", "-3", None, "x"]), ("w", ["1", "3", "0", None]),
            ("k1", ["a", "b", "c", None]), ("k2", ["a", "b", None]), ("g", ["x", "y", None]),
            ("u", ["0.1", "0.5", "1.5", None]))}
        if with_reason:
            props["end_reason"] = draw(st.sampled_from(["completed", "preempted", "failed"]))
        evs.append(dict(transaction_id=f"t{i}", external_subscription_id=draw(st.sampled_from(["s1", "s2", "zz"])),
                        code=draw(st.sampled_from(["e1", "e2"])), timestamp_ms=T0 + draw(st.integers(-2 * DAY, 31 * DAY)),
                        properties={k: v for k, v in props.items() if v is not None}, rowid=i))
    subs = [SubscriptionSpec("s1", (ch,), T0, T1),
            SubscriptionSpec("s2", (ch,), T0, T1, started_at_ms=T0 + 4 * DAY, terminated_at_ms=T0 + 20 * DAY)]
    return subs, evs


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shaped_case())
def test_every_shape_equals_the_reference(case):
    subs, evs = case
    assert rate(subs, InMemoryColumns.from_events(evs)) == rate_reference(subs, evs)


def _tables(ch, reason=True):
    evs = [dict(transaction_id="t", external_subscription_id="s1", code="e1", timestamp_ms=T0 + DAY, rowid=0,
                properties=dict(v="1", w="2", k1="a", k2="b", g="x", u="0.5", **({"end_reason": "ok"} if reason else {})))]
    p = tables.build([SubscriptionSpec("s1", (ch,), T0, T1)], InMemoryColumns.from_events(evs))
    ft = fast.FastTables(p)
    (g,) = [g for gs in ft.by_code for g in gs]
    return ft, g


@pytest.mark.parametrize("filters", sorted(FILTERS))
@pytest.mark.parametrize("groups", sorted(GROUPS))
def test_each_program_shape_reaches_its_kernel(filters, groups):
    _, g = _tables(charge("sum", "one factor", filters, False, groups, False, False))
    shaped = g.shaped
    assert (shaped is None) == (filters == "two keys" or groups > 2)
    if shaped is not None:
        assert (shaped.kcol is None) == (filters == "none")
        assert (shaped.g0col is None) == (groups == 0) and (shaped.g1col is None) == (groups < 2)


@pytest.mark.parametrize("windows", [False, True])
@pytest.mark.parametrize("reason", [False, True])
def test_windows_and_end_reasons_are_pieces_of_the_shape(windows, reason):
    _, g = _tables(charge("max", "one factor", "one key", windows, 1, False, False), reason)
    assert (g.shaped.wins is not None) == windows and g.shaped.reasons == reason
    assert g.want_max == 1


@pytest.mark.parametrize("expr", sorted(EXPRS))
@pytest.mark.parametrize("util", [False, True])
def test_each_quantity_shape_reaches_its_kernel(expr, util):
    ft, g = _tables(charge("sum", expr, "none", False, 0, util, True))
    shape = ft.q_shape[g.qi]
    assert (shape is None) == (expr == "two terms")
    if shape is not None:
        m1, mu = shape[5], shape[9]
        assert (m1 is None) == (expr == "one factor") and (mu is None) == (not util)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shaped_case())
def test_small_blocks_equal_the_reference(case):
    """Blocks of three rows: most lie inside one price window (folded into the line offsets), some straddle a
    boundary (the per-row window search); per-block buffers are reused."""
    subs, evs = case
    evs = sorted(evs, key=lambda e: e["timestamp_ms"])
    saved = fast.BLOCK
    fast.BLOCK = 3
    try:
        got = rate(subs, InMemoryColumns.from_events(evs))
    finally:
        fast.BLOCK = saved
    assert got == rate_reference(subs, evs)


def test_a_block_before_inside_and_after_a_window_is_not_folded():
    """Its first and last events lie outside the window, the middle one inside: the window is not monotonic in
    time, so a block is folded only when no boundary lies inside its span (found by the test above)."""
    ch = charge("count", "one factor", "none", True, 0, False, False)
    wstart, wend = ch.windows[0].from_ms, ch.windows[0].to_ms
    evs = [dict(transaction_id=f"t{i}", external_subscription_id="s1", code="e1", timestamp_ms=t, rowid=i,
                properties={"v": "1"}) for i, t in enumerate((T0, wstart, wend))]
    subs = [SubscriptionSpec("s1", (ch,), T0, T1)]
    got = rate(subs, InMemoryColumns.from_events(evs))
    assert got == rate_reference(subs, evs)
    assert sorted((line.event_count, line.window) for line in got.lines if line.event_count) == [(1, 0), (2, None)]
