"""The main pass: every event -> its line slots, accumulated in one sweep.

``_accumulate`` runs over a row range of the store's columns (no copies).
Per event: ``s = sub_lut[subscription]``, ``pk = plist(s) * ncodes + code``;
the quantities that (program list, code) needs are evaluated once (exact int64
polynomials over fixed-point properties, per-event rounding, utilization);
then for every charge instance of the pair: the time range, the filter
bucket (per-key bitmask tables over dictionary ids, AND across keys, lowest
bit = most specific filter), the price window (binary search over the
bucket's window boundaries), the group (dense per-key remaps) and the end
reason give a slot; ``count`` and ``sum`` go to ``acc[slot]``, max / latest /
prorated / cents to ``ext[slot]`` when the program needs them.  Programs
whose slot space is too large go through an open-addressing hash instead.
Events of sequence programs (unique_count, weighted_sum, percentage values,
prorated graduated, pay in advance) are also appended to a side buffer.

``run_pass`` splits the rows among threads (the kernel releases the GIL),
each with its own accumulators; ``rate.py`` merges them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from numba import njit

from gpubill.engine.fast.kernels import FULL, I64_MIN, OK, _add, _fixed, _ld32, _mul, _per_event, _slot
from gpubill.engine.fast.layout import (
    A_COUNT, A_NCOL, A_SUM, B_CWOFF, B_LINE, B_NW1, B_WBN, B_WBOFF, C_ALL, C_BOFF, C_CENTS, C_FLAGS, C_GN, C_GOFF,
    C_KN, C_KOFF, C_NF, C_ORD, C_Q, F_CENTS, F_LAST, F_MAX, F_PROR, F_SIDE, F_UNIQUE, FA_FLAGS, FA_INC, FA_MAGIC, FA_MAX,
    FA_MIN, FA_SHIFT, FA_SLOT, G_DIM, G_LUT, G_MULT, I_BASE, I_CP, I_HASHED, I_IGN, I_LOFF, I_REC, I_STRIDE, I_XOFF, K_DIM,
    K_MOFF, K_VLUT, Q_KIND, Q_TN, Q_TOFF, Q_UCEIL, Q_UFLOOR, Q_UID, Q_UTIL, QK_COUNT, QK_UID, S_BOFF, S_DBASE,
    S_EFF, S_EP, S_HI, S_LO, S_LP, S_PLIST, S_RANK, S_XBASE, T_COEF, T_FN, T_FOFF, X_CENTS, X_LROW, X_LTS, X_LVAL,
    X_MAX, X_NCOL, X_PROR,
)



@njit(cache=True, nogil=True)
def _unheld_beside(qi, i, Q, TERM, FAC, mptr, eptr, nscale):
    """Whether a value quantity ``qi`` reads in row i cannot be held; asked
    when the row misses a value (a value that cannot be held still makes the
    event an error, never an ignored one)."""
    for tt in range(Q[qi, Q_TOFF], Q[qi, Q_TOFF] + Q[qi, Q_TN]):
        for f in range(TERM[tt, T_FOFF], TERM[tt, T_FOFF] + TERM[tt, T_FN]):
            sl = FAC[f, FA_SLOT]
            if _fixed(mptr[sl], eptr[sl], nscale[sl], i)[2]:
                return True
    sl = Q[qi, Q_UTIL]
    return sl >= 0 and _fixed(mptr[sl], eptr[sl], nscale[sl], i)[2]


@njit(cache=True, nogil=True)
def _looked_up(lut, v):
    """``lut[v]`` for a dictionary id v, -1 when v lies outside the table (or the table says -1)."""
    return np.int64(lut[v]) if 0 <= v < lut.shape[0] else np.int64(-1)


@njit(cache=True, nogil=True)
def _add_event(acc, row, v):
    """One event of quantity v into slot ``row``: count + 1 and the checked sum;
    True (and nothing added) when the sum would overflow int64."""
    sm, o = _add(acc[row, A_SUM], v)
    if o:
        return True
    acc[row, A_COUNT] += 1
    acc[row, A_SUM] = sm
    return False


@njit(cache=True, nogil=True)
def _table_quantity(qi, i, Q, TERM, FAC, mptr, eptr, nscale):
    """(q, ok, held) of the polynomial quantity ``qi`` in row i, read from the
    tables (Q, TERM, FAC): ``ok`` False when a value is missing or not
    strictly numeric (the event is ignored), ``held`` False when a value or
    the arithmetic cannot be held in int64 (the exact path rates the
    subscription).  The generic kernel and ``shaped._quantity`` both use it."""
    held = True
    q = np.int64(0)
    ok = True
    for tt in range(Q[qi, Q_TOFF], Q[qi, Q_TOFF] + Q[qi, Q_TN]):
        term = TERM[tt, T_COEF]
        for f in range(TERM[tt, T_FOFF], TERM[tt, T_FOFF] + TERM[tt, T_FN]):
            sl = FAC[f, FA_SLOT]
            x, valid, o = _fixed(mptr[sl], eptr[sl], nscale[sl], i)
            if o:
                held = False
                break
            if not valid:
                ok = False
                break
            fl = FAC[f, FA_FLAGS]
            if fl != 0:
                x, o = _per_event(x, fl, FAC[f, FA_INC], FAC[f, FA_MIN], FAC[f, FA_MAX], FAC[f, FA_MAGIC],
                                   FAC[f, FA_SHIFT])
                if o:
                    held = False
                    break
            term, o = _mul(term, x)
            if o:
                held = False
                break
        if not (ok and held):
            break
        q, o = _add(q, term)
        if o:
            held = False
            break
    if ok and held and Q[qi, Q_UTIL] >= 0:
        sl = Q[qi, Q_UTIL]
        u, valid, o = _fixed(mptr[sl], eptr[sl], nscale[sl], i)
        if o:
            held = False
        elif not valid:
            ok = False
        else:
            if u < Q[qi, Q_UFLOOR]:
                u = Q[qi, Q_UFLOOR]
            if u > Q[qi, Q_UCEIL]:
                u = Q[qi, Q_UCEIL]
            q, o = _mul(q, u)
            held = not o
    if not ok:
        held = not _unheld_beside(qi, i, Q, TERM, FAC, mptr, eptr, nscale)
    return q, ok, held


# C901 exempt: a numba kernel is one loop over the events with its branches inlined on
# purpose (a call per branch would cost more than the work it does).
class Rows(NamedTuple):
    """The base columns a kernel reads row by row."""

    sub_ids: np.ndarray
    code_ids: np.ndarray
    ts: np.ndarray
    rowid: np.ndarray


class GenericTables(NamedTuple):
    """The program list tables the generic kernel reads (layout.py names their columns)."""

    dptr: np.ndarray
    mptr: np.ndarray
    eptr: np.ndarray
    nscale: np.ndarray
    sub_lut: np.ndarray
    code_lut: np.ndarray
    ncodes: int
    SUB: np.ndarray
    pk_start: np.ndarray
    pk_inst: np.ndarray
    pk_qstart: np.ndarray
    pk_q: np.ndarray
    pk_rec: np.ndarray
    INST: np.ndarray
    CP: np.ndarray
    KEY: np.ndarray
    masks: np.ndarray
    ordb: np.ndarray
    BKT: np.ndarray
    wb: np.ndarray
    cw: np.ndarray
    GK: np.ndarray
    luts: np.ndarray
    Q: np.ndarray
    TERM: np.ndarray
    FAC: np.ndarray
    R: int
    reason_dim: int
    rlut: int
    op_dim: int
    remove_id: int
    sub_bounds: np.ndarray
    n_dense: int
    n_xdense: int

    @classmethod
    def of(cls, arrays: dict) -> "GenericTables":
        return cls(*(arrays[f] for f in cls._fields))


class Accumulators(NamedTuple):
    """One thread's accumulator arrays, as the kernel writes them."""

    acc: np.ndarray
    ext: np.ndarray
    hkeys: np.ndarray
    hvals: np.ndarray
    ign: np.ndarray
    side_slot: np.ndarray
    side_idx: np.ndarray
    side_val: np.ndarray
    side_aux: np.ndarray
    qv: np.ndarray
    qok: np.ndarray
    bad: np.ndarray


@njit(cache=True, nogil=True)
def _accumulate(lo_i, hi_i, rows_, tables, accs):  # noqa: C901
    sub_ids, code_ids, ts, rowid = rows_
    (dptr, mptr, eptr, nscale, sub_lut, code_lut, ncodes, SUB, pk_start, pk_inst, pk_qstart, pk_q, pk_rec, INST, CP,
     KEY, masks, ordb, BKT, wb, cw, GK, luts, Q, TERM, FAC, R, reason_dim, rlut, op_dim, remove_id, sub_bounds,
     n_dense, n_xdense) = tables
    acc, ext, hkeys, hvals, ign, side_slot, side_idx, side_val, side_aux, qv, qok, bad = accs
    mask = hkeys.shape[0] - 1
    cap = acc.shape[0]
    next_row = n_dense
    nside = 0
    side_cap = side_slot.shape[0]
    for i in range(lo_i, hi_i):
        s = _looked_up(sub_lut, sub_ids[i])
        if s < 0:
            continue
        k = _looked_up(code_lut, code_ids[i])
        if k < 0:
            continue
        pk = SUB[s, S_PLIST] * ncodes + k
        j0 = pk_start[pk]
        j1 = pk_start[pk + 1]
        if j0 == j1:
            continue
        t = ts[i]
        if t > SUB[s, S_HI]:
            continue
        before = t < SUB[s, S_LO]
        if before and pk_rec[pk] == 0:
            continue
        # ---- the quantities this (program list, code) needs, once per event
        held = True
        for qq in range(pk_qstart[pk], pk_qstart[pk + 1]):
            qi = pk_q[qq]
            kind = Q[qi, Q_KIND]
            if kind == QK_COUNT:
                qv[qi] = 1
                qok[qi] = True
                continue
            if kind == QK_UID:
                qv[qi] = 1
                qok[qi] = _ld32(dptr[Q[qi, Q_UID]], i) >= 0
                continue
            q, ok, held = _table_quantity(qi, i, Q, TERM, FAC, mptr, eptr, nscale)
            if not held:
                break
            qv[qi] = q
            qok[qi] = ok
        if not held:  # the exact path rates this subscription
            bad[s] = 1
            continue
        r = np.int64(0)
        if reason_dim >= 0:
            r = luts[rlut + _ld32(dptr[reason_dim], i) + 1]
        rank = SUB[s, S_RANK]
        dayidx = np.int64(-2)
        # ---- every charge instance of the pair
        for jj in range(j0, j1):
            inst = pk_inst[jj]
            if before and INST[inst, I_REC] == 0:
                continue
            cp = INST[inst, I_CP]
            flags = CP[cp, C_FLAGS]
            # filter bucket
            nf = CP[cp, C_NF]
            b = nf
            if nf > 0:
                m = CP[cp, C_ALL]
                for kk in range(CP[cp, C_KOFF], CP[cp, C_KOFF] + CP[cp, C_KN]):
                    vi = luts[KEY[kk, K_VLUT] + _ld32(dptr[KEY[kk, K_DIM]], i) + 1]
                    m &= masks[KEY[kk, K_MOFF] + vi]
                if m != 0:
                    bit = 0
                    while (m >> bit) & 1 == 0:
                        bit += 1
                    b = ordb[CP[cp, C_ORD] + bit]
            qi = CP[cp, C_Q]
            if not qok[qi]:
                ign[INST[inst, I_IGN] + rank * (nf + 1) + b] += 1
                continue
            q = qv[qi]
            # price window: binary search over the bucket's boundaries
            bo = CP[cp, C_BOFF] + b
            w = np.int64(0)
            nwb = BKT[bo, B_WBN]
            if nwb > 0:
                a0 = BKT[bo, B_WBOFF]
                lo_ = a0
                hi_ = a0 + nwb
                while lo_ < hi_:
                    mid = (lo_ + hi_) >> 1
                    if wb[mid] <= t:
                        lo_ = mid + 1
                    else:
                        hi_ = mid
                w = cw[BKT[bo, B_CWOFF] + lo_ - a0]
            # group
            g = np.int64(0)
            for gk in range(CP[cp, C_GOFF], CP[cp, C_GOFF] + CP[cp, C_GN]):
                g += luts[GK[gk, G_LUT] + _ld32(dptr[GK[gk, G_DIM]], i) + 1] * GK[gk, G_MULT]
            line = BKT[bo, B_LINE] + g * BKT[bo, B_NW1] + w
            if INST[inst, I_HASHED] != 0:
                slot = INST[inst, I_BASE] + rank * INST[inst, I_STRIDE] + line * R + r
                row, next_row = _slot(hkeys, hvals, mask, slot, next_row, cap)
                if row < 0:
                    return FULL, inst, s, next_row, nside
                xrow = n_xdense + row - n_dense
            else:
                row = SUB[s, S_DBASE] + r * SUB[s, S_LP] + INST[inst, I_LOFF] + line
                slot = row
                xrow = SUB[s, S_XBASE] + r * SUB[s, S_EP] + INST[inst, I_XOFF] + line
            if _add_event(acc, row, q):
                bad[s] = 1
                continue
            if flags != 0:
                if flags & F_MAX:
                    if q > ext[xrow, X_MAX]:
                        ext[xrow, X_MAX] = q
                if flags & F_LAST:
                    if t > ext[xrow, X_LTS] or (t == ext[xrow, X_LTS] and rowid[i] > ext[xrow, X_LROW]):
                        ext[xrow, X_LTS] = t
                        ext[xrow, X_LROW] = rowid[i]
                        ext[xrow, X_LVAL] = q
                if flags & F_PROR and dayidx == -2:
                    dayidx = -1
                    if not before:
                        blo = SUB[s, S_BOFF]
                        lo_ = blo
                        hi_ = SUB[s + 1, S_BOFF]
                        while lo_ < hi_:
                            mid = (lo_ + hi_) >> 1
                            if sub_bounds[mid] <= t:
                                lo_ = mid + 1
                            else:
                                hi_ = mid
                        dayidx = lo_ - blo
                if flags & F_PROR:
                    wgt = SUB[s, S_EFF] - (dayidx if dayidx > 0 else 0)
                    pq, o = _mul(q, wgt)
                    pv, o2 = _add(ext[xrow, X_PROR], pq)
                    if o or o2:
                        bad[s] = 1
                        continue
                    ext[xrow, X_PROR] = pv
                if flags & F_CENTS:
                    sl = CP[cp, C_CENTS]
                    cv, valid, o = _fixed(mptr[sl], eptr[sl], nscale[sl], i)
                    if valid and not o:
                        cv, o = _add(ext[xrow, X_CENTS], cv)
                    if o:
                        bad[s] = 1
                        continue
                    if valid:
                        ext[xrow, X_CENTS] = cv
                if flags & F_SIDE:
                    if nside >= side_cap:
                        return FULL, inst, s, next_row, nside
                    side_slot[nside] = slot
                    side_idx[nside] = i
                    if flags & F_UNIQUE:
                        side_val[nside] = _ld32(dptr[Q[qi, Q_UID]], i)
                        rem = 1 if (op_dim >= 0 and _ld32(dptr[op_dim], i) == remove_id) else 0
                        side_aux[nside] = (dayidx + 1) * 2 + rem
                    else:
                        side_val[nside] = q
                        side_aux[nside] = dayidx
                    nside += 1
    return OK, -1, -1, next_row, nside


@njit(cache=True, nogil=True)
def _side_bound(lo_i, hi_i, sub_ids, code_ids, ts, sub_lut, code_lut, ncodes, SUB, pk_nside):
    """Upper bound of the side entries rows [lo_i, hi_i) can produce."""
    total = 0
    for i in range(lo_i, hi_i):
        s = _looked_up(sub_lut, sub_ids[i])
        if s < 0:
            continue
        k = _looked_up(code_lut, code_ids[i])
        if k < 0 or ts[i] > SUB[s, S_HI]:
            continue
        total += pk_nside[SUB[s, S_PLIST] * ncodes + k]
    return total


_POOL: list = []


def threads() -> int:
    env = os.environ.get("GPUBILL_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, min(len(os.sched_getaffinity(0)), 16))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, min(os.cpu_count() or 1, 16))


def parallel_map(fn, items):
    """``[fn(x) for x in items]`` on a shared thread pool (the kernels release the GIL)."""
    if len(items) <= 1:
        return [fn(x) for x in items]
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=threads(), thread_name_prefix="gpubill-rate"))
    return list(_POOL[0].map(fn, items))


def chunks(n: int, min_rows: int = 200_000):
    """Contiguous row ranges, one per thread (one range for small inputs)."""
    t = max(1, min(threads(), n // min_rows))
    cuts = [n * k // t for k in range(t + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


class ThreadAcc:
    """One thread's accumulators."""

    def __init__(self, n_dense, hash_cap, n_ext, side_cap, nq, n_ign, nsub):
        rows = n_dense + (hash_cap // 2 if hash_cap > 1 else 0)
        self.acc = np.zeros((max(rows, 1), A_NCOL), np.int64)
        self.ext = np.zeros((max(n_ext, 1), X_NCOL), np.int64)
        if n_ext:
            self.ext[:, X_MAX] = I64_MIN
            self.ext[:, X_LTS] = I64_MIN
        self.hkeys = np.full(max(hash_cap, 1), -1, np.int64)
        self.hvals = np.zeros(max(hash_cap, 1), np.int64)
        self.ign = np.zeros(max(n_ign, 1), np.int64)
        self.side = [np.zeros(side_cap, np.int64) for _ in range(4)]
        self.qv = np.zeros(max(nq, 1), np.int64)
        self.qok = np.zeros(max(nq, 1), np.bool_)
        self.bad = np.zeros(max(nsub, 1), np.uint8)  # subscriptions left to the exact path
        self.used = n_dense
        self.nside = 0

    def arrays(self) -> Accumulators:
        return Accumulators(self.acc, self.ext, self.hkeys, self.hvals, self.ign, *self.side, self.qv, self.qok,
                            self.bad)


def run_chunk(p, cols, lo_i, hi_i, acc: ThreadAcc, pk=None):
    """The generic kernel over rows [lo_i, hi_i); ``pk`` replaces the program list's
    (program list, code) instance tables (the fast path passes the instances it
    leaves to this kernel)."""
    a = dict(p.arrays, **pk) if pk else p.arrays
    rows = Rows(cols.subscription, cols.code, cols.timestamp_ms, cols.rowid)
    status, inst, s, used, nside = _accumulate(lo_i, hi_i, rows, GenericTables.of(a), acc.arrays())
    acc.used = used
    acc.nside = nside
    return int(status), int(inst), int(s)


def side_bound(p, cols, lo_i, hi_i) -> int:
    a = p.arrays
    return int(_side_bound(lo_i, hi_i, cols.subscription, cols.code, cols.timestamp_ms, a["sub_lut"],
                           a["code_lut"], a["ncodes"], a["SUB"], a["pk_nside"]))
