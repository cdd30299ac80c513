"""Row-level reads and edits: list/show events, quarantine, re-submission, API keys.

These serve the CLI and the HTTP API (a page at a time); the engine reads
columns instead (``columns.py``).

Arguments are checked before SQLite sees them: a limit or offset must be a
non-negative integer (``ValueError`` otherwise), numbers beyond SQLite's int64
are clamped (a time bound, a page past the end) or match nothing (an id), and
text that SQLite cannot store (lone surrogates) matches nothing. A SQLite
failure is a one-line ``StoreError``, never a raw sqlite3 error.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import sqlite3
import time

import attrs
import numpy as np
import orjson

from . import payloads
from .encode import _hash_keys
from .job_reason import resolve_in_dicts
from .receipt import DUPLICATE, INGESTED, REJECTED, Receipt
from .schema import StoreError, error_from

REJECTED_STATUSES = ("open", "resubmitted", "discarded")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
NAME_MAX = 100  # characters of a key's or a user's name


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- argument checks ----------------------------------------------------------

def _integer(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {v!r}")
    return int(v)


def clamp_int64(v, name: str) -> int:
    """An integer argument, clamped to SQLite's int64 range (a bound beyond it bounds nothing)."""
    return min(max(_integer(v, name), INT64_MIN), INT64_MAX)


def _count(v, name: str) -> int:
    """A limit or offset: a non-negative integer (clamped to int64)."""
    v = _integer(v, name)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return min(v, INT64_MAX)


def _row_id(v, name: str = "id") -> int | None:
    """A row id, or None when no row can have it (beyond int64)."""
    v = _integer(v, name)
    return v if INT64_MIN <= v <= INT64_MAX else None


def _storable(*texts) -> bool:
    """False when a text argument cannot be bound (lone surrogates): it matches nothing stored."""
    for t in texts:
        if isinstance(t, str):
            try:
                t.encode()
            except UnicodeEncodeError:
                return False
    return True


def _sqlite_errors(fn):
    """A sqlite3 error raised by a query becomes the store's one-line StoreError."""
    @functools.wraps(fn)
    def wrapper(store, *args, **kw):
        try:
            return fn(store, *args, **kw)
        except sqlite3.Error as e:
            raise error_from(store.path, e) from None
    return wrapper


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


def _records(db, ids) -> list:
    """EventRecords of the stored events with these ids, in the order given."""
    stored = payloads.read(db, ids)
    batches = {e.batch_id for e in stored.values()}
    received = dict(db.execute("SELECT id, received_ms FROM batches WHERE id IN (SELECT value FROM json_each(?))",
                               (orjson.dumps(sorted(batches)),)).fetchall()) if batches else {}
    return [_record(stored[i], received[stored[i].batch_id]) for i in ids if i in stored]


def _record(e: payloads.Stored, received_ms: int) -> EventRecord:
    obj = orjson.loads(e.raw)
    props = obj.get("properties")
    return EventRecord(e.id, obj.get("transaction_id"), obj.get("external_subscription_id"), obj.get("code"),
                       e.timestamp_ms, {} if props is None else props, _text(obj.get("precise_total_amount_cents")),
                       received_ms, e.raw.decode(), e.key)


def _text(v) -> str | None:
    """A precise amount as text, as sent (a JSON number: its shortest round-trip form)."""
    return v if v is None or isinstance(v, str) else str(v)


@_sqlite_errors
def get_events(store, transaction_id: str, external_subscription_id: str | None = None) -> list:
    """Events with this transaction id (one per subscription), oldest first."""
    if not _storable(transaction_id, external_subscription_id):
        return []
    k1 = int(_hash_keys([transaction_id], ["-"])[0][0])
    db = store._read()
    keys = store._writer.keys
    db.execute("BEGIN")  # one snapshot for the catch-up and the events
    try:
        keys.catch_up(db)
        ids = keys.rows_with_k1(k1)  # k1 hashes the transaction id alone
        return [r for r in _records(db, ids) if r.transaction_id == transaction_id
                and external_subscription_id in (None, r.external_subscription_id)]
    finally:
        db.execute("COMMIT")


@_sqlite_errors
def get_event(store, event_id: int) -> EventRecord | None:
    event_id = _row_id(event_id, "event id")
    if event_id is None:
        return None
    found = _records(store._read(), [event_id])
    return found[0] if found else None


@_sqlite_errors
def events_by_id(store, ids) -> list:
    """The stored events with these ids, in the order given (unknown ids are left out)."""
    return _records(store._read(), [int(i) for i in ids])


@_sqlite_errors
def latest_timestamp_ms(store) -> int | None:
    """The latest stored event's timestamp (None when the store holds none)."""
    return store._read().execute("SELECT max(max_ts) FROM column_blocks").fetchone()[0]


@_sqlite_errors
def any_event_between(store, time_from_ms: int, time_to_ms: int) -> bool:
    """Whether some stored event's timestamp is in [from, to] (stops at the first)."""
    f = _Filter(None, None, clamp_int64(time_from_ms, "time_from_ms"), clamp_int64(time_to_ms, "time_to_ms"))
    return any(len(f.ids(b)) for b in f.blocks(store._read()))


@attrs.frozen
class _Filter:
    """Which stored events a listing keeps: code and subscription as dictionary ids (-1: a text
    never stored, so nothing matches), inclusive time bounds."""

    code: int | None
    sub: int | None
    time_from_ms: int | None
    time_to_ms: int | None

    @classmethod
    def of(cls, store, code, sub, time_from_ms, time_to_ms) -> "_Filter":
        return cls(None if code is None else store.strings.lookup(code),
                   None if sub is None else store.strings.lookup(sub),
                   None if time_from_ms is None else clamp_int64(time_from_ms, "time_from_ms"),
                   None if time_to_ms is None else clamp_int64(time_to_ms, "time_to_ms"))

    def blocks(self, db, after_id: int = 0, newest_first: bool = False):
        return payloads.blocks(db, after_id=after_id, time_from_ms=self.time_from_ms,
                               time_to_ms=self.time_to_ms, newest_first=newest_first)

    def ids(self, b: payloads.Block, after_id: int = 0) -> np.ndarray:
        keep = b.rowid > after_id
        if self.code is not None:
            keep &= b.code == self.code
        if self.sub is not None:
            keep &= b.sub == self.sub
        if self.time_from_ms is not None:
            keep &= b.ts >= self.time_from_ms
        if self.time_to_ms is not None:
            keep &= b.ts <= self.time_to_ms
        return b.rowid[keep]


@_sqlite_errors
def list_events(store, *, code=None, sub=None, time_from_ms=None, time_to_ms=None,
                after_id: int = 0, limit: int = 100, offset: int = 0, newest_first=False) -> list:
    """A page of stored events in id order (or newest first): blocks are walked in that order
    and only the page's payloads are read."""
    limit, offset = _count(limit, "limit"), _count(offset, "offset")
    after_id = clamp_int64(after_id, "after_id")
    if not _storable(code, sub):
        return []
    f = _Filter.of(store, code, sub, time_from_ms, time_to_ms)
    if -1 in (f.code, f.sub) or not limit:
        return []
    db = store._read()
    db.execute("BEGIN")  # the page and its payloads from one snapshot
    try:
        page: list[int] = []
        for b in f.blocks(db, after_id, newest_first):
            ids = f.ids(b, after_id)
            if newest_first:
                ids = ids[::-1]
            skip = min(offset, len(ids))
            offset -= skip
            page.extend(ids[skip:skip + limit - len(page)].tolist())
            if len(page) == limit:
                break
        return _records(db, page)
    finally:
        db.execute("COMMIT")


@_sqlite_errors
def events_as_dicts(store, codes=None, subscriptions=None, time_from_ms=None, time_to_ms=None) -> list:
    """Lago-shaped dicts (with ``timestamp_ms`` and ``rowid``) in ingestion order, for the
    reference engine; the same selection as ``read_columns`` (bounds inclusive), and each
    job's end reason given to its events without one, as ``read_columns`` does (``job_reason.py``)."""
    if not _storable(*(codes or ()), *(subscriptions or ())):
        return []
    cols = store.read_columns(codes=codes, subscriptions=subscriptions, time_from_ms=time_from_ms,
                              time_to_ms=time_to_ms)
    out = []
    for rid, e in sorted(payloads.read(store._read(), cols.rowid).items()):
        r = _record(e, received_ms=0)
        out.append({"rowid": rid, "transaction_id": r.transaction_id,
                    "external_subscription_id": r.external_subscription_id, "code": r.code,
                    "timestamp_ms": r.timestamp_ms, "properties": r.properties,
                    "precise_total_amount_cents": r.precise_total_amount_cents})
    resolve_in_dicts(out)
    return out


@_sqlite_errors
def count_events(store, *, code=None, sub=None, time_from_ms=None, time_to_ms=None) -> int:
    if not _storable(code, sub):
        return 0
    f = _Filter.of(store, code, sub, time_from_ms, time_to_ms)
    if -1 in (f.code, f.sub):
        return 0
    db = store._read()
    if f == _Filter(None, None, None, None):  # every event: the blocks' sizes
        return db.execute("SELECT coalesce(sum(n), 0) FROM column_blocks").fetchone()[0]
    db.execute("BEGIN")
    try:
        return sum(len(f.ids(b)) for b in f.blocks(db))
    finally:
        db.execute("COMMIT")


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


@_sqlite_errors
def list_rejected(store, *, status: str | None = "open", limit=100, offset=0) -> list:
    if status is not None and status not in REJECTED_STATUSES:
        raise ValueError(f"status must be one of {', '.join(REJECTED_STATUSES)}, got {status!r}")
    page = [_count(limit, "limit"), _count(offset, "offset")]
    q = "SELECT id, received_ms, source, raw, reasons, status, resolved_event_id FROM rejected"
    args: list = []
    if status is not None:
        q += " WHERE status = ?"
        args.append(status)
    q += " ORDER BY id LIMIT ? OFFSET ?"
    return [RejectedRecord(r[0], r[1], r[2], bytes(r[3]), orjson.loads(r[4]), r[5], r[6])
            for r in store._read().execute(q, args + page)]


@_sqlite_errors
def get_rejected(store, rid: int) -> RejectedRecord | None:
    rid = _row_id(rid, "quarantine id")
    if rid is None:
        return None
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
        store._write_sql("UPDATE rejected SET status = 'resubmitted', resolved_event_id = ? WHERE id = ?",
                         (int(receipt.event_id[0]), rec.id))
    return receipt


def discard_rejected(store, rid: int) -> bool:
    rid = _row_id(rid, "quarantine id")
    if rid is None:
        return False
    cur = store._write_sql("UPDATE rejected SET status = 'discarded' WHERE id = ? AND status = 'open'", (rid,))
    return cur.rowcount == 1


@_sqlite_errors
def list_conflicts(store, limit=100, offset=0) -> list:
    return store._read().execute(
        "SELECT id, received_ms, source, event_id, raw FROM conflicts ORDER BY id LIMIT ? OFFSET ?",
        (_count(limit, "limit"), _count(offset, "offset"))).fetchall()


# -- API keys ---------------------------------------------------------------

def _hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def check_name(name, what: str) -> str:
    """A key's or a user's name: 1 to NAME_MAX printable characters (shown in lists and logs)."""
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX or not name.isprintable():
        raise ValueError(f"a {what} name is 1 to {NAME_MAX} printable characters, got {name!r}"[:200])
    return name


def check_key_name(name) -> str:
    return check_name(name, "key")


def new_key() -> tuple[str, str, bytes]:
    """A fresh API key: (the key, its prefix shown in lists and logs, the hash that is stored)."""
    key = "gpb_" + secrets.token_urlsafe(32)
    return key, key[:8], _hash(key)


@_sqlite_errors
def key_owner(store, key: str) -> tuple[str, str] | None:
    """(name, role) of a valid, unrevoked key, else None."""
    if not isinstance(key, str) or not key or not _storable(key):
        return None
    return store._read().execute(
        "SELECT name, role FROM api_keys WHERE hash = ? AND revoked_ms IS NULL", (_hash(key),)).fetchone()


def verify_key(store, key: str) -> str | None:
    """The role of a valid, unrevoked key, else None."""
    owner = key_owner(store, key)
    return owner[1] if owner else None


@_sqlite_errors
def list_keys(store) -> list:
    return store._read().execute(
        "SELECT name, role, prefix, created_ms, revoked_ms FROM api_keys ORDER BY id").fetchall()


@_sqlite_errors
def stats(store) -> dict:
    db = store._read()
    out = {"events": payloads.max_id(db)}
    for name, q in (("rejected_open", "SELECT count(*) FROM rejected WHERE status = 'open'"),
                    ("conflicts", "SELECT count(*) FROM conflicts")):
        out[name] = db.execute(q).fetchone()[0]
    return out
