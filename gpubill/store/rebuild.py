"""Re-derive the column blocks' columns from their events' raw payloads (the source of truth).

Each block keeps its events, ids, timestamps, batches and payloads; its codes,
subscriptions, precise amounts, keys and property columns are encoded again.
A stored event that no longer passes validation (stored by an older gpubill
before a limit was enforced) is never left out silently: the rebuild rolls
back, keeps the old columns, and raises a ``StoreError`` naming it.
"""

from __future__ import annotations

import numpy as np
import orjson

from . import payloads
from .encode import prepare
from .schema import StoreError
from .writer import DERIVED


def rebuild(store) -> int:
    """Encode every block's columns again; returns the number of events."""
    w = store._writer
    with store._wlock:
        db = w.db
        db.execute("BEGIN IMMEDIATE")
        try:
            total = 0
            for (bid,) in db.execute("SELECT id FROM column_blocks ORDER BY id").fetchall():
                total += _rebuild_block(w, bid)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            w.rolled_back()
            raise
        w.committed()
    return total


def _rebuild_block(w, bid: int) -> int:
    db = w.db
    first, n, rowids, ts, raw, raw_end, frame_end = db.execute(
        "SELECT first_rowid, n, rowids, ts, raw, raw_end, frame_end FROM column_blocks WHERE id = ?",
        (bid,)).fetchone()
    objs = [orjson.loads(r) for r in payloads.unpack(raw, raw_end, frame_end)]
    c = prepare(objs, 2**62, 0)  # stored events were valid: no clock bound now
    refuse_invalid(c, payloads.rowids_of(first, n, rowids), "the column blocks were left as they were")
    c.ts_ms = np.frombuffer(ts, np.int64)
    idx = np.arange(n)
    sets = ", ".join(f"{name.strip()} = ?" for name in DERIVED.split(","))
    gids = w.chunk_ids(c)
    db.execute(f"UPDATE column_blocks SET {sets} WHERE id = ?", (*w.derived(c, idx, gids), bid))
    db.execute("DELETE FROM block_props WHERE block_id = ?", (bid,))
    w.write_props(bid, c, idx, gids)
    return n


def refuse_invalid(chunk, ids: np.ndarray, consequence: str) -> None:
    """A StoreError naming the first stored event of ``chunk`` that does not validate, if any."""
    if not chunk.rejected:
        return
    pos = sorted(chunk.rejected)
    first = pos[0]
    why = "; ".join(p.text() for p in chunk.rejected[first])
    raise StoreError(f"{len(pos)} stored event(s) no longer pass validation, first id {int(ids[first])}: "
                     f"{why}; {consequence}")
