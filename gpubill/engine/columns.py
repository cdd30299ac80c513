"""An in-memory implementation of the column protocol the kernels read.

The store hands the engine its ``EventColumns`` (``gpubill.store.columns``:
``n``, ``timestamp_ms``, ``rowid``, ``code``, ``subscription``, ``strings``,
``numeric(name)``, ``dim(name)``), read from SQLite; the engine cannot import
the store, so ``InMemoryColumns.from_events`` builds the same shape from
Lago-shaped dicts held in memory, for the tests.  Numeric parsing follows
the strict rule ``^-?[0-9]+(\\.[0-9]+)?$``: anything else is exponent -128,
and a strict value the store could not hold is exponent -127.
"""

from __future__ import annotations

import numpy as np

from .money import MISSING_EXPONENT, UNHOLDABLE_EXPONENT
from .reference import held_pair, is_numeric, normalize


def parse_numeric(s):
    """'12.50' -> (1250, -2) as the store holds it; non-strict or missing ->
    (0, MISSING_EXPONENT); strictly numeric but beyond what it can hold ->
    (0, UNHOLDABLE_EXPONENT)."""
    if not is_numeric(s):
        return 0, MISSING_EXPONENT
    return held_pair(s) or (0, UNHOLDABLE_EXPONENT)


class InMemoryColumns:
    """Events given as dicts, as the columns the kernels read (the store's
    ``EventColumns`` shape, built in memory rather than read from SQLite)."""

    def __init__(self, n, timestamp_ms, rowid, code, subscription, strings, props, cents, transaction_ids):
        self.n = n
        self.timestamp_ms = timestamp_ms
        self.rowid = rowid
        self.code = code
        self.subscription = subscription
        self.strings = strings
        self._props = props  # name -> list of str|None
        self._cents = cents
        self.transaction_ids = transaction_ids
        self._index = {s: i for i, s in enumerate(strings)}
        self._dims: dict = {}

    def lookup(self, s):
        return self._index.get(s)

    @property
    def precise_total_amount_cents(self):
        return self.numeric("precise_total_amount_cents")

    def numeric(self, name):
        vals = self._cents if name == "precise_total_amount_cents" else self._props.get(name, [None] * self.n)
        pairs = [parse_numeric(v) for v in vals]
        return (np.array([p[0] for p in pairs], np.int64).reshape(self.n),
                np.array([p[1] for p in pairs], np.int8).reshape(self.n))

    def dim(self, name):
        if name not in self._dims:
            vals = self._props.get(name, [None] * self.n)
            self._dims[name] = np.array([self._index.get(v, -1) if v is not None else -1 for v in vals],
                                        np.int32).reshape(self.n)
        return self._dims[name]

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

        n = len(evs)
        names = sorted({k for e in evs for k in e["props"]})
        props = {k: [e["props"].get(k) for e in evs] for k in names}
        for vals in props.values():
            for v in vals:
                intern(v)
        raw_cents = [e.get("precise_total_amount_cents") for e in events]
        cents = [None if c is None else str(c) for c in raw_cents]
        cols = cls(
            n,
            np.array([e["ts"] for e in evs], np.int64).reshape(n),
            np.array([e["rowid"] for e in evs], np.int64).reshape(n),
            np.array([intern(e["code"]) for e in evs], np.int32).reshape(n),
            np.array([intern(e["sub"]) for e in evs], np.int32).reshape(n),
            strings, props, cents, [e["tx"] for e in evs],
        )
        return cols
