"""The audit log: every state change, appended to one hash chain.

Each entry's ``hash`` is SHA-256(prev_hash ‖ 0x00 ‖ canonical JSON of the
entry without its hash), and ``prev_hash`` is the hash of the entry before
(32 zero bytes for the first). An entry is appended in the same transaction
as the change it records, so a change and its entry commit together or not
at all. Triggers refuse UPDATE and DELETE (against mistakes); the hashes are
what catch a deliberate edit: ``verify`` recomputes every link (not only the
ends, immudb's lesson) and names the first entry that does not hold.

A truncated tail leaves a shorter chain that is still consistent in itself.
Two things catch it: each finalized invoice keeps the hash of its
``invoice.finalized`` entry (``verify`` checks those entries exist), and a
checkpoint (size, RFC 6962 Merkle root over the entry hashes) can be kept
outside the store (``checkpoint_note``; ``verify`` checks the log still
extends a note it is given).

Money in payloads is decimal strings, so orjson with sorted keys is canonical.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3

import attrs
import orjson

from .roles import Actor

GENESIS = bytes(32)
ORIGIN = "gpubill.audit"
_COLUMNS = ("seq", "at_ms", "actor", "source", "action", "object_type", "object_id", "reason", "payload")


def canonical(obj) -> bytes:
    """The bytes that are hashed: sorted keys, no whitespace, UTF-8 (no floats ever appear)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def entry_hash(prev: bytes, row: dict) -> bytes:
    return hashlib.sha256(prev + b"\x00" + canonical(row)).digest()


@attrs.frozen
class Entry:
    seq: int
    at_ms: int
    actor: str
    source: str
    action: str
    object_type: str
    object_id: str
    reason: str | None
    payload: dict | str  # str: not JSON any more (the entry was tampered with)
    hash: bytes

    def as_dict(self) -> dict:
        d = attrs.asdict(self)
        d["hash"] = self.hash.hex()
        return d


def append(db: sqlite3.Connection, actor: Actor, action: str, object_type: str, object_id: str,
           payload: dict, *, at_ms: int, reason: str | None = None) -> bytes:
    """Append one entry inside the caller's write transaction (``BEGIN IMMEDIATE`` held); its hash."""
    if not db.in_transaction:
        raise RuntimeError("audit.append needs the write transaction of the change it records")
    last = db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (last[0] + 1, bytes(last[1])) if last else (1, GENESIS)
    row = {"seq": seq, "at_ms": at_ms, "actor": actor.label, "source": actor.source, "action": action,
           "object_type": object_type, "object_id": str(object_id), "reason": reason,
           "payload": canonical(payload).decode()}
    h = entry_hash(prev, row)
    db.execute(f"INSERT INTO audit_log ({', '.join(_COLUMNS)}, prev_hash, hash) VALUES ({', '.join('?' * 11)})",
               (*(row[c] for c in _COLUMNS), prev, h))
    return h


def entries(db: sqlite3.Connection, *, after: int = 0, limit: int = 100, action: str | None = None,
            object_id: str | None = None) -> list[Entry]:
    """Entries with seq > ``after``, oldest first, optionally of one action (prefix) or object."""
    sql = f"SELECT {', '.join(_COLUMNS)}, hash FROM audit_log WHERE seq > ?"
    args: list = [after]
    if action:
        sql += " AND (action = ? OR action LIKE ? || '.%')"
        args += [action, action]
    if object_id:
        sql += " AND object_id = ?"
        args.append(object_id)
    rows = db.execute(sql + " ORDER BY seq LIMIT ?", (*args, limit)).fetchall()
    return [Entry(*r[:8], _payload(r[8]), bytes(r[9])) for r in rows]


def _payload(text: str) -> dict | str:
    """The payload's JSON; a payload that is no longer JSON (tampered with) as the text it is."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


@attrs.frozen
class Verdict:
    """What ``verify`` found: ``ok``, how many entries, and the first that fails (seq and why)."""

    ok: bool
    size: int
    head: bytes
    first_bad: int | None = None
    problem: str | None = None


def verify(db: sqlite3.Connection, note: str | None = None) -> Verdict:
    """Recompute every link; the first entry whose seq, prev_hash or hash does not hold.

    Reads the log, the invoices and the checkpoints in one snapshot: a change another
    process commits meanwhile is seen whole or not at all (never a false alarm).
    """
    if db.in_transaction:
        return _verify(db, note)
    db.execute("BEGIN")
    try:
        return _verify(db, note)
    finally:
        db.execute("COMMIT")


def _verify(db: sqlite3.Connection, note: str | None) -> Verdict:
    prev, expect, hashes = GENESIS, 1, []
    for r in db.execute(f"SELECT {', '.join(_COLUMNS)}, prev_hash, hash FROM audit_log ORDER BY rowid"):
        row = dict(zip(_COLUMNS, r[:9]))
        bad = _link_problem(row, expect, prev, bytes(r[9]), bytes(r[10]))
        if bad:
            return Verdict(False, expect - 1, prev, row["seq"], bad)
        prev, expect = bytes(r[10]), expect + 1
        hashes.append(prev)
    size = expect - 1
    bad = _missing_finalizations(db, set(hashes)) or _checkpoint_problem(db, hashes)
    if not bad and note is not None:
        bad = _note_problem(note, hashes)
    if bad:
        return Verdict(False, size, prev, bad[0], bad[1])
    return Verdict(True, size, prev)


def _link_problem(row: dict, expect: int, prev: bytes, prev_hash: bytes, h: bytes) -> str | None:
    if row["seq"] != expect:
        what = "missing (deleted)" if row["seq"] > expect else "out of order or repeated"
        return f"expected entry {expect} here, found {row['seq']}: an entry is {what}"
    if prev_hash != prev:
        return ("its prev_hash is not the hash of the entry before (entries were reordered, or one before it "
                "was changed or removed)")
    if entry_hash(prev, row) != h:
        return "its content does not match its hash (the entry was edited)"
    return None


def _missing_finalizations(db: sqlite3.Connection, hashes: set) -> tuple | None:
    for number, h in db.execute("SELECT number, audit_hash FROM invoices WHERE audit_hash IS NOT NULL"):
        if bytes(h) not in hashes:
            return (len(hashes) + 1,
                    f"invoice {number} was finalized by an entry that is no longer in the log (entries were removed)")
    return None


def _checkpoint_problem(db: sqlite3.Connection, hashes: list) -> tuple | None:
    for size, root in db.execute("SELECT size, root FROM audit_checkpoints ORDER BY size"):
        if size > len(hashes):
            return (len(hashes) + 1, f"a checkpoint covers {size} entries but the log has {len(hashes)}")
        if merkle_root(hashes[:size]) != bytes(root):
            return (size, f"the first {size} entries no longer match their checkpoint")
    return None


def _note_problem(note: str, hashes: list) -> tuple | None:
    origin, size, root = parse_note(note)
    if size > len(hashes):
        return (len(hashes) + 1, f"the checkpoint note covers {size} entries but the log has {len(hashes)}")
    if merkle_root(hashes[:size]) != root:
        return (size, f"the first {size} entries no longer match the checkpoint note")
    return None


# -- checkpoints (RFC 6962 Merkle tree over the entry hashes; C2SP checkpoint note) --------

def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 root: leaf = H(0x00 ‖ d), node = H(0x01 ‖ l ‖ r), split at the largest power of 2 < n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [hashlib.sha256(b"\x00" + h).digest() for h in leaves]
    return _root(level)


def _root(nodes: list[bytes]) -> bytes:
    if len(nodes) == 1:
        return nodes[0]
    k = 1
    while k * 2 < len(nodes):
        k *= 2
    return hashlib.sha256(b"\x01" + _root(nodes[:k]) + _root(nodes[k:])).digest()


def checkpoint(db: sqlite3.Connection, at_ms: int) -> tuple[int, bytes]:
    """Record (size, root) of the log as it is now, inside the caller's transaction."""
    hashes = [bytes(h) for (h,) in db.execute("SELECT hash FROM audit_log ORDER BY seq")]
    root = merkle_root(hashes)
    db.execute("INSERT OR IGNORE INTO audit_checkpoints (size, root, at_ms) VALUES (?, ?, ?)",
               (len(hashes), root, at_ms))
    return len(hashes), root


def checkpoint_note(size: int, root: bytes) -> str:
    """A C2SP checkpoint body: origin, size, base64 root, one per line."""
    return f"{ORIGIN}\n{size}\n{base64.b64encode(root).decode()}\n"


def parse_note(note: str) -> tuple[str, int, bytes]:
    lines = note.strip("\n").split("\n")
    if len(lines) < 3 or not lines[1].isdigit():
        raise ValueError("not a gpubill checkpoint note (three lines: origin, size, base64 root)")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:
        raise ValueError("the checkpoint note's root is not base64") from None
    return lines[0], int(lines[1]), root
