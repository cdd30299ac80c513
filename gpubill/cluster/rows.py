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
    props = ((name, _take(col.sid, keep), lambda ids, s=col.strings: [s[i] for i in ids], _take(col.m, keep),
              _take(col.e, keep)) for name, col in chunk.props.items())
    ptac_m, ptac_e = np.zeros(len(keep_l), np.int64), np.full(len(keep_l), MISSING, np.int8)
    for r, j in enumerate(keep_l):
        p = chunk.ptac.get(j)
        if p is not None:
            ptac_m[r], ptac_e[r] = p
    return columns(ids, [chunk.sub[j] for j in keep_l], [chunk.txn[j] for j in keep_l],
                   [chunk.code[j] for j in keep_l], chunk.ts_ms[keep], (ptac_m, ptac_e),
                   property_arrays(len(keep_l), props), [r.decode() for r in raws], received_ms[keep], source)


def columns(ids: np.ndarray, subs: list, txns: list, codes: list, ts: np.ndarray, ptac: tuple, arrays: tuple,
            raws: list[str], received_ms: np.ndarray, source: str) -> list[list]:
    """One list per column of ``schema.EVENT_COLUMNS``, in its order."""
    id_l = ids.tolist()
    return [id_l, subs, txns, codes, ts.tolist(), ptac[0].tolist(), ptac[1].tolist(), *arrays, raws,
            received_ms.tolist(), [source] * len(id_l), [ID_VERSION - i for i in id_l]]


def property_arrays(n: int, props) -> tuple[list, list, list, list, list]:
    """Per event, the parallel arrays (pk, ps, px, pm, pe) of its properties.

    ``props`` yields ``(name, sid, decode, m, e)`` per property over the ``n`` events, as both stores
    hold a property column: ``sid`` the ids of explicit string forms (-1: not in the event, ``LAZY``: a
    JSON number; None: every present value is a number), ``decode(ids)`` their strings, ``m``/``e`` the
    exact decimal pairs (None: no value is a number)."""
    pk, ps, px, pm, pe = ([[] for _ in range(n)] for _ in range(5))
    for name, sid, decode, m, e in props:
        present = np.zeros(n, bool)
        if sid is not None:
            present |= sid != -1
        if e is not None:
            present |= e != MISSING
        at = np.flatnonzero(present)
        if not at.size:
            continue
        explicit = sid[at] >= 0 if sid is not None else np.zeros(at.size, bool)
        texts = iter(decode(sid[at][explicit].tolist()) if explicit.any() else ())
        ms = m[at].tolist() if m is not None else [0] * at.size
        es = e[at].tolist() if e is not None else [MISSING] * at.size
        for r, x, a, b in zip(at.tolist(), explicit.tolist(), ms, es):
            pk[r].append(name)
            ps[r].append(next(texts) if x else "")
            px[r].append(1 if x else 0)
            pm[r].append(a)
            pe[r].append(b)
    return pk, ps, px, pm, pe


def _take(a: np.ndarray | None, keep: np.ndarray) -> np.ndarray | None:
    return None if a is None else a[keep]


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
