"""A read's events as columns, from the cluster: the shape of the SQLite store's ``EventColumns``.

The first query brings ids, timestamps, codes, subscriptions and precise
amounts in id order; a property column is read on first use (``dim`` /
``numeric``), for the same selection capped at the first query's last id,
and put in place by id. Dictionary ids are the read's own (``ReadStrings``):
the engine compares ids only within a read.
"""

from __future__ import annotations

import numpy as np

from gpubill.store.columns import ResolvedDims
from gpubill.store.job_reason import ATTEMPT, END_REASON, JOB_ID
from gpubill.store.numeric import MISSING, format_decimal, held

from .client import Cluster
from .select import Selection

_ID_CHUNK = 50_000


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
        found: dict[int, str] = {}
        for k in range(0, len(ids), _ID_CHUNK):
            part = ids[k:k + _ID_CHUNK]
            found.update(self._cluster.query(f"SELECT id, txn FROM {self._db}.events WHERE id IN %(ids)s",
                                             {"ids": tuple(part)}))
        return [found[i] for i in ids]

    def numeric(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name == "precise_total_amount_cents":
            return self._ptac
        m, e, _ = self._prop(name)
        return m, e

    def _stored_dim(self, name: str) -> np.ndarray:
        """The explicit string where the value was a string, else a held number's canonical text."""
        m, e, texts = self._prop(name)
        sid = np.full(self.n, -1, np.int32)
        explicit = np.array([t is not None for t in texts], bool) if self.n else np.zeros(0, bool)
        if explicit.any():
            at = np.flatnonzero(explicit)
            sid[at] = self.strings.intern([texts[i] for i in at.tolist()])
        numbers = np.flatnonzero(~explicit & held(e))
        if numbers.size:
            sid[numbers] = self.strings.intern(
                [format_decimal(a, b) for a, b in zip(m[numbers].tolist(), e[numbers].tolist())])
        return sid

    def prefetch(self, names) -> None:
        """Read these properties' columns (and a job's, for end reasons) in one query."""
        want = list(dict.fromkeys(names))
        if END_REASON in want:
            want += [JOB_ID, ATTEMPT]
        want = [p for p in dict.fromkeys(want) if p != "precise_total_amount_cents" and ("prop", p) not in self._cache]
        if not want:
            return
        picked = [self._empty() for _ in want]
        if self.n:
            params = {**self._sel.params(), **{f"p{k}": p for k, p in enumerate(want)}}
            inner = ", ".join(f"indexOf(pk, %(p{k})s) AS i{k}, ps[i{k}] AS s{k}, px[i{k}] AS x{k}, pm[i{k}] AS m{k},"
                              f" pe[i{k}] AS e{k}" for k in range(len(want)))
            outer = ", ".join(f"i{k}, s{k}, x{k}, m{k}, e{k}" for k in range(len(want)))
            where = " OR ".join(f"i{k} > 0" for k in range(len(want)))
            # each shard picks the properties out of the arrays: only their values cross the network
            rows = self._cluster.query(self._sel.sql(self._db, f"id, {inner}", f"id, {outer}", where=where),
                                       params, columnar=True)
            if rows:
                at = np.searchsorted(self.rowid, np.array(rows[0], np.int64))
                for k, (m, e, texts) in enumerate(picked):
                    i, ps, px, pm, pe = rows[1 + 5 * k:6 + 5 * k]
                    has = np.array(i, np.int64) > 0
                    m[at[has]] = np.array(pm, np.int64)[has]
                    e[at[has]] = np.array(pe, np.int8)[has]
                    for a, s, x in zip(at.tolist(), ps, px):
                        if x:
                            texts[a] = s
        for p, value in zip(want, picked):
            self._cache[("prop", p)] = value

    def _empty(self) -> tuple[np.ndarray, np.ndarray, list]:
        return np.zeros(self.n, np.int64), np.full(self.n, MISSING, np.int8), [None] * self.n

    def _prop(self, name: str) -> tuple[np.ndarray, np.ndarray, list]:
        """(m, e, explicit strings or None) of one property over the read's rows."""
        if ("prop", name) not in self._cache:
            self.prefetch([name])
        return self._cache[("prop", name)]
