"""The dedup index: every stored event's 128-bit key, in memory, sorted.

Idempotency needs "is this (subscription, transaction) key stored, and as
which row?" for every incoming event. A unique SQLite index answers it, but
the keys are hashes, so each insert lands on a random page of a B-tree that
soon outgrows the cache: at 8192 events per transaction nearly every index
page is rewritten to the WAL at each commit (measured: the index costs as
much as storing the rows). Here the keys live in sorted numpy arrays instead
(24 bytes per event: k1, k2, row id), and each column block stores its
events' keys, so the index loads with ``np.frombuffer`` (no row tuples).

Exactness does not depend on this process being the only writer: the writer
calls ``catch_up`` right after ``BEGIN IMMEDIATE`` (holding SQLite's write
lock), which adds the keys other connections or processes committed since
(by event row id, which never repeats). Keys written by the open transaction
are ``pending`` until it commits, and are dropped if it rolls back (or back to
a savepoint). If the blocks do not cover every stored row (a store written
before blocks carried keys), the keys are read from the rows themselves.

Levels, as in an LSM tree: ``base`` (large, sorted) and ``delta`` (recent,
sorted, merged into base when it grows past an eighth of it), so adding a
transaction's keys costs O(delta), not O(n).
"""

from __future__ import annotations

import threading

import numpy as np

_I64 = np.dtype("<i8")
_EMPTY = np.zeros(0, np.int64)


class _Level:
    """Keys sorted by k1 (equal k1 values, one transaction id in several subscriptions, are rare)."""

    __slots__ = ("k1", "k2", "rid")

    def __init__(self, k1, k2, rid, presorted=False):
        if not presorted and len(k1) > 1:
            o = np.argsort(k1)  # order inside a run of equal k1 does not matter
            k1, k2, rid = k1[o], k2[o], rid[o]
        self.k1, self.k2, self.rid = k1, k2, rid

    def __len__(self) -> int:
        return int(self.k1.shape[0])

    def find(self, q1: np.ndarray, q2: np.ndarray, out: np.ndarray) -> None:
        """Set out[i] to the row id of key (q1[i], q2[i]) where this level holds it.

        ``q1`` sorted ascending makes the binary searches walk the array in order.
        """
        n = len(self)
        if not n or not len(q1):
            return
        lo = np.minimum(np.searchsorted(self.k1, q1, "left"), n - 1)
        idx = np.flatnonzero(self.k1[lo] == q1)
        if not idx.size:
            return
        at = lo[idx]
        ok = self.k2[at] == q2[idx]
        out[idx[ok]] = self.rid[at[ok]]
        rest, nxt = idx[~ok], at[~ok] + 1
        more = rest[(nxt < n) & (self.k1[np.minimum(nxt, n - 1)] == q1[rest])]
        for i in more.tolist():  # several keys share this k1: scan the run
            j = int(lo[i]) + 1
            while j < n and self.k1[j] == q1[i]:
                if self.k2[j] == q2[i]:
                    out[i] = self.rid[j]
                    break
                j += 1

    def with_k1(self, k1: int) -> np.ndarray:
        lo = int(np.searchsorted(self.k1, k1, "left"))
        hi = int(np.searchsorted(self.k1, k1, "right"))
        return self.rid[lo:hi]


def _merge(a: _Level, b: _Level) -> _Level:
    """Merge two sorted levels in O(len(a) + len(b))."""
    if not len(a):
        return b
    if not len(b):
        return a
    n, m = len(a), len(b)
    pos = np.searchsorted(a.k1, b.k1, "right") + np.arange(m)
    mask = np.ones(n + m, bool)
    mask[pos] = False
    out = []
    for x, y in ((a.k1, b.k1), (a.k2, b.k2), (a.rid, b.rid)):
        z = np.empty(n + m, np.int64)
        z[mask] = x
        z[pos] = y
        out.append(z)
    return _Level(*out, presorted=True)


class KeyIndex:
    """Committed keys (base + delta) and the open transaction's keys (pending)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.loaded = False
        self.last_rowid = 0          # every committed event with id <= this is indexed
        self.base = _Level(_EMPTY, _EMPTY, _EMPTY, True)
        self.delta = _Level(_EMPTY, _EMPTY, _EMPTY, True)
        self.pending = _Level(_EMPTY, _EMPTY, _EMPTY, True)
        self.marks: list[_Level] = []  # pending as it was at each savepoint

    # -- loading and catching up (db: any connection, inside a read or write transaction)
    def catch_up(self, db) -> None:
        with self.lock:
            if not self.loaded:
                self._load(db)
                return
            rows = db.execute(
                "SELECT first_rowid, last_rowid, rowids, keys FROM column_blocks"
                " WHERE last_rowid > ? ORDER BY first_rowid", (self.last_rowid,)).fetchall()
            if rows:
                self._add_blocks(db, rows)

    def _load(self, db) -> None:
        rows = db.execute("SELECT first_rowid, last_rowid, rowids, keys FROM column_blocks"
                          " ORDER BY first_rowid").fetchall()
        self.loaded = True
        self._add_blocks(db, rows)  # every stored event is in a block, with its key (schema 5)

    def _add_blocks(self, db, rows) -> None:
        k1s, k2s, rids = [], [], []
        last = self.last_rowid
        for first, lastb, rowids, keys in rows:
            rid = (np.frombuffer(rowids, _I64) if rowids is not None
                   else np.arange(first, lastb + 1, dtype=np.int64))
            kk = np.frombuffer(keys, _I64).reshape(-1, 2)
            new = rid > self.last_rowid
            if not new.all():
                rid, kk = rid[new], kk[new]
            k1s.append(kk[:, 0])
            k2s.append(kk[:, 1])
            rids.append(rid)
            last = max(last, int(lastb))
        if rids:
            self._add_committed(np.concatenate(k1s), np.concatenate(k2s), np.concatenate(rids))
        self.last_rowid = last

    def _add_committed(self, k1, k2, rid) -> None:
        self._add_level(_Level(k1, k2, rid))

    def _add_level(self, level: _Level) -> None:
        if not len(level):
            return
        self.delta = _merge(self.delta, level)
        if len(self.delta) > max(65536, len(self.base) // 8):
            self.base = _merge(self.base, self.delta)
            self.delta = _Level(_EMPTY, _EMPTY, _EMPTY, True)

    # -- the writer's transaction ------------------------------------------------------
    def find(self, k1: np.ndarray, k2: np.ndarray) -> np.ndarray:
        """Row ids of the stored keys (committed or pending in this transaction), -1 if new."""
        o = np.argsort(k1)
        q1, q2 = k1[o], k2[o]
        got = np.full(len(k1), -1, np.int64)
        with self.lock:
            for level in (self.base, self.delta, self.pending):
                level.find(q1, q2, got)
        out = np.empty_like(got)
        out[o] = got
        return out

    def add_pending(self, k1, k2, rid) -> None:
        with self.lock:
            self.pending = _merge(self.pending, _Level(k1, k2, rid))

    def mark(self) -> int:
        """Remember the pending keys (a savepoint); ``rollback_to`` restores them."""
        self.marks.append(self.pending)
        return len(self.marks) - 1

    def rollback_to(self, mark: int) -> None:
        with self.lock:
            self.pending = self.marks[mark]
            del self.marks[mark:]

    def committed(self) -> None:
        with self.lock:
            p, self.marks = self.pending, []
            self.pending = _Level(_EMPTY, _EMPTY, _EMPTY, True)
            if len(p):
                top = int(p.rid.max())
                new = p.rid > self.last_rowid  # a reader's catch-up may have added them already
                if not new.all():
                    p = _Level(p.k1[new], p.k2[new], p.rid[new], True)
                self._add_level(p)
                self.last_rowid = max(self.last_rowid, top)

    def rolled_back(self) -> None:
        with self.lock:
            self.pending, self.marks = _Level(_EMPTY, _EMPTY, _EMPTY, True), []

    # -- lookups by transaction id -----------------------------------------------------
    def rows_with_k1(self, k1: int) -> list[int]:
        with self.lock:
            return sorted(int(r) for lv in (self.base, self.delta) for r in lv.with_k1(k1))
