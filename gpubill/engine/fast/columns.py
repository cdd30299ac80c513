"""An in-memory implementation of the column protocol the kernels read.

The store hands the engine its ``EventColumns`` (``gpubill.store.columns``:
``n``, ``timestamp_ms``, ``rowid``, ``code``, ``subscription``, ``strings``,
``numeric(name)``, ``dim(name)``), read from SQLite; the engine cannot import
the store, so ``InMemoryColumns`` builds the same shape in memory: from
Lago-shaped dicts (the tests) or from arrays (the benches).  Numeric parsing follows
the strict rule ``^-?[0-9]+(\\.[0-9]+)?$``: anything else is exponent -128,
and a strict value the store could not hold is exponent -127.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from gpubill.engine.pricing.money import MISSING_EXPONENT, UNHOLDABLE_EXPONENT
from gpubill.engine.reference.engine import held_pair, is_numeric, normalize


def parse_numeric(s):
    """'12.50' -> (1250, -2) as the store holds it; non-strict or missing ->
    (0, MISSING_EXPONENT); strictly numeric but beyond what it can hold ->
    (0, UNHOLDABLE_EXPONENT)."""
    if not is_numeric(s):
        return 0, MISSING_EXPONENT
    return held_pair(s) or (0, UNHOLDABLE_EXPONENT)


class InMemoryColumns:
    """Event columns held in memory, in the shape of the store's ``EventColumns``
    (what the kernels read): built from Lago-shaped event dicts
    (``from_events``, the tests) or from arrays (the benches' generated
    months)."""

    def __init__(self, timestamp_ms, rowid, code, subscription, strings, dims=None, nums=None, transaction_ids=None):
        self.n = len(timestamp_ms)
        self.timestamp_ms = np.asarray(timestamp_ms, np.int64)
        self.rowid = np.asarray(rowid, np.int64)
        self.code = np.asarray(code, np.int32)
        self.subscription = np.asarray(subscription, np.int32)
        self.strings = strings
        self._dims = dims or {}  # name -> int32 dictionary ids (-1: missing)
        self._nums = nums or {}  # name -> (int64 mantissas, int8 exponents)
        self.transaction_ids = transaction_ids
        self._index = {s: i for i, s in enumerate(strings)}

    def lookup(self, s):
        return self._index.get(s)

    @property
    def precise_total_amount_cents(self):
        return self.numeric("precise_total_amount_cents")

    def numeric(self, name):
        if name not in self._nums:
            return np.zeros(self.n, np.int64), np.full(self.n, MISSING_EXPONENT, np.int8)
        return self._nums[name]

    def dim(self, name):
        if name not in self._dims:
            return np.full(self.n, -1, np.int32)
        return self._dims[name]

    def to_events(self, rows):
        """Rows as Lago-shaped event dicts (for the reference engine)."""
        out = []
        for i in rows:
            props = {k: _decimal_text(int(m[i]), int(e[i])) for k, (m, e) in self._nums.items()
                     if k != "precise_total_amount_cents" and e[i] > UNHOLDABLE_EXPONENT}
            props.update({k: self.strings[a[i]] for k, a in self._dims.items() if a[i] >= 0})
            out.append(dict(
                transaction_id=self.transaction_ids[i] if self.transaction_ids else str(self.rowid[i]),
                external_subscription_id=self.strings[self.subscription[i]], code=self.strings[self.code[i]],
                timestamp_ms=int(self.timestamp_ms[i]), properties=props, rowid=int(self.rowid[i])))
        return out

    @classmethod
    def from_events(cls, events):
        evs = normalize(events)
        strings: list = []
        index: dict = {}

        def intern(s):
            if s is None:
                return -1
            if s not in index:
                index[s] = len(strings)
                strings.append(s)
            return index[s]

        names = sorted({k for e in evs for k in e["props"]})
        props = {k: [e["props"].get(k) for e in evs] for k in names}
        dims = {k: np.array([intern(v) for v in vals], np.int32) for k, vals in props.items()}
        code = [intern(e["code"]) for e in evs]
        sub = [intern(e["sub"]) for e in evs]
        props["precise_total_amount_cents"] = [None if c is None else str(c)
                                               for c in (e.get("precise_total_amount_cents") for e in events)]
        nums = {k: _parsed(vals) for k, vals in props.items()}
        return cls([e["ts"] for e in evs], [e["rowid"] for e in evs], code, sub, strings, dims, nums,
                   [e["tx"] for e in evs])


def _parsed(vals):
    pairs = [parse_numeric(v) for v in vals]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int8)


def _decimal_text(m: int, e: int) -> str:
    return str(Decimal(m).scaleb(e))


class CompactColumns:
    """A read's columns renumbered to a string table of their own: the strings its rows use.

    The engine builds tables over every dictionary id (a lookup table per
    filtered or grouped property, the codes', the subscriptions'), so each
    run costs the size of the store's string table: hundreds of thousands of
    strings in a store of 10 000 subscriptions, while one customer's read
    uses a few hundred. Codes and subscriptions are renumbered here, a
    property when the engine first asks for it (the engine loads every
    column before it looks a string up); numbers and transaction ids are the
    read's own. Nothing else changes: the same rows, values and strings.
    """

    def __init__(self, source):
        self._source = source
        self.n = source.n
        self.timestamp_ms = source.timestamp_ms
        self.rowid = source.rowid
        self.strings: list[str] = []
        self._local: dict[int, int] = {}  # the read's id -> ours
        self._by_text: dict[str, int] = {}
        self._dims: dict[str, np.ndarray] = {}
        self.code = self._renumbered(source.code)
        self.subscription = self._renumbered(source.subscription)

    def _renumbered(self, ids) -> np.ndarray:
        ids = np.asarray(ids, np.int32)
        uniq, inverse = np.unique(ids, return_inverse=True)
        new = [u for u in uniq.tolist() if u >= 0 and u not in self._local]
        for u, text in zip(new, self._source.strings.decode(new)):
            self._local[u] = self._by_text[text] = len(self.strings)
            self.strings.append(text)
        mapped = np.asarray([self._local[u] if u >= 0 else -1 for u in uniq.tolist()] or [-1], np.int32)
        return mapped[inverse.reshape(-1)] if ids.size else ids

    def lookup(self, s):
        """Our id of a string, None when no row read so far holds it."""
        return self._by_text.get(s)

    def dim(self, name):
        if name not in self._dims:
            self._dims[name] = self._renumbered(self._source.dim(name))
        return self._dims[name]

    def numeric(self, name):
        return self._source.numeric(name)

    @property
    def precise_total_amount_cents(self):
        return self._source.precise_total_amount_cents

    def property_names(self):
        return self._source.property_names()

    def transaction_ids_of(self, rowids):
        return self._source.transaction_ids_of(rowids)


def worth_compacting(cols, ratio: int = 16) -> bool:
    """Whether a read is small against its string table (``ratio`` strings per row or more): then
    ``CompactColumns`` spares each engine run the tables over every string."""
    try:
        size = len(cols.strings)
    except TypeError:
        return False
    return cols.n * ratio < size
