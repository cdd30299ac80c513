"""Load shedding: past --max-pending events waiting for the writer, a request is answered 429
with Retry-After and stores nothing; a client that sends it again later gets every event stored once."""

import re
import sqlite3
import subprocess
import sys
import threading
import time

import httpx

from gpubill.store import Store

from serverkit import Server, client, make_key

TS = 1_735_689_600


def batch(name: str, n: int) -> list[dict]:
    return [{"transaction_id": f"{name}-{i}", "external_subscription_id": f"s{i % 3}", "code": "gpu_job",
             "timestamp": TS + i, "properties": {"gpu_count": i}} for i in range(n)]


def metric(srv: Server, line: str) -> int:
    """The value of the metric whose line starts with ``line`` (0 when absent)."""
    text = httpx.get(srv.url + "/metrics", timeout=10).text
    m = re.search("^" + re.escape(line) + r" (\d+)$", text, re.M)
    return int(m.group(1)) if m else 0


def wait_for(cond, what: str, deadline: float = 20.0) -> None:
    t = time.monotonic() + deadline
    while not cond():
        assert time.monotonic() < t, f"timed out waiting for {what}"
        time.sleep(0.02)


class WriteLock:
    """SQLite's write lock on the store, held by another connection: the server's writer waits."""

    def __init__(self, path: str):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


def stored_transaction_ids(path: str) -> list[str]:
    with Store(path) as s:
        return [r.transaction_id for r in s.list_events(limit=100_000)]


def test_past_max_pending_a_request_gets_429_with_retry_after_and_stores_nothing(tmp_path):
    store = str(tmp_path / "s.db")
    key = make_key(store, "w", "writer")
    srv = Server(store, "--batch-limit", "10", "--max-pending", "15").start()
    answers: dict = {}

    def post_in_background(c, name: str, n: int, pending_after: int) -> threading.Thread:
        t = threading.Thread(target=lambda: answers.__setitem__(
            name, c.post("/api/v1/events/batch", json={"events": batch(name, n)})))
        t.start()
        wait_for(lambda: metric(srv, "gpubill_http_pending_events") == pending_after, f"batch {name} admitted")
        return t
    try:
        lock = WriteLock(store)
        with client(srv, key) as c, client(srv, key) as c2, client(srv, key) as c3:
            waiting = [post_in_background(c, "a", 10, 10)]
            refused = [c3.post("/api/v1/events/batch", json={"events": batch("b", 10)})]  # 20 > 15
            waiting.append(post_in_background(c2, "c", 5, 15))  # exactly at the limit: admitted
            refused.append(c3.post("/api/v1/events", json={"event": batch("e", 1)[0]}))  # no room at all
            lock.release()
            for t in waiting:
                t.join()
            assert answers["a"].status_code == answers["c"].status_code == 200
            for r in refused:
                assert r.status_code == 429 and r.headers["retry-after"] == "1"
                assert r.json()["code"] == "too_many_requests" and r.json()["status"] == 429
            assert sorted(stored_transaction_ids(store)) == sorted(e["transaction_id"] for e in
                                                                   batch("a", 10) + batch("c", 5))
            assert c.post("/api/v1/events/batch", json={"events": batch("b", 10)}).status_code == 200
            assert c.post("/api/v1/events", json={"event": batch("e", 1)[0]}).status_code == 200
        assert metric(srv, 'gpubill_http_requests_total{route="batch",code="429"}') == 1
        assert metric(srv, 'gpubill_http_requests_total{route="create",code="429"}') == 1
        assert metric(srv, "gpubill_http_pending_events") == 0
        assert sorted(stored_transaction_ids(store)) == sorted(e["transaction_id"] for e in
                                                               batch("a", 10) + batch("b", 10) + batch("c", 5)
                                                               + batch("e", 1))
    finally:
        srv.stop()


def test_concurrent_posters_resending_refused_batches_store_every_acknowledged_event_once(tmp_path):
    store = str(tmp_path / "s.db")
    key = make_key(store, "w", "writer")
    srv = Server(store, "--batch-limit", "50", "--max-pending", "50").start()
    acked: list[str] = []
    codes: list[int] = []

    def post(name: str) -> None:
        with client(srv, key) as c:
            for b in range(5):
                events = batch(f"{name}{b}", 50)
                while True:
                    r = c.post("/api/v1/events/batch", json={"events": events})
                    codes.append(r.status_code)
                    if r.status_code != 429:
                        break
                    time.sleep(0.01)  # (Retry-After says 1 s; a test need not wait that long)
                assert r.status_code == 200, r.text
                acked.extend(e["transaction_id"] for e in events)
    try:
        lock = WriteLock(store)  # the first admitted batch waits: the others find no room
        posters = [threading.Thread(target=post, args=(name,)) for name in "pqrs"]
        for t in posters:
            t.start()
        wait_for(lambda: metric(srv, 'gpubill_http_requests_total{route="batch",code="429"}') > 0, "a 429")
        lock.release()
        for t in posters:
            t.join()
    finally:
        srv.stop()
    assert 429 in codes and len(acked) == 4 * 5 * 50
    stored = stored_transaction_ids(store)
    assert len(stored) == len(set(stored)) and set(stored) == set(acked)


def test_max_pending_must_hold_one_batch(tmp_path):
    r = subprocess.run([sys.executable, "-m", "gpubill", "serve", "--store", str(tmp_path / "s.db"), "--port", "0",
                        "--batch-limit", "100", "--max-pending", "99"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--max-pending (99) must hold one batch: at least --batch-limit (100)" in r.stderr
    assert not (tmp_path / "s.db").exists()
