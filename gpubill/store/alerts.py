"""Alerts, where their webhooks go, and the outbox that delivers them.

An alert is one row of ``alerts``, unique per (subscription, billing period,
kind, threshold): ``record`` inserts it, appends its ``alert.fired`` audit
entry and queues one webhook delivery per endpoint, all in the caller's
write transaction, or does nothing when that threshold already fired this
period (another process got there first).  A delivery keeps the exact body
it will send and a stable idempotency key, so every retry sends the same
bytes; its status goes pending -> delivered, or failed after the last
attempt.  ``claim`` hands the due deliveries to one sender at a time (it
pushes their next attempt past a lease), so two processes delivering at once
do not send the same one together.

The watermark is the last event id an alerts check has evaluated; the check
advances it in the transaction that records what it found.

Write functions take the connection of ``Store.transaction()``; read
functions take the store.
"""

from __future__ import annotations

import hashlib
import sqlite3

import attrs
import orjson

from . import audit
from .roles import Actor

ACTOR = Actor("alerts", "admin", "system")
FIRED = "alert.fired"
DELIVERY_STATUSES = ("pending", "delivered", "failed")
REMOVED = "the endpoint was removed"
_ALERT_COLUMNS = ("id", "subscription", "contract", "customer", "period_from_ms", "kind", "threshold",
                  "currency", "limit_amount", "amount", "fired_ms", "body")


@attrs.frozen
class Alert:
    """One fired alert, with how its webhooks stand (``deliveries``: url, status, attempts, last_error each)."""

    id: int
    subscription: str
    contract: str
    customer: str
    period_from_ms: int
    kind: str
    threshold: str
    currency: str
    limit_amount: str
    amount: str
    fired_ms: int
    body: dict
    deliveries: tuple = ()


@attrs.frozen
class Delivery:
    id: int
    idempotency_key: str
    url: str
    body: bytes
    attempts: int


@attrs.frozen
class Endpoint:
    url: str
    secret_env: str
    created_ms: int


# ------------------------------------------------------------------ alerts

def record(db: sqlite3.Connection, alert: dict, *, webhook_type: str, at_ms: int) -> int | None:
    """Insert one alert (``alert`` holds the table's columns but id and fired_ms,
    and ``body``, a dict) with its audit entry and webhook deliveries; its id,
    or None when the same threshold already fired in this period."""
    row = {**alert, "fired_ms": at_ms, "body": orjson.dumps(alert["body"]).decode()}
    names = [c for c in _ALERT_COLUMNS if c != "id"]
    cur = db.execute(f"INSERT OR IGNORE INTO alerts ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                     [row[c] for c in names])
    if cur.rowcount == 0:
        return None
    alert_id = cur.lastrowid
    obj = {"id": alert_id, **alert["body"]}
    audit.append(db, ACTOR, FIRED, "alert", str(alert_id), obj, at_ms=at_ms)
    body = orjson.dumps({"webhook_type": webhook_type, "object_type": "alert", "object": obj})
    for url, _ in db.execute("SELECT url, secret_env FROM webhook_endpoints ORDER BY url").fetchall():
        db.execute("INSERT INTO webhook_deliveries (idempotency_key, event_type, url, body, next_attempt_ms)"
                   " VALUES (?, ?, ?, ?, ?)", (idempotency_key(alert_id, url), webhook_type, url, body, at_ms))
    return alert_id


def idempotency_key(alert_id: int, url: str) -> str:
    """Stable for one alert sent to one endpoint: every retry carries the same key."""
    return f"alert_{alert_id}_{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def fired(store, subscription: str, period_from_ms: int, kind: str) -> frozenset[str]:
    """The thresholds of ``kind`` that already fired for this subscription's period."""
    rows = store._read().execute("SELECT threshold FROM alerts WHERE subscription = ? AND period_from_ms = ?"
                                 " AND kind = ?", (subscription, period_from_ms, kind))
    return frozenset(r[0] for r in rows)


def alerts(store, *, customer: str | None = None, period_from_ms: int | None = None,
           period_to_ms: int | None = None) -> list[Alert]:
    """Fired alerts, oldest first, of one customer (id, contract or subscription) and
    of the periods starting in [period_from_ms, period_to_ms], with their deliveries."""
    where, args = [], []
    if customer is not None:
        where.append("(customer = ? OR contract = ? OR subscription = ?)")
        args += [customer] * 3
    if period_from_ms is not None:
        where.append("period_from_ms >= ?")
        args.append(period_from_ms)
    if period_to_ms is not None:
        where.append("period_from_ms <= ?")
        args.append(period_to_ms)
    db = store._read()
    sql = f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts" + (" WHERE " + " AND ".join(where) if where else "")
    return [Alert(*r[:11], orjson.loads(r[11]), _deliveries(db, r[0]))
            for r in db.execute(sql + " ORDER BY id", args).fetchall()]


def _deliveries(db, alert_id: int) -> tuple:
    """The alert's deliveries (their keys start ``alert_<id>_``), oldest first."""
    rows = db.execute("SELECT url, status, attempts, last_error FROM webhook_deliveries"
                      " WHERE idempotency_key LIKE ? ESCAPE '!' ORDER BY id", (f"alert!_{alert_id}!_%",))
    return tuple({"url": r[0], "status": r[1], "attempts": r[2], "last_error": r[3]} for r in rows)


# ------------------------------------------------------------------ the watermark

def watermark(store) -> int:
    """The last event id an alerts check has evaluated (0: none yet)."""
    row = store._read().execute("SELECT event_id FROM alert_watermark WHERE id = 1").fetchone()
    return row[0] if row else 0


def advance(db: sqlite3.Connection, event_id: int) -> None:
    """Move the watermark forward to ``event_id`` (never back)."""
    db.execute("INSERT INTO alert_watermark (id, event_id) VALUES (1, ?) ON CONFLICT (id) DO UPDATE"
               " SET event_id = max(event_id, excluded.event_id)", (event_id,))


# ------------------------------------------------------------------ endpoints

def add_endpoint(db: sqlite3.Connection, actor: Actor, url: str, secret_env: str, *, at_ms: int) -> bool:
    """Send alerts to ``url`` from now on, signed with the secret in ``$secret_env``;
    False if it was already there (its secret variable is then updated)."""
    new = db.execute("SELECT 1 FROM webhook_endpoints WHERE url = ?", (url,)).fetchone() is None
    db.execute("INSERT INTO webhook_endpoints (url, secret_env, created_ms) VALUES (?, ?, ?)"
               " ON CONFLICT (url) DO UPDATE SET secret_env = excluded.secret_env", (url, secret_env, at_ms))
    audit.append(db, actor, "webhook.added" if new else "webhook.changed", "webhook", url,
                 {"url": url, "secret_env": secret_env}, at_ms=at_ms)
    return new


def remove_endpoint(db: sqlite3.Connection, actor: Actor, url: str, *, at_ms: int) -> bool:
    """Stop sending to ``url``: its pending deliveries fail with ``REMOVED``; False if unknown."""
    if db.execute("DELETE FROM webhook_endpoints WHERE url = ?", (url,)).rowcount == 0:
        return False
    db.execute("UPDATE webhook_deliveries SET status = 'failed', last_error = ? WHERE url = ? AND status = 'pending'",
               (REMOVED, url))
    audit.append(db, actor, "webhook.removed", "webhook", url, {"url": url}, at_ms=at_ms)
    return True


def endpoints(store) -> list[Endpoint]:
    return [Endpoint(*r) for r in store._read().execute(
        "SELECT url, secret_env, created_ms FROM webhook_endpoints ORDER BY url")]


def secret_env_of(store, url: str) -> str | None:
    row = store._read().execute("SELECT secret_env FROM webhook_endpoints WHERE url = ?", (url,)).fetchone()
    return row[0] if row else None


# ------------------------------------------------------------------ the outbox

def claim(db: sqlite3.Connection, due_ms: int, lease_until_ms: int, limit: int) -> list[Delivery]:
    """The pending deliveries due by ``due_ms``, oldest first; each one's next
    attempt is pushed to ``lease_until_ms``, so no other sender takes it meanwhile."""
    rows = db.execute("SELECT id, idempotency_key, url, body, attempts FROM webhook_deliveries"
                      " WHERE status = 'pending' AND next_attempt_ms <= ? ORDER BY next_attempt_ms, id LIMIT ?",
                      (due_ms, limit)).fetchall()
    db.executemany("UPDATE webhook_deliveries SET next_attempt_ms = ? WHERE id = ?",
                   [(lease_until_ms, r[0]) for r in rows])
    return [Delivery(r[0], r[1], r[2], bytes(r[3]) if isinstance(r[3], bytes) else r[3].encode(), r[4])
            for r in rows]


def delivered(db: sqlite3.Connection, delivery_id: int, at_ms: int) -> None:
    db.execute("UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_ms = ?,"
               " last_error = NULL WHERE id = ?", (at_ms, delivery_id))


def attempt_failed(db: sqlite3.Connection, delivery_id: int, error: str, next_attempt_ms: int | None) -> None:
    """One more failed attempt: retried at ``next_attempt_ms``, or ``failed`` for good when None."""
    if next_attempt_ms is None:
        db.execute("UPDATE webhook_deliveries SET status = 'failed', attempts = attempts + 1, last_error = ?"
                   " WHERE id = ?", (error, delivery_id))
    else:
        db.execute("UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_ms = ?"
                   " WHERE id = ?", (error, next_attempt_ms, delivery_id))


def deliveries(store, status: str | None = None) -> list[dict]:
    """Every delivery (or those of one status), oldest first, as the CLI shows them."""
    sql = ("SELECT id, idempotency_key, url, status, attempts, next_attempt_ms, last_error, delivered_ms"
           " FROM webhook_deliveries")
    rows = store._read().execute(sql + (" WHERE status = ?" if status else "") + " ORDER BY id",
                                 (status,) if status else ()).fetchall()
    names = ("id", "idempotency_key", "url", "status", "attempts", "next_attempt_ms", "last_error", "delivered_ms")
    return [dict(zip(names, r)) for r in rows]
