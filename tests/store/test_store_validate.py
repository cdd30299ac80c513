"""Validation of the canonical event: every rejection names the field and the reason."""

import math

import pytest

from gpubill.store.validate import check_event, parse_timestamp

from storekit import ev

NOW = 1_767_225_600_000
DAY = 86_400_000


def problems(obj):
    norm, ps = check_event(obj, NOW, DAY)
    return {(p.field, p.code) for p in ps}


def test_a_good_event_normalizes():
    norm, ps = check_event(ev(gpu_count=0.5, duration_seconds=60, end_reason="preempted"), NOW, DAY)
    assert ps == [] and norm.timestamp_ms == 1_735_689_600_000


@pytest.mark.parametrize("value,ms", [
    (1735689600, 1735689600000),
    ("1735689600", 1735689600000),
    ("1741219251.590", 1741219251590),
    (1741219251.5901, 1741219251590),       # sub-millisecond digits truncate toward the past
    ("2025-01-01T00:00:00Z", 1735689600000),
    ("2025-01-01T01:00:00+01:00", 1735689600000),
    ("2025-01-01T00:00:00.250-00:00", 1735689600250),
])
def test_timestamps_as_lago_and_iso_with_offset(value, ms):
    assert parse_timestamp(value, NOW) == (ms, None)


@pytest.mark.parametrize("value", ["2025-01-01T00:00:00", "2025-01-01 12:00:00", "yesterday", "1e9",
                                   "+5", ".5", True, [1], {}, float("nan"), float("inf"), -1])
def test_bad_timestamps_are_rejected_by_name(value):
    assert {f for f, _ in problems(ev(ts=value))} == {"timestamp"}


def test_missing_timestamp_means_reception_time():
    norm, ps = check_event({**ev(), "timestamp": None}, NOW, DAY)
    assert norm.timestamp_ms == NOW


def test_future_limit_is_configurable():
    soon = NOW // 1000 + 3600
    assert problems(ev(ts=soon)) == set()
    assert problems(ev(ts=NOW // 1000 + 2 * 86400)) == {("timestamp", "too_far_in_future")}
    _, ps = check_event(ev(ts=soon), NOW, 0)
    assert [p.code for p in ps] == ["too_far_in_future"]


@pytest.mark.parametrize("field", ["transaction_id", "external_subscription_id", "code"])
def test_required_ids(field):
    e = ev()
    del e[field]
    assert problems(e) == {(field, "value_is_mandatory")}
    assert problems({**ev(), field: 12}) == {(field, "invalid_type")}
    assert problems({**ev(), field: ""}) == {(field, "invalid_length")}
    assert problems({**ev(), field: "x" * 257}) == {(field, "invalid_length")}


@pytest.mark.parametrize("name,value,code", [
    ("gpu_count", -1, "must_be_non_negative"),
    ("gpu_count", "eight", "not_a_number"),
    ("gpu_count", True, "not_a_number"),
    ("duration_seconds", -0.5, "must_be_non_negative"),
    ("duration_seconds", "1e3", "not_a_number"),
    ("avg_utilization", 1.5, "out_of_range"),
    ("input_tokens", 1.5, "not_an_integer"),
    ("output_tokens", "-3", "must_be_non_negative"),
    ("cached_tokens", "12.0", "not_an_integer"),
    ("end_reason", "oom", "invalid_value"),
    ("availability_class", "preemptible", "invalid_value"),
    ("operation_type", "delete", "invalid_value"),
    ("gpu_type", 3, "not_a_string"),
    ("gpu_type", "", "not_a_string"),
])
def test_canonical_properties_are_type_checked(name, value, code):
    assert problems(ev(**{name: value})) == {(f"properties.{name}", code)}


@pytest.mark.parametrize("name,value", [
    ("gpu_count", 0.25), ("gpu_count", "8"), ("duration_seconds", 0), ("avg_utilization", 1),
    ("input_tokens", "1000"), ("total_flops", 10**21), ("end_reason", "failed_infrastructure"),
    ("availability_class", "spot"), ("operation_type", "remove"), ("anything", [1, {"a": None}]),
])
def test_canonical_properties_accept(name, value):
    assert problems(ev(**{name: value})) == set()


def test_limits_on_nesting_size_and_non_finite_values():
    deep = {"a": {"b": {"c": {"d": {"e": 1}}}}}
    assert problems(ev(x=deep)) == {("properties.x.a.b.c", "too_deep")}
    assert problems(ev(x="y" * 5000)) == {("properties.x", "too_long")}
    assert problems(ev(x=math.nan)) == {("properties.x", "not_finite")}
    assert problems(ev(**{f"p{i}": i for i in range(300)})) == {("properties", "too_large")}
    assert problems({**ev(), "properties": [1]}) == {("properties", "invalid_type")}
    assert problems([ev()]) == {("event", "invalid_type")}


def test_precise_total_amount_cents_is_a_strict_decimal():
    assert problems({**ev(), "precise_total_amount_cents": "123.45"}) == set()
    assert problems({**ev(), "precise_total_amount_cents": "12,3"}) == {
        ("precise_total_amount_cents", "invalid_format")}
