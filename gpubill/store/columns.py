"""Columnar reads: a period's events as numpy arrays, incrementally.

``read_columns`` copies the column blocks written at ingestion end to end
into arrays allocated once (``np.frombuffer`` over BLOBs, streamed row by row,
no Python row tuples) and applies the filters as one boolean mask (none when
it keeps every row). Property columns are loaded lazily, on the first
``dim(name)``/``numeric(name)``, and cached: each is streamed block by block,
only the BLOBs it needs (``numeric``: the numbers; ``dim``: the dictionary ids,
and the numbers only of blocks holding numbers without a stored string), and
only each block's kept rows are copied, into arrays of the read's size.
Scans read pages once, through a small page cache and no memory map.

Dictionary ids index the store-wide ``strings`` table (``EventColumns.strings``
decodes them). The string form of a JSON number is not stored at ingestion:
``dim`` derives it from the exact decimal and interns it on first use, so its
id is stable store-wide like every other.

``dim("end_reason")`` gives an event without one its job's end reason
(``job_reason.py``), as the reference engine's ``events_as_dicts`` does.
"""

from __future__ import annotations

import contextlib
import threading

import attrs
import numpy as np
import orjson

from . import payloads
from .encode import LAZY
from .job_reason import END_REASON, job_end_reasons
from .numeric import MISSING, format_decimal, held

_I64, _I32, _I8 = np.dtype("<i8"), np.dtype("<i4"), np.dtype("i1")
_COLUMNS = "id, first_rowid, n, rowids, ts, code, sub, ptac_m, ptac_e"  # read_columns, per block
# SQLite page cache while BLOBs are scanned (KiB): pages read once need none, and filling the
# connection's usual 128 MiB would cost a fresh process more than the reads themselves
_SCAN_CACHE_KIB = 4096
_PACKABLE = 1 << 55  # a mantissa below this packs with its exponent into one int64


class StringTable:
    """Decode table for dictionary ids (a lazy, store-wide list of strings)."""

    def __init__(self, store):
        self._store = store
        self._lock = threading.Lock()
        self._by_id: dict[int, str] = {}
        self._by_s: dict[str, int] = {}
        self._loaded_to = 0

    def _load(self) -> None:
        with self._lock:
            rows = self._store._read().execute(
                "SELECT id, s FROM strings WHERE id > ? ORDER BY id", (self._loaded_to,)).fetchall()
            for i, s in rows:
                self._by_id[i] = s
                self._by_s[s] = i
            if rows:
                self._loaded_to = rows[-1][0]

    def __getitem__(self, i: int) -> str:
        i = int(i)
        if i not in self._by_id:
            r = self._store._read().execute("SELECT s FROM strings WHERE id = ?", (i,)).fetchone()
            if r is None:
                raise IndexError(f"no string with id {i}")
            self._add([(r[0], i)])
        return self._by_id[i]

    def __len__(self) -> int:
        """One more than the largest id (ids start at 1; 0 decodes to "")."""
        top = self._store._read().execute("SELECT coalesce(max(id), 0) FROM strings").fetchone()[0]
        return top + 1

    def lookup(self, s: str) -> int:
        """The id of a string, or -1 if the store has never seen it."""
        if s not in self._by_s:
            r = self._store._read().execute("SELECT id FROM strings WHERE s = ?", (s,)).fetchone()
            if r is None:
                return -1
            self._add([(s, r[0])])
        return self._by_s[s]

    def __iter__(self):
        self._load()
        for i in range(self._loaded_to + 1):
            yield self._by_id.get(i, "")

    def decode(self, ids) -> list:
        """Strings of an id array (None for -1)."""
        ids = np.asarray(ids).tolist()
        if any(i >= 0 and i not in self._by_id for i in ids):
            self._load()
        return [None if i < 0 else self._by_id[i] for i in ids]

    def _virtual(self, texts: list[str]) -> np.ndarray:
        """Ids for strings a read-only store has not interned: beyond every stored id."""
        out = []
        with self._lock:
            top = max(len(self), max(self._by_id, default=0) + 1)
        for t in texts:
            i = self.lookup(t)
            if i < 0:
                i = top
                top += 1
                self._add([(t, i)])
            out.append(i)
        return np.array(out, np.int32)

    def _add(self, pairs) -> None:
        with self._lock:
            for s, i in pairs:
                self._by_id[i] = s
                self._by_s[s] = i


class ResolvedDims:
    """``dim(name)`` of a column read: the stored dictionary ids (``_stored_dim``), each job's end reason
    given to its events, cached (``_cache``). Both stores' column reads share it."""

    def dim(self, name: str) -> np.ndarray:
        """Dictionary id of the property's string form (int32[n]), -1 when missing.

        ``dim("end_reason")`` is each event's job's end reason (``job_reason.py``)."""
        key = ("dim", name)
        if key not in self._cache:
            sid = self._stored_dim(name)
            if name == END_REASON:
                sid = job_end_reasons(sid, self.timestamp_ms, self.subscription, self.dim)
            self._cache[key] = sid
        return self._cache[key]


@attrs.frozen(eq=False)
class EventColumns(ResolvedDims):
    """Events as columns, in ingestion order. See ``Store.read_columns``.

    The engine's ``InMemoryColumns`` (``gpubill.engine.fast.columns``) builds the
    same shape from event dicts, for the tests; the engine cannot import this."""

    n: int
    last_rowid: int
    rowid: np.ndarray
    timestamp_ms: np.ndarray
    code: np.ndarray
    subscription: np.ndarray
    strings: StringTable
    _ptac: tuple
    _source: "_PropSource"
    _cache: dict = attrs.field(factory=dict)

    @property
    def precise_total_amount_cents(self) -> tuple[np.ndarray, np.ndarray]:
        return self._ptac

    def property_names(self) -> list[str]:
        return self._source.names()

    def transaction_ids_of(self, rowids) -> list[str]:
        """The transaction ids of the given row ids, in their order (one query per 50 000)."""
        return self._source.transaction_ids_of(rowids)

    def lookup(self, s: str) -> int:
        """Dictionary id of a string, -1 if the store has never seen it."""
        return self.strings.lookup(s)

    def numeric(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(mantissa int64[n], exponent int8[n]); exponent -128 = missing/not numeric,
        -127 (``gpubill.numbers.UNHOLDABLE``) = a numeric string the pair cannot hold exactly.

        ``numeric("precise_total_amount_cents")`` is the event's precise amount.
        """
        if name == "precise_total_amount_cents":
            return self._ptac
        key = ("num", name)
        if key not in self._cache:
            self._cache[key] = self._source.numeric(name)
        return self._cache[key]

    def stored_forms(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A property as it was sent: (dictionary ids of its explicit string forms, -1 when not sent as
        a string, ``LAZY`` when sent as a JSON number; exact decimal mantissas and exponents)."""
        sid, _, _, _ = self._source.dim(name)
        m, e = self.numeric(name)
        return sid, m, e

    def _stored_dim(self, name: str) -> np.ndarray:
        """The property's dictionary ids as stored, numbers' canonical strings interned."""
        sid, where, m, e = self._source.dim(name)
        if where.size:  # numbers without a stored string form: intern their canonical text
            pairs, pair_of = _distinct_numbers(m, e)
            texts = [format_decimal(a, b) for a, b in pairs]
            ids = self._source.store._intern_strings(texts)
            self.strings._add(zip(texts, ids.tolist()))
            sid[where] = np.asarray(ids, np.int32)[pair_of.reshape(-1)]
        return sid


def _distinct_numbers(m: np.ndarray, e: np.ndarray) -> tuple[list, np.ndarray]:
    """The distinct (mantissa, exponent) pairs, and which pair each number is. Mantissas within
    56 bits share one int64 with their exponent: a flat sort (a row-wise ``np.unique`` over
    10 M pairs takes seconds)."""
    if m.size and -_PACKABLE < int(m.min()) and int(m.max()) < _PACKABLE:
        packed, pair_of = _distinct((m << 8) | (e.astype(np.int64) + 128))
        return list(zip((packed >> 8).tolist(), ((packed & 255) - 128).tolist())), pair_of
    pairs, pair_of = np.unique(np.stack([m, e.astype(np.int64)], axis=1), axis=0, return_inverse=True)
    return [tuple(p) for p in pairs.tolist()], pair_of


def _distinct(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(v, return_inverse=True)``; through a table over the values' range when it is
    about as small as ``v`` (a few distinct numbers: attempts, counts), without sorting."""
    lo, hi = int(v.min()), int(v.max())
    if hi - lo >= 4 * v.size + (1 << 16):
        return np.unique(v, return_inverse=True)
    present = np.zeros(hi - lo + 1, bool)
    present[v - lo] = True
    index = np.cumsum(present) - 1
    return np.flatnonzero(present) + lo, index[v - lo]


@attrs.frozen
class _Kept:
    """One selected block's rows in a read: where they start in the columns, how many, and which
    of the block's rows they are (a boolean view over the block; None = all of them)."""

    at: int
    n: int
    rows: np.ndarray | None

    def put(self, out: np.ndarray, blob: bytes, dtype) -> np.ndarray:
        """Copy the block's kept values of one BLOB into their place in ``out``; returns that place."""
        values = np.frombuffer(blob, dtype)
        place = out[self.at:self.at + self.n]
        place[...] = values if self.rows is None else values[self.rows]
        return place


def _kept(ids: list, sizes: list, mask: np.ndarray | None) -> dict:
    """block id -> _Kept for every block with a row the read keeps (``mask``: over the blocks end to end)."""
    out, at, o = {}, 0, 0
    for bid, k in zip(ids, sizes):
        rows = None if mask is None else mask[o:o + k]
        n = k if rows is None else int(np.count_nonzero(rows))
        if n:
            out[bid] = _Kept(at, n, None if n == k else rows)
        at, o = at + n, o + k
    return out


@attrs.define
class _PropSource:
    """Where the lazily loaded property columns come from: each is streamed block by block,
    only its kept rows copied, into arrays of the read's size."""

    store: object
    span: tuple | None   # (first, last) id of the blocks the read selected; None = none
    blocks: dict   # block id -> _Kept of those with a kept row, in block order
    n: int

    def transaction_ids_of(self, rowids) -> list[str]:
        ids = [int(r) for r in rowids]
        db = self.store._read()
        with _scan(db):
            found = payloads.read(db, ids)
        return [orjson.loads(found[i].raw)["transaction_id"] for i in ids]

    def names(self) -> list[str]:
        if self.span is None:
            return []
        rows = self.store._read().execute(
            "SELECT DISTINCT name FROM block_props WHERE block_id BETWEEN ? AND ?", self.span).fetchall()
        return sorted(r[0] for r in rows)

    def numeric(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(m, e) of a property: only its number BLOBs are read."""
        m = np.zeros(self.n, np.int64)
        e = np.full(self.n, MISSING, np.int8)
        for _, kept, bm, be in self._rows("m, e", name):
            if bm is not None:
                kept.put(m, bm, _I64)
                kept.put(e, be, _I8)
        return m, e

    def dim(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(sid, where, m, e): dictionary ids, with the positions ``where`` that hold ``LAZY`` (a
        number with no stored string) and those numbers. Number BLOBs are read only for the
        blocks that have such numbers."""
        sid = np.full(self.n, -1, np.int32)
        where, ms, es = [], [], []
        db = self.store._read()
        for bid, kept, bs, numbers in self._rows("sid, m IS NOT NULL", name):
            if bs is None and not numbers:
                continue
            if bs is not None:
                lazy = np.flatnonzero(kept.put(sid, bs, _I32) == LAZY)
                if not lazy.size:
                    continue
            bm, be = db.execute("SELECT m, e FROM block_props WHERE name = ? AND block_id = ?",
                                (name, bid)).fetchone()
            m, e = _kept_numbers(kept, bm, be)
            if bs is None:  # every value a number: its canonical string; no string form for a sentinel
                lazy = np.flatnonzero(held(e))
                sid[kept.at + lazy] = LAZY
            where.append(kept.at + lazy)
            ms.append(m[lazy])
            es.append(e[lazy])
        return sid, _cat(where, np.intp), _cat(ms, np.int64), _cat(es, np.int8)

    def _rows(self, columns: str, name: str):
        """(block id, kept, *columns) of the property's rows in the selected blocks."""
        if not self.blocks:
            return
        db = self.store._read()
        with _scan(db):
            for bid, *rest in db.execute(f"SELECT block_id, {columns} FROM block_props"
                                         f" WHERE name = ? AND block_id BETWEEN ? AND ?",
                                         (name, min(self.blocks), max(self.blocks))):
                kept = self.blocks.get(bid)
                if kept is not None:
                    yield (bid, kept, *rest)


def _kept_numbers(kept: _Kept, bm: bytes, be: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The kept rows of one block's number BLOBs."""
    m, e = np.frombuffer(bm, _I64), np.frombuffer(be, _I8)
    return (m, e) if kept.rows is None else (m[kept.rows], e[kept.rows])


def _cat(parts: list, dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def read_columns(store, since_rowid=0, codes=None, time_from_ms=None, time_to_ms=None,
                 subscriptions=None) -> EventColumns:
    where, args = "last_rowid > ?", [since_rowid]
    if time_from_ms is not None:
        where += " AND max_ts >= ?"
        args.append(time_from_ms)
    if time_to_ms is not None:
        where += " AND min_ts <= ?"
        args.append(time_to_ms)
    db = store._read()
    db.execute("BEGIN")
    try:
        top = db.execute("SELECT coalesce(max(last_rowid), 0) FROM column_blocks").fetchone()[0]
        total, largest = db.execute(f"SELECT coalesce(sum(n), 0), coalesce(max(n), 0) FROM column_blocks"
                                    f" WHERE {where}", args).fetchone()
        cols = _Blocks(total, largest)
        with _scan(db):
            for row in db.execute(f"SELECT {_COLUMNS} FROM column_blocks WHERE {where} ORDER BY id", args):
                cols.add(*row)
    finally:
        db.execute("COMMIT")
    mask = _selection(cols, store.strings, since_rowid, codes, subscriptions, time_from_ms, time_to_ms)
    if mask is not None:
        cols.keep(np.flatnonzero(mask))
    rowid, timestamp, codev, subv, ptm, pte = cols.rowid, cols.ts, cols.code, cols.sub, cols.ptm, cols.pte
    span = (cols.ids[0], cols.ids[-1]) if cols.ids else None
    src = _PropSource(store, span, _kept(cols.ids, cols.sizes, mask), int(rowid.shape[0]))
    return EventColumns(int(rowid.shape[0]), int(max(top, since_rowid)), rowid, timestamp, codev, subv,
                        store.strings, (ptm, pte), src)


def _selection(cols: "_Blocks", strings: StringTable, since_rowid, codes, subscriptions,
               time_from_ms, time_to_ms) -> np.ndarray | None:
    """The rows the filters keep, as one boolean mask over the blocks; None when it keeps them all."""
    mask = None
    if cols.rowid.size and cols.rowid[0] <= since_rowid:
        mask = cols.rowid > since_rowid
    if codes is not None:
        mask = _and(mask, _isin(cols.code, [strings.lookup(c) for c in codes]))
    if subscriptions is not None:
        mask = _and(mask, _isin(cols.sub, [strings.lookup(s) for s in subscriptions]))
    if time_from_ms is not None:
        mask = _and(mask, cols.ts >= time_from_ms)
    if time_to_ms is not None:
        mask = _and(mask, cols.ts <= time_to_ms)
    return None if mask is None or mask.all() else mask


def _isin(ids: np.ndarray, wanted: list[int]) -> np.ndarray:
    """Which dictionary ids (never negative) are among ``wanted`` (-1 = a string never seen): one
    lookup in a table indexed by id."""
    wanted = [w for w in wanted if w >= 0]
    if not ids.size or not wanted:
        return np.zeros(ids.shape, bool)
    table = np.zeros(max(int(ids.max()), max(wanted)) + 1, bool)
    table[wanted] = True
    return table[ids]


class _Blocks:
    """The selected column blocks copied end to end into arrays allocated once.

    Each block's BLOBs are copied straight into their slice as the rows are
    read, so no block outlives its row and nothing is concatenated.
    """

    _COLUMNS = ("rowid", "ts", "code", "sub", "ptm", "pte")

    def __init__(self, total: int, largest: int):
        self.ids: list[int] = []
        self.sizes: list[int] = []
        self.rowid = np.empty(total, np.int64)
        self.ts = np.empty(total, np.int64)
        self.code = np.empty(total, np.int32)
        self.sub = np.empty(total, np.int32)
        self.ptm = np.zeros(total, np.int64)
        self.pte = np.full(total, MISSING, np.int8)
        self._at = 0
        self._iota = np.arange(largest, dtype=np.int64)  # a contiguous block's rowids, less its first

    def keep(self, rows: np.ndarray) -> None:
        """Keep only these rows: each column is replaced by its kept rows, one at a time, so that
        at most one column is held twice."""
        for name in self._COLUMNS:
            setattr(self, name, getattr(self, name).take(rows))

    def add(self, bid, first, n, rowids, ts, code, sub, ptac_m, ptac_e) -> None:
        o, k = self._at, self._at + n
        self.ids.append(bid)
        self.sizes.append(n)
        if rowids is None:
            np.add(self._iota[:n], first, out=self.rowid[o:k])
        else:
            self.rowid[o:k] = np.frombuffer(rowids, _I64)
        self.ts[o:k] = np.frombuffer(ts, _I64)
        self.code[o:k] = np.frombuffer(code, _I32)
        self.sub[o:k] = np.frombuffer(sub, _I32)
        if ptac_m is not None:
            self.ptm[o:k] = np.frombuffer(ptac_m, _I64)
            self.pte[o:k] = np.frombuffer(ptac_e, _I8)
        self._at = k


@contextlib.contextmanager
def _scan(db):
    """A small page cache on ``db`` while a scan reads BLOBs once; its own size again after."""
    size = db.execute("PRAGMA cache_size").fetchone()[0]
    mmap = db.execute("PRAGMA mmap_size").fetchone()[0]
    db.execute(f"PRAGMA cache_size = -{_SCAN_CACHE_KIB}")
    db.execute("PRAGMA mmap_size = 0")
    try:
        yield
    finally:
        db.execute(f"PRAGMA cache_size = {int(size)}")
        db.execute(f"PRAGMA mmap_size = {int(mmap)}")


def _and(mask, other):
    return other if mask is None else (mask & other)
