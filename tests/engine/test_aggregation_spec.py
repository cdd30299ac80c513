"""Every worked aggregation example of lago-semantics.md section b, on both engines."""

from datetime import datetime, timezone
from decimal import Decimal as D

from gpubill.engine.pricing.money import round_amount
from gpubill.engine.spec.program import (
    ChargeSpec, Filter, Graduated, MetricRounding, MetricSpec, MoneyRounding, Standard, SubscriptionSpec, Tier, Volume,
)


def round_to_cents(d):
    """Half-up to cents: the default plan rounding."""
    return round_amount(d, MoneyRounding())


DAY = 86_400_000


def ms(y, mo, d, h=0, mi=0, s=0):
    return int(datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc).timestamp()) * 1000


def ev(sub="s", code="e", ts=0, i=[0], **props):
    i[0] += 1
    return dict(transaction_id=f"t{i[0]}", external_subscription_id=sub, code=code, timestamp_ms=ts,
                properties={k: v for k, v in props.items()})


MAY = (ms(2024, 5, 1), ms(2024, 6, 1) - 1)


def sub(charges, period=MAY, **kw):
    return SubscriptionSpec("s", tuple(charges), period[0], period[1], **kw)


def one(result):
    (line,) = [ln for ln in result.lines if ln.kind == "usage"]
    return line


def test_weighted_sum_spec(engine):
    m = MetricSpec("gpus", "e", "weighted_sum", field="v")
    t0 = MAY[0]
    h = 3_600_000
    deltas = [(0, 2), (h, 3), (h * 3 // 2, 1), (2 * h, -4), (4 * h, -2), (5 * h, 10), (5 * h + h // 2, -10)]
    evs = [ev(ts=t0 + t, v=str(v)) for t, v in deltas]
    line = one(engine([sub([ChargeSpec("c", m, Standard(1))])], evs))
    assert round(line.units, 5) == D("0.02218")


def test_weighted_sum_recurring_starts_from_previous_level(engine):
    m = MetricSpec("gpus", "e", "weighted_sum", field="v", recurring=True)
    t0 = MAY[0]
    h = 3_600_000
    deltas = [(0, 2), (h, 3), (h * 3 // 2, 1), (2 * h, -4), (4 * h, -2), (5 * h, 10), (5 * h + h // 2, -10)]
    evs = [ev(ts=t0 - DAY, v="1000")] + [ev(ts=t0 + t, v=str(v)) for t, v in deltas]
    line = one(engine([sub([ChargeSpec("c", m, Standard(1))])], evs))
    assert round(line.units, 5) == D("1000.02218")


def test_weighted_sum_same_instant_has_zero_duration(engine):
    m = MetricSpec("gpus", "e", "weighted_sum", field="v")
    evs = [ev(ts=MAY[0], v="3"), ev(ts=MAY[0], v="3")]
    assert one(engine([sub([ChargeSpec("c", m, Standard(1))])], evs)).units == 6


def test_recurring_sum_includes_history(engine):
    m = MetricSpec("gb", "e", "sum", field="v", recurring=True)
    evs = [ev(ts=MAY[0] - DAY, v="2.5")] * 2 + [ev(ts=MAY[0] + DAY, v="12")] * 4
    assert one(engine([sub([ChargeSpec("c", m, Standard(1))])], evs)).units == 53


def test_prorated_sum_spec(engine):
    m = MetricSpec("seats", "e", "sum", field="v", recurring=True)
    evs = [ev(ts=MAY[0] - DAY, v="5"), ev(ts=ms(2024, 5, 26, 10), v="12"), ev(ts=ms(2024, 5, 26, 11), v="12")]
    line = one(engine([sub([ChargeSpec("c", m, Standard(1), prorated=True)])], evs))
    assert line.units == D("9.64517")
    assert line.full_units == 29


def test_prorated_unique_count_added_mid_period(engine):
    m = MetricSpec("gpus", "e", "unique_count", field="id", recurring=True)
    line = one(engine([sub([ChargeSpec("c", m, Standard(31), prorated=True)])], [ev(ts=ms(2024, 5, 11, 9), id="g1")]))
    assert line.units == D("0.67742")  # 21/31
    assert line.amount == D("21.00")


def test_prorated_unique_count_removal_day_included(engine):
    period = (ms(2024, 7, 9), ms(2024, 8, 9) - 1)
    m = MetricSpec("gpus", "e", "unique_count", field="id", recurring=True)
    evs = [ev(ts=ms(2024, 6, 1), id="g1"), ev(ts=ms(2024, 7, 24, 15), id="g1", operation_type="remove")]
    line = one(engine([sub([ChargeSpec("c", m, Standard(31), prorated=True)], period)], evs))
    assert line.amount == D("16.00")
    assert line.full_units == 0


def test_prorated_unique_count_subscription_started_late(engine):
    period = (ms(2024, 7, 9), ms(2024, 8, 9) - 1)
    m = MetricSpec("gpus", "e", "unique_count", field="id", recurring=True)
    s = sub([ChargeSpec("c", m, Standard(31), prorated=True)], period, started_at_ms=ms(2024, 8, 1))
    line = one(engine([s], [ev(ts=ms(2024, 8, 1, 1), id="g1")]))
    assert line.amount == D("8.00")


def test_unique_count_end_of_period_state(engine):
    m = MetricSpec("gpus", "e", "unique_count", field="id")
    evs = [ev(ts=MAY[0] + 1, id="a"), ev(ts=MAY[0] + 2, id="a", operation_type="remove"),
           ev(ts=MAY[0] + 3, id="b"), ev(ts=MAY[0] + 4, id="b"), ev(ts=MAY[1], id="c"),
           ev(ts=MAY[1], id="c", operation_type="remove"), ev(ts=MAY[0] + 5, id="d", operation_type="remove")]
    assert one(engine([sub([ChargeSpec("c", m, Standard(1))])], evs)).units == 1


def _rounded(engine, function, precision):
    m = MetricSpec("x", "e", "sum", field="v", rounding=MetricRounding(function, precision))
    return one(engine([sub([ChargeSpec("c", m, Standard(1))])], [ev(ts=MAY[0], v="123.456")])).units


def test_metric_rounding_spec(engine):
    assert _rounded(engine, "round", 2) == D("123.46")
    assert _rounded(engine, "ceil", 0) == 124
    assert _rounded(engine, "ceil", -2) == 200
    assert _rounded(engine, "floor", -2) == 100


def test_strict_numbers_and_inclusive_bounds(engine):
    m = MetricSpec("x", "e", "sum", field="v")
    evs = [ev(ts=MAY[0], v="1"), ev(ts=MAY[1], v="2"), ev(ts=MAY[1] + 1, v="100"), ev(ts=MAY[0] - 1, v="100")]
    evs += [ev(ts=MAY[0] + 5, v=bad) for bad in ("1e3", "+5", ".5", "5.", "abc", " 5")]
    evs += [ev(ts=MAY[0] + 5)]
    line = one(engine([sub([ChargeSpec("c", m, Standard(1))])], evs))
    assert (line.units, line.event_count, line.ignored_count) == (3, 2, 7)


def test_max_and_latest(engine):
    mx = MetricSpec("mx", "e", "max", field="v")
    la = MetricSpec("la", "e", "latest", field="v")
    evs = [ev(ts=MAY[0] + 10, v="7"), ev(ts=MAY[0] + 20, v="-3"), ev(ts=MAY[0] + 20, v="x")]
    r = engine([sub([ChargeSpec("m", mx, Standard(1)), ChargeSpec("l", la, Standard(1))])], evs)
    assert [(ln.units, ln.event_count) for ln in r.lines] == [(7, 2), (0, 2)]
    evs2 = [ev(ts=MAY[0] + 20, v="4"), ev(ts=MAY[0] + 20, v="9"), ev(ts=MAY[0] + 10, v="11")]
    r = engine([sub([ChargeSpec("l", la, Standard(1))])], evs2)
    assert one(r).units == 9  # same timestamp: the later ingestion wins


def test_filter_scenario_46000_cents(engine):
    m = MetricSpec("x", "e", "sum", field="v")
    aws = Filter({"cloud": {"aws"}, "region": {"eu", "us"}}, Standard(12))
    ch = ChargeSpec("c", m, Standard(10), filters=(aws,), group_by=("country",))
    evs = [ev(ts=MAY[0] + 1, v="10", cloud="aws", region="eu", country="fr"),
           ev(ts=MAY[0] + 2, v="10", cloud="aws", region="us", country="fr"),
           ev(ts=MAY[0] + 3, v="10", cloud="aws", region="eu", country="us"),
           ev(ts=MAY[0] + 4, v="10", cloud="gcp", region="eu", country="fr")]
    r = engine([sub([ch])], evs)
    assert sum(ln.amount for ln in r.lines) * 100 == 46000
    assert {(bool(ln.filter), ln.group["country"], ln.amount) for ln in r.lines} == {
        (True, "fr", 240), (True, "us", 120), (False, "fr", 100)}


def test_most_specific_filter_wins_and_default_bucket(engine):
    m = MetricSpec("x", "e", "count")
    f1 = Filter({"gpu": {"H100"}}, Standard(1))
    f2 = Filter({"gpu": {"H100"}, "region": {"eu"}}, Standard(2))
    r = engine([sub([ChargeSpec("c", m, Standard(5), filters=(f1, f2))])],
               [ev(ts=MAY[0], gpu="H100", region="eu"), ev(ts=MAY[0], gpu="H100"), ev(ts=MAY[0])])
    assert [ln.amount for ln in r.lines] == [1, 2, 5]


def test_empty_graduated_charges_first_flat_fee(engine):
    m = MetricSpec("x", "e", "sum", field="v")
    ch = ChargeSpec("c", m, Graduated((Tier(0, 10, 1, 7), Tier(11, None, 1, 3))), group_by=("g",))
    line = one(engine([sub([ch])], []))
    assert (line.amount, line.group) == (7, {"g": None})


def test_prorated_graduated_engine(engine):
    # 5 persisted, then 5 and 10 added and 6 removed during a 30-day period
    period = (ms(2024, 6, 1), ms(2024, 7, 1) - 1)
    m = MetricSpec("x", "e", "sum", field="v", recurring=True)
    ch = ChargeSpec("c", m, Graduated((Tier(0, 5, 10, 100), Tier(6, None, 5, 50))), prorated=True)
    evs = [ev(ts=ms(2024, 5, 3), v="5"), ev(ts=ms(2024, 6, 15), v="5"),
           ev(ts=ms(2024, 6, 25), v="10"), ev(ts=ms(2024, 6, 20), v="-6")]
    line = one(engine([sub([ch], period)], evs))
    # full 5, 5(16/30), -6(11/30), 10(6/30): running 5, 10, 4, 14 -> peak 14 (tier 2).
    # The removal straddles the tier edge at 5: 5 units leave tier 2, 1 leaves tier 1;
    # the last add re-enters tier 1 by 1 unit and tier 2 by 9.
    assert line.full_units == 14
    r = D("2.2") / 6
    expected = 50 + D("2.66667") * 5 - 5 * r * 5 - 1 * r * 10 + D("0.2") * 10 + 9 * D("0.2") * 5 + 150
    assert round_to_cents(line.precise_amount) == round_to_cents(expected) == D("211.50")


def test_prorated_volume_engine(engine):
    m = MetricSpec("x", "e", "sum", field="v", recurring=True)
    tiers = (Tier(0, 100, 2), Tier(101, 200, 1), Tier(201, None, D("0.5"), 50))
    evs = [ev(ts=MAY[0] - DAY, v="100"), ev(ts=ms(2024, 5, 17), v="200")]
    line = one(engine([sub([ChargeSpec("c", m, Volume(tiers), prorated=True)])], evs))
    assert line.full_units == 300
    assert line.units == D("196.77420")  # 100 + 200 * 15/31, ceiled to 5 decimals
    assert line.precise_amount == line.units * D("0.5") + 50


def test_spending_minimum_true_up_line(engine):
    m = MetricSpec("x", "e", "sum", field="v")
    ch = ChargeSpec("c", m, Standard(1), min_amount=10)
    s = sub([ch], terminated_at_ms=ms(2024, 5, 15, 12))
    r = engine([s], [ev(ts=MAY[0], v="2")])
    up = [ln for ln in r.lines if ln.kind == "min_true_up"]
    assert up[0].amount == round_to_cents(D(10) * 15 / 31 - 2)


def test_pay_in_advance_graduated_7_2_4_cents(engine):
    m = MetricSpec("x", "e", "count")
    g = Graduated((Tier(0, 1, D("0.05"), D("0.02")), Tier(2, 2, D("0.02")), Tier(3, None, D("0.01"), D("0.03"))))
    r = engine([sub([ChargeSpec("c", m, g, pay_in_advance=True)])], [ev(ts=MAY[0] + k) for k in range(3)])
    assert [f.amount for f in r.in_advance] == [D("0.07"), D("0.02"), D("0.04")]
    assert r.lines == ()


def test_pay_in_advance_same_second_ties_by_ingestion(engine):
    m = MetricSpec("x", "e", "count")
    g = Graduated((Tier(0, 2, 0), Tier(3, None, 2)))
    evs = [dict(ev(ts=MAY[0] + 1000), rowid=k) for k in (3, 1, 2)]
    r = engine([sub([ChargeSpec("c", m, g, pay_in_advance=True)])], evs)
    assert [(f.rowid, f.amount) for f in r.in_advance] == [(1, 0), (2, 0), (3, D("2.00"))]


def test_pay_in_advance_sum_increments_above_period_max(engine):
    m = MetricSpec("x", "e", "sum", field="v")
    evs = [ev(ts=MAY[0] + 1, v="10"), ev(ts=MAY[0] + 2, v="-4"), ev(ts=MAY[0] + 3, v="8")]
    r = engine([sub([ChargeSpec("c", m, Standard(1), pay_in_advance=True)])], evs)
    assert [f.units for f in r.in_advance] == [10, 0, 4]


def test_pay_in_advance_unique_count_readd_is_free(engine):
    m = MetricSpec("x", "e", "unique_count", field="id")
    evs = [ev(ts=MAY[0] + 1, id="a"), ev(ts=MAY[0] + 2, id="a", operation_type="remove"), ev(ts=MAY[0] + 3, id="a"),
           ev(ts=MAY[0] + 4, id="b")]
    r = engine([sub([ChargeSpec("c", m, Standard(3), pay_in_advance=True)])], evs)
    assert [f.amount for f in r.in_advance] == [3, 0, 0, 3]


def test_dynamic_line(engine):
    from gpubill.engine.spec.program import Dynamic
    m = MetricSpec("x", "e", "sum", field="v")
    evs = [dict(ev(ts=MAY[0], v="20"), precise_total_amount_cents="40.2")]
    line = one(engine([sub([ChargeSpec("c", m, Dynamic())])], evs))
    assert (line.precise_amount, line.amount, line.unit_price) == (D("0.402"), D("0.40"), D("0.0201"))
