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
