"""Rebuild the columnar side store from the rows (the source of truth).

A stored event that no longer passes validation (stored by an older gpubill
before a limit was enforced) is never left out silently: the rebuild rolls
back, keeps the old column blocks, and raises a ``StoreError`` naming it.
"""

from __future__ import annotations

import orjson
import numpy as np

from .encode import prepare
from .schema import StoreError


def rebuild(store, chunk: int = 8192) -> int:
    """Drop every column block and re-encode all stored events; returns their count."""
    w = store._writer
    rd = store._read()
    with store._wlock:
        db = w.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM block_props")
            db.execute("DELETE FROM column_blocks")
            last, total = 0, 0
            while True:
                rows = db.execute("SELECT id, timestamp_ms, raw FROM events WHERE id > ? ORDER BY id"
                                  " LIMIT ?", (last, chunk)).fetchall()
                if not rows:
                    break
                objs = [orjson.loads(r[2]) for r in rows]
                ids = np.array([r[0] for r in rows], np.int64)
                c = prepare(objs, 2**62, 0)  # stored events were valid: no clock bound now
                _refuse_invalid(c, ids)
                c.ts_ms = np.array([r[1] for r in rows], np.int64)[c.good]
                w._write_block(c, np.arange(len(c.good)), ids[c.good])
                last, total = rows[-1][0], total + len(c.good)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            w.rolled_back()
            raise
        w.committed()
    del rd
    return total


def _refuse_invalid(chunk, ids: np.ndarray) -> None:
    if not chunk.rejected:
        return
    pos = sorted(chunk.rejected)
    first = pos[0]
    why = "; ".join(p.text() for p in chunk.rejected[first])
    raise StoreError(f"{len(pos)} stored event(s) no longer pass validation, first id {int(ids[first])}: "
                     f"{why}; the column blocks were left as they were")
