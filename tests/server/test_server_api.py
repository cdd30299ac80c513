"""The events API over real HTTP: Lago's shapes, auth, errors, quarantine, limits."""

import orjson
import pytest

from gpubill.store import Store

from serverkit import client

TS = 1_735_689_600


def ev(txn, **props):
    return {"transaction_id": txn, "external_subscription_id": "sub_1", "code": "gpu_job",
            "timestamp": TS, "properties": props}


def rejected(srv):
    with Store(srv.store) as s:
        return s.list_rejected(limit=10_000)


def test_health_and_metrics_need_no_key(served):
    srv, _, _ = served
    with client(srv, None) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        text = c.get("/metrics").text
        assert "# TYPE gpubill_events_total counter" in text


def test_auth_is_lago_shaped(served):
    srv, writer, reader = served
    with client(srv, None) as c:
        r = c.post("/api/v1/events", json={"event": ev("x")})
        assert (r.status_code, r.json()) == (401, {"status": 401, "error": "Unauthorized"})
    with client(srv, "gpb_wrong") as c:
        assert c.get("/api/v1/events/x").status_code == 401
    with client(srv, reader) as c:
        r = c.post("/api/v1/events", json={"event": ev("x")})
        assert r.status_code == 403 and r.json()["code"] == "write_action_not_allowed_for_event"


def test_create_get_duplicate_conflict(served):
    srv, writer, reader = served
    with client(srv, writer) as c:
        r = c.post("/api/v1/events", json={"event": {**ev("e1", gpu_count=8), "precise_total_amount_cents": "12.5"}})
        assert r.status_code == 200
        body = r.json()["event"]
        assert body["timestamp"] == "2025-01-01T00:00:00.000Z"
        assert body["precise_total_amount_cents"] == "12.5" and body["properties"] == {"gpu_count": 8}
        assert c.post("/api/v1/events", json={"event": {**ev("e1", gpu_count=8), "precise_total_amount_cents": "12.50"}}).status_code == 200
        r = c.post("/api/v1/events", json={"event": ev("e1", gpu_count=4)})
        assert r.status_code == 422 and r.json()["error_details"] == {"transaction_id": ["value_already_exist"]}
    with client(srv, reader) as c:
        got = c.get("/api/v1/events/e1").json()["event"]
        assert got["lago_id"] == body["lago_id"] and got["properties"] == {"gpu_count": 8}
        r = c.get("/api/v1/events/nope")
        assert r.status_code == 404 and r.json()["code"] == "event_not_found"


BAD = [
    (b'{"event": {"transaction_id": "b1"', 400, "event"),                       # malformed JSON
    (b'{"event": {"transaction_id": "b2", "x": NaN}}', 400, "event"),         # NaN literal
    (b'{"event": {"transaction_id": "b3", "code": "\xff\xfe"}}', 400, "event"),  # invalid UTF-8
    (b'{"evnt": {}}', 400, "event"),                                          # missing root
    (orjson.dumps({"event": {**ev("b5"), "timestamp": "soon"}}), 422, "timestamp"),
    (orjson.dumps({"event": ev("b6", duration_seconds=-1)}), 422, "properties.duration_seconds"),
    (orjson.dumps({"event": {**ev("b7"), "timestamp": TS + 10 * 86400 * 365 * 3}}), 422, "timestamp"),
    (orjson.dumps({"event": {"code": "gpu_job", "external_subscription_id": "s"}}), 422, "transaction_id"),
    (orjson.dumps({"event": ev("b9", gpu_count="many")}), 422, "properties.gpu_count"),
    (orjson.dumps({"event": [1, 2]}), 422, "event"),
]


@pytest.mark.parametrize("body,status,field", BAD)
def test_bad_input_gets_a_clear_4xx_and_lands_in_quarantine(served, body, status, field):
    srv, writer, _ = served
    before = len(rejected(srv))
    with client(srv, writer) as c:
        r = c.post("/api/v1/events", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status
        err = r.json()
        assert err["status"] == status and err["error"]
        if status == 422:
            assert field in err["error_details"]
        assert c.get("/healthz").status_code == 200        # the server is still up
    after = rejected(srv)
    assert len(after) == before + 1
    # an unparsable body is kept whole; a parsed but invalid event is kept as the event
    kept = body if status == 400 else orjson.dumps(orjson.loads(body)["event"])
    assert bytes(after[-1].raw) == kept


def test_huge_bodies_get_413(served):
    srv, writer, _ = served
    with client(srv, writer) as c:
        r = c.post("/api/v1/events/batch", content=b"x" * (1024 * 1024 + 1))
        assert r.status_code == 413 and r.json()["status"] == 413

        def chunks():
            for _ in range(300):
                yield b"y" * 8192
        r = c.post("/api/v1/events/batch", content=chunks())   # no content-length
        assert r.status_code == 413


def test_batch_is_all_or_nothing_with_errors_keyed_by_index(served):
    srv, writer, reader = served
    with client(srv, writer) as c:
        r = c.post("/api/v1/events/batch", json={"events": [ev("k0"), {**ev("k1"), "timestamp": "x"}, ev("k2", gpu_count=-2)]})
        assert r.status_code == 422
        assert r.json()["error_details"] == {"1": {"timestamp": ["invalid_format"]},
                                             "2": {"properties.gpu_count": ["must_be_non_negative"]}}
        assert c.get("/api/v1/events/k0").status_code == 404
        r = c.post("/api/v1/events/batch", json={"events": [ev("k0"), ev("k3")]})
        assert r.status_code == 200 and [e["transaction_id"] for e in r.json()["events"]] == ["k0", "k3"]
        assert c.post("/api/v1/events/batch", json={"events": []}).json()["error_details"] == {"events": ["no_events"]}
        big = {"events": [ev(f"m{i}") for i in range(501)]}
        assert c.post("/api/v1/events/batch", json=big).json()["error_details"] == {"events": ["too_many_events"]}


def test_list_filters_and_paginates(served):
    srv, writer, reader = served
    with client(srv, writer) as c:
        c.post("/api/v1/events/batch", json={"events": [{**ev(f"p{i}"), "code": "pager", "timestamp": TS + i}
                                                        for i in range(5)]})
    with client(srv, reader) as c:
        r = c.get("/api/v1/events", params={"code": "pager", "per_page": 2, "page": 2})
        body = r.json()
        assert [e["transaction_id"] for e in body["events"]] == ["p2", "p3"]
        assert body["meta"] == {"current_page": 2, "next_page": 3, "prev_page": 1, "total_pages": 3,
                                "total_count": 5}
        r = c.get("/api/v1/events", params={"code": "pager", "timestamp_from": "2025-01-01T00:00:03Z"})
        assert [e["transaction_id"] for e in r.json()["events"]] == ["p3", "p4"]


def test_metrics_count_outcomes(served):
    srv, writer, _ = served
    with client(srv, writer) as c:
        c.post("/api/v1/events", json={"event": ev("metric-1")})
        c.post("/api/v1/events", json={"event": ev("metric-1")})
        assert c.post("/api/v1/events", json={"event": {"transaction_id": "metric-2"}}).status_code == 422
        text = c.get("/metrics").text
    counts = {row.split("{")[1].split('"')[1]: int(row.split()[-1]) for row in text.splitlines()
              if row.startswith("gpubill_events_total")}
    assert counts["ingested"] >= 1 and counts["duplicate"] >= 1 and counts["rejected"] >= 1
    assert 'gpubill_http_request_duration_seconds_bucket{route="create",le="+Inf"}' in text
