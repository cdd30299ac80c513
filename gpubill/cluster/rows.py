"""A validated chunk's events as the cluster's rows, and stored rows back as records.

The columns hold what the SQLite store's blocks hold (``encode.Chunk``): per
property the explicit string form when the value was a JSON string, and the
exact decimal pair when it is strictly numeric. Reading them back gives the
same ``dim``/``numeric`` values as the SQLite store does.
"""

from __future__ import annotations

import base64

import numpy as np
import orjson

from gpubill.store.encode import Chunk
from gpubill.store.numeric import MISSING
from gpubill.store.queries import EventRecord, RejectedRecord
from gpubill.store.encode import _hash_keys

from .schema import ID_VERSION


def event_rows(chunk: Chunk, keep: np.ndarray, ids: np.ndarray, raws: list[bytes], received_ms: np.ndarray,
               source: str) -> list[list]:
    """Columns (``schema.EVENT_COLUMNS`` order) of the chunk's valid events at positions ``keep``
    (``received_ms``: one per valid event of the chunk)."""
    keep_l = keep.tolist()
    n = len(keep_l)
    pk, ps, px, pm, pe = ([[] for _ in range(n)] for _ in range(5))
    for name, col in chunk.props.items():
        sid = None if col.sid is None else col.sid[keep].tolist()
        m = None if col.m is None else col.m[keep].tolist()
        e = None if col.e is None else col.e[keep].tolist()
        strings = col.strings
        for r in range(n):
            s = sid[r] if sid is not None else -1
            ex = e[r] if e is not None else MISSING
            if (s == -1) if sid is not None else (ex == MISSING):  # not in this event
                continue
            pk[r].append(name)
            ps[r].append(strings[s] if s >= 0 else "")
            px[r].append(1 if s >= 0 else 0)
            pm[r].append(m[r] if m is not None else 0)
            pe[r].append(ex)
    ptac_m, ptac_e = [0] * n, [MISSING] * n
    for r, j in enumerate(keep_l):
        p = chunk.ptac.get(j)
        if p is not None:
            ptac_m[r], ptac_e[r] = p
    id_l = ids.tolist()
    return [id_l, [chunk.sub[j] for j in keep_l], [chunk.txn[j] for j in keep_l],
            [chunk.code[j] for j in keep_l], chunk.ts_ms[keep].tolist(), ptac_m, ptac_e,
            pk, ps, px, pm, pe, [r.decode() for r in raws], received_ms[keep].tolist(), [source] * n,
            [ID_VERSION - i for i in id_l]]


def record(row) -> EventRecord:
    """An EventRecord from (id, ts, raw, received_ms)."""
    eid, ts, raw, received_ms = row
    obj = orjson.loads(raw)
    props = obj.get("properties")
    ptac = obj.get("precise_total_amount_cents")
    txn, sub = obj.get("transaction_id"), obj.get("external_subscription_id")
    k1, k2 = _hash_keys([txn], [sub])
    return EventRecord(int(eid), txn, sub, obj.get("code"), int(ts), {} if props is None else props,
                       ptac if ptac is None or isinstance(ptac, str) else str(ptac), int(received_ms), raw,
                       (int(k1[0]), int(k2[0])))


def rejected_record(row) -> RejectedRecord:
    """A RejectedRecord from (id, received_ms, source, raw, reasons, status, resolved_event_id); ``raw`` is
    base64 (a quarantined body may be any bytes, a ClickHouse String read back must be UTF-8)."""
    rid, received_ms, source, raw, reasons, status, resolved = row
    return RejectedRecord(int(rid), int(received_ms), source, base64.b64decode(raw),
                          orjson.loads(reasons), status, None if resolved < 0 else int(resolved))
