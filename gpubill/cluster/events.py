"""The cluster's events: reads for the service layer and the one write path.

Reads see events up to the watermark (``watermark()``: the largest id below
which every event is stored) and go through ``FINAL`` (``select.py``), so
they are exact while ClickHouse has not merged duplicate copies yet.

``store_chunk`` is the write path the intake workers and ``migrate-events``
share: dedup against what the cluster holds (a key already stored with the
same content is a duplicate, with other content a conflict, recorded, the
first copy kept), the new events inserted into every shard at once, the
rejections kept in quarantine.
"""

from __future__ import annotations

import base64

import numpy as np
import orjson

from gpubill.store.encode import Chunk
from gpubill.store.job_reason import resolve_in_dicts
from gpubill.store.queries import REJECTED_STATUSES, EventRecord, RejectedRecord, _count, clamp_int64, now_ms
from gpubill.store.receipt import CONFLICT, DUPLICATE, INGESTED, REJECTED, Receipt
from gpubill.store.validate import quarantine_bytes
from gpubill.store.writer import same_content

from . import rows, schema
from .client import Cluster, external_table, ids_table
from .columns import ClusterColumns
from .select import Selection
from .url import EventsURL

_RECORD = "id, ts, raw, received_ms"
# (ClickHouse 18.16's FINAL needs the version column among those read)
_REJECTED = "id, received_ms, source, raw, reasons, status, resolved_event_id, ver"


class ClickHouseEvents:
    """Events in a sharded ClickHouse (``--events clickhouse://host:port/db?cluster=NAME``)."""

    def __init__(self, url: EventsURL, *, create: bool = True):
        self.url = url
        self.cluster = Cluster(url)
        self.db = url.database
        if create:
            self.cluster.ensure_schema()

    def close(self) -> None:
        self.cluster.close()

    # -- the watermark ---------------------------------------------------------
    def watermark(self) -> int:
        """Every event with an id up to this is stored (what reads see)."""
        return int(self.cluster.query(f"SELECT max(at) FROM {self.db}.marks_local")[0][0])

    def advance_watermark(self, at: int) -> None:
        """Record on every shard that every event up to ``at`` is stored."""
        self.cluster.on_each_shard(f"INSERT INTO {self.db}.marks_local (at, written_ms) VALUES",
                                   data=[[int(at)], [now_ms()]])

    def max_id(self) -> int:
        """The largest id the cluster holds (events, quarantine, conflicts), stored or not yet marked."""
        q = f"SELECT max(id) FROM {self.db}.{{}}"
        return max(int(self.cluster.query(q.format(t))[0][0]) for t in ("events", "rejected", "conflicts"))

    # -- reads -----------------------------------------------------------------
    def _sel(self, **kw) -> Selection:
        return Selection.of(**kw, until=self.watermark())

    def read_columns(self, since_rowid: int = 0, codes=None, time_from_ms=None, time_to_ms=None,
                     subscriptions=None) -> ClusterColumns:
        return ClusterColumns(self.cluster, self._sel(codes=codes, subscriptions=subscriptions,
                                                      time_from_ms=time_from_ms, time_to_ms=time_to_ms,
                                                      since=since_rowid))

    def _records(self, sel: Selection, *, where: str = "", params=None, tail="ORDER BY id",
                 external_tables=None) -> list[EventRecord]:
        if sel.empty():
            return []
        found = self.cluster.query(sel.sql(self.db, _RECORD, where=where, tail=tail),
                                   {**sel.params(), **(params or {})}, external_tables=external_tables)
        return [rows.record(r) for r in found]

    def get_events(self, transaction_id: str, external_subscription_id: str | None = None) -> list:
        subs = None if external_subscription_id is None else [external_subscription_id]
        return self._records(self._sel(subscriptions=subs, transaction_id=transaction_id))

    def get_event(self, event_id: int) -> EventRecord | None:
        found = self.events_by_id([event_id])
        return found[0] if found else None

    def events_by_id(self, ids) -> list:
        ids = [int(i) for i in ids]
        if not ids:
            return []
        by_id = {r.id: r for r in self._records(self._sel(), where="id IN wanted_ids",
                                                external_tables=[ids_table("wanted_ids", ids)])}
        return [by_id[i] for i in ids if i in by_id]

    def latest_timestamp_ms(self) -> int | None:
        sel = self._sel()
        n, top = self.cluster.query(sel.sql(self.db, "id, ts", "count(), max(ts)", tail=""), sel.params())[0]
        return int(top) if n else None

    def any_event_between(self, time_from_ms: int, time_to_ms: int) -> bool:
        sel = self._sel(time_from_ms=time_from_ms, time_to_ms=time_to_ms)
        return bool(self.cluster.query(sel.sql(self.db, "id", "id", tail="LIMIT 1"), sel.params()))

    def list_events(self, *, code=None, sub=None, time_from_ms=None, time_to_ms=None, after_id: int = 0,
                    limit: int = 100, offset: int = 0, newest_first=False) -> list:
        limit, offset = _count(limit, "limit"), _count(offset, "offset")
        sel = self._sel(codes=None if code is None else [code], subscriptions=None if sub is None else [sub],
                        time_from_ms=time_from_ms, time_to_ms=time_to_ms, since=after_id)
        order = "DESC" if newest_first else ""
        return self._records(sel, tail=f"ORDER BY id {order} LIMIT {offset}, {limit}") if limit else []

    def count_events(self, *, code=None, sub=None, time_from_ms=None, time_to_ms=None) -> int:
        sel = self._sel(codes=None if code is None else [code], subscriptions=None if sub is None else [sub],
                        time_from_ms=time_from_ms, time_to_ms=time_to_ms)
        if sel.empty():
            return 0
        return int(self.cluster.query(sel.sql(self.db, "id", "count()", tail=""), sel.params())[0][0])

    def events_as_dicts(self, codes=None, subscriptions=None, time_from_ms=None, time_to_ms=None) -> list:
        sel = self._sel(codes=codes, subscriptions=subscriptions, time_from_ms=time_from_ms, time_to_ms=time_to_ms)
        out = [{"rowid": r.id, "transaction_id": r.transaction_id,
                "external_subscription_id": r.external_subscription_id, "code": r.code,
                "timestamp_ms": r.timestamp_ms, "properties": r.properties,
                "precise_total_amount_cents": r.precise_total_amount_cents} for r in self._records(sel)]
        resolve_in_dicts(out)
        return out

    def stats(self) -> dict:
        rejected = self.cluster.query(
            f"SELECT countIf(status = 'open') FROM {self.db}.rejected FINAL")[0][0]
        conflicts = self.cluster.query(f"SELECT count() FROM {self.db}.conflicts FINAL")[0][0]
        return {"events": self.watermark(), "rejected_open": int(rejected), "conflicts": int(conflicts)}

    # -- quarantine and conflicts ----------------------------------------------
    def list_rejected(self, *, status: str | None = "open", limit=100, offset=0) -> list:
        if status is not None and status not in REJECTED_STATUSES:
            raise ValueError(f"status must be one of {', '.join(REJECTED_STATUSES)}, got {status!r}")
        where = "" if status is None else "WHERE status = %(status)s"
        found = self.cluster.query(
            f"SELECT {_REJECTED} FROM {self.db}.rejected FINAL {where} ORDER BY id"
            f" LIMIT {_count(offset, 'offset')}, {_count(limit, 'limit')}", {"status": status})
        return [rows.rejected_record(r[:-1]) for r in found]

    def get_rejected(self, rid: int) -> RejectedRecord | None:
        found = self.cluster.query(f"SELECT {_REJECTED} FROM {self.db}.rejected FINAL WHERE id = %(id)s",
                                   {"id": clamp_int64(rid, "quarantine id")})
        return rows.rejected_record(found[0][:-1]) if found else None

    def set_rejected_status(self, rec: RejectedRecord, status: str, event_id: int | None = None) -> None:
        """A newer version of a quarantine row (its status, and the event that resolved it)."""
        self._insert_rejected([[rec.id], [rec.received_ms], [rec.source], [base64.b64encode(rec.raw).decode()],
                               [orjson.dumps(rec.reasons).decode()], [status],
                               [-1 if event_id is None else event_id]], version=now_ms())

    def list_conflicts(self, limit=100, offset=0) -> list:
        return self.cluster.query(
            f"SELECT id, received_ms, source, event_id, raw FROM {self.db}.conflicts FINAL ORDER BY id"
            f" LIMIT {_count(offset, 'offset')}, {_count(limit, 'limit')}")

    # -- the write path --------------------------------------------------------
    def store_chunk(self, chunk: Chunk, payload: tuple, rejected_raw: dict, source: str, received_ms,
                    ids: np.ndarray) -> Receipt:
        """Store one validated chunk (``encode.prepare``; ``payload``: ``encode.payload_of``, the valid
        events' raw texts); ``ids``: one per input position (events and quarantine share them);
        ``received_ms``: when the chunk was received (an int, or one per input position).

        Idempotent: storing the same chunk with the same ids again stores nothing new (every event is
        then a duplicate of itself; a quarantine row is replaced by an identical one)."""
        n_in, good = chunk.n_in, chunk.good
        received = np.broadcast_to(np.asarray(received_ms, np.int64), (n_in,))
        received_ms = int(received.max()) if n_in else 0
        status = np.full(n_in, REJECTED, np.int8)
        event_id = np.full(n_in, -1, np.int64)
        tsv = np.full(n_in, -1, np.int64)
        tsv[good] = chunk.ts_ms
        rec = Receipt(status, event_id, dict(chunk.rejected), timestamp_ms=tsv, received_ms=received_ms)
        if len(good):
            self._store_events(chunk, _split(payload), source, received[good], ids, rec)
        if chunk.rejected:
            at = sorted(chunk.rejected)
            for pos in at:
                rec.quarantine_id[pos] = int(ids[pos])
            self._insert_rejected([
                [int(ids[p]) for p in at], [int(received[p]) for p in at], [source] * len(at),
                [base64.b64encode(rejected_raw.get(p, b"null")).decode() for p in at],
                [orjson.dumps([{"field": x.field, "code": x.code, "message": x.message}
                               for x in chunk.rejected[p]]).decode() for p in at],
                ["open"] * len(at), [-1] * len(at)], version=0)
        return rec

    def _store_events(self, chunk: Chunk, raws: list[bytes], source: str, received_ms: np.ndarray,
                      ids: np.ndarray, rec: Receipt) -> None:
        """``received_ms``: one per valid event."""
        good = chunk.good
        mine = ids[good]
        stored = self._stored_copies(chunk)
        first = np.arange(len(good))
        later, earlier = chunk.repeats
        first[later] = earlier  # a key repeated in the chunk: its first copy in the chunk
        fresh, conflicts = [], []
        for j in range(len(good)):
            pos = int(good[j])
            old = stored.get((chunk.sub[j], chunk.txn[j]))
            if old is not None and old[0] >= mine[j]:
                old = None  # this very event stored by an earlier try (or a later copy racing ours)
            if old is None and first[j] != j:
                k = int(first[j])
                old = (int(mine[k]), int(chunk.ts_ms[k]), raws[k].decode())
            if old is None:
                fresh.append(j)
                rec.status[pos], rec.event_id[pos] = INGESTED, mine[j]
            elif same_content(chunk.objs[j], int(chunk.ts_ms[j]), chunk.ptac.get(j), old[2], old[1]):
                rec.status[pos], rec.event_id[pos] = DUPLICATE, old[0]
            else:
                rec.status[pos], rec.event_id[pos] = CONFLICT, old[0]
                rec.conflict_id[pos] = int(mine[j])
                conflicts.append((j, old[0]))
        if fresh:
            keep = np.array(fresh, np.int64)
            self.cluster.insert("events", schema.EVENT_COLUMNS,
                                rows.event_rows(chunk, keep, mine[keep], [raws[j] for j in fresh], received_ms,
                                                source))
        if conflicts:
            self.cluster.insert("conflicts", schema.CONFLICT_COLUMNS, [
                [int(mine[j]) for j, _ in conflicts], [int(received_ms[j]) for j, _ in conflicts],
                [source] * len(conflicts),
                [e for _, e in conflicts], [chunk.sub[j] for j, _ in conflicts],
                [chunk.txn[j] for j, _ in conflicts],
                [quarantine_bytes(chunk.objs[j]).decode() for j, _ in conflicts]])

    def _stored_copies(self, chunk: Chunk) -> dict:
        """(sub, txn) -> (id, ts, raw) of the stored first copy of each of the chunk's keys the cluster holds
        (any id: a batch stored before the watermark moved is still a copy).

        The keys go to the shards as an external table; the first query reads only the key columns (no
        FINAL: the smallest id is the first copy), the second the payloads of the keys found (few)."""
        firsts = self.cluster.query(
            f"SELECT sub, txn, min(id) FROM {self.db}.events WHERE (sub, txn) GLOBAL IN chunk_keys GROUP BY sub, txn",
            external_tables=[external_table("chunk_keys", [("sub", "String"), ("txn", "String")],
                                         set(zip(chunk.sub, chunk.txn)))])
        if not firsts:
            return {}
        found = self.cluster.query(
            f"SELECT sub, txn, id, ts, raw FROM {self.db}.events WHERE (sub, txn, id) GLOBAL IN found_keys",
            external_tables=[external_table("found_keys", [("sub", "String"), ("txn", "String"), ("id", "Int64")],
                                         firsts)])
        return {(s, t): (int(i), int(ts), raw) for s, t, i, ts, raw in found}

    def _insert_rejected(self, columns: list, *, version: int) -> None:
        self.cluster.insert("rejected", schema.REJECTED_COLUMNS, columns + [[version] * len(columns[0])])


def _split(payload: tuple) -> list[bytes]:
    """``(bytes end to end, lengths)`` -> one bytes per event."""
    buf, lengths = payload
    ends = np.cumsum(lengths).tolist()
    return [buf[a:b] for a, b in zip([0] + ends[:-1], ends)]
