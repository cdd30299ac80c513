"""Graduated percentage with decimal bounds (`0 to 0.01`, `0.01 to 10`, `11 and above`), on both engines.

Lago's validator (`Validators::RangeBoundsValidator`, used by
`Charges::Validators::GraduatedPercentageService`) lets a range start at the
previous `to_value` or at it + 1, so this schedule is valid in Lago. Its
rating (`AmountDetails::RangeGraduatedPercentageService#units`) has no
adjacent mode: a tier the total has passed holds to - from + 1 units, a
`from` of 0 counting as 1 (so `0 to 0.01` holds 0.01, `0.01 to 10` holds
10 - 0.01 + 1 = 10.99); the tier the total stops in holds total - from + 1
(the total itself when from is 0). Each tier reached adds its flat fee.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from gpubill.dsl.check import check_sources
from lago_bill import check_ok, compile_bill, event, one, source

VALUES = "metric spend { event spend sum value }\n"
DECIMAL_TIERS = """  charge spend graduated percentage {
    0 to 0.01 at 0%
    0.01 to 10 at 1% flat 200
    11 and above at 2% flat 300
  }"""


def test_decimal_adjacent_bounds_check_clean():
    """No diagnostic at all: Lago accepts the schedule, so `gpubill check` does too."""
    _, diags = check_sources({"lago.bill": source(VALUES, DECIMAL_TIERS)})
    assert diags == []


@pytest.mark.parametrize("units,amount", [
    ("0.005", "0"),  # tier 1 only: 0.005 x 0 %
    ("5", "200.0599"),  # 0.01 x 0 % + (5 - 0.01 + 1 = 5.99) x 1 % + 200
    ("10", "200.1099"),  # tier 2 full: (10 - 0.01 + 1 = 10.99) x 1 % + 200
    ("10.5", "500.1199"),  # 200.1099 + (10.5 - 11 + 1 = 0.5) x 2 % + 300
    ("21", "500.3299"),  # 200.1099 + (21 - 11 + 1 = 11) x 2 % + 300
])
def test_decimal_bounds_rate_as_lago(engine, units, amount):
    spec = compile_bill(VALUES, DECIMAL_TIERS)
    line = one(engine([spec], [event("spend", "2024-05-10T12:00:00Z", value=units)]))
    assert line.precise_amount == D(amount)


def test_tier_units_are_lagos_in_the_breakdown(engine):
    """The explain breakdown holds Lago's per-tier units: 0.01, 10.99, 0.5 for 10.5."""
    spec = compile_bill(VALUES, DECIMAL_TIERS)
    line = one(engine([spec], [event("spend", "2024-05-10T12:00:00Z", value="10.5")]))
    assert [t.units for t in line.tiers] == [D("0.01"), D("10.99"), D("0.5")]


@pytest.mark.parametrize("tiers", [
    "0 to 0.5 at 1%\n    0.5 and above at 2%",  # a fractional shared bound alone
    "0 to 0.5 at 1%\n    1.5 and above at 2%",  # the +1 reading with decimals
    "1 to 10 at 1%\n    11 and above at 2%",
])
def test_other_schedules_lago_accepts_check_clean(tiers):
    src = source(VALUES, f"  charge spend graduated percentage {{\n    {tiers}\n  }}")
    check_ok(src)
    _, diags = check_sources({"lago.bill": src})
    assert diags == []


@pytest.mark.parametrize("tiers,rule", [
    ("0 to 10 at 1%\n    10 and above at 2%", "tier-overlap"),  # a shared whole-number bound: unit 10 in both tiers
    ("0 to 0.5 at 1%\n    0.4 and above at 2%", "tier-overlap"),
    ("0 to 0.01 at 1%\n    0.02 and above at 2%", "tier-gap"),
    ("0 to 0.01 at 1%\n    1.02 and above at 2%", "tier-gap"),
    ("0.5 to 1 at 1%\n    2 and above at 2%", "tier-first"),
])
def test_invalid_schedules_are_still_errors(tiers, rule):
    src = source(VALUES, f"  charge spend graduated percentage {{\n    {tiers}\n  }}")
    _, diags = check_sources({"lago.bill": src})
    assert [(d.rule, d.is_error) for d in diags] == [(rule, True)]
