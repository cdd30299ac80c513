"""``encode.prepare``'s bulk paths against the event-by-event answer.

A chunk's properties are read per group of events sharing a code and a key order (``_same_shape``)
when the group is large enough, else key by key; its ids are dictionary-encoded in one pass
(``_factorize``). Whatever path a chunk takes, each event's verdict, reasons, key and column values
must be the ones it gets alone (a one-event chunk takes the key-by-key path). Real ingestion through
``Store.ingest`` and ``gpubill ingest`` checks what reaches the store.
"""

import subprocess
import sys

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from gpubill.store import Store
from gpubill.store.encode import LAZY, _GROUP_MIN, prepare
from gpubill.store.numeric import MISSING

import pytest

NOW = 1_767_225_600_000
MAX_FUTURE = 86_400_000
TS = 1_735_689_600


def ev(txn="t1", sub="s1", code="gpu_job", ts=TS, **props):
    return {"transaction_id": txn, "external_subscription_id": sub, "code": code,
            "timestamp": ts, "properties": props}


def value_at(chunk, name, j):
    """(string form or None, mantissa, exponent) of property ``name`` of the chunk's valid event j."""
    col = chunk.props.get(name)
    if col is None:
        return None, 0, MISSING
    m, e = (0, MISSING) if col.m is None else (int(col.m[j]), int(col.e[j]))
    sid = (LAZY if e != MISSING else -1) if col.sid is None else int(col.sid[j])  # no sid: numbers only
    text = col.strings[sid] if sid >= 0 else ("the number's" if sid == LAZY else None)
    return text, (m if e != MISSING else 0), e


def assert_same_as_alone(events):
    chunk = prepare(events, NOW, MAX_FUTURE)
    at = {int(p): j for j, p in enumerate(chunk.good)}
    for i, e in enumerate(events):
        alone = prepare([e], NOW, MAX_FUTURE)
        assert (i in chunk.rejected) == (0 in alone.rejected), (e, chunk.rejected.get(i), alone.rejected)
        if i in chunk.rejected:
            assert chunk.rejected[i] == alone.rejected[0]
            continue
        j = at[i]
        assert (chunk.k1[j], chunk.k2[j], chunk.ts_ms[j]) == (alone.k1[0], alone.k2[0], alone.ts_ms[0])
        assert chunk.code_dict[0][chunk.code_dict[1][j]] == e["code"]
        assert chunk.sub_dict[0][chunk.sub_dict[1][j]] == e["external_subscription_id"]
        for name in set(chunk.props) | set(alone.props):
            assert value_at(chunk, name, j) == value_at(alone, name, 0), (name, e)


_text = st.one_of(st.text(max_size=5), st.sampled_from(
    ["\ud800", "\u0663", "x" * 4097, "9" * 30, "-0.5", "1e3", "07", "0.1", "", "spot", "completed"]))
_leaf = st.one_of(st.none(), st.booleans(), _text, st.floats(), st.integers(-(2**64), 2**64),
                  st.sampled_from([2**63 - 1, -(2**63), 0.5, 1e300, 5e-324, -0.0]))
_value = st.one_of(_leaf, st.lists(_leaf, max_size=2), st.dictionaries(st.text(max_size=3), _leaf, max_size=2))
_name = st.one_of(st.sampled_from(["gpu_count", "duration_seconds", "avg_utilization", "input_tokens",
                                   "total_flops", "gpu_type", "end_reason", "availability_class", "region",
                                   "x"]), st.text(max_size=3))
_shape = st.dictionaries(_name, st.lists(_value, min_size=1, max_size=3), max_size=5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_shape, min_size=1, max_size=3), st.booleans(), st.randoms(use_true_random=False))
def test_events_read_as_groups_get_the_values_and_verdicts_they_get_alone(shapes, reorder, rnd):
    """Each shape is one code's events, enough of them for a group; each event takes one of the
    shape's candidate values per property, so good and refused values share a group. ``reorder``
    gives every other event of a code its keys in reverse order (that group is read key by key)."""
    events = []
    for k, shape in enumerate(shapes):
        for i in range(_GROUP_MIN + 2):
            props = {name: rnd.choice(values) for name, values in shape.items()}
            if reorder and i % 2:
                props = dict(reversed(props.items()))
            events.append({**ev(f"t{k}-{i}", f"s{i % 7}", f"code{k}", TS + i), "properties": props})
    rnd.shuffle(events)
    assert_same_as_alone(events)


def test_one_code_in_one_key_order_is_read_as_a_group_with_values_shared_across_codes():
    gpu = [ev(f"g{i}", f"s{i % 3}", "gpu_job", gpu_type="H100-SXM" if i % 2 else "L40S", gpu_count=8 if i % 3 else 0.5,
              region="eu-west-1", availability_class="spot") for i in range(_GROUP_MIN)]
    llm = [ev(f"l{i}", f"s{i % 5}", "inference", model_name="llama", input_tokens=i, region=f"r{i % 4}")
           for i in range(_GROUP_MIN)]
    events = [e for pair in zip(gpu, llm) for e in pair]
    assert_same_as_alone(events)
    chunk = prepare(events, NOW, MAX_FUTURE)
    assert not chunk.rejected
    region = chunk.props["region"]
    assert [region.strings[s] for s in region.sid[:4].tolist()] == ["eu-west-1", "r0", "eu-west-1", "r1"]
    assert chunk.props["gpu_type"].sid[1] == -1 and chunk.props["input_tokens"].e[0] == MISSING
    assert chunk.code_dict[0] == ["gpu_job", "inference"]
    assert chunk.code_dict[1][:4].tolist() == [0, 1, 0, 1]


def test_a_refused_value_inside_a_group_refuses_its_event_only():
    events = [ev(f"t{i}", gpu_count=-1 if i == 5 else 2, end_reason="exploded" if i == 9 else "completed")
              for i in range(_GROUP_MIN * 2)]
    chunk = prepare(events, NOW, MAX_FUTURE)
    assert set(chunk.rejected) == {5, 9}
    assert [(p.field, p.code) for p in chunk.rejected[5]] == [("properties.gpu_count", "must_be_non_negative")]
    assert [(p.field, p.code) for p in chunk.rejected[9]] == [("properties.end_reason", "invalid_value")]
    assert len(chunk.good) == len(events) - 2


@pytest.mark.parametrize("field", ["transaction_id", "external_subscription_id", "code"])
@pytest.mark.parametrize("value", [["x"], {"a": 1}])
def test_an_array_or_object_where_an_id_belongs_is_refused_not_a_crash(tmp_path, field, value):
    """A subscription or code that is a JSON array or object made prepare raise TypeError (unhashable)."""
    with Store(tmp_path / "s.db") as store:
        rec = store.ingest([ev("ok"), {**ev("bad"), field: value}])
        assert rec.result(0).status == "ingested"
        r = rec.result(1)
        assert r.status == "rejected"
        assert [(p.field, p.code) for p in r.problems] == [(field, "invalid_type")]
        assert store.get_rejected(r.quarantine_id) is not None


def test_cli_ingest_quarantines_a_line_whose_subscription_is_an_array(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text('{"transaction_id":"a","external_subscription_id":["x"],"code":"c","timestamp":1735689600}\n'
                    '{"transaction_id":"b","external_subscription_id":"s","code":"c","timestamp":1735689600}\n')
    p = subprocess.run([sys.executable, "-m", "gpubill", "ingest", str(path), "--store", str(tmp_path / "s.db")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert f"{path}:1: rejected: external_subscription_id: must be a string" in p.stderr
    assert "1 ingested, 0 duplicate, 0 conflict, 1 rejected" in p.stdout


def test_ids_are_dictionary_encoded_in_first_seen_order():
    events = [ev(f"t{i}", sub, code) for i, (sub, code) in
              enumerate([("b", "y"), ("a", "x"), ("b", "x"), ("c", "y"), ("a", "y")])]
    chunk = prepare(events, NOW, MAX_FUTURE)
    assert chunk.sub_dict[0] == ["b", "a", "c"] and chunk.sub_dict[1].tolist() == [0, 1, 0, 2, 1]
    assert chunk.code_dict[0] == ["y", "x"] and chunk.code_dict[1].tolist() == [0, 1, 1, 0, 0]
    assert np.array_equal(chunk.good, np.arange(5))


@pytest.mark.parametrize("bad, code", [("", "invalid_length"), ("i" * 257, "invalid_length"),
                                       ("a\x00b", "invalid_characters"), ("a\x1fb", "invalid_characters"),
                                       ("a\x7fb", "invalid_characters"), ("\ud800", "invalid_characters"),
                                       ("é\x01", "invalid_characters")])
@pytest.mark.parametrize("field", ["transaction_id", "external_subscription_id", "code"])
def test_one_bad_id_among_many_good_ones_is_refused_alone(field, bad, code):
    """The ids of a chunk are checked joined (one byte array for ASCII): each limit still holds."""
    events = [ev(f"t{i}", f"s{i % 3}", "gpu_job" if i % 2 else "llm", gpu_count=1) for i in range(200)]
    events += [{**ev("ünï-çødé", "ß", "ḡpu"), field: bad}, ev("i" * 256, "s" * 256, "c" * 256)]
    chunk = prepare(events, NOW, MAX_FUTURE)
    assert list(chunk.rejected) == [200]
    assert [(p.field, p.code) for p in chunk.rejected[200]] == [(field, code)]
    assert len(chunk.good) == 201


def test_dedup_keys_are_the_stored_ones_for_any_text():
    """The key of (subscription, transaction) is fixed by the stored data: blake2b-128 of the
    transaction id, its second half xor blake2b-64 of the subscription (person "gpubill-sub")."""
    from hashlib import blake2b

    from gpubill.store.encode import _hash_keys

    def reference(txn, sub):
        t = blake2b(txn.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        s = blake2b(sub.encode("utf-8", "surrogatepass"), digest_size=8, person=b"gpubill-sub").digest()
        k1, k2 = (int.from_bytes(t[i:i + 8], "little", signed=True) for i in (0, 8))
        return k1, k2 ^ int.from_bytes(s, "little", signed=True)

    txns = ["t1", "ünï", "a\x00b", "\ud800", "", "t1"]
    subs = ["s", "ß", "s", "x\x00", "s", "s2"]
    k1, k2 = _hash_keys(txns, subs)
    assert list(zip(k1.tolist(), k2.tolist())) == [reference(t, s) for t, s in zip(txns, subs)]
    clean = [t for t in txns if "\x00" not in t and "\ud800" not in t]
    k1, k2 = _hash_keys(clean, ["s"] * len(clean))
    assert list(zip(k1.tolist(), k2.tolist())) == [reference(t, "s") for t in clean]


def test_events_with_their_fields_in_other_orders_stay_on_the_fast_path():
    """Producers order fields as they like; a chunk mixing orders is still checked column-wise."""
    from gpubill.store.encode import _fast_columns

    events = [ev(f"t{i}", gpu_count=i) for i in range(100)]
    events[7] = dict(reversed(events[7].items()))
    events[9] = {k: events[9][k] for k in ("code", "timestamp", "transaction_id", "properties",
                                           "external_subscription_id")}
    sizes = np.full(len(events), 100, np.int64)
    txns, subs, codes, ts, props, *_ = _fast_columns(events, NOW // 1000 + 86_400, sizes)
    assert txns[7] == "t7" and subs[9] == "s1" and codes[7] == "gpu_job" and ts[9] == TS * 1000
    assert props[7] == {"gpu_count": 7}
    assert_same_as_alone(events)
    missing = [*events[:5], {k: v for k, v in events[5].items() if k != "code"}]
    assert _fast_columns(missing, NOW // 1000 + 86_400, sizes[:6]) is None
