"""The fast path of the main pass: small kernels per charge program, shaped.

Most charges aggregate ``count`` / ``sum`` / ``max`` of one quantity into a
filter bucket, an optional group and an optional price window.  For those
(*fast* programs: no latest, prorating, dynamic cents or sequence, and a
dense slot block) the work of one block of ``BLOCK`` rows is split into
tight loops instead of one interpreter over every (event, charge) pair:

1. ``_route``: one branch-free pass writes every row of the block to its
   event code's buffer (row index, subscription -- negative before the
   period, kept only for codes with a recurring fast charge -- and the end
   reason's compact index); a row advances its code's count only when some
   fast charge of its subscription's program list reads the code and its time is in
   range (``Routes``: unknown ids map to sentinels that keep nothing);
2. ``_quantity_shaped``: each quantity a fast program of the code needs,
   once per routed row, for one-term polynomials of one or two factors with
   an optional utilization (the tables' values as scalars; per-event
   increments divided by multiply-high); ``_quantity`` for other
   polynomials; ``ok`` False when a property is missing or not strictly
   numeric, a value that cannot be held marks the subscription;
3. ``_program_shaped``: one loop per (program, occurrence in the program list) over
   the code's routed rows, compiled once per combination of absent pieces
   (filter key, price windows, first and second group key, quantity, max,
   end reasons); a windowed program whose block lies inside one window per
   bucket runs without windows (``_block_windows``).  ``_program`` takes the
   other shapes (several filter keys, three or more group keys).  Both
   write ``acc[row] += (1, q)`` (checked) and ``ext[row].max`` -- the same
   slots the generic kernel writes, so decoding is unchanged.

The generic kernel (``accumulate._accumulate``) still runs for the other
instances, with (program list, code) tables that list only those.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from gpubill.engine.fast.accumulate import GenericTables, _add_event, _table_quantity
from gpubill.engine.fast.kernels import _fixed, _ld32, _mul, _per_event
from gpubill.engine.fast.layout import (
    B_CWOFF, B_LINE, B_NW1, B_WBN, B_WBOFF, C_ALL, C_BOFF, C_GN, C_GOFF, C_KN, C_KOFF, C_NF, C_ORD,
    C_Q, F_CENTS, F_LAST, F_MAX, F_PROR, F_SIDE, FA_FLAGS, FA_INC, FA_MAGIC, FA_MAX, FA_MIN, FA_SHIFT, FA_SLOT, G_DIM, G_LUT, G_MULT,
    I_CP, I_HASHED, I_IGN, I_LOFF, I_REC, I_XOFF, K_DIM, K_MOFF, K_VLUT, Q_KIND, Q_TN, Q_TOFF, Q_UCEIL, Q_UFLOOR,
    Q_UTIL, QK_POLY, S_DBASE, S_EP, S_HI, S_LO, S_LP, S_PLIST, S_RANK, S_XBASE, T_COEF, T_FN, T_FOFF, X_MAX,
)
from gpubill.engine.fast.program_tables import MAX_FILTERS

SLOW = F_LAST | F_PROR | F_CENTS | F_SIDE
MAX_BUCKETS = MAX_FILTERS + 1  # buckets of one program (its filters and the rest)
BLOCK = 1 << 16  # rows per block: the block's routed rows and quantities stay in cache
ENABLED = True  # False: every instance goes through the generic kernel (tests hold both equal)
_NOQ = np.zeros(1, np.int64)
_NOLUT = np.zeros(1, np.int64)
_NOOK = np.zeros(1, np.bool_)


@intrinsic
def _cttz(typingctx, x):
    """Count trailing zeros of a non-zero int64 (llvm.cttz)."""
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return sig, codegen


@njit(cache=True, nogil=True)
def _route(lo_i, hi_i, sub_ids, code_ids, ts, rt, reasons, rlut, rows, es, er, counts):
    """Rows [lo_i, hi_i) -> per code k: ``counts[k]`` rows in ``rows[k]``
    (the row index), ``es[k]`` (the subscription; -s-1 for a row before
    the period) and ``er[k]`` (the end reason's compact index); returns the
    block's first and last timestamps.

    One branch-free pass (``Routes``: unknown ids and codes map to a
    sentinel subscription / code that keeps nothing): every row is written
    to its code's next place, which only advances when the row is kept."""
    nk = rt.ncodes + 1
    counts[:] = 0
    tmin = tmax = ts[lo_i]
    for i in range(lo_i, hi_i):
        sid = np.int64(sub_ids[i]) + 1
        s = np.int64(rt.sub[sid if 0 <= sid < rt.sub.shape[0] else 0])
        cid = np.int64(code_ids[i]) + 1
        k = np.int64(rt.code[cid if 0 <= cid < rt.code.shape[0] else 0])
        t = ts[i]
        tmin, tmax = min(tmin, t), max(tmax, t)
        before = t < rt.lo[s]
        keep = (rt.ok[s * nk + k] != 0) & (t <= rt.hi[s]) & ((not before) | (rt.rec[k] != 0))
        c = counts[k]
        rows[k, c] = i
        es[k, c] = -s - 1 if before else s
        if reasons is not None:
            er[k, c] = rlut[np.int64(reasons[i]) + 1]
        counts[k] = c + keep
    return tmin, tmax


@njit(cache=True, nogil=True)
def _quantity(j0, j1, rows, es, mptr, eptr, nscale, qi, Q, TERM, FAC, out, ok, bad):
    """out[j], ok[j] for the routed rows [j0, j1): the exact int64 quantity
    ``qi`` read from the tables; a row whose value cannot be held marks its
    subscription in ``bad`` (the exact path rates it) and is not counted here."""
    for j in range(j0, j1):
        q, good, held = _table_quantity(qi, rows[j], Q, TERM, FAC, mptr, eptr, nscale)
        if not held:
            bad[_sub_of(es[j])] = 1
            good = False
        out[j] = q
        ok[j] = good


@njit(cache=True, nogil=True)
def _column(m, e, sc, i):
    """``_fixed`` of row i of the numeric column (m, e) at scale sc."""
    return _fixed(m.ctypes.data, e.ctypes.data, sc, i)


@njit(cache=True, nogil=True)
def _quantity_shaped(j0, j1, rows, es, coef, m0, e0, sc0, pe0, m1, e1, sc1, pe1, mu, eu, scu, ufl, uce, out, ok, bad):
    """``_quantity`` for a one-term polynomial of one or two factors (``m1``
    None: one), with an optional utilization (``mu`` None: none): the
    tables' values come in as scalars (``pe``: a factor's per-event rounding
    (flags, inc, min, max, magic, shift)) and numba compiles one loop per
    shape.  As in ``_quantity``: a value that cannot be held marks the
    subscription whether or not the event has every value; an overflow
    marks it when the event has them all."""
    for j in range(j0, j1):
        i = rows[j]
        x, good, unheld = _column(m0, e0, sc0, i)
        if m1 is not None:
            y, v1, u1 = _column(m1, e1, sc1, i)
            good, unheld = good and v1, unheld or u1
        if mu is not None:
            u, vu, uu = _column(mu, eu, scu, i)
            good, unheld = good and vu, unheld or uu
        q = np.int64(0)
        if good and not unheld:
            if pe0[0] != 0:
                x, unheld = _per_event(x, pe0[0], pe0[1], pe0[2], pe0[3], pe0[4], pe0[5])
            q, o = _mul(coef, x)
            unheld = unheld or o
            if m1 is not None:
                if pe1[0] != 0:
                    y, o = _per_event(y, pe1[0], pe1[1], pe1[2], pe1[3], pe1[4], pe1[5])
                    unheld = unheld or o
                q, o = _mul(q, y)
                unheld = unheld or o
            if mu is not None:
                q, o = _mul(q, min(max(u, ufl), uce))
                unheld = unheld or o
        if unheld:
            bad[_sub_of(es[j])] = 1
            good = False
        out[j] = q
        ok[j] = good


@njit(cache=True, nogil=True)
def _slot_base(e, rec, dbase):
    """(subscription, the program's first slot for it) of a routed row whose
    subscription entry is e (-s-1: before the period); slot -1 when the row
    does not count here (before the period of a charge that is not recurring,
    or a program list without the program)."""
    s = _sub_of(e)
    if e < 0 and rec == 0:
        return s, np.int64(-1)
    return s, dbase[s]


@njit(cache=True, nogil=True)
def _sub_of(e):
    """The subscription of a routed row's entry (``_route`` writes -s-1 for a row before the period)."""
    s = np.int64(e)
    return s if s >= 0 else -s - 1


@njit(cache=True, nogil=True)
def _program(j0, j1, rows, es, er, ts, q, qok, has_q, rec, want_max, fb, tables, dbase, lp, xbase, ep, ignb, accs):
    """One fast program over the routed rows [j0, j1) of its code; a sum
    that would overflow marks its subscription in ``bad`` (the exact path
    rates it)."""
    k0, kn, all_mask, ord0, nf, boff, g0, gn, kp1, blut, gp1, glut = fb
    dptr, luts, KEY, masks, ordb, BKT, wb, cw, GK = (tables.dptr, tables.luts, tables.KEY, tables.masks, tables.ordb,
                                                     tables.BKT, tables.wb, tables.cw, tables.GK)
    acc, ext, ign, bad = accs.acc, accs.ext, accs.ign, accs.bad
    for j in range(j0, j1):
        s, base = _slot_base(es[j], rec, dbase)
        if base < 0:
            continue
        i = rows[j]
        b = nf
        if kn == 1:  # one filter key: the bucket straight from the value
            b = blut[_ld32(kp1, i) + 1]
        elif kn > 1:
            m = all_mask
            for kk in range(k0, k0 + kn):
                vi = luts[KEY[kk, K_VLUT] + _ld32(dptr[KEY[kk, K_DIM]], i) + 1]
                m &= masks[KEY[kk, K_MOFF] + vi]
            if m != 0:
                b = ordb[ord0 + _cttz(m)]
        if has_q and not qok[j]:
            ign[ignb[s] + b] += 1
            continue
        bo = boff + b
        w = np.int64(0)
        nwb = BKT[bo, B_WBN]
        if nwb > 0:
            a0 = BKT[bo, B_WBOFF]
            t = ts[i]
            c = np.int64(0)
            for x in range(a0, a0 + nwb):
                c += wb[x] <= t
            w = cw[BKT[bo, B_CWOFF] + c]
        g = np.int64(0)
        if gn == 1:
            g = glut[_ld32(gp1, i) + 1]
        else:
            for gk in range(g0, g0 + gn):
                g += luts[GK[gk, G_LUT] + _ld32(dptr[GK[gk, G_DIM]], i) + 1] * GK[gk, G_MULT]
        line = BKT[bo, B_LINE] + g * BKT[bo, B_NW1] + w
        r = np.int64(er[j])
        row = base + r * lp[s] + line
        v = q[j] if has_q else 1
        if _add_event(acc, row, v):
            bad[s] = 1
            continue
        if has_q:
            if want_max:
                xr = xbase[s] + r * ep[s] + line
                if v > ext[xr, X_MAX]:
                    ext[xr, X_MAX] = v


@njit(cache=True, nogil=True)
def _program_shaped(j0, j1, rows, es, er, ts, q, qok, rec, kcol, blut, nf, bline, bnw1, wins,
                    g0col, g0lut, g1col, g1lut, dbase, lp, xbase, ep, ignb, acc, ext, ign, bad):
    """``_program`` for the common shapes, each piece an array or None.

    numba compiles one specialization per combination of None arguments and
    prunes the absent pieces, so the loop keeps only the work of its shape:
    ``kcol``/``blut`` a filter on one key (bucket straight from the value),
    ``wins`` (bucket boundaries, see ``_windows``) price windows, ``g0``/``g1``
    up to two group keys (each lut holds value -> index x multiplier),
    ``q`` None for count, ``ext`` None without max, ``er`` None without end
    reasons.  The slot rows are the ones ``_program`` writes."""
    for j in range(j0, j1):
        s, base = _slot_base(es[j], rec, dbase)
        if base < 0:
            continue
        i = rows[j]
        b = nf
        if kcol is not None:
            b = blut[np.int64(kcol[i]) + 1]
        if q is not None:
            if not qok[j]:
                ign[ignb[s] + b] += 1
                continue
        line = bline[b]
        if wins is not None:
            line += _window(wins, b, ts[i])
        if g0col is not None:
            g = g0lut[np.int64(g0col[i]) + 1]
            if g1col is not None:
                g += g1lut[np.int64(g1col[i]) + 1]
            line += g * bnw1[b]
        row = base + line
        if er is not None:
            row += np.int64(er[j]) * lp[s]
        v = q[j] if q is not None else 1
        if _add_event(acc, row, v):
            bad[s] = 1
            continue
        if ext is not None:  # a max: always with a quantity
            xr = xbase[s] + line
            if er is not None:
                xr += np.int64(er[j]) * ep[s]
            if v > ext[xr, X_MAX]:
                ext[xr, X_MAX] = v


@njit(cache=True, nogil=True)
def _block_windows(wins, nb, tmin, tmax, bline, out):
    """When no bucket has a window boundary inside the time span [tmin, tmax]
    of a block (most blocks: a block spans hours, windows days), ``out[b]`` =
    ``bline[b]`` + the bucket's window for the whole block, and True; else
    False.  (The window itself is not monotonic in time -- outside, inside,
    outside -- the count of boundaries passed is.)"""
    for b in range(nb):
        c = _passed(wins, b, tmin)
        if c != _passed(wins, b, tmax):
            return False
        out[b] = bline[b] + wins[wins[3 * b + 2] + c]
    return True


@njit(cache=True, nogil=True)
def _passed(wins, b, t):
    """How many of bucket b's window boundaries lie at or before t."""
    a0 = wins[3 * b]
    c = np.int64(0)
    for x in range(a0, a0 + wins[3 * b + 1]):
        c += wins[x] <= t
    return c


@njit(cache=True, nogil=True)
def _window(wins, b, t):
    """The price window of time t in bucket b: ``wins[b]`` = (first boundary,
    count, first cell) rows over the flat boundary / cell vector ``wins``."""
    return wins[wins[3 * b + 2] + _passed(wins, b, t)]


class _Shape(NamedTuple):
    """The arguments of ``_program_shaped`` for one program (None: the piece is absent)."""

    kcol: object
    blut: object
    nf: int
    bline: np.ndarray
    bnw1: np.ndarray
    wins: object
    g0col: object
    g0lut: object
    g1col: object
    g1lut: object
    reasons: bool


class Routes(NamedTuple):
    """Which rows the fast path keeps, as flat tables (index 0 of ``sub`` /
    ``code``: an unknown or missing id; subscription ``nsub`` and code
    ``ncodes`` are sentinels that keep nothing)."""

    sub: np.ndarray  # dictionary id + 1 -> subscription index (or the sentinel)
    code: np.ndarray  # dictionary id + 1 -> code index (or the sentinel)
    ok: np.ndarray  # subscription * (ncodes + 1) + code -> 1 when a fast program of its program list reads the code
    lo: np.ndarray  # per subscription: first millisecond of its period
    hi: np.ndarray  # ... last
    rec: np.ndarray  # per code: 1 when a recurring fast program reads it (rows before the period count)
    ncodes: int


def _routes(a, pk_fast, code_rec, ncodes) -> Routes:
    SUB, sub_lut, code_lut = a["SUB"], a["sub_lut"], a["code_lut"]
    nsub = SUB.shape[0] - 1
    sub = np.r_[nsub, np.where(sub_lut >= 0, sub_lut, nsub)].astype(np.int32)
    code = np.r_[ncodes, np.where(code_lut >= 0, code_lut, ncodes)].astype(np.int32)
    ok = np.zeros((nsub + 1, ncodes + 1), np.int8)
    npk = (int(SUB[:nsub, S_PLIST].max()) + 1) * ncodes if nsub else 0
    if npk and npk <= len(pk_fast):
        ok[:nsub, :ncodes] = pk_fast[:npk].reshape(-1, ncodes)[SUB[:nsub, S_PLIST]]
    lo = np.r_[SUB[:nsub, S_LO], 0].astype(np.int64)
    hi = np.r_[SUB[:nsub, S_HI], -1].astype(np.int64)
    return Routes(sub, code, ok.ravel(), lo, hi, np.r_[code_rec, 0].astype(np.int8), ncodes)


def _quantity_shape(a, qi):
    """``_quantity_shaped``'s arguments after the routed rows for quantity
    ``qi`` (coef, two factors, utilization), or None when it has another
    shape (several terms, more than two factors)."""
    Q, TERM, FAC = a["Q"], a["TERM"], a["FAC"]
    if Q[qi, Q_TN] != 1:
        return None
    t = int(Q[qi, Q_TOFF])
    f0, fn = int(TERM[t, T_FOFF]), int(TERM[t, T_FN])
    if not 1 <= fn <= 2:
        return None

    def factor(f):
        if f is None:
            return None, None, 0, (0, 0, 0, 0, 0, -1)
        sl = int(FAC[f, FA_SLOT])
        m, e = a["num_cols"][sl]
        pe = tuple(int(FAC[f, c]) for c in (FA_FLAGS, FA_INC, FA_MIN, FA_MAX, FA_MAGIC, FA_SHIFT))
        return m, e, int(a["nscale"][sl]), pe

    usl = int(Q[qi, Q_UTIL])
    mu, eu = a["num_cols"][usl] if usl >= 0 else (None, None)
    return (int(TERM[t, T_COEF]), *factor(f0), *factor(f0 + 1 if fn == 2 else None), mu, eu,
            int(a["nscale"][usl]) if usl >= 0 else 0, int(Q[qi, Q_UFLOOR]), int(Q[qi, Q_UCEIL]))


def _value_lut(a, lut_off, mult=1):
    """dictionary id + 1 -> ``luts`` entry x mult, as an int64 vector."""
    n = int(a["nstrings"]) + 1
    return a["luts"][lut_off:lut_off + n].astype(np.int64) * mult


def _shaped(a, pr, row, R):
    """The shaped kernel's arguments for program row ``row`` (CP), or None
    when its shape is not one ``_program_shaped`` covers (several filter
    keys, more than two group keys)."""
    kn, gn, nf = int(row[C_KN]), int(row[C_GN]), int(row[C_NF])
    if kn > 1 or gn > 2:
        return None
    dims = a["dim_cols"]
    kcol = blut = None
    if kn == 1:
        kr = a["KEY"][int(row[C_KOFF])]
        kcol = dims[int(kr[K_DIM])]
        mk = a["masks"][int(kr[K_MOFF]) + _value_lut(a, int(kr[K_VLUT]))] & row[C_ALL]
        by_mask = {mv: nf if mv == 0 else int(a["ordb"][int(row[C_ORD]) + ((mv & -mv).bit_length() - 1)])
                   for mv in np.unique(mk).tolist()}
        blut = _map_values(mk, by_mask)
    bk = a["BKT"][int(row[C_BOFF]):int(row[C_BOFF]) + nf + 1]
    gcols = []
    for gk in range(int(row[C_GOFF]), int(row[C_GOFF]) + gn):
        gr = a["GK"][gk]
        gcols += [dims[int(gr[G_DIM])], _value_lut(a, int(gr[G_LUT]), int(gr[G_MULT]))]
    gcols += [None] * (4 - len(gcols))
    return _Shape(kcol, blut, nf, np.ascontiguousarray(bk[:, B_LINE]), np.ascontiguousarray(bk[:, B_NW1]),
                  _windows(a, bk), *gcols, R > 1)


def _windows(a, bk):
    """Per bucket (first boundary, count, first cell) then the boundaries and
    cells, offsets into the one vector; None when no bucket has windows."""
    if not bk[:, B_WBN].any():
        return None
    head = 3 * len(bk)
    out, tail = [], []
    for b in bk:
        wb = a["wb"][int(b[B_WBOFF]):int(b[B_WBOFF]) + int(b[B_WBN])].tolist()
        cells = a["cw"][int(b[B_CWOFF]):int(b[B_CWOFF]) + len(wb) + 1].tolist()
        out += [head + len(tail), len(wb), head + len(tail) + len(wb)]
        tail += wb + cells
    return np.asarray(out + tail, np.int64)


def _map_values(keys, mapping):
    """mapping[keys[i]] for an int64 array (few distinct keys)."""
    ks = np.asarray(sorted(mapping), np.int64)
    vs = np.asarray([mapping[k] for k in ks.tolist()], np.int64)
    return vs[np.searchsorted(ks, keys)]


class Fallback(NamedTuple):
    """A fast program whose shape ``_program_shaped`` does not cover (several
    filter keys, more than two group keys): its CP row's values for ``_program``."""

    k0: int
    kn: int
    all_mask: int
    ord0: int
    nf: int
    boff: int
    g0: int
    gn: int
    kp1: int  # one filter key: its column's address, and the bucket of each dictionary id + 1
    blut: np.ndarray
    gp1: int  # one group key: its column's address, and its lut (value -> index x multiplier)
    glut: np.ndarray


class FastProgram(NamedTuple):
    """One fast program (a charge program at one occurrence in the program lists) and its per-subscription bases."""

    cp: int
    qi: int
    has_q: int
    rec: int
    want_max: int
    dbase: np.ndarray  # per subscription: first dense slot of the program's lines (-1: its program list lacks it)
    xbase: np.ndarray  # ... of its ext rows
    ignb: np.ndarray  # ... of its ignored-event counters
    shaped: object  # _Shape, or None (then ``fallback``)
    fallback: object


def _fallback(a, pr, row):
    kp1, blut = 0, _NOLUT
    if row[C_KN] == 1:  # bucket of every dictionary id, from the key's value lut and masks
        kr = a["KEY"][int(row[C_KOFF])]
        kp1 = int(a["dptr"][kr[K_DIM]])
        mk = a["masks"][int(kr[K_MOFF]) + _value_lut(a, int(kr[K_VLUT]))] & row[C_ALL]
        by_mask = {mv: pr.nf if mv == 0 else int(a["ordb"][int(row[C_ORD]) + ((mv & -mv).bit_length() - 1)])
                   for mv in np.unique(mk).tolist()}
        blut = _map_values(mk, by_mask)
    gp1, glut = 0, _NOLUT
    if row[C_GN] == 1:
        gr = a["GK"][int(row[C_GOFF])]
        gp1 = int(a["dptr"][gr[G_DIM]])
        glut = _value_lut(a, int(gr[G_LUT]), int(gr[G_MULT]))
    return Fallback(int(row[C_KOFF]), int(row[C_KN]), int(row[C_ALL]), int(row[C_ORD]), int(row[C_NF]),
                    int(row[C_BOFF]), int(row[C_GOFF]), int(row[C_GN]), kp1, blut, gp1, glut)


def _generic_lists(p, fast):
    """The (program list, code) tables of the generic kernel, listing only the instances
    the fast path leaves to it; -> (those tables, per (program list, code) whether a
    fast instance reads it, the code of each instance)."""
    a = p.arrays
    INST, ncodes = a["INST"], int(a["ncodes"])
    pk_start, pk_inst = a["pk_start"], a["pk_inst"]
    npk = pk_start.size - 1
    gs, gi, gqs, gq = [0], [], [0], []
    grec = np.zeros(max(npk, 1), np.int64)
    pk_fast = np.zeros(max(npk, 1), np.int8)
    code_of_inst = np.zeros(max(len(p.instances), 1), np.int64)
    for k in range(npk):
        lst = [int(x) for x in pk_inst[pk_start[k]:pk_start[k + 1]]]
        code_of_inst[lst] = k % ncodes
        slow = [x for x in lst if not fast[x]]
        gi.extend(slow)
        gs.append(len(gi))
        gq.extend(sorted({p.programs[int(INST[x, I_CP])].q for x in slow}))
        gqs.append(len(gq))
        grec[k] = int(any(INST[x, I_REC] for x in slow))
        pk_fast[k] = int(len(slow) < len(lst))
    pk = dict(pk_start=np.asarray(gs, np.int64), pk_inst=np.asarray(gi or [0], np.int64),
              pk_qstart=np.asarray(gqs, np.int64), pk_q=np.asarray(gq or [0], np.int64), pk_rec=grec)
    return pk, pk_fast, code_of_inst


def _fast_groups(p, fast) -> dict:
    """(program, occurrence within the program list) -> the instance of each program list (-1: none)."""
    groups: dict = {}
    seen: dict = {}
    nplists = len(p.layout["plist_subs"])
    for x, (P, _, cp) in enumerate(p.instances):
        if fast[x]:
            occ = seen.get((P, cp), 0)
            seen[(P, cp)] = occ + 1
            groups.setdefault((cp, occ), [-1] * nplists)[P] = x
    return groups


def _fast_program(p, cp, xs) -> FastProgram:
    a = p.arrays
    INST, SUB, nsub = a["INST"], a["SUB"], len(p.subs)
    pr = p.programs[cp]
    xs_a = np.asarray(xs, np.int64)
    plist_of = SUB[:nsub, S_PLIST]
    has = xs_a[plist_of] >= 0 if nsub else np.zeros(0, bool)
    xi = np.where(has, xs_a[plist_of], 0)
    dbase = np.where(has, SUB[:nsub, S_DBASE] + INST[xi, I_LOFF], -1).astype(np.int64)
    xbase = np.where(has, SUB[:nsub, S_XBASE] + INST[xi, I_XOFF], 0).astype(np.int64)
    ignb = np.where(has, INST[xi, I_IGN] + SUB[:nsub, S_RANK] * (pr.nf + 1), 0).astype(np.int64)
    x0 = next(x for x in xs if x >= 0)
    qi = int(a["CP"][cp, C_Q])
    row = a["CP"][cp]
    shaped = _shaped(a, pr, row, p.R)
    return FastProgram(cp, qi, int(a["Q"][qi, Q_KIND] == QK_POLY), int(INST[x0, I_REC]), int(bool(pr.flags & F_MAX)),
                       dbase, xbase, ignb, shaped, None if shaped is not None else _fallback(a, pr, row))


class FastTables:
    """Per-run tables of the fast path, derived from the kernel tables (``tables.build``)."""

    def __init__(self, p):
        a = p.arrays
        INST = a["INST"]
        ncodes = int(a["ncodes"])
        fast = [ENABLED and not INST[x, I_HASHED] and not (p.programs[cp].flags & SLOW)
                for x, (_, _, cp) in enumerate(p.instances)]
        self.any, self.generic = any(fast), not all(fast)
        self.pk, pk_fast, code_of_inst = _generic_lists(p, fast)
        self.tables = GenericTables.of(a)
        self.lp = np.ascontiguousarray(a["SUB"][:, S_LP])
        self.ep = np.ascontiguousarray(a["SUB"][:, S_EP])
        self.by_code: list = [[] for _ in range(ncodes)]  # per code: its FastPrograms
        self.q_by_code: list = [set() for _ in range(ncodes)]  # per code: the quantities they read
        code_rec = np.zeros(ncodes, np.int64)
        for (cp, _), xs in sorted(_fast_groups(p, fast).items()):
            fp = _fast_program(p, cp, xs)
            k = int(code_of_inst[next(x for x in xs if x >= 0)])
            code_rec[k] |= fp.rec
            if fp.has_q:
                self.q_by_code[k].add(fp.qi)
            self.by_code[k].append(fp)
        self.ncodes = ncodes
        self.q_shape = {qi: _quantity_shape(a, qi) for qs in self.q_by_code for qi in qs}
        self.routes = _routes(a, pk_fast, code_rec, ncodes)
        rd = int(a["reason_dim"])
        self.reasons = a["dim_cols"][rd] if rd >= 0 else None
        self.rlut = _value_lut(a, int(a["rlut"])) if rd >= 0 else _NOLUT


class Scratch:
    """One thread's per-block buffers: the routed rows of each code (plus
    the sentinel's) and each quantity's values."""

    def __init__(self, ft):
        n, m = ft.ncodes + 1, BLOCK
        self.rows = np.empty((n, m), np.int64)
        self.es = np.empty((n, m), np.int32)
        self.er = np.zeros((n, m), np.int32)
        self.counts = np.zeros(n, np.int64)
        self.q = {qi: (np.empty(m, np.int64), np.empty(m, np.bool_)) for qi in ft.q_shape}
        self.bline = np.empty(MAX_BUCKETS, np.int64)  # a windowed program's line offsets in one block


def run_block(p, ft, base, lo, hi, acc, sc: Scratch):
    """The fast programs over rows [lo, hi) (at most ``BLOCK``) into one
    thread's accumulators (a subscription the kernels cannot hold is marked
    in ``acc.bad``)."""
    span = _route(lo, hi, base.subscription, base.code, base.timestamp_ms, ft.routes, ft.reasons, ft.rlut, sc.rows,
                  sc.es, sc.er, sc.counts)
    for k in range(ft.ncodes):
        n = int(sc.counts[k])
        if n and ft.by_code[k]:
            _code_block(p, ft, base, sc.rows[k], sc.es[k], sc.er[k], n, k, acc, sc, span)


def _code_block(p, ft, base, rows, es, er, n, k, acc, sc, span):
    """The quantities and fast programs of code k over its n routed rows."""
    a = p.arrays
    for qi in ft.q_by_code[k]:
        out, ok = sc.q[qi]
        qs = ft.q_shape[qi]
        if qs is not None:
            _quantity_shaped(0, n, rows, es, *qs, out, ok, acc.bad)
        else:
            _quantity(0, n, rows, es, a["mptr"], a["eptr"], a["nscale"], qi, a["Q"], a["TERM"], a["FAC"], out,
                      ok, acc.bad)
    for g in ft.by_code[k]:
        q, ok = sc.q[g.qi] if g.has_q else (_NOQ, _NOOK)  # never read without a quantity
        sh = g.shaped
        if sh is None:
            _program(0, n, rows, es, er, base.timestamp_ms, q, ok, g.has_q, g.rec, g.want_max, g.fallback, ft.tables,
                     g.dbase, ft.lp, g.xbase, ft.ep, g.ignb, acc.arrays())
            continue
        bline, wins = sh.bline, sh.wins
        if wins is not None and _block_windows(wins, sh.nf + 1, span[0], span[1], bline, sc.bline):
            bline, wins = sc.bline, None  # one window per bucket in this block: folded into the line offsets
        _program_shaped(0, n, rows, es, er if sh.reasons else None, base.timestamp_ms, q if g.has_q else None, ok,
                        g.rec, sh.kcol, sh.blut, sh.nf, bline, sh.bnw1, wins, sh.g0col, sh.g0lut, sh.g1col, sh.g1lut,
                        g.dbase, ft.lp, g.xbase, ft.ep, g.ignb, acc.acc, acc.ext if g.want_max else None, acc.ign,
                        acc.bad)
