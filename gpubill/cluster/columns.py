"""A read's events as columns, from the cluster: the shape of the SQLite store's ``EventColumns``.

The first query brings ids, timestamps, codes, subscriptions and precise
amounts in id order; a property column is read on first use (``dim`` /
``numeric``), for the same selection capped at the first query's last id,
and put in place by id. Dictionary ids are the read's own (``ReadStrings``):
the engine compares ids only within a read.
"""

from __future__ import annotations

from itertools import compress

import numpy as np

from gpubill.store.columns import ResolvedDims
from gpubill.store.job_reason import ATTEMPT, END_REASON, JOB_ID
from gpubill.store.numeric import MISSING, format_decimal, held

from .client import Cluster, ids_table
from .select import Selection



class ReadStrings:
    """Dictionary ids of one read: strings are added as columns load."""

    def __init__(self):
        self._list: list[str] = []
        self._index: dict[str, int] = {}

    def intern(self, values) -> np.ndarray:
        index, out = self._index, []
        for v in values:
            i = index.get(v)
            if i is None:
                i = index[v] = len(self._list)
                self._list.append(v)
            out.append(i)
        return np.array(out, np.int32)

    def lookup(self, s: str) -> int:
        return self._index.get(s, -1)

    def __getitem__(self, i: int) -> str:
        return self._list[int(i)]

    def __len__(self) -> int:
        return len(self._list)

    def __iter__(self):
        return iter(list(self._list))

    def decode(self, ids) -> list:
        return [None if i < 0 else self._list[i] for i in np.asarray(ids).tolist()]


class ClusterColumns(ResolvedDims):
    """Events as columns in id order (see ``gpubill.store.columns.EventColumns``)."""

    def __init__(self, cluster: Cluster, sel: Selection):
        self._cluster, self._db = cluster, cluster.url.database
        self.strings = ReadStrings()
        if sel.empty():
            rows: list = [[], [], [], [], [], []]
        else:
            rows = cluster.query(sel.sql(self._db, "id, ts, code, sub, ptac_m, ptac_e"), sel.params(),
                                 columnar=True) or [[], [], [], [], [], []]
        self.rowid = np.array(rows[0], np.int64)
        self.n = len(self.rowid)
        self.last_rowid = int(self.rowid[-1]) if self.n else sel.since
        self.timestamp_ms = np.array(rows[1], np.int64)
        self.code = self.strings.intern(rows[2])
        self.subscription = self.strings.intern(rows[3])
        self._ptac = (np.array(rows[4], np.int64), np.array(rows[5], np.int8))
        self._sel = Selection(sel.codes, sel.subscriptions, sel.time_from_ms, sel.time_to_ms, sel.since,
                              self.last_rowid)
        self._cache: dict = {}

    @property
    def precise_total_amount_cents(self) -> tuple[np.ndarray, np.ndarray]:
        return self._ptac

    def lookup(self, s: str) -> int:
        return self.strings.lookup(s)

    def property_names(self) -> list[str]:
        if not self.n:
            return []
        rows = self._cluster.query(self._sel.sql(self._db, "id, pk", "DISTINCT arrayJoin(pk)", tail=""),
                                   self._sel.params())
        return sorted(r[0] for r in rows)

    def transaction_ids_of(self, rowids) -> list[str]:
        ids = [int(r) for r in rowids]
        found = dict(self._cluster.query(f"SELECT id, txn FROM {self._db}.events WHERE id GLOBAL IN wanted_ids",
                                         external_tables=[ids_table("wanted_ids", set(ids))]))
        return [found[i] for i in ids]

    def numeric(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name == "precise_total_amount_cents":
            return self._ptac
        if ("prop", name) not in self._cache and ("num", name) not in self._cache:
            self.prefetch((), [name])
        m, e, *_ = self._cache.get(("prop", name)) or self._cache[("num", name)]
        return m, e

    def _stored_dim(self, name: str) -> np.ndarray:
        """The explicit string where the value was a string, else a held number's canonical text."""
        if ("prop", name) not in self._cache:
            self.prefetch([name])
        m, e, at, texts = self._cache[("prop", name)]
        sid = np.full(self.n, -1, np.int32)
        explicit = np.zeros(self.n, bool)
        if at.size:
            explicit[at] = True
            sid[at] = self.strings.intern(texts)
        numbers = np.flatnonzero(~explicit & held(e))
        if numbers.size:
            sid[numbers] = self.strings.intern(
                [format_decimal(a, b) for a, b in zip(m[numbers].tolist(), e[numbers].tolist())])
        return sid

    def prefetch(self, names, numeric=()) -> None:
        """Read these properties' columns (and a job's, for end reasons), and the numbers alone of the
        ``numeric`` ones, in one query: each shard picks them out of the arrays, and only their values
        cross the network."""
        full = list(dict.fromkeys(names))
        if END_REASON in full:
            full += [JOB_ID, ATTEMPT]
        full = [p for p in dict.fromkeys(full) if p != "precise_total_amount_cents" and ("prop", p) not in self._cache]
        nums = [p for p in dict.fromkeys(numeric) if p != "precise_total_amount_cents" and p not in full
                and ("prop", p) not in self._cache and ("num", p) not in self._cache]
        if not full and not nums:
            return
        want = [(p, True) for p in full] + [(p, False) for p in nums]
        inner, outer = [], []
        for k, (_, strings) in enumerate(want):
            inner.append(f"indexOf(pk, %(p{k})s) AS i{k}, pm[i{k}] AS m{k}, if(i{k} > 0, pe[i{k}], -128) AS e{k}"
                         + (f", ps[i{k}] AS s{k}, px[i{k}] AS x{k}" if strings else ""))
            outer.append(f"m{k}, e{k}" + (f", s{k}, x{k}" if strings else ""))
        rows = []
        if self.n:
            params = {**self._sel.params(), **{f"p{k}": p for k, (p, _) in enumerate(want)}}
            where = " OR ".join(f"i{k} > 0" for k in range(len(want)))
            rows = self._cluster.query(self._sel.sql(self._db, "id, " + ", ".join(inner), "id, " + ", ".join(outer),
                                                     where=where), params, columnar=True)
        at = np.searchsorted(self.rowid, np.array(rows[0], np.int64)) if rows else np.zeros(0, np.intp)
        col = 1
        for p, strings in want:
            m, e = np.zeros(self.n, np.int64), np.full(self.n, MISSING, np.int8)
            if rows:
                m[at], e[at] = rows[col], rows[col + 1]
            if not strings:
                self._cache[("num", p)] = (m, e)
                col += 2
                continue
            explicit = np.array(rows[col + 3], bool) if rows else np.zeros(0, bool)
            texts = list(compress(rows[col + 2], explicit)) if rows else []
            self._cache[("prop", p)] = (m, e, at[explicit], texts)
            col += 4
