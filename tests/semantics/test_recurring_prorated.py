"""lago-semantics.md section b: recurring metrics and prorated charges, as `.bill` source, on both engines.

Prorating is by days in the customer's timezone (UTC here); a prorated value
is ceiled to 5 decimals. Prices of 31 per unit in a 31-day period make the
prorated day counts read directly as money (21/31 x 31 = 21.00).
"""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

import pytest

from lago_bill import ENTITY, compile_bill, compile_source, event, one

SEATS = "metric seats { event seat sum value recurring }\n"
GPUS = "metric gpus { event gpu unique count gpu_id recurring }\n"
LEVEL = "metric level { event level weighted sum value recurring }\n"


# ------------------------------------------------------------------ recurring, not prorated


def test_recurring_sum_counts_all_history(engine):
    """Lago spec: 2 x 2.5 before the period + 4 x 12 inside = 53."""
    evs = [event("seat", "2024-04-10T00:00:00Z", value="2.5") for _ in range(2)]
    evs += [event("seat", "2024-05-10T00:00:00Z", value="12") for _ in range(4)]
    line = one(engine([compile_bill(SEATS, "  charge seats 1 per unit")], evs))
    assert line.units == 53


def test_recurring_unique_count_keeps_ids_from_earlier_periods(engine):
    """Ids still active at the period's end count, including ids added in earlier periods."""
    evs = [event("gpu", "2024-03-02T00:00:00Z", gpu_id="a"), event("gpu", "2024-04-02T00:00:00Z", gpu_id="b"),
           event("gpu", "2024-04-20T00:00:00Z", gpu_id="b", operation_type="remove"),
           event("gpu", "2024-05-02T00:00:00Z", gpu_id="c")]
    line = one(engine([compile_bill(GPUS, "  charge gpus 1 per unit")], evs))
    assert line.units == 2  # a and c


def test_recurring_weighted_sum_starts_at_the_previous_level(engine):
    """Lago spec: a persisted level of 1000 plus the spec's deltas -> 1000.02218."""
    deltas = [("00:00", 2), ("01:00", 3), ("01:30", 1), ("02:00", -4), ("04:00", -2), ("05:00", 10), ("05:30", -10)]
    evs = [event("level", "2024-04-15T00:00:00Z", value="1000")]
    evs += [event("level", f"2024-05-01T{t}:00Z", value=v) for t, v in deltas]
    line = one(engine([compile_bill(LEVEL, "  charge level 1 per unit")], evs))
    assert round(line.units, 5) == D("1000.02218")
    assert abs(Fraction(line.units) - (1000 + Fraction(59400, 2678400))) < Fraction(1, 10**30)


# ------------------------------------------------------------------ prorated sum


def test_prorated_sum_spec(engine):
    """Lago spec: 5 persisted + 2 x 12 on May 26 of a 31-day May -> 5 + 24 x 6 / 31 = 9.64517 (ceiled to
    5 decimals). The line's displayed units are the full 29."""
    evs = [event("seat", "2024-04-03T00:00:00Z", value="5"),
           event("seat", "2024-05-26T09:00:00Z", value="12"), event("seat", "2024-05-26T17:00:00Z", value="12")]
    line = one(engine([compile_bill(SEATS, "  charge seats 1 per unit { prorated }")], evs))
    assert line.units == D("9.64517")
    assert line.full_units == 29


def test_prorated_sum_removal_day_is_not_billed(engine):
    """Code-read: a removal on day D subtracts from D on. 10 persisted, -10 on May 11: May 1-10 billed,
    10 x 10 / 31 = 3.22581 (ceiled) -> x 31 = 100.00."""
    evs = [event("seat", "2024-04-03T00:00:00Z", value="10"), event("seat", "2024-05-11T10:00:00Z", value="-10")]
    line = one(engine([compile_bill(SEATS, "  charge seats 31 per unit { prorated }")], evs))
    assert (line.units, line.full_units, line.amount) == (D("3.22581"), 0, D("100.00"))


def test_prorated_sum_in_advance_fee_is_prorated_per_event(engine):
    """Lago's code: the per-event fee of an in-advance prorated charge uses the event's value x (days left
    in the period, counted up) / period days, ceiled to 5 decimals; only the billing-date fee is full.
    12 x 6/31 = 2.3225806... -> 2.32259 units (ceiled) -> 72.00."""
    evs = [event("seat", "2024-05-26T10:00:00Z", value="12")]
    r = engine([compile_bill(SEATS, "  charge seats 31 per unit { prorated in advance }")], evs)
    (fee,) = r.in_advance
    assert (fee.units, fee.amount) == (D("2.32259"), D("72.00"))


# ------------------------------------------------------------------ prorated unique count


def test_prorated_unique_count_added_mid_period(engine):
    """Lago spec: an id added on day 11 of a 31-day month counts 21/31 (0.67742 ceiled)."""
    evs = [event("gpu", "2024-05-11T09:00:00Z", gpu_id="g1")]
    line = one(engine([compile_bill(GPUS, "  charge gpus 31 per instance { prorated }")], evs))
    assert (line.units, line.full_units, line.amount) == (D("0.67742"), 1, D("21.00"))


def test_prorated_unique_count_removal_day_included(engine):
    """Lago spec: removed on Jul 24 in a Jul 9 - Aug 8 period -> 16/31 (Jul 9..24, removal day included).

    The Jul 9 - Aug 8 period is a monthly anniversary period of a contract starting on the 9th."""
    evs = [event("gpu", "2024-06-01T00:00:00Z", gpu_id="g1"),
           event("gpu", "2024-07-24T15:00:00Z", gpu_id="g1", operation_type="remove")]
    spec = compile_bill(GPUS, "  charge gpus 31 per instance { prorated }", billing="monthly anniversary",
                        starts="2024-01-09", period="2024-07-20")
    line = one(engine([spec], evs))
    assert (line.units, line.full_units, line.amount) == (D("0.51613"), 0, D("16.00"))


def test_prorated_unique_count_subscription_started_in_the_period(engine):
    """Lago spec: subscription started Aug 1 in the Jul 9 - Aug 8 period -> 8/31."""
    evs = [event("gpu", "2024-08-01T01:00:00Z", gpu_id="g1")]
    spec = compile_bill(GPUS, "  charge gpus 31 per instance { prorated }", starts="2024-08-01",
                        period="2024-07-09 .. 2024-08-08")
    line = one(engine([spec], evs))
    assert (line.units, line.amount) == (D("0.25807"), D("8.00"))


def test_prorated_unique_count_remove_then_add_on_the_same_day_is_ignored(engine):
    evs = [event("gpu", "2024-04-03T00:00:00Z", gpu_id="g1"),
           event("gpu", "2024-05-10T10:00:00Z", gpu_id="g1", operation_type="remove"),
           event("gpu", "2024-05-10T12:00:00Z", gpu_id="g1")]
    line = one(engine([compile_bill(GPUS, "  charge gpus 31 per instance { prorated }")], evs))
    assert (line.units, line.amount) == (1, D("31.00"))


# ------------------------------------------------------------------ prorated volume and graduated


def test_prorated_volume_spec(engine):
    """Lago spec: prorated 198.6, full 300 -> tier 3 -> 198.6 x 0.5 + 50 = 149.3.

    Constructed inputs for those units: 66 persisted + 234 on June 14 of a 30-day June
    (234 x 17/30 = 132.6; 66 + 132.6 = 198.6)."""
    spec = compile_bill(SEATS, """  charge seats volume per unit {
    0 to 100 at 2
    101 to 200 at 1
    201 and above at 0.5 flat 50
  } { prorated }""", period="2024-06")
    evs = [event("seat", "2024-05-03T00:00:00Z", value="66"), event("seat", "2024-06-14T08:00:00Z", value="234")]
    line = one(engine([spec], evs))
    assert (line.units, line.full_units, line.precise_amount) == (D("198.6"), 300, D("149.3"))


TWO_TIERS = """  charge seats graduated per unit {
    0 to 5 at 10 flat 100
    6 and above at 5 flat 50
  } { prorated }"""

THREE_TIERS = """  charge seats graduated per unit {
    0 to 5 at 10 flat 100
    6 to 15 at 5 flat 50
    16 and above at 2
  } { prorated }"""


def _june(*day_values):
    """Events of the 30-day June; day 0 means before the period (prorated weight 1)."""
    return [event("seat", f"2024-06-{d:02d}T10:00:00Z" if d else "2024-05-01T00:00:00Z", value=str(v))
            for d, v in day_values]


@pytest.mark.parametrize("tiers,events,amount,full", [
    # no events: the first tier's flat fee
    (TWO_TIERS, [], "100", 0),
    # a single event of 75 (weight 1) against three tiers: 5 x 10 + 10 x 5 + 60 x 2 + 100 + 50
    (THREE_TIERS, [(0, 75)], "370", 75),
    # Lago's other spec cases whose prorated values a real timeline yields (weights n/30 decrease with time):
    # full [1], prorated [0.7] (day 10 = 21/30): 0.7 x 10 + 100
    (TWO_TIERS, [(10, 1)], "107", 1),
    # [5, -2] / [3.5, -1] (days 10, 16): 35 - 10 + 100
    (TWO_TIERS, [(10, 5), (16, -2)], "125", 3),
    # [4, 2, -3] / [2.8, 1, -0.6] (days 10, 16, 25)
    (TWO_TIERS, [(10, 4), (16, 2), (25, -3)], "180.5", 3),
    # [5, 2, -4, 10] / [3.5, 1, -1.6, 2] (days 10, 16, 19, 25): straddles the tier edge both ways
    (TWO_TIERS, [(10, 5), (16, 2), (19, -4), (25, 10)], "190", 13),
    # [5, -100] / [2, -33.33] (days 19, 21): a negative final total bills 0
    (TWO_TIERS, [(19, 5), (21, -100)], "0", 0),
])
def test_prorated_graduated_spec(engine, tiers, events, amount, full):
    """Lago's prorated graduated spec (tiers 0-5 @10 +100, 6-inf @5 +50; or 0-5, 6-15 @5 +50, 16-inf @2):
    tiers are placed by the running full sum, money is the prorated value x the tier price, and every
    tier up to the highest running sum pays its flat fee.

    Not reproducible: the headline case full [5, 5, 10, -6], prorated [3.5, 2.66667, 2, -2.2] -> 197.33.
    Its weights (0.7, 0.53, 0.2, 0.37) do not decrease in event order, so no dated events produce them
    (a prorated weight is the days left in the period, which only falls with time)."""
    spec = compile_bill(SEATS, tiers, period="2024-06")
    line = one(engine([spec], _june(*events)))
    assert line.amount == D(amount)
    assert line.full_units == full


def test_prorated_graduated_spec_final_units_zero(engine):
    """Lago spec: full [1, 4, 1, -5, -1], prorated [0.7097, 1.54839, 0.2258, -0.80645, -0.0645] (a 31-day
    month: days 10, 20, 25, 27, 30) -> 165.81 even though the final full total is 0."""
    spec = compile_bill(SEATS, TWO_TIERS, period="2024-05")
    evs = [event("seat", f"2024-05-{d:02d}T10:00:00Z", value=str(v))
           for d, v in [(10, 1), (20, 4), (25, 1), (27, -5), (30, -1)]]
    line = one(engine([spec], evs))
    assert (line.amount, line.full_units) == (D("165.81"), 0)


def test_recurring_sum_carries_across_plan_versions(engine):
    """Lago: after an upgrade, the previous subscription's events (same external id) still count for a
    recurring sum. The language's analogue of an upgrade is a new plan version under the same contract and
    subscription id: April's events, rated under version 1, count in May under version 2 (53 x 2 = 106)."""
    src = ENTITY + SEATS + """
plan p version 1 effective 2024-01-01 to 2024-04-30 { currency USD billing monthly charge seats 1 per unit }
plan p version 2 effective 2024-05-01 { currency USD billing monthly charge seats 2 per unit }
contract c { customer "cust_1" subscription "sub_1" entity lago plan p starts 2024-01-01 }
"""
    spec = compile_source(src, period="2024-05")
    evs = [event("seat", "2024-04-10T00:00:00Z", value="2.5") for _ in range(2)]
    evs += [event("seat", "2024-05-10T00:00:00Z", value="12") for _ in range(4)]
    line = one(engine([spec], evs))
    assert (line.units, line.amount) == (53, D("106.00"))
