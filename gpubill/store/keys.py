"""The dedup index: every stored event's 128-bit key, sorted, in memory and on disk.

Idempotency needs "is this (subscription, transaction) key stored, and as
which row?" for every incoming event. A unique SQLite index answers it, but
the keys are hashes, so each insert lands on a random page of a B-tree that
soon outgrows the cache: at 8192 events per transaction nearly every index
page is rewritten to the WAL at each commit (measured: the index costs as
much as storing the rows). Here the keys live in sorted numpy arrays instead
(24 bytes per event: k1, k2, row id), and each column block stores its
events' keys, so they load with ``np.frombuffer`` (no row tuples).

**On disk** (schema 6) the writer also keeps the keys as sorted runs, as in an
LSM tree: ``key_runs`` (one row per run: its size, the largest event id it
covers, its first page, and a fence: the first k1 of each page) and
``key_pages`` (a run's k1, k2 and row ids, ``PAGE`` keys per row). The runs
together hold every event up to their largest ``last_rowid`` (the watermark);
the keys after it are read from the blocks. When ``RUN_MIN`` committed keys
are past the watermark, the writer stores them as a new run inside its write
transaction, and ``FANOUT`` runs of one size class are merged into one
(each key is rewritten about log8(n / RUN_MIN) times). Pages, not one blob per
run: reading at an offset of a large blob walks its overflow chain from the
start (measured: 28 ms to reach the end of an 80 MB blob, against 8 µs per page row).

Each run also has a Bloom filter (``BLOOM_BITS`` per key), read once
a lookup would read more bytes of pages than the filter holds: then only the
keys it may hold (all stored ones, 1.7 % of the others) read a page.

So a new process answers a lookup of a few thousand keys with the fences and,
per key and run, one page's k1 (the k2 and row ids only of pages where a k1
matches), plus the blocks written after the watermark (fewer than ``RUN_MIN``
keys, as long as writers keep the runs up). Once its lookups in the runs have
asked for more than 1/``LOAD_SHARE`` of their keys (a long ingestion), it
loads every run into memory once and stops reading pages.

Exactness does not depend on this process being the only writer: the writer
calls ``catch_up`` right after ``BEGIN IMMEDIATE`` (holding SQLite's write
lock), which reads the runs other processes wrote and adds the keys of the
blocks they committed since (by event row id, which never repeats).
``catch_up`` also binds the calling thread's lookups to that connection and
its snapshot: the runs it saw, and (a reader whose snapshot predates the
watermark this index starts from) the keys between them. Keys written by the
open transaction are ``pending`` until it commits, and are dropped if it rolls
back (or back to a savepoint); runs written by a transaction that rolls back
are forgotten with it.

In memory, as before: ``base`` (large, sorted) and ``delta`` (recent, sorted,
merged into base when it grows past an eighth of it), so adding a
transaction's keys costs O(delta), not O(n). They hold the committed keys
after ``floor`` (0 once every run is loaded).
"""

from __future__ import annotations

import threading

import numpy as np
import orjson

_I64 = np.dtype("<i8")
_EMPTY = np.zeros(0, np.int64)
PAGE = 512         # keys per key_pages row (12 KiB: one 16 KiB database page); the fence: each page's first k1
RUN_MIN = 65536    # committed keys past the watermark before the writer stores them as a run
FANOUT = 8         # runs of one size class merged into one when there are this many
LOAD_SHARE = 1024  # load every run into memory once lookups in them asked for 1/LOAD_SHARE of their keys
BLOOM_BITS = 10    # bits per key of a run's Bloom filter (3 hashes: 1.7 % of absent keys read a page)
BLOOM_HASHES = 3
DB_PAGE = 16384    # bytes a page lookup reads (the store's page size): the filter is read when it costs less


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

    def where(self, keep: np.ndarray) -> "_Level":
        if keep.all():
            return self
        return _Level(self.k1[keep], self.k2[keep], self.rid[keep], True)


_NONE = _Level(_EMPTY, _EMPTY, _EMPTY, True)


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


def _concat(levels: list) -> _Level:
    """One sorted level of several (a stable sort of sorted runs is a merge)."""
    if len(levels) == 1:
        return levels[0]
    k1, k2, rid = (np.concatenate([getattr(lv, c) for lv in levels]) for c in _Level.__slots__)
    o = np.argsort(k1, kind="stable")  # timsort: linear in the number of keys for a few runs
    return _Level(k1[o], k2[o], rid[o], presorted=True)


# -- runs on disk ----------------------------------------------------------------------
class _Run:
    """One stored run: immutable once written (a merge writes a new run and drops the old ones)."""

    __slots__ = ("id", "n", "last_rowid", "first_page", "fence", "bloom", "has_bloom")

    def __init__(self, rid, n, last_rowid, first_page, has_bloom: bool, fence=None, bloom=None):
        self.id, self.n, self.last_rowid, self.first_page = rid, n, last_rowid, first_page
        self.has_bloom, self.fence, self.bloom = has_bloom, fence, bloom

    def fences(self, db) -> np.ndarray:
        if self.fence is None:
            self.fence = np.frombuffer(
                db.execute("SELECT fence FROM key_runs WHERE id = ?", (self.id,)).fetchone()[0], _I64)
        return self.fence

    def filter_for(self, db, q: int) -> np.ndarray | None:
        """The run's Bloom filter, once reading it costs less than the pages ``q`` lookups read."""
        if self.bloom is None and self.has_bloom and q * DB_PAGE > self.n * BLOOM_BITS // 8:
            bloom = db.execute("SELECT bloom FROM key_runs WHERE id = ?", (self.id,)).fetchone()[0]
            self.has_bloom = bloom is not None
            self.bloom = None if bloom is None else np.frombuffer(bloom, np.uint8)
        return self.bloom

    def pages_for(self, db, q1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each key, the first and last page that may hold it (a k1 may span pages)."""
        f = self.fences(db)
        lo = np.maximum(np.searchsorted(f, q1, "left") - 1, 0)
        hi = np.maximum(np.searchsorted(f, q1, "right") - 1, 0)
        return lo, hi

    def read(self, db, pages: np.ndarray, cols: str) -> list:
        """Columns ``cols`` of these pages (ascending page numbers), as int64 arrays per column."""
        rows = db.execute(f"SELECT {cols} FROM key_pages WHERE id IN (SELECT value FROM json_each(?))"
                          " ORDER BY id", (orjson.dumps((pages + self.first_page).tolist()),)).fetchall()
        if len(rows) != len(pages):
            raise RuntimeError(f"key run {self.id}: {len(pages) - len(rows)} of its pages are missing")
        return [np.frombuffer(b"".join(r[c] for r in rows), _I64) for c in range(len(rows[0]))]

    def load(self, db) -> _Level:
        pages = np.arange(-(-self.n // PAGE), dtype=np.int64)
        return _Level(*self.read(db, pages, "k1, k2, rid"), presorted=True)

    def find(self, db, q1: np.ndarray, q2: np.ndarray, out: np.ndarray) -> None:
        """``_Level.find`` reading only the pages that may hold the keys (q1 sorted)."""
        bloom = self.filter_for(db, len(q1))
        if bloom is None:
            return self._find_in_pages(db, q1, q2, out)
        maybe = np.flatnonzero(_bloom_has(bloom, q1, q2))
        if len(maybe):
            got = out[maybe]
            self._find_in_pages(db, q1[maybe], q2[maybe], got)
            out[maybe] = got

    def _find_in_pages(self, db, q1: np.ndarray, q2: np.ndarray, out: np.ndarray) -> None:
        lo, hi = self.pages_for(db, q1)
        pages = _spans(lo, hi)
        k1 = self.read(db, pages, "k1")[0]
        at = np.minimum(np.searchsorted(k1, q1, "left"), len(k1) - 1)
        hit = k1[at] == q1  # every page that may hold a key is in ``k1``: its first copy is found
        if not hit.any():
            return
        want = _spans(lo[hit], hi[hit])
        starts = np.searchsorted(pages, want) * PAGE  # where each page starts in ``k1``
        keep = (starts[:, None] + np.arange(PAGE)).ravel()
        keep = keep[keep < len(k1)]
        k2, rid = self.read(db, want, "k2, rid")
        at = np.flatnonzero(hit)
        got = out[at]
        _Level(k1[keep], k2, rid, presorted=True).find(q1[at], q2[at], got)
        out[at] = got

    def with_k1(self, db, k1: int) -> np.ndarray:
        lo, hi = self.pages_for(db, np.array([k1], np.int64))
        pages = _spans(lo, hi)
        a, rid = self.read(db, pages, "k1, rid")
        return rid[a == k1]


def _spans(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The sorted distinct integers of the ranges lo[i]..hi[i] (most are one or two long)."""
    extra = [np.arange(a + 1, b) for a, b in zip(lo[hi - lo > 1].tolist(), hi[hi - lo > 1].tolist())]
    p = np.sort(np.concatenate([lo, hi, *extra]))
    return p[np.concatenate(([True], p[1:] != p[:-1]))]  # (np.unique imports numpy.ma: 10 ms)


def _bloom_bits(k1: np.ndarray, k2: np.ndarray, m: int) -> list[np.ndarray]:
    """The filter's bit positions of each key (double hashing: the keys are hashes already)."""
    a, b = k1.view(np.uint64), k2.view(np.uint64) | np.uint64(1)
    return [(a + np.uint64(i) * b) % np.uint64(m) for i in range(BLOOM_HASHES)]  # (wraps mod 2**64)


def _bloom(level: _Level) -> bytes:
    bits = np.zeros(-(-len(level) * BLOOM_BITS // 8) * 8, bool)
    for pos in _bloom_bits(level.k1, level.k2, len(bits)):
        bits[pos] = True
    return np.packbits(bits, bitorder="little").tobytes()


def _bloom_has(bloom: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """False where the key is surely not in the run."""
    ok = np.ones(len(q1), bool)
    for pos in _bloom_bits(q1, q2, len(bloom) * 8):
        ok &= (bloom[pos >> np.uint64(3)] >> (pos & np.uint64(7)).astype(np.uint8)) & 1 == 1
    return ok


def _size_class(n: int) -> int:
    c = 0
    while n >= RUN_MIN * FANOUT:
        n //= FANOUT
        c += 1
    return c


def _stored_runs(db) -> list[tuple]:
    return db.execute("SELECT id, n, last_rowid, first_page FROM key_runs ORDER BY id").fetchall()


def _write_run(db, level: _Level, last_rowid: int) -> _Run:
    first = db.execute("SELECT coalesce(max(id), 0) + 1 FROM key_pages").fetchone()[0]
    n = len(level)
    cols = [np.ascontiguousarray(getattr(level, c), _I64) for c in _Level.__slots__]
    db.executemany("INSERT INTO key_pages (id, k1, k2, rid) VALUES (?, ?, ?, ?)",
                   ((first + p, *(c[p * PAGE:(p + 1) * PAGE].tobytes() for c in cols))
                    for p in range(-(-n // PAGE))))
    fence, bloom = cols[0][::PAGE].copy(), _bloom(level)
    run_id = db.execute("INSERT INTO key_runs (n, last_rowid, first_page, fence, bloom) VALUES (?, ?, ?, ?, ?)",
                        (n, last_rowid, first, fence.tobytes(), bloom)).lastrowid
    return _Run(run_id, n, last_rowid, first, True, fence, np.frombuffer(bloom, np.uint8))


def _drop_run(db, run: _Run) -> None:
    db.execute("DELETE FROM key_pages WHERE id BETWEEN ? AND ?",
               (run.first_page, run.first_page + -(-run.n // PAGE) - 1))
    db.execute("DELETE FROM key_runs WHERE id = ?", (run.id,))


def _block_keys(rows) -> _Level:
    """The keys of column blocks (first_rowid, n, rowids, keys rows), unsorted."""
    if not rows:
        return _NONE
    rid = [np.frombuffer(r[2], _I64) if r[2] is not None else np.arange(r[0], r[0] + r[1], dtype=np.int64)
           for r in rows]
    kk = np.frombuffer(b"".join(r[3] for r in rows), _I64).reshape(-1, 2)
    return _Level(kk[:, 0].copy(), kk[:, 1].copy(), np.concatenate(rid))


class _View:
    """What one thread's lookups read: its connection, and the runs its snapshot holds."""

    __slots__ = ("db", "runs", "watermark", "gap")

    def __init__(self, db, runs: list, watermark: int, gap: _Level):
        self.db, self.runs, self.watermark, self.gap = db, runs, watermark, gap


class KeyIndex:
    """Committed keys (runs on disk, base + delta in memory) and the open transaction's keys (pending)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.loaded = False          # the committed keys were read once (floor and memory set)
        self.last_rowid = 0          # every committed event with id <= this is indexed
        self.floor = 0               # memory holds the committed keys with id > floor; runs the rest
        self.base = _NONE
        self.delta = _NONE
        self.pending = _NONE
        self.marks: list[_Level] = []  # pending as it was at each savepoint
        self.watermark = 0           # the largest run watermark seen
        self.unrun = _NONE           # committed keys past the watermark (the next run)
        self.asked = 0               # keys looked up in the runs (while floor > 0)
        self.runs: dict[int, _Run] = {}
        self.undo = None             # (watermark, unrun, runs written) of the open transaction
        self.local = threading.local()

    # -- loading and catching up (db: any connection, inside a read or write transaction)
    def catch_up(self, db, writing: bool = False) -> None:
        """Add what other connections committed; bind this thread's lookups to ``db``'s snapshot.

        ``writing``: ``db`` holds the write lock (after ``BEGIN IMMEDIATE``): store the keys
        past the watermark as a run once there are ``RUN_MIN`` of them.
        """
        with self.lock:
            runs = self._sync_runs(db)
            mark = max((r.last_rowid for r in runs), default=0)
            if not self.loaded:
                self.loaded, self.floor = True, mark
                self.last_rowid = max(self.last_rowid, mark)
            self._read_blocks(db)
            if mark > self.watermark:
                self.watermark = mark
                self.unrun = self.unrun.where(self.unrun.rid > mark)
            gap = _NONE
            if mark < self.floor:  # a snapshot older than the runs this index started from
                gap = self._blocks(db, "last_rowid > ? AND first_rowid <= ?", (mark, self.floor))
                gap = gap.where((gap.rid > mark) & (gap.rid <= self.floor))
            self.local.view = _View(db, runs, mark, gap)
            if writing and len(self.unrun) >= RUN_MIN:
                self._store_run(db)

    def _sync_runs(self, db) -> list[_Run]:
        out = [self.runs.get(rid) or _Run(rid, n, last, first, True) for rid, n, last, first in _stored_runs(db)]
        self.runs = {r.id: r for r in out}  # (a fence is read once per process)
        return out

    @staticmethod
    def _blocks(db, where: str, args: tuple) -> _Level:
        return _block_keys(db.execute(
            f"SELECT first_rowid, n, rowids, keys FROM column_blocks WHERE {where} ORDER BY first_rowid",
            args).fetchall())

    def _read_blocks(self, db) -> None:
        new = self._blocks(db, "last_rowid > ?", (self.last_rowid,))
        new = new.where(new.rid > self.last_rowid)
        if len(new):
            self._add_committed(new)
            self.last_rowid = int(new.rid.max())

    def _add_committed(self, level: _Level) -> None:
        """Committed keys with ids past ``last_rowid``: into memory, and the next run."""
        self._add_level(level)
        self.unrun = _merge(self.unrun, level.where(level.rid > self.watermark))

    def _add_level(self, level: _Level) -> None:
        if not len(level):
            return
        self.delta = _merge(self.delta, level)
        if len(self.delta) > max(65536, len(self.base) // 8):
            self.base = _merge(self.base, self.delta)
            self.delta = _NONE

    # -- runs written by the writer (holding the write lock) ---------------------------
    def _store_run(self, db) -> None:
        """The keys past the watermark as a new run; merge runs of one size class."""
        view = self.local.view
        self.undo = (self.watermark, self.unrun, [])
        made = self.undo[2]
        runs = view.runs + [_write_run(db, self.unrun, self.last_rowid)]
        made.append(runs[-1].id)
        fresh = {runs[-1].id: self.unrun}  # runs whose keys are in hand
        while True:
            classes: dict[int, list[_Run]] = {}
            for r in runs:
                classes.setdefault(_size_class(r.n), []).append(r)
            full = [c for c in sorted(classes) if len(classes[c]) >= FANOUT]
            if not full:
                break
            group = classes[full[0]]
            merged = _concat([fresh.pop(r.id) if r.id in fresh else r.load(db) for r in group])
            run = _write_run(db, merged, max(r.last_rowid for r in group))
            for r in group:
                _drop_run(db, r)
                self.runs.pop(r.id, None)
            runs = [r for r in runs if r not in group] + [run]
            made.append(run.id)
            fresh = {run.id: merged}
        for r in runs:
            self.runs[r.id] = r
        self.watermark = self.last_rowid
        self.unrun = _NONE
        view.runs, view.watermark = runs, self.last_rowid

    # -- lookups (after catch_up, in the same thread and transaction) -------------------
    def _view(self) -> _View | None:
        """This thread's view, where some committed keys are only in the runs (floor > 0)."""
        if not self.floor:
            return None
        view = getattr(self.local, "view", None)
        if view is None:
            raise RuntimeError("KeyIndex: catch_up(db) first, in this thread and transaction")
        return view

    def _load_runs(self, view: _View) -> None:
        """Every run into memory (keys up to floor); lookups stop reading pages."""
        old = _concat([r.load(view.db) for r in view.runs]) if view.runs else _NONE
        self.base = _merge(self.base, old.where(old.rid <= self.floor))
        self.floor = 0

    def find(self, k1: np.ndarray, k2: np.ndarray) -> np.ndarray:
        """Row ids of the stored keys (committed or pending in this transaction), -1 if new."""
        o = np.argsort(k1)
        q1, q2 = k1[o], k2[o]
        got = np.full(len(k1), -1, np.int64)
        with self.lock:
            for level in (self.base, self.delta, self.pending):
                level.find(q1, q2, got)
            view = self._view()
            if view is not None:
                view.gap.find(q1, q2, got)
                miss = np.flatnonzero(got < 0)
                self.asked += len(miss)
                if view.watermark >= self.floor and \
                        self.asked * LOAD_SHARE > sum(r.n for r in view.runs):
                    self._load_runs(view)
                    self.base.find(q1, q2, got)
                else:
                    for run in view.runs:
                        if len(miss):
                            sub = got[miss]
                            run.find(view.db, q1[miss], q2[miss], sub)
                            got[miss] = sub
                            miss = miss[sub < 0]
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
            p, self.marks, self.undo = self.pending, [], None
            self.pending = _NONE
            if len(p):
                top = int(p.rid.max())
                new = p.rid > self.last_rowid  # a reader's catch-up may have added them already
                self._add_committed(p.where(new))
                self.last_rowid = max(self.last_rowid, top)

    def rolled_back(self) -> None:
        with self.lock:
            self.pending, self.marks = _NONE, []
            if self.undo is not None:  # the runs this transaction wrote are gone
                self.watermark, self.unrun, made = self.undo
                for rid in made:
                    self.runs.pop(rid, None)
                self.undo = None
                self.local.view = None

    # -- lookups by transaction id -----------------------------------------------------
    def rows_with_k1(self, k1: int) -> list[int]:
        with self.lock:
            found = [lv.with_k1(k1) for lv in (self.base, self.delta)]
            view = self._view()
            if view is not None:
                found.append(view.gap.with_k1(k1))
                for run in view.runs:
                    rid = run.with_k1(view.db, k1)
                    found.append(rid[rid <= self.floor])  # the others are in memory
            return sorted({int(r) for part in found for r in part.tolist()})
