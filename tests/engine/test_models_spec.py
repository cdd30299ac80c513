"""Every worked charge-model example of lago-semantics.md section a."""

from decimal import Decimal as D

import pytest

from gpubill.engine.pricing import models
from gpubill.engine.pricing.money import round_amount
from gpubill.engine.spec.program import Graduated, GraduatedPercentage, MoneyRounding, Package, Percentage, Standard, Tier


def round_to_cents(d):
    """Half-up to cents: the default plan rounding."""
    return round_amount(d, MoneyRounding())


GRAD = (Tier(0, 10, 10, 2), Tier(11, 20, 5, 3), Tier(21, None, 5, 3))


@pytest.mark.parametrize("units,amount", [(0, 2), (1, 12), (10, 102), (11, 110), (12, 115), (21, 163)])
def test_graduated_table(units, amount):
    assert models.graduated(D(units), GRAD).amount == amount


def test_graduated_decimal_units_in_integer_tiers():
    p = models.graduated(D("10.5"), (Tier(0, 10, 1), Tier(11, 20, 1), Tier(21, None, 1)))
    assert [t.units for t in p.tiers] == [10, D("0.5")]


def test_graduated_adjacent_mode():
    tiers = (Tier(0, "0.1", 10), Tier("0.1", 1, 5), Tier(1, None, 1))
    assert models.graduated(D("0.5"), tiers).amount == D("3.0")


def test_graduated_one_non_adjacent_pair_switches_back():
    tiers = (Tier(0, 10, 1), Tier(10, 20, 1), Tier(21, None, 1))
    # 0..10 holds 10, 10..20 holds 20-10+1 = 11 (not adjacent everywhere)
    assert [t.units for t in models.graduated(D(25), tiers).tiers] == [10, 11, 5]


def test_graduated_to_value_is_inclusive_and_flat_per_tier():
    tiers = (Tier(0, 10, 0, 1), Tier(11, None, 0, 7))
    assert models.graduated(D(10), tiers).amount == 1
    assert models.graduated(D(11), tiers).amount == 8


GP = (Tier(0, 10, 1, 200), Tier(11, 20, 2, 300), Tier(21, None, 3, 400))


@pytest.mark.parametrize("units,amount", [(0, "200"), (1, "200.01"), (10, "200.1"), (11, "500.12"), (21, "900.33")])
def test_graduated_percentage_table(units, amount):
    assert models.graduated_percentage(D(units), GP).amount == D(amount)


@pytest.mark.parametrize("units,free,amount", [(121, 0, 1300), (121, 10, 1200), (121, 200, 0)])
def test_package_table(units, free, amount):
    assert models.package(D(units), Package(100, 10, free)).amount == amount


def test_package_unit_amount_divides_by_paid_units():
    p = models.package(D(121), Package(100, 10, 10))
    assert p.denominator == 111


def test_per_token_package_bills_whole_packages():
    assert models.package(D(1), Package(D("2.00"), 1_000_000)).amount == D("2.00")


EV = [D(50), D(100), D(250), D(400)]


def test_percentage_free_events_and_amount_whichever_first():
    m = Percentage(rate="1.3", fixed_amount=2, free_events=3, free_amount=250)
    assert models.percentage(EV, m).amount == D("11.15")


def test_percentage_free_events_only():
    assert models.percentage(EV, Percentage(rate="1.3", fixed_amount=2, free_events=3)).amount == D("7.2")


def test_percentage_no_free():
    assert models.percentage(EV, Percentage(rate="1.3", fixed_amount=2)).amount == D("18.4")


def test_percentage_free_amount_keeps_crossing_element():
    m = Percentage(rate=1, free_amount=30, fixed_amount=1)
    # kept running totals [12, 24, 36]: free amount 30, free events = 2 below 30
    p = models.percentage([D(12)] * 4, m)
    assert p.amount == (48 - 30) * D("0.01") + 2


def test_percentage_min_max():
    m = Percentage(rate="2.99", min_per_event="1.75", max_per_event=12)
    assert models.percentage([D(10), D(80), D(10000)], m).amount == D("16.142")
    m2 = Percentage(rate="2.99", fixed_amount=2, min_per_event="1.75", max_per_event=12)
    assert models.percentage([D(10), D(80), D(10000)], m2).amount == D("18.691")


def test_percentage_min_not_applied_to_free_events():
    m = Percentage(rate=1, free_events=1, min_per_event=5)
    assert models.percentage([D(10), D(10)], m).amount == 5


def test_volume_decimal_boundary_goes_up_and_prices_all_units():
    tiers = (Tier(0, 100, 2, 0), Tier(101, 200, 1, 0), Tier(201, None, D("0.5"), 50))
    p = models.volume(D("100.5"), tiers)
    assert p.amount == D("100.5")
    assert models.volume(D(0), (Tier(0, 100, 2, 7), Tier(101, None, 1))).amount == 7


def test_prorated_volume():
    tiers = (Tier(0, 100, 2, 0), Tier(101, 200, 1, 0), Tier(201, None, D("0.5"), 50))
    p = models.volume(D("198.6"), tiers, full_units=D(300))
    assert p.amount == D("149.3")
    assert p.denominator == 300


PG = (Tier(0, 5, 10, 100), Tier(6, None, 5, 50))


def test_prorated_graduated_spec():
    ev = [(D(5), D("3.5")), (D(5), D("2.66667")), (D(10), D(2)), (D(-6), D("-2.2"))]
    p = models.prorated_graduated(ev, PG)
    assert round_to_cents(p.amount) == D("197.33")


def test_prorated_graduated_no_events_pays_first_flat():
    assert models.prorated_graduated([], PG).amount == 100


def test_prorated_graduated_single_event_three_tiers():
    # A single full-period event of 75: 5 x 10 + 5 x 5 + 65 x 1 + flats 100 + 50 + 20 = 310.
    tiers = (Tier(0, 5, 10, 100), Tier(6, 10, 5, 50), Tier(11, None, 1, 20))
    assert models.prorated_graduated([(D(75), D(75))], tiers).amount == 310
    # and with half of it prorated, placement still follows the full value
    assert models.prorated_graduated([(D(75), D("37.5"))], tiers).amount == D("70") + 170


def test_dynamic():
    p = models.dynamic(D(20), D("40.2"))
    assert p.amount == D("0.402")
    assert round_to_cents(p.amount) == D("0.40")
    assert p.amount / p.denominator == D("0.0201")
    assert models.dynamic(D(0), D("40.2")).amount == 0


def test_standard_never_rounds():
    assert models.standard(D(10), D("5.12345")).amount == D("51.2345")


def test_advance_delta_graduated_first_event_pays_flat():
    m = Graduated((Tier(0, 1, D("0.05"), D("0.02")), Tier(2, 2, D("0.02")), Tier(3, None, D("0.01"), D("0.03"))))
    fees = [round_to_cents(models.advance_delta(m, D(n), D(n - 1))) for n in (1, 2, 3)]
    assert fees == [D("0.07"), D("0.02"), D("0.04")]


def test_advance_delta_same_second_events():
    m = Graduated((Tier(0, 2, 0), Tier(3, None, 2)))
    assert [models.advance_delta(m, D(n), D(n - 1)) for n in (1, 2, 3)] == [0, 0, 2]


def test_spending_minimum_true_up():
    assert models.min_true_up(D(1000), D(700), 31, 31) == 300
    assert round_amount(models.min_true_up(D(1000), D(200), 15, 31), MoneyRounding(quantum=D(1))) == 284
    assert round_to_cents(models.min_true_up(D(1000), D(200), 15, 31)) == D("283.87")
    assert round_amount(models.min_true_up(D(10000), D(7000), 25, 28), MoneyRounding(quantum=D(1))) == 1929
    assert models.min_true_up(D(100), D(700), 31, 31) == 0


def test_apply_dispatch_standard():
    assert models.apply(Standard(3), D(2)).amount == 6
    assert models.apply(GraduatedPercentage(GP), D(1)).amount == D("200.01")
