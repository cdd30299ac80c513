"""Hostile events against the store's validation: huge numbers, unholdable quantities, control
characters and lone surrogates, pre-1970 instants, non-ASCII digits, oversized events, and every
documented limit at its exact boundary on both validation paths.

Through the public entry (``Store.ingest`` receipts, the quarantine, ``read_columns``) on a real
SQLite file, plus ``gpubill ingest`` as a real subprocess. The fast path (``encode.prepare``'s
column checks) takes a chunk whose events all have integer timestamps and no extra top-level
field; one event with an ISO timestamp sends its whole chunk down the slow path
(``validate.check_event`` per event), so each limit is checked both ways.
"""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gpubill.store import Store
from gpubill.store.encode import prepare
from gpubill.store.numeric import MISSING, UNHOLDABLE
from gpubill.store.validate import MAX_EVENT_BYTES, MAX_TS_MS, check_event, quarantine_bytes

TS = 1_735_689_600
ISO = "2025-01-01T00:00:00Z"          # the same instant as TS, but forces the slow path
BIG = "9" * 5000                      # beyond Python's int() string-conversion limit (4300)
LONG = "9" * 4096                     # the longest property string: a number no pair can hold
I64 = 2**63 - 1
CLI_TIMEOUT_S = 120


def ev(txn="t1", sub="s1", code="gpu_job", ts=TS, **props):
    return {"transaction_id": txn, "external_subscription_id": sub, "code": code,
            "timestamp": ts, "properties": props}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "s.db")
    yield s
    s.close()


def ingest_one(store, event, path="fast"):
    """The receipt result of ``event`` ingested on the given validation path."""
    if path == "fast":
        return store.ingest([event]).result(0)
    rec = store.ingest([event, ev("slow-path-companion", ts=ISO)])
    assert rec.result(1).status in ("ingested", "duplicate")
    return rec.result(0)


def codes(result):
    return {(p.field, p.code) for p in result.problems}


def rejected_with(store, event, field, code, path="fast"):
    r = ingest_one(store, event, path)
    assert r.status == "rejected", (event, r)
    assert (field, code) in codes(r), r.problems
    q = store.get_rejected(r.quarantine_id)
    assert q is not None and any(x["field"] == field and x["code"] == code for x in q.reasons)
    return r


BOTH = pytest.mark.parametrize("path", ["fast", "slow"])


# ---------------------------------------------------------------- 1. numbers beyond int()'s limit

@BOTH
def test_a_5000_digit_precise_amount_is_refused_with_a_reason(store, path):
    r = rejected_with(store, {**ev("a"), "precise_total_amount_cents": BIG},
                      "precise_total_amount_cents", "out_of_range", path)
    assert str(I64) in r.problems[0].message


@BOTH
def test_a_5000_digit_timestamp_is_refused_with_a_reason(store, path):
    rejected_with(store, ev("a", ts=BIG), "timestamp", "out_of_range", path)


@BOTH
def test_a_4096_digit_canonical_quantity_is_refused_as_out_of_range(store, path):
    rejected_with(store, ev("a", duration_seconds=LONG), "properties.duration_seconds", "out_of_range", path)
    rejected_with(store, ev("b", input_tokens=LONG), "properties.input_tokens", "out_of_range", path)


@BOTH
def test_a_4096_digit_free_property_is_kept_as_a_string_marked_unholdable(store, path):
    assert ingest_one(store, ev("a", order_ref=LONG), path).status == "ingested"
    c = store.read_columns()
    m, e = c.numeric("order_ref")
    assert int(e[0]) == UNHOLDABLE and int(m[0]) == 0
    assert c.strings.decode(c.dim("order_ref"))[0] == LONG
    (stored,) = store.get_events("a")
    assert stored.properties["order_ref"] == LONG


@BOTH
def test_a_5000_digit_property_is_over_the_string_limit(store, path):
    rejected_with(store, ev("a", order_ref=BIG), "properties.order_ref", "too_long", path)
    rejected_with(store, ev("b", duration_seconds=BIG), "properties.duration_seconds", "too_long", path)


def test_good_events_beside_a_5000_digit_number_are_stored(store):
    rec = store.ingest([ev("a"), {**ev("b"), "precise_total_amount_cents": BIG}, ev("c")])
    assert [r.status for r in rec.results()] == ["ingested", "rejected", "ingested"]
    assert store.count_events() == 2 and len(store.list_rejected()) == 1


def test_cli_ingest_quarantines_a_5000_digit_line_and_stores_the_others(tmp_path):
    f = tmp_path / "e.jsonl"
    lines = [ev("a"), {**ev("b"), "precise_total_amount_cents": BIG}, ev("c", ts=BIG), ev("d")]
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    db = tmp_path / "s.db"
    env = {k: v for k, v in os.environ.items() if k != "GPUBILL_STORE"}
    p = subprocess.run([sys.executable, "-m", "gpubill", "ingest", str(f), "--store", str(db)],
                       capture_output=True, env=env, timeout=CLI_TIMEOUT_S)
    err = p.stderr.decode()
    assert p.returncode == 1, err                     # some rejected, not 70 (internal error)
    assert "Traceback" not in err and "internal error" not in err
    assert f"{f}:2: rejected: precise_total_amount_cents:" in err
    assert f"{f}:3: rejected: timestamp:" in err
    assert p.stdout.decode() == f"{f}: 2 ingested, 0 duplicate, 0 conflict, 2 rejected\n"
    with Store(db) as s:
        assert s.count_events() == 2 and len(s.list_rejected()) == 2


# ---------------------------------------------------------------- 2. quantities that cannot be held

@BOTH
@pytest.mark.parametrize("name,value", [
    ("input_tokens", 2**63), ("input_tokens", 2**64 - 1), ("output_tokens", str(2**63)),
    ("duration_seconds", "123456789012345678901234"), ("duration_seconds", 1e300),
    ("gpu_count", 1e19), ("peak_vram_gb", "0.0000000000000000001"), ("avg_utilization", 1e-30),
    ("total_flops", 10**40),
])
def test_canonical_quantities_the_engine_cannot_hold_are_refused(store, name, value, path):
    r = rejected_with(store, ev("a", **{name: value}), f"properties.{name}", "out_of_range", path)
    assert str(I64) in r.problems[0].message and "18" in r.problems[0].message


@BOTH
@pytest.mark.parametrize("name,value", [
    ("input_tokens", I64), ("input_tokens", str(I64)), ("duration_seconds", "0.000000000000000001"),
    ("duration_seconds", "9223372036854775807.000000000000000000"), ("gpu_count", 0.5),
    ("total_flops", 10**21), ("total_flops", 3.14e23), ("avg_utilization", "1.000000000000000000000"),
])
def test_canonical_quantities_at_the_bound_are_accepted(store, name, value, path):
    r = ingest_one(store, ev("a", **{name: value}), path)
    assert r.status == "ingested", r.problems
    m, e = store.read_columns().numeric(name)
    assert int(e[0]) not in (MISSING, UNHOLDABLE)


@BOTH
@pytest.mark.parametrize("value", [1e300, 18446744073709551615, 2**63, -(2**63), 10**20 + 1, 5e-324,
                                   [1, 1e300], {"deep": 2**64}])
def test_json_numbers_that_cannot_be_held_are_refused_in_any_property(store, value, path):
    r = ingest_one(store, ev("a", x=value), path)
    assert r.status == "rejected" and r.problems[0].code == "out_of_range", r.problems
    assert r.problems[0].field.startswith("properties.x")


@BOTH
def test_numeric_strings_that_cannot_be_held_are_kept_and_marked_unholdable(store, path):
    assert ingest_one(store, ev("a", x="123456789012345678901234"), path).status == "ingested"
    store.ingest([ev("b", x="12"), ev("c", x="abc")])
    c = store.read_columns()
    m, e = c.numeric("x")
    texts = c.strings.decode(c.dim("x"))
    got = {t: (int(a), int(b)) for t, a, b in zip(texts, m, e) if t is not None}
    assert got == {"123456789012345678901234": (0, UNHOLDABLE), "12": (12, 0), "abc": (0, MISSING)}


# ---------------------------------------------------------------- 3. control characters, surrogates

@BOTH
@pytest.mark.parametrize("field", ["transaction_id", "external_subscription_id", "code"])
@pytest.mark.parametrize("bad", ["nul\u0000tail", "\u001f", "del\u007f", "line\nbreak", "lone\ud800",
                                 "\udfff"])
def test_ids_with_control_characters_or_lone_surrogates_are_refused(store, field, bad, path):
    r = rejected_with(store, {**ev("a"), field: bad}, field, "invalid_characters", path)
    assert "U+" in r.problems[0].message


def test_a_nul_in_a_transaction_id_is_not_truncated_into_another_id(store):
    assert store.ingest([ev("nul\u0000tail")]).result(0).status == "rejected"
    assert store.get_events("nul") == [] and store.get_events("nul\u0000tail") == []


@BOTH
def test_printable_unicode_ids_round_trip(store, path):
    txn = "tx ü 😀 \u00a0\u200b é"
    assert ingest_one(store, ev(txn, sub="søb", code="gpu_job"), path).status == "ingested"
    (got,) = store.get_events(txn)
    assert (got.transaction_id, got.external_subscription_id) == (txn, "søb")


@BOTH
@pytest.mark.parametrize("props,field", [
    ({"\ud800": 1}, "properties.\\ud800"),
    ({"x": "a\ud800b"}, "properties.x"),
    ({"gpu_type": "\udc00"}, "properties.gpu_type"),
    ({"x": ["ok", "\ud83d"]}, "properties.x.1"),
    ({"x": {"k\udfff": 1}}, "properties.x.k\\udfff"),
])
def test_lone_surrogates_in_properties_are_refused_not_crashing(store, props, field, path):
    r = rejected_with(store, {**ev("a"), "properties": props}, field, "invalid_unicode", path)
    assert "surrogate" in r.problems[0].message
    q = store.get_rejected(r.quarantine_id)
    assert q.raw                       # the payload is kept, escaped


def test_a_lone_surrogate_in_an_extra_top_level_field_is_refused(store):
    r = store.ingest([{**ev("a"), "note": "\ud800"}]).result(0)
    assert r.status == "rejected" and ("note", "invalid_unicode") in codes(r)


def test_a_lookup_by_an_id_with_a_lone_surrogate_finds_nothing_instead_of_failing(store):
    store.ingest([ev("a")])
    assert store.get_events("\ud800") == [] and store.get_events("a\udfff", "s\ud800") == []


@BOTH
@pytest.mark.parametrize("event,field,code", [
    ({**ev("a"), "properties": {1: 2}}, "properties", "invalid_key"),
    ({**ev("a"), 5: "x"}, "event", "invalid_key"),
    ({**ev("a"), "extra": float("nan")}, "extra", "not_finite"),
    ({**ev("a"), "extra": {"deep": 2**64}}, "extra.deep", "out_of_range"),
    (ev("a", x={1, 2}), "properties.x", "invalid_type"),
    (ev("a", ts=True), "timestamp", "invalid_format"),
    ({**ev("a"), "precise_total_amount_cents": True}, "precise_total_amount_cents", "invalid_format"),
    ({**ev("a"), "precise_total_amount_cents": 1e300}, "precise_total_amount_cents", "out_of_range"),
])
def test_python_objects_json_cannot_hold_are_refused_with_a_reason(store, event, field, code, path):
    rejected_with(store, event, field, code, path)


@pytest.mark.parametrize("value", [10**5000, [10**5000], {"k": "\ud800"}, {3: float("nan")}, {1, 2}],
                         ids=["huge-int", "huge-int-in-list", "surrogate", "int-key-nan", "set"])
def test_validation_and_quarantine_rendering_never_raise(value):
    """Python API input JSON could never carry: still a reason, and bytes for quarantine."""
    deep = []
    for _ in range(5000):
        deep = [deep]
    for v in (value, deep):
        event = {**ev("a", x=v), "extra": v, "timestamp": v if type(v) is int else TS}
        _, problems = check_event(event, NOW, 86_400_000)
        assert problems and all(p.message for p in problems)
        assert prepare([event], NOW, 86_400_000).rejected
        assert isinstance(quarantine_bytes(event), bytes)


# ---------------------------------------------------------------- 4. nothing before 1970

@BOTH
@pytest.mark.parametrize("ts", ["1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.999+00:00",
                                "1970-01-01T00:59:59.999+01:00", "1969-12-31T23:59:59.9999999Z",
                                -0.5, -1e-9, -1, "-0.001", "-0.0001", "-1", "0001-01-01T00:00:00Z"])
def test_instants_before_1970_are_refused_in_every_form(store, ts, path):
    rejected_with(store, ev("a", ts=ts), "timestamp", "out_of_range", path)


@BOTH
@pytest.mark.parametrize("ts", [0, "0", "-0", -0.0, "0.0009", "1970-01-01T00:00:00Z",
                                "1970-01-01T01:00:00+01:00", "1970-01-01T00:00:00.000999Z"])
def test_the_epoch_itself_is_accepted(store, ts, path):
    r = ingest_one(store, ev("a", ts=ts), path)
    assert r.status == "ingested", r.problems
    assert store.get_events("a")[0].timestamp_ms == 0


# ---------------------------------------------------------------- 5. ASCII digits only

@BOTH
@pytest.mark.parametrize("name,value,code", [
    ("input_tokens", "\u0663", "not_an_integer"), ("duration_seconds", "\uff13", "not_a_number"),
    ("gpu_count", "1\u0663", "not_a_number"), ("avg_utilization", "0.\u0665", "not_a_number"),
])
def test_non_ascii_digits_are_not_numbers(store, name, value, code, path):
    rejected_with(store, ev("a", **{name: value}), f"properties.{name}", code, path)


@BOTH
@pytest.mark.parametrize("ts", ["\u0661\u0667\u0663\u0665\u0666\u0668\u0669\u0666\u0660\u0660",
                                "\uff11\uff17\uff13\uff15"])
def test_non_ascii_digit_timestamps_are_refused(store, ts, path):
    rejected_with(store, ev("a", ts=ts), "timestamp", "invalid_format", path)


@BOTH
def test_non_ascii_digit_strings_are_not_numeric_columns(store, path):
    assert ingest_one(store, ev("a", x="\u0663", y="\uff13"), path).status == "ingested"
    assert ingest_one(store, {**ev("b"), "precise_total_amount_cents": "\u0663"}, path).status == "rejected"
    c = store.read_columns()
    assert int(c.numeric("x")[1][0]) == MISSING and int(c.numeric("y")[1][0]) == MISSING


# ---------------------------------------------------------------- 6. the per-event size limit

def sized(txn, total, ts=TS):
    """An event whose compact JSON is exactly ``total`` bytes (string properties of <= 4096 chars)."""
    e = ev(txn, ts=ts)
    pad = total - len(json.dumps(e, separators=(",", ":")).encode())
    k = -(-pad // 4000)
    keys = [f"p{i:02d}" for i in range(k)]
    room = pad - sum(len(key) + 5 for key in keys) - (k - 1)   # "key":"" and the commas
    e["properties"] = {key: "x" * (room // k + (i < room % k)) for i, key in enumerate(keys)}
    assert len(json.dumps(e, separators=(",", ":")).encode()) == total
    return e


@BOTH
def test_an_event_over_the_size_limit_is_refused_and_quarantined(store, path):
    huge = ev("a", **{f"k{i}": "x" * 4000 for i in range(200)})
    huge["properties"]["blob"] = ["y" * 4000] * 200
    huge["padding"] = "z" * 20_000_000
    r = rejected_with(store, huge, "event", "too_large", path)
    assert str(MAX_EVENT_BYTES) in r.problems[0].message


@BOTH
def test_the_size_limit_is_exact(store, path):
    assert ingest_one(store, sized("at", MAX_EVENT_BYTES), path).status == "ingested"
    rejected_with(store, sized("over", MAX_EVENT_BYTES + 1), "event", "too_large", path)


def test_the_size_limit_counts_the_raw_payload_when_given():
    """What is stored is the raw text when there is one: its length is what the limit counts."""
    at, over = sized("at", MAX_EVENT_BYTES - 1), sized("over", MAX_EVENT_BYTES - 1)
    raws = [json.dumps(at, separators=(",", ":")).encode() + b" ",      # 64 KiB exactly
            json.dumps(over, separators=(",", ":")).encode() + b"  "]   # one byte over
    for events in ([at, over], [at, over, ev("slow", ts=ISO)]):
        chunk = prepare(events, NOW, 86_400_000, raws + [b"{}"] * (len(events) - 2))
        assert list(chunk.rejected) == [1] and chunk.rejected[1][0].code == "too_large"
        assert chunk.good.tolist()[:1] == [0]


# ---------------------------------------------------------------- the other limits, both paths

@BOTH
@pytest.mark.parametrize("field", ["transaction_id", "external_subscription_id", "code"])
def test_id_length_limit_is_exact(store, field, path):
    assert ingest_one(store, {**ev("a"), field: "i" * 256}, path).status == "ingested"
    rejected_with(store, {**ev("b"), field: "j" * 257}, field, "invalid_length", path)
    rejected_with(store, {**ev("c"), field: ""}, field, "invalid_length", path)


@BOTH
def test_property_count_and_key_length_limits_are_exact(store, path):
    assert ingest_one(store, ev("a", **{f"p{i}": i for i in range(256)}), path).status == "ingested"
    rejected_with(store, ev("b", **{f"p{i}": i for i in range(257)}), "properties", "too_large", path)
    assert ingest_one(store, ev("c", **{"k" * 256: 1}), path).status == "ingested"
    rejected_with(store, ev("d", **{"k" * 257: 1}), "properties." + "k" * 257, "invalid_key", path)


@BOTH
def test_nested_entry_count_limit_is_exact(store, path):
    assert ingest_one(store, ev("a", x=list(range(256)), y={f"k{i}": i for i in range(256)}),
                      path).status == "ingested"
    rejected_with(store, ev("b", x=list(range(257))), "properties.x", "too_large", path)
    rejected_with(store, ev("c", y={f"k{i}": i for i in range(257)}), "properties.y", "too_large", path)


@BOTH
def test_string_length_limit_is_exact(store, path):
    assert ingest_one(store, ev("a", x="s" * 4096, gpu_type="g" * 4096, y=["n" * 4096]),
                      path).status == "ingested"
    rejected_with(store, ev("b", x="s" * 4097), "properties.x", "too_long", path)
    rejected_with(store, ev("c", gpu_type="g" * 4097), "properties.gpu_type", "too_long", path)
    rejected_with(store, ev("d", y=["n" * 4097]), "properties.y.0", "too_long", path)


@BOTH
def test_nesting_depth_limit_is_exact(store, path):
    assert ingest_one(store, ev("a", x={"a": {"b": {"c": 1}}}, y=[[[1]]]), path).status == "ingested"
    rejected_with(store, ev("b", x={"a": {"b": {"c": {"d": 1}}}}), "properties.x.a.b.c", "too_deep", path)
    rejected_with(store, ev("c", y=[[[[1]]]]), "properties.y.0.0.0", "too_deep", path)


@BOTH
def test_timestamp_upper_limit_is_exact(tmp_path, path):
    with Store(tmp_path / "s.db", max_future_s=10**12) as s:
        top_s = MAX_TS_MS // 1000
        assert ingest_one(s, ev("a", ts=top_s), path).status == "ingested"
        assert ingest_one(s, ev("b", ts="9999-12-31T23:59:59.999Z"), path).status == "ingested"
        rejected_with(s, ev("c", ts=top_s + 1), "timestamp", "out_of_range", path)
        rejected_with(s, ev("d", ts="9999-12-31T23:59:59-00:01"), "timestamp", "out_of_range", path)


@BOTH
def test_future_limit_is_exact(tmp_path, path):
    with Store(tmp_path / "s.db", max_future_s=3600) as s:
        now = __import__("time").time()
        ok = int(now) + 3000
        assert ingest_one(s, ev("a", ts=ok), path).status == "ingested"
        rejected_with(s, ev("b", ts=int(now) + 7200), "timestamp", "too_far_in_future", path)


# ---------------------------------------------------------------- fast path == slow path

NOW = 1_767_225_600_000
_text = st.one_of(st.text(max_size=6), st.sampled_from(
    ["\u0000", "\ud800", "\u0663", "\uff13", "x" * 4097, "9" * 30, "-0.5", "1e3", "07", "0.1",
     "nul\u0000", "s" * 257]))
_num = st.one_of(
    st.integers(-(2**64), 2**64), st.sampled_from([2**63 - 1, 2**63, -(2**63), 10**21, 1e300, 5e-324, -0.0]),
    st.floats(allow_nan=True, allow_infinity=True))
_leaf = st.one_of(st.none(), st.booleans(), _num, _text)
_value = st.recursive(_leaf, lambda c: st.one_of(st.lists(c, max_size=3),
                                                 st.dictionaries(_text, c, max_size=3)), max_leaves=6)
_canon = st.sampled_from(["gpu_count", "duration_seconds", "avg_utilization", "input_tokens",
                          "total_flops", "gpu_type", "end_reason", "x", "y"])
_ts = st.one_of(st.integers(-5, 2 * 10**9), _num, _text,
                st.sampled_from(["2025-01-01T00:00:00Z", "1969-12-31T23:59:59.5Z", "2025-01-01T00:00:00"]))
_id = st.one_of(_text, st.sampled_from(["t1", "t2", "i" * 256, "i" * 257]), st.integers(0, 3))
_event = st.fixed_dictionaries(
    {"transaction_id": _id, "external_subscription_id": _id, "code": _id, "timestamp": _ts,
     "properties": st.one_of(st.dictionaries(st.one_of(_canon, _text), _value, max_size=4), _leaf)},
    optional={"precise_total_amount_cents": st.one_of(_num, _text), "extra": _value})
# Events the fast path takes (integer timestamps, five fields, clean ids), hostile property values
_good_id = st.one_of(st.sampled_from(["t1", "t2", "sub", "gpu_job", "i" * 256]), st.text(min_size=1, max_size=4))
_fast_event = st.fixed_dictionaries(
    {"transaction_id": _good_id, "external_subscription_id": _good_id, "code": _good_id,
     "timestamp": st.integers(0, 1_767_225_600), "properties": st.dictionaries(
         st.one_of(_canon, _text), st.one_of(_value, st.floats(), st.integers(-(2**63), 2**63)), max_size=4)})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.lists(_fast_event, min_size=1, max_size=6),
                 st.lists(st.one_of(_event, _fast_event), min_size=1, max_size=6)))
def test_fast_and_slow_paths_give_the_same_verdict(events):
    chunk = prepare(events, NOW, 86_400_000)
    for i, e in enumerate(events):
        _, problems = check_event(e, NOW, 86_400_000)
        assert (i in chunk.rejected) == bool(problems), (e, problems, chunk.rejected.get(i))
        if problems:
            assert {p.field for p in chunk.rejected[i]} == {p.field for p in problems}
