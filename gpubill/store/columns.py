"""Columnar reads: a period's events as numpy arrays, incrementally.

``read_columns`` copies the column blocks written at ingestion end to end
into arrays allocated once (``np.frombuffer`` over BLOBs, streamed row by row,
no Python row tuples) and applies the filters as one boolean mask. Property columns are loaded lazily, on the first
``dim(name)``/``numeric(name)``, and cached.

Dictionary ids index the store-wide ``strings`` table (``EventColumns.strings``
decodes them). The string form of a JSON number is not stored at ingestion:
``dim`` derives it from the exact decimal and interns it on first use, so its
id is stable store-wide like every other.
"""

from __future__ import annotations

import contextlib
import threading

import attrs
import numpy as np

from .encode import LAZY
from .numeric import MISSING, format_decimal, held

_I64, _I32, _I8 = np.dtype("<i8"), np.dtype("<i4"), np.dtype("i1")
_COLUMNS = "id, first_rowid, n, rowids, ts, code, sub, ptac_m, ptac_e"  # read_columns, per block
# SQLite page cache while BLOBs are scanned (KiB): pages read once need none, and filling the
# connection's usual 128 MiB would cost a fresh process more than the reads themselves
_SCAN_CACHE_KIB = 4096


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


@attrs.frozen(eq=False)
class EventColumns:
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
            m, e, _ = self._source.load(name)
            self._cache[key] = (m, e)
        return self._cache[key]

    def dim(self, name: str) -> np.ndarray:
        """Dictionary id of the property's string form (int32[n]), -1 when missing."""
        key = ("dim", name)
        if key not in self._cache:
            m, e, sid = self._source.load(name)
            lazy = sid == LAZY
            if lazy.any():
                pairs = np.unique(np.stack([m[lazy], e[lazy].astype(np.int64)], axis=1), axis=0)
                texts = [format_decimal(int(a), int(b)) for a, b in pairs.tolist()]
                ids = self._source.store._intern_strings(texts)
                self.strings._add(zip(texts, ids.tolist()))
                lut = {(a, b): i for (a, b), i in zip(pairs.tolist(), ids.tolist())}
                sid = sid.copy()
                where = np.flatnonzero(lazy)
                sid[where] = [lut[(a, b)] for a, b in zip(m[where].tolist(), e[where].tolist())]
            self._cache[key] = sid
        return self._cache[key]


@attrs.define
class _PropSource:
    """Where the lazily loaded property columns come from."""

    store: object
    block_ids: list
    sizes: list
    mask: np.ndarray | None   # over the concatenated blocks; None = all rows

    def transaction_ids_of(self, rowids) -> list[str]:
        import json

        ids = [int(r) for r in rowids]
        found: dict[int, str] = {}
        db = self.store._read()
        for i in range(0, len(ids), 50_000):
            part = ids[i:i + 50_000]
            found.update(db.execute(
                "SELECT e.id, e.transaction_id FROM json_each(?) AS j JOIN events AS e ON e.id = j.value",
                (json.dumps(part),)).fetchall())
        return [found[i] for i in ids]

    def names(self) -> list[str]:
        if not self.block_ids:
            return []
        rows = self.store._read().execute(
            "SELECT DISTINCT name FROM block_props WHERE block_id BETWEEN ? AND ?",
            (self.block_ids[0], self.block_ids[-1])).fetchall()
        return sorted(r[0] for r in rows)

    def load(self, name: str):
        total = sum(self.sizes)
        m = np.zeros(total, np.int64)
        e = np.full(total, MISSING, np.int8)
        sid = np.full(total, -1, np.int32)
        if self.block_ids:
            offs = dict(zip(self.block_ids, np.cumsum([0] + self.sizes[:-1]).tolist()))
            sizes = dict(zip(self.block_ids, self.sizes))
            db = self.store._read()
            with _scan(db):
                rows = db.execute(
                    "SELECT block_id, sid, m, e FROM block_props WHERE name = ? AND block_id BETWEEN ? AND ?",
                    (name, self.block_ids[0], self.block_ids[-1]))
                for bid, bs, bm, be in rows:
                    if bid not in offs:
                        continue
                    o, k = offs[bid], sizes[bid]
                    if bm is not None:
                        m[o:o + k] = np.frombuffer(bm, _I64)
                        e[o:o + k] = np.frombuffer(be, _I8)
                    if bs is not None:
                        sid[o:o + k] = np.frombuffer(bs, _I32)
                    else:
                        sid[o:o + k] = np.where(held(e[o:o + k]), LAZY, -1)  # no string form for a sentinel
        if self.mask is not None:
            m, e, sid = m[self.mask], e[self.mask], sid[self.mask]
        return m, e, sid


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
    rowid, timestamp, codev, subv, ptm, pte = cols.rowid, cols.ts, cols.code, cols.sub, cols.ptm, cols.pte
    strings = store.strings
    mask = None
    if total and rowid[0] <= since_rowid:
        mask = rowid > since_rowid
    if codes is not None:
        cid = [strings.lookup(c) for c in codes]
        mask = _and(mask, np.isin(codev, np.array([c for c in cid if c >= 0], np.int32)))
    if subscriptions is not None:
        sid = [strings.lookup(s) for s in subscriptions]
        mask = _and(mask, np.isin(subv, np.array([s for s in sid if s >= 0], np.int32)))
    if time_from_ms is not None:
        mask = _and(mask, timestamp >= time_from_ms)
    if time_to_ms is not None:
        mask = _and(mask, timestamp <= time_to_ms)
    if mask is not None:
        rowid, timestamp, codev, subv = rowid[mask], timestamp[mask], codev[mask], subv[mask]
        ptm, pte = ptm[mask], pte[mask]
    last = max(top, since_rowid)
    src = _PropSource(store, cols.ids, cols.sizes, mask)
    return EventColumns(int(rowid.shape[0]), int(last), rowid, timestamp, codev, subv, strings,
                        (ptm, pte), src)


class _Blocks:
    """The selected column blocks copied end to end into arrays allocated once.

    Each block's BLOBs are copied straight into their slice as the rows are
    read, so no block outlives its row and nothing is concatenated.
    """

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
    db.execute(f"PRAGMA cache_size = -{_SCAN_CACHE_KIB}")
    try:
        yield
    finally:
        db.execute(f"PRAGMA cache_size = {int(size)}")


def _and(mask, other):
    return other if mask is None else (mask & other)
