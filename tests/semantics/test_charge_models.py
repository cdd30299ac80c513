"""lago-semantics.md section a, charge models: each worked example as `.bill` source, on both engines.

Plans are written in the language, events are Lago-shaped dicts, and the
amounts are Lago's (exact Decimals; `precise_amount` is the unrounded model
output, `amount` the line rounded half-up to cents).
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from lago_bill import compile_bill, event, one, quotient

CALLS = "metric calls { event call count }\n"
VALUES = "metric spend { event spend sum value }\n"
MAY = "2024-05-{:02d}T12:00:00Z"


def calls(n):
    return [event("call", f"2024-05-10T12:{i // 60:02d}:{i % 60:02d}Z") for i in range(n)]


def spend(*values):
    return [event("spend", MAY.format(1 + i), value=v) for i, v in enumerate(values)]


# ------------------------------------------------------------------ standard


def test_standard_never_rounds(engine):
    """5.12345 x 10 = 51.2345: the model's amount is exact; the line rounds once, to 51.23."""
    spec = compile_bill(VALUES, "  charge spend 5.12345 per unit")
    line = one(engine([spec], spend("10")))
    assert line.precise_amount == D("51.2345")
    assert line.amount == D("51.23")


def test_standard_fractional_units(engine):
    spec = compile_bill(VALUES, "  charge spend 2 per unit")
    line = one(engine([spec], spend("0.25", "1.5")))
    assert (line.units, line.precise_amount) == (D("1.75"), D("3.5"))


def test_negative_units_give_a_zero_fee(engine):
    """Aggregated units below 0 force the fee to 0 units and 0 amount."""
    spec = compile_bill(VALUES, "  charge spend 2 per unit")
    line = one(engine([spec], spend("3", "-5")))
    assert (line.units, line.amount) == (0, 0)


# ------------------------------------------------------------------ graduated

GRADUATED = """  charge calls graduated per call {
    0 to 10 at 10 flat 2
    11 to 20 at 5 flat 3
    21 and above at 5 flat 3
  }"""


@pytest.mark.parametrize("units,amount", [(0, 2), (1, 12), (10, 102), (11, 110), (12, 115), (21, 163)])
def test_graduated_spec_table(engine, units, amount):
    """Tiers 0-10 @10 +2, 11-20 @5 +3, 21-inf @5 +3; `to` inclusive, a reached tier pays its flat fee."""
    spec = compile_bill(CALLS, GRADUATED)
    line = one(engine([spec], calls(units)))
    assert line.units == units
    assert line.precise_amount == amount


def test_graduated_decimal_total_spills_into_next_tier(engine):
    """10.5 with tiers 0..10 and 11..20: tier 2 holds 0.5 units -> 10 x 10 + 2 + 0.5 x 5 + 3 = 107.5."""
    spec = compile_bill(VALUES, GRADUATED.replace("calls", "spend").replace("per call", "per unit"))
    line = one(engine([spec], spend("10.5")))
    assert [t.units for t in line.tiers] == [10, D("0.5")]
    assert line.precise_amount == D("107.5")


def test_graduated_adjacent_decimal_tiers(engine):
    """Lago spec: tiers 0-0.1 @10, 0.1-1 @5, 1-inf: 0.5 units -> 0.1 x 10 + 0.4 x 5 = 3.0."""
    spec = compile_bill(VALUES, """  charge spend graduated per unit {
    0 to 0.1 at 10
    0.1 to 1 at 5
    1 and above at 1
  }""")
    line = one(engine([spec], spend("0.5")))
    assert [t.units for t in line.tiers] == [D("0.1"), D("0.4")]
    assert line.precise_amount == D("3.0")


def test_graduated_adjacent_mode_is_all_or_nothing(engine):
    """Constructed: 0-1 @10, 1-5 @5, 6-inf @1 has one non-adjacent pair, so every tier uses the +1 rule.

    3 units: tier 1 holds 1 (from 0), tier 2 holds 3 - 1 + 1 = 3 -> 10 + 15 = 25 (adjacent mode would give 20).
    """
    spec = compile_bill(VALUES, """  charge spend graduated per unit {
    0 to 1 at 10
    1 to 5 at 5
    6 and above at 1
  }""")
    line = one(engine([spec], spend("3")))
    assert line.precise_amount == 25


def test_graduated_free_first_tier_avoids_the_zero_usage_flat_fee(engine):
    """The documented way to avoid the first tier's flat fee at 0 units: a free tier 0-0.01 @0 flat 0."""
    spec = compile_bill(CALLS, """  charge calls graduated per call {
    0 to 0.01 at 0
    0.01 and above at 10 flat 2
  }""")
    assert one(engine([spec], [])).amount == 0
    assert one(engine([spec], calls(1))).precise_amount == D("11.9")  # 0.99 x 10 + 2


# ------------------------------------------------------------------ volume

VOLUME = """  charge spend volume per unit {
    0 to 100 at 1
    101 to 200 at 0.5 flat 50
    201 and above at 0.25
  }"""


def test_volume_decimal_between_integer_tiers_goes_up(engine):
    """100.5 with tiers 0-100 and 101-200 lands in tier 2: all 100.5 units x 0.5 + 50 = 100.25."""
    spec = compile_bill(VALUES, VOLUME)
    line = one(engine([spec], spend("100.5")))
    assert line.precise_amount == D("100.25")
    assert quotient(line.unit_price, D("100.25"), D("100.5"))  # volume divides by the units that picked the tier
    assert one(engine([spec], spend("100"))).precise_amount == 100  # 100 stays in tier 1


def test_volume_zero_usage_pays_the_first_tier_flat_fee(engine):
    spec = compile_bill(VALUES, """  charge spend volume per unit {
    0 to 100 at 1 flat 7
    101 and above at 0.5
  }""")
    assert one(engine([spec], [])).amount == 7


# ------------------------------------------------------------------ package


@pytest.mark.parametrize("free,amount,paid", [(0, 1300, 121), (10, 1200, 111), (200, 0, None)])
def test_package_spec_table(engine, free, amount, paid):
    """Amount 100 per 10, 121 units: free 0 -> 13 packages, free 10 -> 12, free 200 -> 0.

    unit_amount divides by the paid units (121 - free).
    """
    charge = f"  charge calls package 100 per 10 calls free {free} calls" if free else "  charge calls package 100 per 10 calls"
    spec = compile_bill(CALLS, charge)
    line = one(engine([spec], calls(121)))
    assert line.precise_amount == amount
    assert quotient(line.unit_price, amount, paid) if paid else line.unit_price == 0


def test_package_per_million_tokens_bills_a_whole_package_for_one_token(engine):
    """Lago's LLM templates: package_size 1,000,000, so a single token is a whole package."""
    metric = "metric tokens { event llm sum output_tokens }\n"
    spec = compile_bill(metric, "  charge tokens package 2.00 per 1M tokens")
    line = one(engine([spec], [event("llm", MAY.format(3), output_tokens=1)]))
    assert line.amount == D("2.00")


# ------------------------------------------------------------------ percentage

PAYMENTS = [50, 100, 250, 400]


@pytest.mark.parametrize("options,amount", [
    (", fixed 2 per event, free 3 events, free 250", D("11.15")),  # 550 x 1.3 % + 2 x 2
    (", fixed 2 per event, free 3 events", D("7.2")),  # 400 x 1.3 % + 1 x 2
    (", fixed 2 per event", D("18.4")),  # 800 x 1.3 % + 4 x 2
])
def test_percentage_spec(engine, options, amount):
    """Events 50, 100, 250, 400 at 1.3 %, fixed 2: with N=3 and F=250 -> 11.15; N only -> 7.2; neither -> 18.4."""
    spec = compile_bill(VALUES, f"  charge spend percentage 1.3%{options}")
    line = one(engine([spec], spend(*PAYMENTS)))
    assert line.precise_amount == amount


def test_percentage_free_amount_running_totals(engine):
    """Lago spec: 12, 12, 12, 12 with F = 30 keep running totals [12, 24, 36] (the crossing one included).

    Free amount = min(36, 30) = 30; free events = totals strictly below 30 = 2.
    Constructed price: 10 % and fixed 1 per event -> (48 - 30) x 10 % + (4 - 2) x 1 = 3.8.
    """
    spec = compile_bill(VALUES, "  charge spend percentage 10%, fixed 1 per event, free 30")
    assert one(engine([spec], spend(12, 12, 12, 12))).precise_amount == D("3.8")


def test_percentage_per_transaction_min_max(engine):
    """Lago spec: 10, 80, 10000 at 2.99 %, min 1.75, max 12 -> 1.75 + 2.392 + 12 = 16.142."""
    spec = compile_bill(VALUES, "  charge spend percentage 2.99%, minimum 1.75 per event, maximum 12 per event")
    line = one(engine([spec], spend(10, 80, 10000)))
    assert line.precise_amount == D("16.142")
    assert line.amount == D("16.14")


def test_percentage_per_transaction_min_max_with_fixed_fee(engine):
    """Same with fixed 2 per event: 1.75 -> 2.299, 2.392 + 2 = 4.392, 12 -> 18.691."""
    spec = compile_bill(VALUES, "  charge spend percentage 2.99%, fixed 2 per event, minimum 1.75 per event, maximum 12 per event")
    assert one(engine([spec], spend(10, 80, 10000))).precise_amount == D("18.691")


def test_percentage_min_max_free_events_are_not_raised_to_the_minimum(engine):
    """Constructed: free 1 events, minimum 1.75: the free first event stays 0 -> 0 + 80 x 2.99 % = 2.392."""
    spec = compile_bill(VALUES, "  charge spend percentage 2.99%, free 1 events, minimum 1.75 per event")
    assert one(engine([spec], spend(10, 80))).precise_amount == D("2.392")


def test_percentage_min_max_free_amount_continues_past_the_free_events(engine):
    """Constructed: free 1 events and free 100: 10 and 80 are free (the free amount outlasts the free
    event), 200 pays on 190: 190 x 2.99 % = 5.681, inside [1.75, 12]."""
    spec = compile_bill(VALUES, "  charge spend percentage 2.99%, free 1 events, free 100, minimum 1.75 per event, maximum 12 per event")
    assert one(engine([spec], spend(10, 80, 200))).precise_amount == D("5.681")


def test_percentage_fixed_part_is_zero_at_zero_units(engine):
    """Fixed part = 0 when the units are 0, even with paying events (5 and -5 here)."""
    spec = compile_bill(VALUES, "  charge spend percentage 1%, fixed 2 per event")
    assert one(engine([spec], spend(5, -5))).precise_amount == 0


def test_percentage_on_a_count_metric_values_each_event_at_one(engine):
    """Constructed: 4 calls at 50 %, fixed 0.1 -> 4 x 0.5 + 4 x 0.1 = 2.4."""
    spec = compile_bill(CALLS, "  charge calls percentage 50%, fixed 0.1 per event")
    assert one(engine([spec], calls(4))).precise_amount == D("2.4")


# ------------------------------------------------------------------ graduated percentage

GRAD_PCT = """  charge spend graduated percentage {
    0 to 10 at 1% flat 200
    11 to 20 at 2% flat 300
    21 and above at 3% flat 400
  }"""


@pytest.mark.parametrize("units,amount", [
    (0, "200"), (1, "200.01"), (10, "200.1"), (11, "500.12"), (21, "900.33"),
])
def test_graduated_percentage_spec_table(engine, units, amount):
    """Tiers 0-10 1 % +200, 11-20 2 % +300, 21-inf 3 % +400 (no adjacent mode)."""
    spec = compile_bill(VALUES, GRAD_PCT)
    events = spend(units) if units else []
    assert one(engine([spec], events)).precise_amount == D(amount)


# ------------------------------------------------------------------ dynamic


def test_dynamic_spec(engine):
    """40.2 cents with 20 units -> amount 0.402 (a 40-cent fee), unit amount 0.0201."""
    spec = compile_bill(VALUES, "  charge spend dynamic")
    evs = [event("spend", MAY.format(2), cents="40.2", value=20)]
    line = one(engine([spec], evs))
    assert (line.units, line.precise_amount, line.amount, line.unit_price) == (20, D("0.402"), D("0.40"), D("0.0201"))


def test_dynamic_zero_units_is_zero_even_with_cents(engine):
    spec = compile_bill(VALUES, "  charge spend dynamic")
    evs = [event("spend", MAY.format(2), cents="500", value=5), event("spend", MAY.format(3), cents="300", value=-5)]
    assert one(engine([spec], evs)).amount == 0


def test_dynamic_events_without_cents_count_zero(engine):
    spec = compile_bill(VALUES, "  charge spend dynamic")
    evs = [event("spend", MAY.format(2), cents="1234.5", value=1), event("spend", MAY.format(3), value=1)]
    assert one(engine([spec], evs)).precise_amount == D("12.345")
