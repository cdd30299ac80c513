"""Alert webhooks: where they go, and one delivery pass over the outbox.

An endpoint is kept in the store (``gpubill alerts webhook add URL
--secret-env NAME``) so that every process that fires alerts (``gpubill
ingest``, ``gpubill alerts check`` from cron, ``gpubill serve``) queues the
same deliveries; its signing secret stays in the environment variable it
names, read when a delivery is sent, never written to the store.

``deliver`` sends each due delivery once: ``POST`` of the stored body with
``Content-Type: application/json``, ``X-Gpubill-Signature: sha256=<hex
HMAC-SHA256 of the body>`` and ``X-Gpubill-Idempotency-Key`` (the same on
every retry, so a receiver drops repeats).  A 2xx answer delivers it; any
other answer, a timeout or a connection error is retried after an
exponential backoff with jitter (``backoff_ms``), and the ``MAX_ATTEMPTS``-th
failure marks it ``failed`` with its last error.  HTTP through urllib (the
standard library): no client library is a runtime dependency.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import urllib.error
import urllib.parse
import urllib.request

import attrs

from gpubill.service.rating import ServiceError
from gpubill.store import alerts as records
from gpubill.store.roles import Actor
from gpubill.store.store import now_ms as clock_ms

SIGNATURE_HEADER = "X-Gpubill-Signature"
IDEMPOTENCY_HEADER = "X-Gpubill-Idempotency-Key"
MAX_ATTEMPTS = 8
BASE_DELAY_MS = 30_000  # the first retry after 15-30 s, then doubling
MAX_DELAY_MS = 6 * 3600 * 1000
DEFAULT_TIMEOUT_S = 10.0
BATCH = 100  # deliveries claimed at a time
EXIT_USAGE = 2
ANY_TIME_MS = 1 << 62  # `--retry-now`: every pending delivery is due


@attrs.frozen
class Pass:
    """What one delivery pass did: how many were delivered, retried later, failed for good."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def backoff_ms(attempts: int, rng: random.Random = random) -> int:
    """The wait after the ``attempts``-th failure: BASE × 2^(attempts-1), capped,
    with "equal jitter" (a uniform draw in its upper half)."""
    ceiling = min(MAX_DELAY_MS, BASE_DELAY_MS << min(attempts - 1, 30))
    return ceiling // 2 + rng.randrange(ceiling // 2 + 1)


def deliver(store, *, timeout_s: float = DEFAULT_TIMEOUT_S, now_ms: int | None = None,
            retry_now: bool = False) -> Pass:
    """Send every delivery due now (``retry_now``: every pending one, whatever
    its backoff) once; the counts of what happened."""
    counts = {"delivered": 0, "retried": 0, "failed": 0}
    seen: set[int] = set()
    while True:
        at = clock_ms() if now_ms is None else now_ms
        with store.transaction() as db:
            batch = [d for d in records.claim(db, ANY_TIME_MS if retry_now else at,
                                              at + int(timeout_s * 1000) + BASE_DELAY_MS, BATCH)
                     if d.id not in seen]
        if not batch:
            return Pass(**counts)
        for d in batch:
            seen.add(d.id)
            counts[_send_one(store, d, timeout_s, at)] += 1


def _send_one(store, d: records.Delivery, timeout_s: float, at_ms: int) -> str:
    error = _post(d, records.secret_env_of(store, d.url), timeout_s)
    with store.transaction() as db:
        if error is None:
            records.delivered(db, d.id, clock_ms())
            return "delivered"
        attempts = d.attempts + 1
        last = attempts >= MAX_ATTEMPTS
        records.attempt_failed(db, d.id, error, None if last else at_ms + backoff_ms(attempts))
        return "failed" if last else "retried"


def _post(d: records.Delivery, secret_env: str | None, timeout_s: float) -> str | None:
    """POST the delivery; None when the receiver took it (2xx), else why not (one line)."""
    secret = os.environ.get(secret_env or "")
    if not secret:
        return f"the signing secret ${secret_env} is not set" if secret_env else records.REMOVED
    req = urllib.request.Request(d.url, data=d.body, method="POST", headers={
        "Content-Type": "application/json", SIGNATURE_HEADER: sign(secret.encode(), d.body),
        IDEMPOTENCY_HEADER: d.idempotency_key, "User-Agent": "gpubill-webhooks"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read()
            return None
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code} {e.reason}"
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except urllib.error.URLError as e:
        reason = e.reason
        return f"no answer within {timeout_s:g} s" if isinstance(reason, TimeoutError) else f"cannot connect: {reason}"
    except OSError as e:
        return f"connection failed: {e}"


# ------------------------------------------------------------------ endpoints

def add_endpoint(store, actor: Actor, url: str, secret_env: str) -> bool:
    """Send alerts to ``url`` (http or https), signed with ``$secret_env``; False if it
    was there.  Needs the admin role, like keys and users."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServiceError(f"webhook URL {url!r}: expected http://HOST/... or https://HOST/...", EXIT_USAGE)
    if not secret_env.replace("_", "").isalnum() or secret_env[0].isdigit():
        raise ServiceError(f"--secret-env {secret_env!r}: expected the name of an environment variable", EXIT_USAGE)
    store.require(actor, "manage", "webhook.add", "webhook", url)
    with store.transaction() as db:
        return records.add_endpoint(db, actor, url, secret_env, at_ms=clock_ms())


def remove_endpoint(store, actor: Actor, url: str) -> bool:
    store.require(actor, "manage", "webhook.remove", "webhook", url)
    with store.transaction() as db:
        return records.remove_endpoint(db, actor, url, at_ms=clock_ms())


endpoints = records.endpoints
deliveries = records.deliveries
