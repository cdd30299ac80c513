"""Schema 5: the events move from one row each into their column blocks (``payloads.py``).

Runs inside the migration's transaction: every block gets its events' raw
payloads (in id order, as stored) and batches, a block written before blocks
carried keys gets them from the rows, events no block covers get blocks of
their own, and the ``events`` table is dropped. Ids, timestamps, keys and raw
payloads are unchanged. A stored event that cannot be re-encoded (stored by an
older gpubill before a limit was enforced) stops the migration with its id:
the store is left as it was.
"""

from __future__ import annotations

import numpy as np
import orjson

from . import payloads
from .encode import prepare
from .rebuild import refuse_invalid
from .schema import StoreError
from .writer import Writer

_PART = 8192  # events read from the old table at a time, for blocks of their own

# the payload columns, and an index to walk the blocks in id order
DDL = """
ALTER TABLE column_blocks ADD COLUMN batch_id INTEGER;
ALTER TABLE column_blocks ADD COLUMN batch_ids BLOB;
ALTER TABLE column_blocks ADD COLUMN raw_end BLOB;
ALTER TABLE column_blocks ADD COLUMN frame_end BLOB;
ALTER TABLE column_blocks ADD COLUMN raw BLOB;
CREATE INDEX column_blocks_first ON column_blocks (first_rowid);
"""


def events_into_blocks(db) -> None:
    for stmt in DDL.strip().splitlines():
        db.execute(stmt)
    covered = _fill_blocks(db)
    _block_the_rest(db, covered)
    db.execute("DROP TABLE events")


def _fill_blocks(db) -> np.ndarray:
    """Each block's payloads, batches (and keys, where missing) from its rows; the ids covered."""
    covered = []
    blocks = db.execute("SELECT id, first_rowid, last_rowid, n, rowids, keys FROM column_blocks"
                        " ORDER BY id").fetchall()
    for bid, first, last, n, rowids, keys in blocks:
        rid = payloads.rowids_of(first, n, rowids)
        rows = db.execute("SELECT id, batch_id, k1, k2, CAST(raw AS BLOB) FROM events WHERE id BETWEEN ? AND ?"
                          " ORDER BY id", (first, last)).fetchall()
        if len(rows) != n:
            mine = set(rid.tolist())
            rows = [r for r in rows if r[0] in mine]
        if [r[0] for r in rows] != rid.tolist():
            raise StoreError(f"column block {bid} lists events that are not stored; run a rebuild first")
        raws = [r[4] for r in rows]
        batch = np.array([r[1] for r in rows], np.int64)
        raw, raw_end, frame_end = payloads.pack(b"".join(raws), np.fromiter(map(len, raws), np.int64, len(raws)))
        uniform = bool((batch == batch[0]).all())
        if keys is None:
            keys = np.array([(r[2], r[3]) for r in rows], "<i8").tobytes()
        db.execute("UPDATE column_blocks SET batch_id = ?, batch_ids = ?, raw_end = ?, frame_end = ?, raw = ?,"
                   " keys = ? WHERE id = ?", (int(batch[0]) if uniform else None,
                                              None if uniform else batch.tobytes(), raw_end, frame_end, raw, keys, bid))
        covered.append(rid)
    return np.concatenate(covered) if covered else np.empty(0, np.int64)


def _block_the_rest(db, covered: np.ndarray) -> None:
    """Blocks of their own for the events no block covered."""
    if db.execute("SELECT count(*) FROM events").fetchone()[0] == len(covered):
        return
    w = Writer(db)
    last = 0
    while True:
        rows = db.execute("SELECT id, timestamp_ms, batch_id, CAST(raw AS BLOB) FROM events WHERE id > ?"
                          " ORDER BY id LIMIT ?", (last, _PART)).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        done = np.isin(np.array([r[0] for r in rows], np.int64), covered)
        rows = [r for r, d in zip(rows, done.tolist()) if not d]
        if rows:
            _block_of(w, rows)


def _block_of(w, rows: list) -> None:
    raws = [r[3] for r in rows]
    chunk = prepare([orjson.loads(r) for r in raws], 2**62, 0)  # stored events were valid: no clock bound
    ids = np.array([r[0] for r in rows], np.int64)
    refuse_invalid(chunk, ids, "the store was left at schema 4 (open it with the gpubill that wrote it)")
    chunk.ts_ms = np.array([r[1] for r in rows], np.int64)
    idx = np.arange(len(rows))
    lens = np.fromiter(map(len, raws), np.int64, len(raws))
    w.write_block(chunk, idx, ids, (b"".join(raws), lens),
                   np.array([r[2] for r in rows], np.int64))
    w.committed()  # the strings it interned are the migration transaction's
