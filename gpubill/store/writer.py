"""Write prepared chunks inside a transaction: dedup, the column block with its payloads, quarantine.

``begin`` / ``stage`` (one chunk, any number of times) / ``commit``: several
chunks may share one transaction (group commit, see ``Store``). A chunk's new
events go in as one ``column_blocks`` row (``payloads.py``): their raw payloads
end to end beside their columns, one INSERT per chunk, built on the validating
thread, so SQLite's work per event is a memcpy and the next chunk can be
validated meanwhile. Dedup is decided in the same transaction against the key
index (``keys.py``), caught up with other writers' commits at ``begin``; only
for keys already stored does the slow path compare contents to tell a
duplicate (same content: success) from a conflict (first copy kept, conflict
recorded).
"""

from __future__ import annotations

import hashlib
import sqlite3
from decimal import Decimal

import numpy as np
import orjson

from . import audit
from . import payloads
from .encode import Chunk
from .keys import KeyIndex
from .numeric import MISSING, UNHOLDABLE, parse_strict, from_number
from .validate import quarantine_bytes
from .roles import Actor
from .receipt import ABORTED, CONFLICT, DUPLICATE, INGESTED, REJECTED, Receipt

_CACHE_MAX = 500_000
# a block's columns derived from its events' payloads (``Writer.derived``; a rebuild recomputes them)
DERIVED = "code, sub, ptac_m, ptac_e, keys"


class Writer:
    """The single write path of a Store (one connection, used under a lock)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.cache: dict[str, int] = {}
        self.pending: dict[str, int] = {}
        self.keys = KeyIndex()

    # -- string dictionary -------------------------------------------------
    def intern(self, strings: list[str]) -> np.ndarray:
        """Store-wide dictionary ids of strings (inside the caller's transaction)."""
        cache, pending = self.cache, self.pending
        out = np.empty(len(strings), np.int32)
        miss = []
        for i, s in enumerate(strings):
            v = cache.get(s)
            if v is None:
                v = pending.get(s)
            if v is None:
                miss.append(i)
            else:
                out[i] = v
        if miss:
            texts = list(dict.fromkeys(strings[i] for i in miss))
            # One statement inserts them and one reads their ids back: each SQLite step
            # hands the GIL over, and a chunk can bring hundreds of new strings (job ids).
            try:
                doc = orjson.dumps(texts)
            except TypeError:  # not encodable as UTF-8: let sqlite3 report it per string
                doc = None
            if doc is None or "\x00" in "".join(texts):
                self.db.executemany("INSERT OR IGNORE INTO strings (s) VALUES (?)", [(t,) for t in texts])
                got = {}
            else:
                self.db.execute("INSERT OR IGNORE INTO strings (s) SELECT value FROM json_each(?)", (doc,))
                got = dict(self.db.execute(
                    "SELECT s, id FROM strings WHERE s IN (SELECT value FROM json_each(?))", (doc,)).fetchall())
            for t in texts:
                if t not in got:  # JSON cannot carry it exactly (e.g. a NUL character)
                    got[t] = self.db.execute("SELECT id FROM strings WHERE s = ?", (t,)).fetchone()[0]
            pending.update(got)
            for i in miss:
                out[i] = got[strings[i]]
        return out

    def committed(self) -> None:
        self.keys.committed()
        if len(self.cache) + len(self.pending) > _CACHE_MAX:
            self.cache.clear()
        self.cache.update(self.pending)
        self.pending.clear()

    def rolled_back(self) -> None:
        self.pending.clear()
        self.keys.rolled_back()

    def forget_since(self, mark: int) -> None:
        """Drop the ids interned after ``mark = len(self.pending)`` (a savepoint rolled back)."""
        for s in list(self.pending)[mark:]:
            del self.pending[s]

    # -- transactions --------------------------------------------------------
    def begin(self) -> None:
        """Open the write transaction; the next event and batch ids are read once, under its lock."""
        db = self.db
        if db.in_transaction:  # a failed COMMIT whose ROLLBACK failed too: start clean
            self.rollback()
        db.execute("BEGIN IMMEDIATE")
        try:
            self.next_id = payloads.max_id(db) + 1
            self.next_batch = db.execute("SELECT coalesce(max(id), 0) + 1 FROM batches").fetchone()[0]
            self.keys.catch_up(db, writing=True)  # what other connections committed: dedup stays exact
        except BaseException:
            self.rollback()
            raise

    def commit(self) -> None:
        self.db.execute("COMMIT")
        self.committed()

    def rollback(self) -> None:
        """Roll back the open transaction, if any; never raises a SQLite error.

        It runs while another error is being reported (a full disk may already have rolled
        the transaction back, or fail the ROLLBACK too: ``begin`` tries again).
        """
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        finally:
            self.rolled_back()

    # -- one chunk ---------------------------------------------------------
    def write(self, chunk: Chunk, payload: bytes, rejected_raw: dict, source: str,
              received_ms: int, atomic: bool = False) -> Receipt:
        """One chunk in its own transaction."""
        self.begin()
        try:
            rec = self.stage(chunk, payload, rejected_raw, source, received_ms, atomic)
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return rec

    def stage(self, chunk: Chunk, payload: bytes, rejected_raw: dict, source: str,
              received_ms: int, atomic: bool = False) -> Receipt:
        """Write one chunk inside the caller's transaction (``begin``/``commit``).

        The receipt is final once the transaction commits; until then nothing
        in it is acknowledged. ``atomic``: an invalid or conflicting event
        stores none of the chunk's events (a savepoint, so the other chunks of
        the transaction are untouched); its rejections and conflicts are still
        recorded.
        """
        db = self.db
        n_in, n = chunk.n_in, len(chunk.good)
        status = np.full(n_in, REJECTED, np.int8)
        event_id = np.full(n_in, -1, np.int64)
        tsv = np.full(n_in, -1, np.int64)
        tsv[chunk.good] = chunk.ts_ms
        key = np.zeros((n_in, 2), np.int64)
        key[chunk.good, 0], key[chunk.good, 1] = chunk.k1, chunk.k2
        rec = Receipt(status, event_id, dict(chunk.rejected), timestamp_ms=tsv, received_ms=received_ms,
                      key=key)
        batch_id = self.next_batch
        self.next_batch += 1
        conflicts: list[tuple[int, int]] = []
        if n:
            if atomic:
                db.execute("SAVEPOINT atomic_chunk")
                mark, kmark = len(self.pending), self.keys.mark()
            ids, fresh, dups, conflicts = self._insert_rows(chunk, payload, batch_id)
            if atomic and (conflicts or chunk.rejected):
                db.execute("ROLLBACK TO atomic_chunk")
                self.forget_since(mark)
                self.keys.rollback_to(kmark)
                status[chunk.good] = ABORTED
                for j, eid in conflicts:
                    status[chunk.good[j]] = CONFLICT
                    event_id[chunk.good[j]] = eid
            else:
                status[chunk.good] = INGESTED
                event_id[chunk.good] = ids
                for j in dups:
                    status[chunk.good[j]] = DUPLICATE
                for j, _ in conflicts:
                    status[chunk.good[j]] = CONFLICT
            if atomic:
                db.execute("RELEASE atomic_chunk")
        for pos, problems in chunk.rejected.items():
            raw = rejected_raw.get(pos, b"null")
            rec.quarantine_id[pos] = db.execute(
                "INSERT INTO rejected (batch_id, received_ms, source, position, raw, reasons)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (batch_id, received_ms, source, pos, raw,
                 orjson.dumps([{"field": p.field, "code": p.code, "message": p.message}
                               for p in problems]))).lastrowid
        for j, eid in conflicts:
            pos = int(chunk.good[j])
            rec.conflict_id[pos] = db.execute(
                "INSERT INTO conflicts (batch_id, received_ms, source, event_id, raw)"
                " VALUES (?, ?, ?, ?, ?)",
                (batch_id, received_ms, source, eid, quarantine_bytes(chunk.objs[j]))).lastrowid
        c = rec.counts()
        db.execute("INSERT INTO batches (id, received_ms, source, n_ingested, n_duplicate, n_conflict,"
                   " n_rejected) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (batch_id, received_ms, source, c["ingested"], c["duplicate"], c["conflict"],
                    c["rejected"]))
        audit.append(db, Actor(source, "writer", "ingest"), "events.ingested", "batch", str(batch_id),
                     {**c, "digest": hashlib.sha256(key.tobytes() + status.tobytes()).hexdigest()},
                     at_ms=received_ms)
        return rec

    def _insert_rows(self, chunk: Chunk, payload: tuple, batch_id: int):
        """Store the chunk's new events (one block); find the stored copy of the others.

        Dedup is decided here, inside the write transaction: a key is stored
        if the key index (committed keys, caught up at ``begin``, plus this
        transaction's) has it, or if an earlier event of the chunk has it.
        """
        n = len(chunk.good)
        base = self.next_id  # ids may skip numbers (duplicates), never repeat
        self.next_id += n
        ids = base + np.arange(n, dtype=np.int64)
        k1, k2 = chunk.k1, chunk.k2
        found = self.keys.find(k1, k2)
        later, first = chunk.repeats  # a key repeated inside the chunk refers to its first copy
        if len(later):
            found[later] = np.where(found[first] >= 0, found[first], ids[first])
        fresh = found < 0
        if fresh.any():
            keep = np.flatnonzero(fresh)
            self.write_block(chunk, keep, ids[keep], payloads.select(*payload, keep), batch_id)
            self.keys.add_pending(k1[fresh], k2[fresh], ids[fresh])
        dups: list[int] = []
        conflicts: list[tuple[int, int]] = []
        stale = np.flatnonzero(~fresh)
        stored = payloads.read(self.db, found[stale]) if stale.size else {}
        for k in stale.tolist():
            old = stored[int(found[k])]
            ids[k] = old.id
            if same_content(chunk.objs[k], int(chunk.ts_ms[k]), chunk.ptac.get(k), old.raw, old.timestamp_ms):
                dups.append(k)
            else:
                conflicts.append((k, old.id))
        return ids, fresh, dups, conflicts

    def write_block(self, chunk: Chunk, idx: np.ndarray, rowids: np.ndarray, payload: tuple,
                     batch) -> int:
        """One block: the events of the chunk at positions ``idx`` with their ids ``rowids``, their
        raw payloads ``(bytes, lengths)`` and their batch (an id, or an int64 array of one per event)."""
        ts = chunk.ts_ms[idx]
        contiguous = int(rowids[-1] - rowids[0] + 1) == len(rowids)
        raw, raw_end, frame_end = payloads.pack(*payload)
        gids = self.chunk_ids(chunk)
        uniform = np.ndim(batch) == 0
        block_id = self.db.execute(
            f"INSERT INTO column_blocks (first_rowid, last_rowid, n, min_ts, max_ts, rowids, ts, {DERIVED},"
            " batch_id, batch_ids, raw_end, frame_end, raw) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (int(rowids[0]), int(rowids[-1]), len(idx), int(ts.min()), int(ts.max()),
             None if contiguous else rowids.tobytes(), ts.tobytes(), *self.derived(chunk, idx, gids),
             int(batch) if uniform else None, None if uniform else np.asarray(batch, np.int64).tobytes(),
             raw_end, frame_end, raw)).lastrowid
        self.write_props(block_id, chunk, idx, gids)
        return block_id

    def chunk_ids(self, chunk: Chunk) -> dict:
        """Store-wide ids of the chunk's strings, by column ("code", "sub", each string property),
        interned in one call: every SQLite step hands the GIL over, and taking it back from the
        validating thread may wait a switch interval."""
        cols = {"code": chunk.code_dict[0], "sub": chunk.sub_dict[0]}
        cols.update((("prop", name), col.strings) for name, col in chunk.props.items()
                    if col.sid is not None and col.strings)
        ids = self.intern([s for strings in cols.values() for s in strings])
        cuts = np.cumsum([len(strings) for strings in cols.values()])[:-1]
        return dict(zip(cols, np.split(ids, cuts)))

    def derived(self, chunk: Chunk, idx: np.ndarray, gids: dict) -> tuple:
        """The values of a block's ``DERIVED`` columns for the chunk's events at ``idx``."""
        whole = len(idx) == len(chunk.good)
        code_ids, sub_ids = (gids[name][inv if whole else inv[idx]]
                             for name, inv in (("code", chunk.code_dict[1]), ("sub", chunk.sub_dict[1])))
        pm = pe = None
        if chunk.ptac:
            m = np.zeros(len(idx), np.int64)
            e = np.full(len(idx), MISSING, np.int8)
            where = {int(j): k for k, j in enumerate(idx.tolist())}
            for j, (mm, ee) in chunk.ptac.items():
                if j in where:
                    m[where[j]], e[where[j]] = mm, ee
            if (e != MISSING).any():
                pm, pe = m.tobytes(), e.tobytes()
        keys = np.stack([chunk.k1[idx], chunk.k2[idx]], axis=1).astype("<i8").tobytes()
        return code_ids.tobytes(), sub_ids.tobytes(), pm, pe, keys

    def write_props(self, block_id: int, chunk: Chunk, idx: np.ndarray, gids: dict) -> None:
        """The block's property columns (``block_props`` rows)."""
        whole = len(idx) == len(chunk.good)
        props = []
        for name, col in chunk.props.items():
            if not whole:
                col = col.take(idx)
            sid = None
            if col.sid is not None:
                if not (col.sid != -1).any():
                    continue
                gid = gids.get(("prop", name), np.zeros(0, np.int32))
                sid = np.where(col.sid >= 0, gid[np.maximum(col.sid, 0)] if gid.size else -1,
                               col.sid).astype(np.int32).tobytes()
            elif not (col.e != MISSING).any():
                continue
            props.append((block_id, name, sid,
                          None if col.m is None else col.m.tobytes(),
                          None if col.e is None else col.e.tobytes()))
        for k in range(0, len(props), 1000):  # one statement (one SQLite step) per 1000 columns
            part = props[k:k + 1000]
            self.db.execute("INSERT INTO block_props (block_id, name, sid, m, e) VALUES "
                       + ",".join(["(?,?,?,?,?)"] * len(part)), [v for row in part for v in row])


def _dec(p):
    return None if p is None or p[1] in (MISSING, UNHOLDABLE) else Decimal(p[0]).scaleb(p[1])


def same_content(obj: dict, ts_ms: int, ptac, existing_raw: str, existing_ts: int) -> bool:
    """Same event content (code, timestamp, properties, precise amount) as the stored copy."""
    old = orjson.loads(existing_raw)
    if obj.get("code") != old.get("code"):
        return False
    if (obj.get("properties") or {}) != (old.get("properties") or {}):
        return False
    had_ts, has_ts = old.get("timestamp") is not None, obj.get("timestamp") is not None
    if had_ts != has_ts or (has_ts and ts_ms != existing_ts):
        return False
    op = old.get("precise_total_amount_cents")
    if op is not None:
        op = parse_strict(op) if isinstance(op, str) else from_number(op)
    return _dec(ptac) == _dec(op)
