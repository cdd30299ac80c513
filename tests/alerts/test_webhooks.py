"""Alert webhooks against a real receiver on 127.0.0.1 that fails, times out and recovers.

The receiver (a stdlib http.server in a thread) verifies each request's
HMAC signature, and keeps what it accepted by idempotency key, dropping
repeats, as a receiver of at-least-once deliveries should.  Every alert must
end up accepted exactly once, and the store must say each was delivered.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import random
import subprocess
import sys
import threading

import pytest

from gpubill.service.alerts import check, list_alerts
from gpubill.service.webhooks import (
    BASE_DELAY_MS, IDEMPOTENCY_HEADER, MAX_ATTEMPTS, MAX_DELAY_MS, SIGNATURE_HEADER, add_endpoint, backoff_ms,
    deliveries, deliver, remove_endpoint,
)
from gpubill.store.roles import Actor

from .helpers import job

SECRET = "s3cret-for-tests"
SECRET_ENV = "GPUBILL_TEST_WEBHOOK_SECRET"
ADMIN = Actor("ops", "admin")
TIMEOUT_S = 0.5


class Receiver:
    """Answers each request by the next behaviour in ``script`` ("500", "slow", "ok"), then "ok"."""

    def __init__(self, script: list[str]):
        self.script = list(script)
        self.requests: list[dict] = []
        self.accepted: dict[str, dict] = {}  # idempotency key -> body
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends a "slow" answer once the test is done with it
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.handle(self, body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/gpubill"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, h, body: bytes) -> None:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(h.headers[SIGNATURE_HEADER], expected)
        key = h.headers[IDEMPOTENCY_HEADER]
        with self.lock:
            what = self.script.pop(0) if self.script else "ok"
            self.requests.append({"key": key, "signed": signed, "what": what})
            if signed and what != "500":
                self.accepted.setdefault(key, json.loads(body))  # a repeat is dropped
        if what == "slow":
            self.release.wait(10)  # the sender has given up by now
        h.send_response(500 if what == "500" or not signed else 200)
        h.end_headers()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_of(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    made = []

    def make(script):
        made.append(Receiver(script))
        return made[-1]
    yield make
    for r in made:
        r.close()


def _alerts(store, contracts, receiver) -> list:
    add_endpoint(store, ADMIN, receiver.url, SECRET_ENV)
    store.ingest([job(i, 10) for i in range(4)])  # 1116.80: 50 %, 80 % and 100 %
    check(store, [str(contracts)])
    return list_alerts(store)


def test_each_alert_is_delivered_once_across_a_failure_a_timeout_and_a_recovery(store, contracts, receiver_of):
    receiver = receiver_of(["500", "slow"])
    fired = _alerts(store, contracts, receiver)
    assert len(fired) == 3
    first = deliver(store, timeout_s=TIMEOUT_S)
    assert (first.delivered, first.retried, first.failed) == (1, 2, 0)
    assert deliver(store, timeout_s=TIMEOUT_S).delivered == 0  # the two failures wait for their backoff
    later = deliver(store, timeout_s=TIMEOUT_S, retry_now=True)
    assert (later.delivered, later.retried, later.failed) == (2, 0, 0)

    assert all(r["signed"] for r in receiver.requests)
    assert [r["what"] for r in receiver.requests] == ["500", "slow", "ok", "ok", "ok"]
    # the slow answer was taken by the receiver, then sent again under the same key and dropped
    assert len(receiver.accepted) == 3
    assert sorted(b["object"]["threshold"] for b in receiver.accepted.values()) == ["100%", "50%", "80%"]
    assert all(b["webhook_type"] == "alert.fired" for b in receiver.accepted.values())
    assert [d["status"] for d in deliveries(store)] == ["delivered"] * 3
    assert sorted(d["attempts"] for d in deliveries(store)) == [1, 2, 2]
    assert all([d["status"] for d in a.deliveries] == ["delivered"] for a in list_alerts(store))
    assert deliver(store, timeout_s=TIMEOUT_S, retry_now=True).delivered == 0  # nothing is sent twice


def test_a_delivery_that_keeps_failing_is_marked_failed_and_listed(store, contracts, receiver_of, tmp_path):
    receiver = receiver_of(["500"] * 100)
    _alerts(store, contracts, receiver)
    for n in range(1, MAX_ATTEMPTS + 1):
        done = deliver(store, timeout_s=TIMEOUT_S, retry_now=True)
        assert (done.retried, done.failed) == ((3, 0) if n < MAX_ATTEMPTS else (0, 3))
    assert deliver(store, timeout_s=TIMEOUT_S, retry_now=True).failed == 0
    assert len(receiver.requests) == 3 * MAX_ATTEMPTS
    d = deliveries(store)[0]
    assert (d["status"], d["attempts"], d["last_error"]) == ("failed", MAX_ATTEMPTS, "HTTP 500 Internal Server Error")
    out = subprocess.run([sys.executable, "-m", "gpubill", "alerts", "--store", str(tmp_path / "store.db"),
                          "--format", "json"], capture_output=True, text=True, check=True).stdout
    assert [a["webhooks"] for a in json.loads(out)] == [[{"url": receiver.url, "status": "failed", "attempts": 8,
                                                          "last_error": "HTTP 500 Internal Server Error"}]] * 3


def test_a_missing_secret_is_an_attempt_that_failed_and_says_why(store, contracts, receiver_of, monkeypatch):
    receiver = receiver_of([])
    _alerts(store, contracts, receiver)
    monkeypatch.delenv(SECRET_ENV)
    assert deliver(store, timeout_s=TIMEOUT_S).retried == 3
    assert receiver.requests == []
    assert deliveries(store)[0]["last_error"] == f"the signing secret ${SECRET_ENV} is not set"


def test_backoff_doubles_with_jitter_up_to_its_cap():
    rng = random.Random(7)
    for attempts in range(1, 40):
        ceiling = min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (attempts - 1))
        for _ in range(20):
            assert ceiling // 2 <= backoff_ms(attempts, rng) <= ceiling


def test_removing_an_endpoint_fails_its_pending_deliveries(store, contracts, receiver_of):
    receiver = receiver_of([])
    _alerts(store, contracts, receiver)
    assert remove_endpoint(store, ADMIN, receiver.url)
    assert deliver(store, timeout_s=TIMEOUT_S, retry_now=True) == deliver(store)  # nothing left to send
    assert {(d["status"], d["last_error"]) for d in deliveries(store)} == {("failed", "the endpoint was removed")}
    assert receiver.requests == []
    assert not remove_endpoint(store, ADMIN, receiver.url)


def test_the_webhook_body_is_the_alert_as_listed(store, contracts, receiver_of):
    receiver = receiver_of([])
    [first, *_] = _alerts(store, contracts, receiver)
    deliver(store, timeout_s=TIMEOUT_S)
    body = next(b for b in receiver.accepted.values() if b["object"]["id"] == first.id)
    assert body == {"webhook_type": "alert.fired", "object_type": "alert", "object": {"id": first.id, **first.body}}
    assert set(first.body) == {"kind", "threshold", "limit", "amount", "percent", "contract", "customer",
                               "subscription", "currency", "period", "budget", "transaction_id", "fired_at"}
