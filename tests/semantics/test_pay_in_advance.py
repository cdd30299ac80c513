"""lago-semantics.md section a, pay-in-advance pricing, as `.bill` charges `{ in advance }`, on both engines.

Each event's fee is model(cumulative usage up to and including it) minus
model(cumulative usage before it), rounded half-up to cents. Where the
reference gives only the fees, the tiers below are constructed to produce them.
"""

from __future__ import annotations

from decimal import Decimal as D

from lago_bill import compile_bill, event

CALLS = "metric calls { event call count }\n"
VALUES = "metric spend { event spend sum value }\n"


def fees(result):
    assert result.lines == ()  # an in-advance charge has no in-arrears line
    return result.in_advance


def test_same_second_events_tie_by_ingestion_order(engine):
    """Lago spec: 3 events in the same second -> fees 0, 0, 2.00.

    Constructed tiers: 0-2 free, 3 and above at 2. The events are listed out of
    ingestion order (rowids 3, 1, 2): the fee follows the rowid, not the list.
    """
    spec = compile_bill(CALLS, """  charge calls graduated per call {
    0 to 2 at 0
    3 and above at 2
  } { in advance }""")
    evs = [event("call", "2024-05-10T08:00:00Z", rowid=r) for r in (3, 1, 2)]
    got = sorted((f.rowid, f.units, f.amount) for f in fees(engine([spec], evs)))
    assert got == [(1, 1, 0), (2, 1, 0), (3, 1, D("2.00"))]


def test_graduated_flat_fees_are_paid_as_tiers_are_crossed(engine):
    """Lago spec: fees 7, 2, 4 cents. The excluding side at 0 units is 0 (no flat fee), so the first
    event pays tier 1's flat fee and later events each new tier's.

    Constructed (adjacent tiers): 0-1 @0.05 +0.02, 1-2 @0.02, 2-inf @0.01 +0.03, three calls:
    0.07 - 0 = 0.07; 0.09 - 0.07 = 0.02; 0.13 - 0.09 = 0.04.
    """
    spec = compile_bill(CALLS, """  charge calls graduated per call {
    0 to 1 at 0.05 flat 0.02
    1 to 2 at 0.02
    2 and above at 0.01 flat 0.03
  } { in advance }""")
    evs = [event("call", f"2024-05-10T08:00:0{i}Z") for i in range(3)]
    assert [f.amount for f in fees(engine([spec], evs))] == [D("0.07"), D("0.02"), D("0.04")]


def test_sum_increment_is_the_rise_above_the_period_high(engine):
    """Lago: sum events 10, then -4, then +8 -> billable units 10, 0, 4 (negative events never refund)."""
    spec = compile_bill(VALUES, "  charge spend 1.5 per unit { in advance }")
    evs = [event("spend", f"2024-05-1{i}T08:00:00Z", value=v) for i, v in enumerate(["10", "-4", "8"])]
    got = [(f.units, f.amount) for f in fees(engine([spec], evs))]
    assert got == [(10, D("15.00")), (0, 0), (4, D("6.00"))]


def test_unique_count_readding_a_removed_id_is_free(engine):
    """Lago: only active ids above the period's maximum are billed; re-adding a removed id is free."""
    metric = "metric seats { event seat unique count seat_id }\n"
    spec = compile_bill(metric, "  charge seats 3 per seat { in advance }")
    evs = [event("seat", "2024-05-02T00:00:00Z", seat_id="a"),
           event("seat", "2024-05-03T00:00:00Z", seat_id="a", operation_type="remove"),
           event("seat", "2024-05-04T00:00:00Z", seat_id="a"),
           event("seat", "2024-05-05T00:00:00Z", seat_id="b")]
    assert [(f.units, f.amount) for f in fees(engine([spec], evs))] == [(1, 3), (0, 0), (0, 0), (1, 3)]


def test_count_increment_is_always_one_and_each_delta_rounds_half_up(engine):
    """Constructed: 0.005 per call; each fee is 0.005 exactly, rounded half-up to 0.01."""
    spec = compile_bill(CALLS, "  charge calls 0.005 per call { in advance }")
    evs = [event("call", f"2024-05-10T08:00:0{i}Z") for i in range(3)]
    got = [(f.units, f.precise_amount, f.amount) for f in fees(engine([spec], evs))]
    assert got == [(1, D("0.005"), D("0.01"))] * 3


def test_metric_rounding_is_not_applied_to_in_advance_increments(engine):
    """Lago: billable-metric rounding is not applied to the per-event aggregation of an in-advance fee."""
    metric = "metric spend { event spend sum value rounding ceil }\n"
    spec = compile_bill(metric, "  charge spend 10 per unit { in advance }")
    evs = [event("spend", "2024-05-10T08:00:00Z", value="0.4")]
    (fee,) = fees(engine([spec], evs))
    assert (fee.units, fee.amount) == (D("0.4"), D("4.00"))


def test_later_dated_events_are_not_in_the_cumulative(engine):
    """Lago: "up to" means timestamp <= the event's; a stored event dated later is ignored.

    Constructed: 0-1 free, 2 and above at 5. The later-dated event is ingested first, yet the
    earlier-dated one is the period's first unit (free) and the later-dated one the second (5).
    """
    spec = compile_bill(CALLS, """  charge calls graduated per call {
    0 to 1 at 0
    2 and above at 5
  } { in advance }""")
    evs = [event("call", "2024-05-20T00:00:00Z", rowid=0), event("call", "2024-05-10T00:00:00Z", rowid=1)]
    got = sorted((f.timestamp_ms, f.amount) for f in fees(engine([spec], evs)))
    assert [a for _, a in got] == [0, D("5.00")]


def test_dynamic_in_advance_fee_is_the_events_cents_rounded(engine):
    """Lago: in advance, a dynamic fee equals that event's cents rounded: 1234.56 cents -> 12.35."""
    spec = compile_bill(VALUES, "  charge spend dynamic { in advance }")
    evs = [event("spend", "2024-05-10T08:00:00Z", cents="1234.56", value=3)]
    (fee,) = fees(engine([spec], evs))
    assert (fee.precise_amount, fee.amount) == (D("12.3456"), D("12.35"))


def test_graduated_percentage_in_advance_pays_flat_fees_as_tiers_are_crossed(engine):
    """Constructed: tiers 0-10 1 % +200, 11-inf 2 % +300; sum events 5 then 10.

    5: model(5) - model(0 -> 0) = 200.05; 10: model(15) = 200.10 + 300 + 5 x 2 % = 500.20 -> 300.15.
    """
    spec = compile_bill(VALUES, """  charge spend graduated percentage {
    0 to 10 at 1% flat 200
    11 and above at 2% flat 300
  } { in advance }""")
    evs = [event("spend", "2024-05-10T08:00:00Z", value=5), event("spend", "2024-05-11T08:00:00Z", value=10)]
    assert [f.amount for f in fees(engine([spec], evs))] == [D("200.05"), D("300.15")]
