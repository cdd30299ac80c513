"""The main pass: every event row -> the line slots of its charges, one row range per thread.

``run_pass`` splits the rows among threads (the kernels release the GIL); in
each range ``fast.run_block`` runs the fast programs block by block and
``accumulate._accumulate`` the other charge instances.  Each thread has its
own accumulators (``ThreadAcc``); ``rate.decode`` merges them.
"""

from __future__ import annotations

import numpy as np

from gpubill.engine.fast import shaped as fast
from gpubill.engine.fast.accumulate import ThreadAcc, chunks, parallel_map, run_chunk, side_bound
from gpubill.engine.fast.kernels import FULL, OK
from gpubill.engine.pricing.money import EngineError


def _validate(cols):
    n = int(cols.n)
    for name in ("timestamp_ms", "rowid", "code", "subscription"):
        a = getattr(cols, name)
        if len(a) != n:
            raise EngineError(f"column {name} has {len(a)} rows, expected {n}")
    return n


class _Cols:
    """The four base columns, contiguous and typed (no copy when they already are)."""

    def __init__(self, cols):
        self.n = _validate(cols)
        self.timestamp_ms = np.ascontiguousarray(cols.timestamp_ms, np.int64)
        self.rowid = np.ascontiguousarray(cols.rowid, np.int64)
        self.code = np.ascontiguousarray(cols.code, np.int32)
        self.subscription = np.ascontiguousarray(cols.subscription, np.int32)


def run_pass(p, cols, hash_cap=None):
    """The accumulator kernel over every row, one row range per thread."""
    base = cols if isinstance(cols, _Cols) else _Cols(cols)
    parts = chunks(base.n)
    a = p.arrays
    nq = a["Q"].shape[0]
    any_side = bool(a["pk_nside"].any())
    caps = parallel_map(lambda r: side_bound(p, base, *r), parts) if any_side else [0] * len(parts)

    ft = fast.FastTables(p)

    def one(job):
        (lo, hi), side_cap = job
        cap = hash_cap or (1 << max(12, min(2 * (hi - lo), 1 << 22).bit_length())) if p.hashed else 0
        while True:
            n_ext = p.n_xdense + (cap // 2 if p.hashed_ext else 0)
            acc = ThreadAcc(p.n_dense, cap, n_ext, side_cap, nq, p.n_ign, len(p.subs))
            if ft.any:
                sc = fast.Scratch(ft)
                for b0 in range(lo, hi, fast.BLOCK):
                    fast.run_block(p, ft, base, b0, min(hi, b0 + fast.BLOCK), acc, sc)
            if not ft.generic:
                return OK, acc
            status, _, _ = run_chunk(p, base, lo, hi, acc, ft.pk)
            if status == FULL and p.hashed:
                cap *= 4
                continue
            return status, acc

    results = parallel_map(one, list(zip(parts, caps)))
    if any(status == FULL for status, _ in results):  # pragma: no cover - the side bound is exact
        raise EngineError("side buffer overflow")
    return base, [acc for _, acc in results]


def unheld(accs) -> list[int]:
    """The subscriptions (indices) some kernel could not hold exactly."""
    return np.flatnonzero(np.bitwise_or.reduce([a.bad for a in accs])).tolist()
