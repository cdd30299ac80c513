"""Delivery of the spool's outbox: to `gpubill serve`, or straight into a local store.

Receives the outbox's due events and a sink: ``HttpSink`` posts them to the
Lago-compatible ``/api/v1/events/batch`` with a Bearer key, ``StoreSink``
ingests them into a store file through ``gpubill.service.events``. Guarantees
at-least-once delivery that the receiver makes exactly-once: an event leaves
the outbox only once the receiver has it; an answer that it exists already
(a duplicate, or Lago's ``value_already_exist``) counts as delivered; an event
the receiver refuses is marked refused (kept in the spool and in the
receiver's quarantine), never retried; anything else (refused connection,
timeout, 5xx, a bad key) is retried with exponential backoff and jitter, for
as long as the spool has disk.
"""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request

from gpubill.agent.spool import DELIVERED, REFUSED, Spool

BATCH_PATH = "/api/v1/events/batch"
BATCH_EVENTS = 100
BACKOFF_BASE_MS = 1_000
BACKOFF_MAX_MS = 300_000
BACKOFF = "backoff"  # the spool's cursor: {"failures": n, "until_ms": wall ms} while the receiver is away
ALREADY_EXISTS = "value_already_exist"  # Lago's answer to a transaction_id it holds (lago/events_api.py)


class Unavailable(Exception):
    """The receiver cannot take events now: try again later."""


class HttpSink:
    def __init__(self, endpoint: str, api_key: str, timeout_s: float = 10.0):
        base = endpoint.rstrip("/")
        self.url = base if base.endswith(BATCH_PATH) else base + BATCH_PATH
        self.api_key = api_key
        self.timeout_s = timeout_s

    def send(self, events: list[dict]) -> list[str]:
        """One status per event (DELIVERED or REFUSED); raises ``Unavailable``."""
        code, body = self._post(events)
        if code == 200:
            return [DELIVERED] * len(events)
        if code != 422:
            raise Unavailable(f"HTTP {code} from {self.url}: {body[:200]}")
        if len(events) > 1:  # a batch is all or nothing: find out which event was refused
            return [s for e in events for s in self.send([e])]
        return [DELIVERED if ALREADY_EXISTS in body else REFUSED]

    def _post(self, events: list[dict]) -> tuple[int, str]:
        req = urllib.request.Request(self.url, data=json.dumps({"events": events}).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {self.api_key}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")
        except (OSError, ValueError) as e:  # refused, reset, timed out, a bad URL
            raise Unavailable(f"{self.url}: {getattr(e, 'reason', None) or e}") from None

    def close(self) -> None:
        pass


class StoreSink:
    """Events ingested into a local store file (created when missing)."""

    def __init__(self, path: str):
        from gpubill.service.errors import StoreError
        from gpubill.service.events import Store

        self.path = path
        self._error = StoreError
        self._open = lambda: Store(path, create=True)
        self.store = None

    def send(self, events: list[dict]) -> list[str]:
        try:
            if self.store is None:
                self.store = self._open()
            rec = self.store.ingest(events, source="agent")
        except self._error as e:
            self.close()
            raise Unavailable(f"{self.path}: {e}") from None
        return [REFUSED if r.status == "rejected" else DELIVERED for r in rec.results()]

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


def backoff_ms(attempts: int, rng: random.Random) -> int:
    """The wait before retry number ``attempts + 1``: doubling from 1 s up to 5 min, the
    upper half of it drawn at random (jitter: nodes that lost the server together do not
    come back together)."""
    cap = min(BACKOFF_MAX_MS, BACKOFF_BASE_MS << min(attempts, 20))
    return rng.randint(cap // 2, cap)


def retry_at_ms(spool: Spool) -> int:
    """When the receiver may be tried again (wall ms; 0: now)."""
    return spool.cursor(BACKOFF, {}).get("until_ms", 0)


def deliver(spool: Spool, sink, now_ms: int, rng: random.Random) -> int:
    """Send the outbox, batch by batch, until it is empty or the receiver is away. The backoff
    belongs to the receiver, not to an event: while it lasts nothing is sent, however many
    events arrive. Returns how many events were settled (delivered or refused)."""
    state = spool.cursor(BACKOFF, {})
    wait = state.get("until_ms", 0) - now_ms
    if 0 < wait <= BACKOFF_MAX_MS:  # longer: the wall clock was stepped back, the wait is over
        return 0
    settled = 0
    while due := spool.pending(BATCH_EVENTS):
        txns = [t for t, _ in due]
        try:
            statuses = sink.send([p for _, p in due])
        except Unavailable as e:
            failures = state.get("failures", 0)
            spool.attempted(txns, str(e))
            spool.set_cursor(BACKOFF, {"failures": failures + 1, "until_ms": now_ms + backoff_ms(failures, rng)})
            spool.set_cursor("last_error", {"at_ms": now_ms, "error": str(e)})
            return settled
        for status in (DELIVERED, REFUSED):
            spool.settle([t for t, s in zip(txns, statuses) if s == status], status,
                         None if status == DELIVERED else "refused by the receiver", now_ms)
        spool.set_cursor("last_delivery", {"at_ms": now_ms, "events": len(txns)})
        settled += len(txns)
    if state:
        spool.set_cursor(BACKOFF, {})
    return settled
