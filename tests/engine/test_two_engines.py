"""Two engines, one answer: random programs and events, exact equality."""

from decimal import Decimal as D

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpubill.engine.spec.program import (
    Add, ChargeSpec, Const, Div, Dynamic, Filter, Graduated, GraduatedPercentage, MetricRounding, MetricSpec, Mul,
    Package, PerEvent, Percentage, PriceWindow, Prop, Standard, SubscriptionSpec, Tier, Utilization, Volume,
)
from gpubill.engine.fast.columns import InMemoryColumns
from gpubill.engine.fast.rate import rate
from gpubill.engine.reference.engine import rate_reference


def run_fast(subs, evs):
    return rate(subs, InMemoryColumns.from_events(evs))

DAY = 86_400_000
T0 = 1_717_200_000_000  # 2024-06-01T00:00:00Z
T1 = T0 + 30 * DAY - 1

price = st.sampled_from(["0", "1", "2.5", "0.0001", "3.49", "10"]).map(D)
num = st.sampled_from(["0", "1", "2", "3.5", "-1", "0.125", "10", "60", "61", "7200", "x", None, "1e3"])
dimval = st.sampled_from(["a", "b", "c", None])


@st.composite
def tiers(draw, adjacent_ok=True):
    n = draw(st.integers(1, 3))
    edges = sorted(draw(st.lists(st.sampled_from([1, 2, 5, 10, 20]), min_size=n - 1, max_size=n - 1, unique=True)))
    adjacent = adjacent_ok and draw(st.booleans())
    out, lo = [], 0
    for e in edges:
        out.append(Tier(lo, e, draw(price), draw(price)))
        lo = e if adjacent else e + 1
    out.append(Tier(lo, None, draw(price), draw(price)))
    return tuple(out)


@st.composite
def percentage_tiers(draw):
    """Graduated percentage tiers: +1 bounds, sometimes behind a fractional first tier that the
    next one starts at (0 to 0.01, 0.01 to ...), which Lago accepts."""
    out = draw(tiers(adjacent_ok=False))
    if not draw(st.booleans()):
        return out
    first = out[0]
    return (Tier(0, D("0.01"), draw(price), draw(price)), attrs.evolve(first, from_value=D("0.01"))) + out[1:]


def model_for(agg, prorated, advance):
    opts = [st.builds(Standard, price), st.builds(Graduated, tiers())]
    if not advance:
        opts.append(st.builds(Volume, tiers(adjacent_ok=False)))
    if not prorated:
        opts.append(st.builds(Package, price, st.sampled_from([1, 2, 10]), st.sampled_from([0, 1, 5])))
        opts.append(st.builds(GraduatedPercentage, percentage_tiers()))
        if agg != "latest":
            opts.append(st.builds(
                Percentage, price, st.none() | price, st.none() | st.integers(1, 3), st.none() | price,
                st.none() | st.just(D("0.5")), st.none() | st.just(D(4))))
        if agg == "sum":
            opts.append(st.just(Dynamic()))
    if prorated:
        opts = [o for o in opts[:3]]
    return st.one_of(opts)


@st.composite
def charges(draw, idx):
    agg = draw(st.sampled_from(["count", "sum", "max", "latest", "unique_count", "weighted_sum"]))
    recurring = agg in ("sum", "unique_count", "weighted_sum") and draw(st.booleans())
    advance = agg in ("count", "sum", "unique_count") and (not recurring or agg == "sum") and draw(st.booleans())
    prorated = recurring and agg in ("sum", "unique_count") and (not advance or agg == "sum") and draw(st.booleans())
    expr = draw(st.sampled_from([Prop("v"), Mul(Prop("v"), Prop("w")), Div(Add(Prop("v"), Prop("w")), Const(3)),
                                 Add(Mul(Const("0.5"), Prop("v")), Const(1))]))
    per_event = draw(st.sampled_from([(), (PerEvent("v", 1, 60),), (PerEvent("v", "0.5", None, 10),),
                                      (PerEvent("v", None, 2),)]))
    rounding = draw(st.none() | st.builds(MetricRounding, st.sampled_from(["round", "ceil", "floor"]),
                                          st.integers(-1, 2)))
    metric = MetricSpec(f"m{idx}", draw(st.sampled_from(["e1", "e2"])), agg,
                        expr=expr if agg not in ("count", "unique_count") else None,
                        field="id" if agg == "unique_count" else None, per_event=per_event,
                        recurring=recurring, rounding=None if advance else rounding,
                        property_scales={"v": draw(st.sampled_from([-3, 0, 1])), "w": 0})
    nf = draw(st.integers(0, 2))
    filters = []
    for _ in range(nf):
        keys = draw(st.lists(st.sampled_from(["k1", "k2"]), min_size=1, max_size=2, unique=True))
        vals = {k: frozenset(draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=2))) for k in keys}
        wins = ()
        if draw(st.booleans()):
            wins = (PriceWindow(T0 + 5 * DAY, T0 + 10 * DAY, draw(model_for(agg, prorated, advance))),)
        filters.append(Filter(vals, draw(model_for(agg, prorated, advance)), wins))
    windows = ()
    if draw(st.booleans()):
        windows = (PriceWindow(T0, T0 + 3 * DAY, draw(model_for(agg, prorated, advance))),
                   PriceWindow(T0 + 2 * DAY, T0 + 20 * DAY, draw(model_for(agg, prorated, advance))))
    util = None
    if agg not in ("count", "unique_count") and draw(st.booleans()):
        util = Utilization("u", D("0.25"), D(1))
    return ChargeSpec(
        f"c{idx}", metric, draw(model_for(agg, prorated, advance)), tuple(filters),
        tuple(draw(st.lists(st.sampled_from(["g", "k1"]), max_size=2, unique=True))),
        pay_in_advance=advance, prorated=prorated, min_amount=None if advance else draw(st.none() | price),
        windows=windows, utilization=util,
    )


# values at and beyond what int64 fixed point holds: rated exactly by the fast
# engine's exact path, or left out (unrated) by both engines alike
extreme = st.sampled_from([
    "1", "-2", "0.5", str(2**62), "9223372036854775807", "-9223372036854775807", "0.0000000000000000000001",
    "123456789012345678901234", "1" + "0" * 30, "9223372036854775807" + "0" * 100, "3." + "0" * 30 + "1", None,
])
extreme_cents = st.sampled_from([None, "12.5", "9223372036854775807", "123456789012345678901234", "0." + "0" * 40 + "1"])


@st.composite
def events(draw, values=num, cents=st.sampled_from([None, "12.5", "3"])):
    n = draw(st.integers(0, 25))
    out = []
    for i in range(n):
        props = {k: draw(v) for k, v in (("v", values), ("w", values), ("k1", dimval), ("k2", dimval), ("g", dimval),
                                         ("id", dimval), ("end_reason", st.sampled_from(["completed", "preempted", None])),
                                         ("u", st.sampled_from(["0.1", "0.5", "1", "1.5", None])),
                                         ("operation_type", st.sampled_from(["add", "remove", None])))}
        out.append(dict(
            transaction_id=f"t{i}", external_subscription_id=draw(st.sampled_from(["s1", "s2", "zz"])),
            code=draw(st.sampled_from(["e1", "e2"])),
            timestamp_ms=T0 + draw(st.integers(-3 * DAY, 31 * DAY)) // 1000 * draw(st.sampled_from([1, 1000])),
            properties={k: v for k, v in props.items() if v is not None},
            precise_total_amount_cents=draw(cents), rowid=draw(st.integers(0, 50)) * 100 + i,
        ))
    return out


@st.composite
def subscriptions(draw):
    chs = tuple(draw(charges(i)) for i in range(draw(st.integers(1, 3))))
    subs = [SubscriptionSpec("s1", chs, T0, T1, timezone=draw(st.sampled_from(["UTC", "Europe/Paris"])))]
    if draw(st.booleans()):
        subs.append(SubscriptionSpec("s2", chs[:1], T0, T1, started_at_ms=T0 + 4 * DAY + 123,
                                     terminated_at_ms=T0 + 20 * DAY + 5))
    return subs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subscriptions(), events())
def test_numba_engine_equals_reference(subs, evs):
    assert run_fast(subs, evs) == rate_reference(subs, evs)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subscriptions(), events(extreme, extreme_cents))
def test_values_beyond_int64_equal_reference(subs, evs):
    """The exact path and the left-out subscriptions: the same lines, fees and unrated set."""
    assert run_fast(subs, evs) == rate_reference(subs, evs)


def _split_rows(n, min_rows=0):
    """Three row ranges whatever the size: exercises the per-thread merge."""
    cuts = [0, n // 3, 2 * n // 3, n]
    return list(zip(cuts[:-1], cuts[1:]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subscriptions(), events())
def test_threads_and_hashed_slots_equal_reference(subs, evs):
    """Row ranges merged across threads, and every slot block in the hash table."""
    import gpubill.engine.fast.tables as tables
    import gpubill.engine.fast.main_pass as main_pass

    saved = (main_pass.chunks, tables.DENSE_LIMIT)
    main_pass.chunks, tables.DENSE_LIMIT = _split_rows, 0
    try:
        fast = run_fast(subs, evs)
    finally:
        main_pass.chunks, tables.DENSE_LIMIT = saved
    assert fast == rate_reference(subs, evs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subscriptions(), events())
def test_fast_path_blocks_and_generic_only_equal_reference(subs, evs):
    """Rows split into many fast-path blocks; and every instance left to the generic kernel."""
    import gpubill.engine.fast.shaped as fastmod

    ref = rate_reference(subs, evs)
    fastmod.BLOCK = 4
    try:
        assert run_fast(subs, evs) == ref
        fastmod.BLOCK, fastmod.ENABLED = 1 << 18, False
        assert run_fast(subs, evs) == ref
    finally:
        fastmod.BLOCK, fastmod.ENABLED = 1 << 18, True


def test_prorated_sum_in_advance_prorates_each_rise_by_its_days_left():
    """Rises above the period's maximum (10, then 0 after -4, then 4) x days left / 30, ceiled to 5 decimals."""
    m = MetricSpec("seats", "e", "sum", field="v", recurring=True)
    subs = [SubscriptionSpec("s", (ChargeSpec("c", m, Standard(3), pay_in_advance=True, prorated=True),), T0, T1)]
    evs = [dict(transaction_id=f"t{i}", external_subscription_id="s", code="e", timestamp_ms=T0 + d * DAY + 5,
                properties={"v": v}) for i, (d, v) in enumerate([(20, "10"), (21, "-4"), (29, "8")])]
    fees = rate_reference(subs, evs).in_advance
    assert [(f.units, f.amount) for f in fees] == [(D("3.33334"), D("10.00")), (0, 0), (D("0.13334"), D("0.40"))]
    assert run_fast(subs, evs).in_advance == fees
