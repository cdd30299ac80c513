"""lago-semantics.md section b: metered aggregations and metric rounding, as `.bill` metrics, on both engines.

May 2024 (31 days, UTC) is the period unless a test says otherwise.
"""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

import pytest

from lago_bill import compile_bill, event, one


def rate_metric(engine, metric, events, charge="  charge m 1 per unit", **kw):
    return one(engine([compile_bill(metric, charge, **kw)], events))


# ------------------------------------------------------------------ common rules


def test_period_bounds_are_inclusive(engine):
    """from <= timestamp <= to: the first instant and 23:59:59.999 of the last day count; a millisecond
    outside either bound does not."""
    evs = [event("e", t) for t in ("2024-04-30T23:59:59.999Z", "2024-05-01T00:00:00Z",
                                   "2024-05-31T23:59:59.999Z", "2024-06-01T00:00:00Z")]
    line = rate_metric(engine, "metric m { event e count }\n", evs)
    assert (line.units, line.event_count) == (2, 2)


def test_events_outside_the_subscription_are_ignored(engine):
    """An event before the contract starts or after its (inclusive) last day is ignored."""
    evs = [event("e", t) for t in ("2024-05-09T23:59:59Z", "2024-05-10T00:00:00Z",
                                   "2024-05-20T23:59:59Z", "2024-05-21T00:00:00Z")]
    line = rate_metric(engine, "metric m { event e count }\n", evs, starts="2024-05-10", contract="ends 2024-05-20")
    assert line.units == 2


@pytest.mark.parametrize("agg", ["sum value", "max value", "latest value", "weighted sum value"])
def test_strict_numbers_non_decimal_values_are_ignored_and_not_counted(engine, agg):
    """The property must match ^-?\\d+(\\.\\d+)?$: "1e3", "+5", ".5" and "5." (and a missing property) are
    silently ignored and not counted."""
    good = [event("e", "2024-05-01T00:00:00Z", value="3")]
    bad = [event("e", "2024-05-01T00:00:00Z", value=v) for v in ("1e3", "+5", ".5", "5.")]
    bad.append(event("e", "2024-05-01T00:00:00Z", other="1"))
    line = rate_metric(engine, f"metric m {{ event e {agg} }}\n", good + bad)
    assert line.event_count == 1
    assert line.units == 3


def test_empty_result_is_zero_with_count_zero(engine):
    line = rate_metric(engine, "metric m { event e sum value }\n", [])
    assert (line.units, line.event_count, line.amount) == (0, 0, 0)


# ------------------------------------------------------------------ metric rounding


@pytest.mark.parametrize("rounding,units", [
    ("round 2", D("123.46")), ("ceil", D(124)), ("ceil -2", D(200)), ("floor -2", D(100)),
])
def test_metric_rounding_spec(engine, rounding, units):
    """Lago spec with 123.456: round 2 -> 123.46, ceil -> 124, ceil -2 -> 200, floor -2 -> 100."""
    metric = f"metric m {{ event e sum value rounding {rounding} }}\n"
    line = rate_metric(engine, metric, [event("e", "2024-05-02T00:00:00Z", value="123.456")])
    assert line.units == units
    assert line.precise_amount == units


def test_metric_rounding_applies_to_the_aggregate_not_each_event(engine):
    """0.4 + 0.4 with ceil: the aggregate 0.8 rounds to 1 (per-event rounding would give 2)."""
    evs = [event("e", "2024-05-02T00:00:00Z", value="0.4"), event("e", "2024-05-03T00:00:00Z", value="0.4")]
    assert rate_metric(engine, "metric m { event e sum value rounding ceil }\n", evs).units == 1


# ------------------------------------------------------------------ count, sum, max, latest


def test_count_sum_and_max(engine):
    """count counts events; sum's and max's count is the number of valid numeric events."""
    evs = [event("e", "2024-05-02T00:00:00Z", value="7"), event("e", "2024-05-03T00:00:00Z", value="-3.5"),
           event("e", "2024-05-04T00:00:00Z", value="x")]
    c = rate_metric(engine, "metric m { event e count }\n", evs)
    s = rate_metric(engine, "metric m { event e sum value }\n", evs)
    mx = rate_metric(engine, "metric m { event e max value }\n", evs)
    assert (c.units, c.event_count) == (3, 3)
    assert (s.units, s.event_count) == (D("3.5"), 2)
    assert (mx.units, mx.event_count) == (7, 2)


def test_latest_negative_becomes_zero(engine):
    evs = [event("e", "2024-05-02T00:00:00Z", value="7"), event("e", "2024-05-03T00:00:00Z", value="-3")]
    line = rate_metric(engine, "metric m { event e latest value }\n", evs)
    assert (line.units, line.event_count) == (0, 2)


def test_latest_is_latest_timestamp_then_latest_ingestion(engine):
    """Same timestamp: the later ingestion (rowid) wins, whatever the order events are listed in; an
    earlier timestamp ingested last does not."""
    evs = [event("e", "2024-05-20T00:00:00Z", value="9", rowid=2),
           event("e", "2024-05-20T00:00:00Z", value="4", rowid=1),
           event("e", "2024-05-10T00:00:00Z", value="11", rowid=3)]
    line = rate_metric(engine, "metric m { event e latest value }\n", evs)
    assert (line.units, line.event_count) == (9, 3)


# ------------------------------------------------------------------ unique count


def test_unique_count_is_the_end_of_period_state(engine):
    """a: added then removed -> 0; b: added twice -> 1; c: added, removed on the period's last instant -> 0;
    d: removed without an add -> nothing. Result 1."""
    last = "2024-05-31T23:59:59.999Z"
    evs = [event("e", "2024-05-02T00:00:00Z", gpu="a"),
           event("e", "2024-05-03T00:00:00Z", gpu="a", operation_type="remove"),
           event("e", "2024-05-04T00:00:00Z", gpu="b"), event("e", "2024-05-05T00:00:00Z", gpu="b"),
           event("e", "2024-05-06T00:00:00Z", gpu="c"), event("e", last, gpu="c", operation_type="remove"),
           event("e", "2024-05-07T00:00:00Z", gpu="d", operation_type="remove")]
    assert rate_metric(engine, "metric m { event e unique count gpu }\n", evs).units == 1


def test_metered_unique_count_ignores_earlier_periods(engine):
    evs = [event("e", "2024-04-02T00:00:00Z", gpu="a"), event("e", "2024-05-02T00:00:00Z", gpu="b")]
    assert rate_metric(engine, "metric m { event e unique count gpu }\n", evs).units == 1


# ------------------------------------------------------------------ weighted sum

SPEC_DELTAS = [("00:00", 2), ("01:00", 3), ("01:30", 1), ("02:00", -4), ("04:00", -2), ("05:00", 10), ("05:30", -10)]


def test_weighted_sum_spec(engine):
    """+2 @0h, +3 @1h, +1 @1:30, -4 @2h, -2 @4h, +10 @5h, -10 @5:30 in a 31-day month
    -> 59400 / 2678400 = 0.02218 (the denominator is the full period)."""
    evs = [event("e", f"2024-05-01T{t}:00Z", value=v) for t, v in SPEC_DELTAS]
    line = rate_metric(engine, "metric m { event e weighted sum value }\n", evs)
    assert round(line.units, 5) == D("0.02218")
    assert abs(Fraction(line.units) - Fraction(59400, 2678400)) < Fraction(1, 10**30)


def test_weighted_sum_same_instant_has_zero_duration(engine):
    """Lago spec: two +3 at the same instant -> 6 (the zero-length row between them adds nothing)."""
    evs = [event("e", "2024-05-01T00:00:00Z", value="3"), event("e", "2024-05-01T00:00:00Z", value="3")]
    assert rate_metric(engine, "metric m { event e weighted sum value }\n", evs).units == 6


def test_weighted_sum_level_for_half_the_period(engine):
    """Level 64 for 15 days and 192 for the next 15 days of a 30-day month averages 128 (docs' example)."""
    evs = [event("e", "2024-06-01T00:00:00Z", value="64"), event("e", "2024-06-16T00:00:00Z", value="128")]
    line = rate_metric(engine, "metric m { event e weighted sum value }\n", evs, period="2024-06")
    assert line.units == 128
