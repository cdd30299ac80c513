"""The agent's durable spool: one SQLite file (WAL) on the node.

Receives the agent's jobs, their accumulator checkpoints and the events it
decides to emit. Guarantees that an event is in the outbox, fsynced
(``synchronous=FULL``), before anything sends it, that a job's segment count
moves in the same transaction as the events it emits (a restart neither
re-decides nor loses a segment), and that an outbox row is keyed by its
transaction_id, so writing it again changes nothing.

Tables: ``jobs`` (one row per job attempt: its allocation, how its clock is
read, segments emitted, state, checkpointed accumulators), ``outbox`` (the
events' payloads and delivery state) and ``cursors`` (small named values:
the last delivery, the last delivery error, the receiver's backoff).
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
from pathlib import Path

import attrs

from gpubill.agent.jobs import Allocation

OPEN = "open"
ENDED = "ended"
PENDING = "pending"
DELIVERED = "delivered"
REFUSED = "refused"  # the receiver rejected the event (kept here and in its quarantine): never retried

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  key TEXT PRIMARY KEY, allocation TEXT NOT NULL, clock TEXT NOT NULL, state TEXT NOT NULL,
  emitted INTEGER NOT NULL DEFAULT 0, elapsed_ms INTEGER NOT NULL DEFAULT 0,
  end_ms INTEGER, end_reason TEXT, accumulators TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS outbox (
  transaction_id TEXT PRIMARY KEY, job TEXT NOT NULL, kind TEXT NOT NULL, segment INTEGER NOT NULL,
  payload TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
  settled_ms INTEGER);
CREATE INDEX IF NOT EXISTS outbox_status ON outbox(status);
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@attrs.frozen
class JobRow:
    allocation: Allocation
    clock: dict          # how elapsed time is read: {"mono_origin_ns", "boot_id", "pid", "pid_start"} or {}
    state: str           # OPEN | ENDED
    emitted: int         # segment events emitted so far
    elapsed_ms: int      # elapsed at the last checkpoint
    end_ms: int | None
    end_reason: str | None
    accumulators: dict   # checkpointed Accumulator.to_json() by "<segment>/<uuid>"


class SpoolBusy(Exception):
    """Another agent process holds the spool."""


class Spool:
    """``readonly``: only read (``gpubill agent status``), beside the agent that holds it;
    otherwise one process at a time holds the spool (a lock file beside it)."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.lock = None
        if readonly:
            self.db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, isolation_level=None, timeout=30)
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.lock = open(f"{path}.lock", "w")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.lock.close()
            raise SpoolBusy(f"{path} is in use by another gpubill agent process") from None
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()
        if self.lock is not None:
            self.lock.close()

    def _tx(self):
        return _Tx(self.db)

    # -- jobs -------------------------------------------------------------
    def open_job(self, alloc: Allocation, clock: dict) -> bool:
        """Record a job attempt; False when the spool has it already (a restart)."""
        with self._tx():
            cur = self.db.execute("INSERT OR IGNORE INTO jobs(key, allocation, clock, state) VALUES (?,?,?,?)",
                                  (alloc.key, json.dumps(alloc.to_json()), json.dumps(clock), OPEN))
        return cur.rowcount == 1

    def has_job(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM jobs WHERE key = ?", (key,)).fetchone() is not None

    def jobs(self, state: str | None = None) -> list[JobRow]:
        q = "SELECT allocation, clock, state, emitted, elapsed_ms, end_ms, end_reason, accumulators FROM jobs"
        rows = self.db.execute(q + (" WHERE state = ?" if state else "") + " ORDER BY key",
                               (state,) if state else ()).fetchall()
        return [JobRow(Allocation.from_json(json.loads(a)), json.loads(c), s, e, el, end, r, json.loads(acc))
                for a, c, s, e, el, end, r, acc in rows]

    def checkpoint(self, key: str, elapsed_ms: int, accumulators: dict) -> None:
        with self._tx():
            self.db.execute("UPDATE jobs SET elapsed_ms = ?, accumulators = ? WHERE key = ?",
                            (elapsed_ms, json.dumps(accumulators), key))

    def emit(self, key: str, events: list[tuple[str, int, dict]], emitted: int, elapsed_ms: int,
             accumulators: dict, end: tuple[int, str] | None = None) -> None:
        """Put ``(kind, segment, payload)`` events in the outbox and move the job on, at once:
        ``emitted`` segments, and ``end`` = (end_ms, end_reason) when the job is over."""
        with self._tx():
            self.db.executemany(
                "INSERT OR IGNORE INTO outbox(transaction_id, job, kind, segment, payload, status) "
                "VALUES (?,?,?,?,?,?)",
                [(p["transaction_id"], key, kind, seg, json.dumps(p), PENDING) for kind, seg, p in events])
            self.db.execute("UPDATE jobs SET emitted = ?, elapsed_ms = ?, accumulators = ? WHERE key = ?",
                            (emitted, elapsed_ms, json.dumps(accumulators), key))
            if end is not None:
                self.db.execute("UPDATE jobs SET state = ?, end_ms = ?, end_reason = ? WHERE key = ?",
                                (ENDED, end[0], end[1], key))

    # -- outbox -----------------------------------------------------------
    def pending(self, limit: int) -> list[tuple[str, dict]]:
        """Events not delivered yet: (transaction_id, payload), oldest first."""
        rows = self.db.execute("SELECT transaction_id, payload FROM outbox WHERE status = ? ORDER BY rowid LIMIT ?",
                               (PENDING, limit))
        return [(t, json.loads(p)) for t, p in rows]

    def settle(self, txns: list[str], status: str, error: str | None = None, at_ms: int | None = None) -> None:
        """Mark events ``status`` (DELIVERED, REFUSED, or PENDING again) at wall ms ``at_ms``."""
        with self._tx():
            self.db.executemany("UPDATE outbox SET status = ?, error = ?, settled_ms = ? WHERE transaction_id = ?",
                                [(status, error, at_ms, t) for t in txns])

    def prune(self, before_ms: int) -> int:
        """Drop the payloads of events delivered before ``before_ms`` (the receiver holds them;
        the job rows stay, so a job is never metered twice). Returns how many."""
        with self._tx():
            cur = self.db.execute("DELETE FROM outbox WHERE status = ? AND settled_ms < ?", (DELIVERED, before_ms))
        return cur.rowcount

    def attempted(self, txns: list[str], error: str) -> None:
        """A try that did not reach the receiver."""
        with self._tx():
            self.db.executemany("UPDATE outbox SET attempts = attempts + 1, error = ? WHERE transaction_id = ?",
                                [(error, t) for t in txns])

    def counts(self) -> dict[str, int]:
        """Outbox rows by status."""
        return dict(self.db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())

    def outbox(self) -> list[tuple[str, str, int, str, dict]]:
        """Every outbox row: (transaction_id, kind, segment, status, payload), in emission order."""
        rows = self.db.execute("SELECT transaction_id, kind, segment, status, payload FROM outbox ORDER BY rowid")
        return [(t, k, s, st, json.loads(p)) for t, k, s, st, p in rows]

    # -- cursors ----------------------------------------------------------
    def set_cursor(self, name: str, value) -> None:
        with self._tx():
            self.db.execute("INSERT INTO cursors(name, value) VALUES (?, ?) "
                            "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, json.dumps(value)))

    def cursor(self, name: str, default=None):
        row = self.db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return default if row is None else json.loads(row[0])


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
