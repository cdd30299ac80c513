"""Which stored events a read keeps, as SQL that is exact under unmerged duplicates.

Copies of one key (a re-delivered batch, a re-send through another server)
carry the same subscription, code and timestamp, so those filters may run
before ``FINAL`` collapses the copies; the id bounds may not (a later copy
has a larger id), so they apply to what ``FINAL`` leaves: the first copy.
"""

from __future__ import annotations

import attrs

from gpubill.store.queries import clamp_int64


@attrs.frozen
class Selection:
    """Inclusive time bounds (UTC ms), codes, subscriptions and a transaction id (None: any), ids in
    (since, until]."""

    codes: tuple | None = None
    subscriptions: tuple | None = None
    time_from_ms: int | None = None
    time_to_ms: int | None = None
    since: int = 0
    until: int | None = None
    transaction_id: str | None = None

    @classmethod
    def of(cls, *, codes=None, subscriptions=None, time_from_ms=None, time_to_ms=None, since=0, until=None,
           transaction_id=None):
        return cls(None if codes is None else tuple(codes),
                   None if subscriptions is None else tuple(subscriptions),
                   None if time_from_ms is None else clamp_int64(time_from_ms, "time_from_ms"),
                   None if time_to_ms is None else clamp_int64(time_to_ms, "time_to_ms"),
                   max(0, clamp_int64(since, "since_rowid")), until, transaction_id)

    def empty(self) -> bool:
        return self.codes == () or self.subscriptions == () or (
            self.until is not None and self.until <= self.since)

    def params(self) -> dict:
        return {"codes": self.codes or ("",), "subs": self.subscriptions or ("",),
                "lo": self.time_from_ms, "hi": self.time_to_ms, "since": self.since, "until": self.until,
                "txn": self.transaction_id}

    def pre(self) -> str:
        """Conditions on what every copy of a key shares (before FINAL)."""
        out = ["1"]
        if self.codes is not None:
            out.append("code IN %(codes)s")
        if self.subscriptions is not None:
            out.append("sub IN %(subs)s")
        if self.transaction_id is not None:
            out.append("txn = %(txn)s")
        if self.time_from_ms is not None:
            out.append("ts >= %(lo)s")
        if self.time_to_ms is not None:
            out.append("ts <= %(hi)s")
        return " AND ".join(out)

    def post(self) -> str:
        """Conditions on the copy FINAL keeps."""
        out = ["id > %(since)s"]
        if self.until is not None:
            out.append("id <= %(until)s")
        return " AND ".join(out)

    def sql(self, database: str, inner: str, outer: str | None = None, *, where: str = "",
            tail: str = "ORDER BY id") -> str:
        """SELECT ``outer`` (default: ``inner``) over the kept events' ``inner`` columns (which
        must include ``id``; only they cross the network from the shards), ``where`` also holding."""
        cond = self.post() + (f" AND {where}" if where else "")
        return (f"SELECT {outer or inner} FROM (SELECT {inner} FROM {database}.events FINAL WHERE {self.pre()})"
                f" WHERE {cond} {tail}")
