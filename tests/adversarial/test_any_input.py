"""Any input, every intake: generated hostile events through HTTP, `Store.ingest` and `gpubill ingest`.

The property the issue states: no input produces a 5xx, an exit 70, a traceback or a hang;
every refused event is in quarantine with its reason, and every accepted one is stored
exactly once. The generator mixes well-formed events with the values that broke intake
before: numbers past every bound, non-ASCII digits, control characters and lone
surrogates, deep nesting, oversized strings, naive and pre-1970 date-times.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpubill.store import Store

sys.path.insert(0, str(Path(__file__).parents[1] / "server"))
from serverkit import Server, client, make_key  # noqa: E402

TS = 1_735_689_600
CLI_TIMEOUT_S = 120

HOSTILE_NUMBERS = st.sampled_from([
    0, -1, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), 10**30, 1e300, -0.0, 5e-324, 0.1 + 0.2, 1.5,
    "1" * 5000, "9" * 25, "0." + "0" * 21 + "1", "-0.001", "1e3", "+5", ".5", "٣", "３", " 1", "1 ",
])
HOSTILE_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "nul\u0000tail", "\ud800", "a\udfffb", "x" * 4097, "\u202eevil", "1969-12-31T23:59:59Z",
                     "2025-01-01T00:00:00", "2025-01-01T00:00:00Z", "-0.5", "99999999999999999999"]),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    HOSTILE_NUMBERS, HOSTILE_TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=8)
PROPS = st.dictionaries(
    st.one_of(st.sampled_from(["gpu_count", "duration_seconds", "input_tokens", "avg_utilization", "total_flops",
                               "gpu_type", "end_reason", "job_id"]), st.text(max_size=8)),
    VALUES, max_size=5)


@st.composite
def events(draw, n: int):
    """An event whose fields are each well-formed or hostile, with a unique transaction id."""
    ev = {"transaction_id": f"t{n}-" + draw(st.sampled_from(["", "x", "\u0000", "\ud800", "é"])),
          "external_subscription_id": draw(st.one_of(st.just("sub_1"), HOSTILE_TEXT, SCALARS)),
          "code": draw(st.one_of(st.just("gpu_job"), HOSTILE_TEXT)),
          "timestamp": draw(st.one_of(st.just(TS), HOSTILE_NUMBERS, HOSTILE_TEXT, st.none())),
          "properties": draw(st.one_of(PROPS, VALUES))}
    for k in draw(st.sets(st.sampled_from(list(ev)), max_size=2)):
        del ev[k]
    if draw(st.booleans()):
        ev["precise_total_amount_cents"] = draw(SCALARS)
    return ev


counter = iter(range(10**9))
EVENTS = st.builds(lambda k: k, st.integers()).flatmap(lambda _: events(next(counter)))


def encodable(obj) -> bytes:
    """The event as the JSON bytes a client sends (lone surrogates as JSON escapes, as a client may)."""
    return json.dumps(obj).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("any") / "s.db")
    key = make_key(store, "w", "writer")
    srv = Server(store).start()
    yield srv, key
    srv.proc.terminate()
    err = srv.proc.communicate(timeout=30)[1].decode(errors="replace")
    srv.stop()
    assert "Traceback" not in err, err[-3000:]


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(ev=EVENTS)
def test_http_answers_every_event_with_a_verdict_and_keeps_it(served, ev):
    srv, key = served
    with Store(srv.store, create=False, readonly=True) as s:
        before = len(s.list_rejected(status=None, limit=10**6))
    with client(srv, key) as c:
        r = c.post("/api/v1/events", content=encodable({"event": ev}),
                   headers={"Content-Type": "application/json"})
        assert r.status_code in (200, 400, 413, 422), (r.status_code, r.text)
        if r.status_code == 200:
            txn = r.json()["event"]["transaction_id"]
            got = c.get("/api/v1/events/" + txn, params={"external_subscription_id": ev["external_subscription_id"]})
            assert got.status_code == 200, got.text
    if r.status_code != 200:
        with Store(srv.store, create=False, readonly=True) as s:
            assert len(s.list_rejected(status=None, limit=10**6)) == before + 1


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(evs=st.lists(EVENTS, min_size=1, max_size=8))
def test_a_hostile_batch_is_all_or_nothing_and_names_each_refusal(served, evs):
    srv, key = served
    with Store(srv.store, create=False, readonly=True) as s:
        n_before = s.count_events()
    with client(srv, key) as c:
        r = c.post("/api/v1/events/batch", content=encodable({"events": evs}),
                   headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 400, 413, 422), (r.status_code, r.text)
    with Store(srv.store, create=False, readonly=True) as s:
        stored = s.count_events() - n_before
    if r.status_code == 200:
        assert stored == len(evs)
    else:
        assert stored == 0
        if r.status_code == 422:
            assert r.json()["error_details"], r.text


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(evs=st.lists(EVENTS, min_size=1, max_size=10))
def test_the_embedded_store_stores_or_quarantines_each_event_once(tmp_path_factory, evs):
    with Store(tmp_path_factory.mktemp("emb") / "s.db") as s:
        rec = s.ingest(evs)
        again = s.ingest(evs)
        counts = rec.counts()
        assert counts["ingested"] + counts["rejected"] == len(evs)
        assert s.count_events() == counts["ingested"]
        assert len(s.list_rejected(status=None, limit=10**6)) == 2 * counts["rejected"]
        for r in rec.results():
            if r.status == "rejected":
                assert r.problems and all(p.message for p in r.problems)
        assert again.counts()["duplicate"] == counts["ingested"]


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(evs=st.lists(EVENTS, min_size=30, max_size=60))
def test_cli_ingest_of_generated_garbage_stores_or_quarantines_every_line(tmp_path_factory, evs):
    tmp_path = tmp_path_factory.mktemp("cli")
    lines = [encodable(e) for e in evs]
    lines += [b"{", b"\xff\xfe", b"[]", b"null", b'"x"', b"1" * 5000, b"{\"a\":" * 10000]
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    store = tmp_path / "s.db"
    p = subprocess.run([sys.executable, "-m", "gpubill", "ingest", str(path), "--store", str(store)],
                       capture_output=True, timeout=CLI_TIMEOUT_S)
    err = p.stderr.decode(errors="replace")
    assert p.returncode in (0, 1), err[-2000:]
    assert "Traceback" not in err and "internal error" not in err
    with Store(store, create=False, readonly=True) as s:
        assert s.count_events() + len(s.list_rejected(status=None, limit=10**6)) == len(lines)
