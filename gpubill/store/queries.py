"""Row-level reads and edits: list/show events, quarantine, re-submission, API keys.

These serve the CLI and the HTTP API (a page at a time); the engine reads
columns instead (``columns.py``).
"""

from __future__ import annotations

import hashlib
import secrets

import attrs
import orjson

from .encode import _hash_keys
import time

import numpy as np

from .receipt import DUPLICATE, INGESTED, REJECTED, Receipt
from .schema import StoreError

ROLES = ("writer", "reader")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@attrs.frozen
class EventRecord:
    """One stored event as the APIs show it."""

    id: int
    transaction_id: str
    external_subscription_id: str
    code: str
    timestamp_ms: int
    properties: dict
    precise_total_amount_cents: str | None
    received_ms: int
    raw: str
    key: tuple[int, int]


_SELECT = ("SELECT e.id, e.transaction_id, e.external_subscription_id, e.code, e.timestamp_ms,"
           " e.properties, e.precise_total_amount_cents, b.received_ms, e.raw, e.k1, e.k2"
           " FROM events e JOIN batches b ON b.id = e.batch_id")


def _record(row) -> EventRecord:
    return EventRecord(row[0], row[1], row[2], row[3], row[4], orjson.loads(row[5]), row[6],
                       row[7], row[8], (row[9], row[10]))


def get_events(store, transaction_id: str, external_subscription_id: str | None = None) -> list:
    """Events with this transaction id (one per subscription), oldest first."""
    k1 = int(_hash_keys([transaction_id], ["-"])[0][0])
    db = store._read()
    keys = store._writer.keys
    db.execute("BEGIN")  # one snapshot for the catch-up and the rows
    try:
        keys.catch_up(db)
        ids = keys.rows_with_k1(k1)  # k1 hashes the transaction id alone
        if not ids:
            return []
        q = _SELECT + " WHERE e.id IN (SELECT value FROM json_each(?)) AND e.transaction_id = ?"
        args: list = [orjson.dumps(ids), transaction_id]
        if external_subscription_id is not None:
            q += " AND e.external_subscription_id = ?"
            args.append(external_subscription_id)
        return [_record(r) for r in db.execute(q + " ORDER BY e.id", args)]
    finally:
        db.execute("COMMIT")


def get_event(store, event_id: int) -> EventRecord | None:
    r = store._read().execute(_SELECT + " WHERE e.id = ?", (event_id,)).fetchone()
    return _record(r) if r else None


def _filters(code, sub, time_from_ms, time_to_ms):
    where, args = [], []
    if code is not None:
        where.append("e.code = ?"); args.append(code)
    if sub is not None:
        where.append("e.external_subscription_id = ?"); args.append(sub)
    if time_from_ms is not None:
        where.append("e.timestamp_ms >= ?"); args.append(time_from_ms)
    if time_to_ms is not None:
        where.append("e.timestamp_ms <= ?"); args.append(time_to_ms)
    return where, args


def list_events(store, *, code=None, sub=None, time_from_ms=None, time_to_ms=None,
                after_id: int = 0, limit: int = 100, offset: int = 0, newest_first=False) -> list:
    where, args = _filters(code, sub, time_from_ms, time_to_ms)
    if after_id:
        where.append("e.id > ?"); args.append(after_id)
    q = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
    q += " ORDER BY e.id" + (" DESC" if newest_first else "") + " LIMIT ? OFFSET ?"
    return [_record(r) for r in store._read().execute(q, args + [limit, offset])]


def events_as_dicts(store, codes=None, subscriptions=None, time_from_ms=None, time_to_ms=None) -> list:
    """Lago-shaped dicts (with ``timestamp_ms`` and ``rowid``) in ingestion order, for the
    reference engine; the same selection as ``read_columns`` (bounds inclusive)."""
    where, args = [], []
    for col, vals in (("code", codes), ("external_subscription_id", subscriptions)):
        if vals is not None:
            where.append(f"{col} IN (SELECT value FROM json_each(?))")
            args.append(orjson.dumps(list(vals)))
    if time_from_ms is not None:
        where.append("timestamp_ms >= ?"); args.append(time_from_ms)
    if time_to_ms is not None:
        where.append("timestamp_ms <= ?"); args.append(time_to_ms)
    q = ("SELECT id, transaction_id, external_subscription_id, code, timestamp_ms, properties,"
         " raw ->> '$.precise_total_amount_cents' FROM events"
         + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id")
    out = []
    for rid, txn, sub, code, ts, props, ptac in store._read().execute(q, args):
        out.append({"rowid": rid, "transaction_id": txn, "external_subscription_id": sub, "code": code,
                    "timestamp_ms": ts, "properties": orjson.loads(props),
                    "precise_total_amount_cents": None if ptac is None else str(ptac)})
    return out


def count_events(store, *, code=None, sub=None, time_from_ms=None, time_to_ms=None) -> int:
    where, args = _filters(code, sub, time_from_ms, time_to_ms)
    q = "SELECT count(*) FROM events e" + (" WHERE " + " AND ".join(where) if where else "")
    return store._read().execute(q, args).fetchone()[0]


# -- quarantine -------------------------------------------------------------

@attrs.frozen
class RejectedRecord:
    id: int
    received_ms: int
    source: str
    raw: bytes
    reasons: list
    status: str
    resolved_event_id: int | None


def list_rejected(store, *, status: str | None = "open", limit=100, offset=0) -> list:
    q = "SELECT id, received_ms, source, raw, reasons, status, resolved_event_id FROM rejected"
    args: list = []
    if status is not None:
        q += " WHERE status = ?"; args.append(status)
    q += " ORDER BY id LIMIT ? OFFSET ?"
    return [RejectedRecord(r[0], r[1], r[2], bytes(r[3]), orjson.loads(r[4]), r[5], r[6])
            for r in store._read().execute(q, args + [limit, offset])]


def get_rejected(store, rid: int) -> RejectedRecord | None:
    r = store._read().execute(
        "SELECT id, received_ms, source, raw, reasons, status, resolved_event_id FROM rejected"
        " WHERE id = ?", (rid,)).fetchone()
    return RejectedRecord(r[0], r[1], r[2], bytes(r[3]), orjson.loads(r[4]), r[5], r[6]) if r else None


def resubmit(store, rid: int, event: dict | None = None) -> Receipt:
    """Re-submit a quarantined event, fixed (``event``) or as it was.

    On success (ingested or duplicate) the quarantine row is marked
    ``resubmitted`` with the stored event's id; a still-invalid event is
    reported (its problems in the receipt) and the quarantine row stays open,
    unchanged: nothing new is written.
    """
    rec = get_rejected(store, rid)
    if rec is None:
        raise KeyError(rid)
    if rec.status != "open":
        raise StoreError(f"rejected event {rid} is already {rec.status}")
    if event is None:
        try:
            event = orjson.loads(rec.raw)
        except orjson.JSONDecodeError:
            event = None
    from .validate import Unparsable, check_event
    _, problems = check_event(event if event is not None else Unparsable("not JSON"),
                              now_ms(), store.max_future_ms)
    if problems:
        return Receipt(np.array([REJECTED], np.int8), np.array([-1], np.int64), {0: problems})
    receipt = store.ingest([event], source=f"resubmit:{rid}")
    if receipt.status[0] in (INGESTED, DUPLICATE):
        with store._wlock:
            store._writer.db.execute(
                "UPDATE rejected SET status = 'resubmitted', resolved_event_id = ? WHERE id = ?",
                (int(receipt.event_id[0]), rid))
    return receipt


def discard_rejected(store, rid: int) -> bool:
    with store._wlock:
        cur = store._writer.db.execute(
            "UPDATE rejected SET status = 'discarded' WHERE id = ? AND status = 'open'", (rid,))
    return cur.rowcount == 1


def list_conflicts(store, limit=100, offset=0) -> list:
    return store._read().execute(
        "SELECT id, received_ms, source, event_id, raw FROM conflicts ORDER BY id LIMIT ? OFFSET ?",
        (limit, offset)).fetchall()


# -- API keys ---------------------------------------------------------------

def _hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def create_key(store, name: str, role: str, now_ms: int) -> str:
    """Create an API key; returns the key itself (only its hash is stored)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key = "gpb_" + secrets.token_urlsafe(32)
    with store._wlock:
        try:
            store._writer.db.execute(
                "INSERT INTO api_keys (name, role, prefix, hash, created_ms) VALUES (?, ?, ?, ?, ?)",
                (name, role, key[:8], _hash(key), now_ms))
        except Exception as e:
            if "UNIQUE" in str(e):
                raise StoreError(f"an API key named {name!r} already exists") from None
            raise
    return key


def verify_key(store, key: str) -> str | None:
    """The role of a valid, unrevoked key, else None."""
    r = store._read().execute(
        "SELECT role FROM api_keys WHERE hash = ? AND revoked_ms IS NULL", (_hash(key),)).fetchone()
    return r[0] if r else None


def list_keys(store) -> list:
    return store._read().execute(
        "SELECT name, role, prefix, created_ms, revoked_ms FROM api_keys ORDER BY id").fetchall()


def revoke_key(store, name: str, now_ms: int) -> bool:
    with store._wlock:
        cur = store._writer.db.execute(
            "UPDATE api_keys SET revoked_ms = ? WHERE name = ? AND revoked_ms IS NULL", (now_ms, name))
    return cur.rowcount == 1


def stats(store) -> dict:
    db = store._read()
    out = {}
    for name, q in (("events", "SELECT coalesce(max(id), 0) FROM events"),
                    ("rejected_open", "SELECT count(*) FROM rejected WHERE status = 'open'"),
                    ("conflicts", "SELECT count(*) FROM conflicts")):
        out[name] = db.execute(q).fetchone()[0]
    return out
