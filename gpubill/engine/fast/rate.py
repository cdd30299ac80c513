"""The fast path: ``rate(subscriptions, cols) -> RateResult``.

1. ``tables.build``: programs, lookup tables, slot layout (no per-event work
   except the parallel column statistics);
2. ``run_pass``: row ranges, one per thread; in each, ``fast.run_block``
   (routing, quantities and one small kernel per plain count/sum/max
   program) and the generic accumulator kernel for the other instances;
3. ``decode``: merge the threads' accumulators, reduce the end-reason slots
   of each line, and map slots back to (subscription, charge, bucket,
   group, window) -- all numpy, lines come out in canonical order;
4. sequences (unique_count, weighted_sum, percentage values, prorated
   graduated, pay in advance) from the sorted side buffer;
5. assembly by ``price.assemble_run`` -- the one assembler, which the
   reference engine uses too -- over ``_DecodedSource``: each line priced
   by ``price.price_line`` / ``price_values`` (the plain lines' units
   converted to Decimal in bulk), pay-in-advance fees kept as columns
   (``fees.FeeBlock``) where each fee follows from its int64 rise;
6. the subscriptions a kernel marked (a value it cannot hold exactly at
   its column's scale, an int64 overflow) are rated by ``exact`` instead,
   and one that cannot be rated at all (a value the store could not hold,
   an amount beyond exact Decimal) is reported in ``RateResult.unrated``.
"""

from __future__ import annotations

import gc
from fractions import Fraction
from functools import partial

import attrs
import numpy as np

from gpubill.engine.fast import exact
from gpubill.engine.fast import tables
from gpubill.engine.fast.kernels import I64_MIN
from gpubill.engine.fast.main_pass import run_pass, unheld
from gpubill.engine.fast.layout import (
    A_COUNT, A_SUM, B_LINE, B_NW1, C_BOFF, F_CENTS, F_EXT, F_PROR, F_SIDE, F_UNIQUE, I_BASE, I_CP, I_HASHED, I_LOFF,
    I_STRIDE, I_XOFF, S_EP, S_XBASE, X_CENTS, X_LROW, X_LTS, X_LVAL, X_MAX, X_NCOL, X_PROR,
)
from gpubill.engine.pricing.money import MISSING_EXPONENT, ratio_to_decimal
from gpubill.engine.calendar.coverage import DAY_MS
from gpubill.engine.pricing.fees import FeeBlock, rises, running_sum
from gpubill.engine.pricing.fees import merged as merged_fees
from gpubill.engine.pricing.price import (
    advance_fees, assemble_run, linear_fee, price_line, price_values, slot_reason_maps,
)
from gpubill.engine.spec.program import Graduated, Percentage, Standard
from gpubill.engine.fast.sequence import _unique, _weighted, segments, weighted_python
from gpubill.engine.pricing.usage import AdvanceEvent, LineUsage, ScaledInts


def _total(parts):
    """Element-wise sum of int64 arrays, exact: int64 when no overflow is possible, else Python ints."""
    if len(parts) == 1:
        return parts[0]
    hi = max(int(x.max()) if x.size else 0 for x in parts)
    lo = min(int(x.min()) if x.size else 0 for x in parts)
    if max(hi, -lo) * len(parts) < 2**63:
        return np.sum(parts, axis=0)
    return np.sum([x.astype(object) for x in parts], axis=0)


def _reduce(x, starts):
    """Per-segment sums of x (exact, like ``_total``)."""
    if x.size == 0:
        return x
    if x.dtype != object:
        hi, lo = int(x.max()), int(x.min())
        if max(hi, -lo) * x.size >= 2**63:
            x = x.astype(object)
    return np.add.reduceat(x, starts)


class Decoded:
    """Accumulated slots and lines (canonical order) as arrays."""


def _slot_info(p, ids):
    """Slot ids -> (line key, reason, instance, rank, line within the instance block)."""
    R = p.R
    L = p.layout
    ninst = len(p.instances)
    INST = p.arrays["INST"]
    line_key = np.zeros(ids.size, np.int64)
    r = np.zeros(ids.size, np.int64)
    inst = np.zeros(ids.size, np.int64)
    rank = np.zeros(ids.size, np.int64)
    local = np.zeros(ids.size, np.int64)
    dense = ids < p.n_dense
    if dense.any():
        x = ids[dense]
        P = np.searchsorted(L["pbase"], x, "right") - 1
        Lp = L["Lp"][P]
        rem = x - L["pbase"][P]
        rr = rem // (L["nsubs"][P] * Lp)  # reason-major inside the program list's block (tables.py)
        rem2 = rem - rr * L["nsubs"][P] * Lp
        rk = rem2 // Lp
        pl = rem2 - rk * Lp
        # the dense instances of each program list, by line offset
        dx = [k for k in range(ninst) if not INST[k, I_HASHED]]
        dx.sort(key=lambda k: (p.instances[k][0], INST[k, I_LOFF]))
        ploff = np.r_[0, np.cumsum(L["Lp"])[:-1]]
        goff = np.asarray([ploff[p.instances[k][0]] + INST[k, I_LOFF] for k in dx], np.int64)
        ins = np.asarray(dx, np.int64)[np.searchsorted(goff, ploff[P] + pl, "right") - 1]
        line_key[dense] = L["lkbase"][P] + rk * Lp + pl
        r[dense], inst[dense], rank[dense], local[dense] = rr, ins, rk, pl - INST[ins, I_LOFF]
    hs = ~dense
    if hs.any():
        x = ids[hs]
        hx = np.flatnonzero(INST[:ninst, I_HASHED])
        hb = INST[hx, I_BASE]
        o = np.argsort(hb, kind="stable")
        ins = hx[o][np.searchsorted(hb[o], x, "right") - 1]
        rem = x - INST[ins, I_BASE]
        stride = INST[ins, I_STRIDE]
        rk = rem // stride
        rem2 = rem - rk * stride
        line_key[hs] = L["n_lines"] + (x - p.n_dense) // R
        r[hs], inst[hs], rank[hs], local[hs] = rem2 % R, ins, rk, rem2 // R
    return line_key, r, inst, rank, local


def _latest(parts_ts, parts_row, parts_val):
    best_t, best_r, best_v = parts_ts[0].copy(), parts_row[0].copy(), parts_val[0].copy()
    for t, rw, v in zip(parts_ts[1:], parts_row[1:], parts_val[1:]):
        take = (t > best_t) | ((t == best_t) & (rw > best_r))
        best_t[take], best_r[take], best_v[take] = t[take], rw[take], v[take]
    return best_t, best_r, best_v


def decode(p, accs):
    nd_ = p.n_dense
    INST = p.arrays["INST"]
    CP = p.arrays["CP"]
    ext_prog = np.asarray([bool(pr.flags & F_EXT) for pr in p.programs] or [False])
    # ---- dense slots with events (summed over threads)
    cnt_d = np.sum([a.acc[:nd_, A_COUNT] for a in accs], axis=0) if nd_ else np.zeros(0, np.int64)
    ids = np.flatnonzero(cnt_d).astype(np.int64)
    cnt = cnt_d[ids]
    sm = _total([a.acc[ids, A_SUM] for a in accs])
    line_key, r, inst, rank, local = _slot_info(p, ids)
    ext = np.zeros((ids.size, X_NCOL), np.int64)
    ext[:, X_MAX] = I64_MIN
    ext[:, X_LTS] = I64_MIN
    pror = np.zeros(ids.size, np.int64)
    cents = np.zeros(ids.size, np.int64)
    isx = ext_prog[INST[inst, I_CP]] if ids.size else np.zeros(0, bool)
    if isx.any():
        sel = np.flatnonzero(isx)
        subs_ = np.concatenate(p.inst_subs)[np.r_[0, np.cumsum([a.size for a in p.inst_subs])[:-1]][inst[sel]]
                                            + rank[sel]]
        SUB = p.arrays["SUB"]
        xrow = SUB[subs_, S_XBASE] + r[sel] * SUB[subs_, S_EP] + INST[inst[sel], I_XOFF] + local[sel]
        parts = [a.ext[xrow] for a in accs]
        ext[sel, X_MAX] = np.max([x[:, X_MAX] for x in parts], axis=0)
        t, rw, v = _latest([x[:, X_LTS] for x in parts], [x[:, X_LROW] for x in parts], [x[:, X_LVAL] for x in parts])
        ext[sel, X_LTS], ext[sel, X_LROW], ext[sel, X_LVAL] = t, rw, v
        tp = _total([x[:, X_PROR] for x in parts])
        tc = _total([x[:, X_CENTS] for x in parts])
        if tp.dtype == object:
            pror = pror.astype(object)
        if tc.dtype == object:
            cents = cents.astype(object)
        pror[sel], cents[sel] = tp, tc
    cols = [ids, cnt, sm, ext, pror, cents]
    # ---- hashed slots: per-thread rows -> reduce equal slot ids
    if p.hashed:
        hk, hc, hsm, hx = [], [], [], []
        for a in accs:
            used = a.hkeys >= 0
            rows = a.hvals[used]
            hk.append(a.hkeys[used])
            hc.append(a.acc[rows, A_COUNT])
            hsm.append(a.acc[rows, A_SUM])
            if p.hashed_ext:
                hx.append(a.ext[p.n_xdense + rows - nd_])
            else:
                x = np.zeros((rows.size, X_NCOL), np.int64)
                x[:, X_MAX] = I64_MIN
                x[:, X_LTS] = I64_MIN
                hx.append(x)
        keys = np.concatenate(hk)
        o = np.lexsort((np.concatenate(hx)[:, X_LROW], np.concatenate(hx)[:, X_LTS], keys))
        keys = keys[o]
        st, en = segments(keys)
        x = np.concatenate(hx)[o]
        if st.size:
            e = np.zeros((st.size, X_NCOL), np.int64)
            e[:, X_MAX] = np.maximum.reduceat(x[:, X_MAX], st)
            for c in (X_LTS, X_LROW, X_LVAL):
                e[:, c] = x[en - 1, c]
            hcols = [keys[st], np.add.reduceat(np.concatenate(hc)[o], st), _reduce(np.concatenate(hsm)[o], st), e,
                     _reduce(x[:, X_PROR], st), _reduce(x[:, X_CENTS], st)]
            lk2, r2, i2, rk2, lo2 = _slot_info(p, hcols[0])
            line_key, r, inst, rank, local = (np.concatenate(z) for z in
                                              ((line_key, lk2), (r, r2), (inst, i2), (rank, rk2), (local, lo2)))
            cols = [np.concatenate([u, v]) for u, v in zip(cols, hcols)]
    ids, cnt, sm, ext, pror, cents = cols
    # ---- lines: runs of equal line keys, reasons in order inside
    o = np.lexsort((r, line_key))
    ids, cnt, sm, ext, pror, cents = ids[o], cnt[o], sm[o], ext[o], pror[o], cents[o]
    line_key, r, inst, rank, local = line_key[o], r[o], inst[o], rank[o], local[o]
    d = Decoded()
    d.slot, d.cnt, d.sm, d.reason = ids, cnt, sm, r
    st, en = segments(line_key)
    d.starts, d.ends = st, en
    d.line_key = line_key[st] if st.size else line_key
    d.count = np.add.reduceat(cnt, st) if st.size else cnt
    d.sum = _reduce(sm, st)
    d.max = np.maximum.reduceat(ext[:, X_MAX], st) if st.size else ext[:, X_MAX]
    ol = np.lexsort((ext[:, X_LROW], ext[:, X_LTS], line_key))
    d.lval = ext[ol[en - 1], X_LVAL] if st.size else ext[:, X_LVAL]
    d.pror = _reduce(pror, st)
    d.cents = _reduce(cents, st)
    inst, rank, local = (inst[st], rank[st], local[st]) if st.size else (inst, rank, local)
    # ---- line -> (subscription, charge, bucket, group, window)
    a = p.arrays
    cp = INST[inst, I_CP]
    bkt_line = a["BKT"][:, B_LINE]
    prog_lines = np.asarray([pr.lines for pr in p.programs], np.int64)
    prog_base = np.r_[0, np.cumsum(prog_lines)[:-1]] if prog_lines.size else prog_lines
    bkt_prog = np.repeat(np.arange(len(p.programs)), [pr.nf + 1 for pr in p.programs])
    gstart = prog_base[bkt_prog] + bkt_line[: bkt_prog.size] if bkt_prog.size else bkt_prog
    bo = np.searchsorted(gstart, prog_base[cp] + local, "right") - 1 if st.size else local
    b = bo - CP[cp, C_BOFF]
    within = local - bkt_line[bo]
    nw1 = a["BKT"][bo, B_NW1]
    g = within // nw1
    w = within - g * nw1
    sub_off = np.r_[0, np.cumsum([x.size for x in p.inst_subs])[:-1]] if p.inst_subs else np.zeros(0, np.int64)
    all_subs = np.concatenate(p.inst_subs) if p.inst_subs else np.zeros(0, np.int64)
    si = all_subs[sub_off[inst] + rank] if st.size else rank
    inst_ci = np.asarray([c for _, c, _ in p.instances], np.int64)
    ci = inst_ci[inst] if st.size else rank
    d.order = np.lexsort((w, g, b, ci, si))
    d.inst, d.si, d.ci, d.b, d.g, d.w, d.cp, d.rank = inst, si, ci, b, g, w, cp, rank
    return d


def _ignored(p, accs):
    tot = np.sum([a.ign[: p.n_ign] for a in accs], axis=0) if p.n_ign else np.zeros(0, np.int64)
    out = {}
    nzi = np.flatnonzero(tot)
    if not nzi.size:
        return out
    ib = p.inst_ign
    inst = np.searchsorted(ib, nzi, "right") - 1
    for x, k, c in zip(inst.tolist(), nzi.tolist(), tot[nzi].tolist()):
        P, ci, cp = p.instances[x]
        nb = p.programs[cp].nf + 1
        rank, b = divmod(k - int(ib[x]), nb)
        si = int(p.inst_subs[x][rank])
        out[(si, ci, None if b == nb - 1 else b)] = c
    return out


def _group_tuple(p, pr, g):
    out = []
    for key in pr.group_by:
        vals = p.group_values[key]
        out.append(vals)
    res = []
    mult = pr.G
    for vals in out:
        mult //= len(vals)
        res.append(vals[(g // mult) % len(vals)])
    return tuple(res)


def _line_of_slots(d, slots):
    """The decoded line (index into d's arrays) of each slot id: a slot with
    a side event has events, so it is one of ``d.slot``."""
    line_of = np.repeat(np.arange(d.starts.size), d.ends - d.starts)
    top = int(d.slot.max()) + 1 if d.slot.size else 0
    if top <= 4 * slots.size + 2**20:  # a direct table (int32: at most a few times the events' bytes)
        table = np.zeros(top, np.int32)
        table[d.slot] = line_of
        return table[slots].astype(np.int64)
    o = np.argsort(d.slot, kind="stable")
    return line_of[o][np.searchsorted(d.slot[o], slots)]


def time_order(line, ts, rowid):
    """``np.lexsort((rowid, ts, line))``: events by line, then time, then
    ingestion.  Where (time, rowid) fits one int64 key, one sort on it and a
    stable sort by line (radix for small line numbers) do it in about half
    the time of the three-key sort."""
    if not ts.size:
        return np.zeros(0, np.int64)
    t0, r0 = int(ts.min()), int(rowid.min())
    t_span, r_span = int(ts.max()) - t0 + 1, int(rowid.max()) - r0 + 1
    if t_span * r_span >= 2**63 or int(line.max()) >= 2**31:
        return np.lexsort((rowid, ts, line))
    o = np.argsort((ts - t0) * r_span + (rowid - r0), kind="stable")
    small = np.int16 if int(line.max()) < 2**15 else np.int32
    return o[np.argsort(line[o].astype(small), kind="stable")]


def uid_order(by_time, chosen, line, uid, ts, rowid):
    """The events where ``chosen`` by line, then id, then time, then rowid
    (``u[np.lexsort((rowid[u], ts[u], uid[u], line[u]))]`` for ``u`` the
    chosen events), from their ``time_order`` ``by_time``: one stable sort
    on (line, id) where it fits one int64 key."""
    o = by_time[chosen[by_time]]
    if not o.size:
        return o
    lo = int(uid[o].min())
    span = int(uid[o].max()) - lo + 1
    if (int(line[o].max()) + 1) * span >= 2**63:
        u = np.flatnonzero(chosen)
        return u[np.lexsort((rowid[u], ts[u], uid[u], line[u]))]
    return o[np.argsort(line[o] * span + (uid[o] - lo), kind="stable")]


def _side(p, base, accs, d):
    """Sequences per line index (into d's arrays): sorted event rows and values."""
    if not any(a.nside for a in accs):
        return {}
    slot = np.concatenate([a.side[0][: a.nside] for a in accs])
    idx = np.concatenate([a.side[1][: a.nside] for a in accs])
    val = np.concatenate([a.side[2][: a.nside] for a in accs])
    aux = np.concatenate([a.side[3][: a.nside] for a in accs])
    ts = base.timestamp_ms[idx]
    rid = base.rowid[idx]
    li = _line_of_slots(d, slot)
    cpl = d.cp[li]
    uniq = np.asarray([bool(pr.flags & F_UNIQUE) for pr in p.programs])[cpl]
    out = {}
    # time order for everything (unique_count too: pay in advance, percentage)
    o = time_order(li, ts, rid)
    st, en = segments(li[o])
    lines = li[o][st] if st.size else st
    by_time = {"idx": idx[o], "val": val[o], "aux": aux[o], "ts": ts[o], "rowid": rid[o]}
    for k, s0, e0 in zip(lines.tolist(), st.tolist(), en.tolist()):
        out[k] = {name: col[s0:e0] for name, col in by_time.items()}
    # unique_count: (line, uid, time) order, one kernel
    if uniq.any():
        o = uid_order(o, uniq, li, val, ts, rid)
        st, en = segments(li[o])
        lines = li[o][st]
        lastday = np.asarray([p.coverages[int(d.si[k])].eff_days - 1 for k in lines.tolist()], np.int64)
        full, days = _unique(st, en, val[o], aux[o], lastday)
        for k, f, dd in zip(lines.tolist(), full.tolist(), days.tolist()):
            out[k]["unique"] = (f, dd)
    # weighted_sum: one kernel over the time-ordered segments
    wl = [k for k in out if p.programs[int(d.cp[k])].charge.metric.aggregation == "weighted_sum"]
    if wl:
        vals = [out[k]["val"] for k in wl]
        tss = [out[k]["ts"] for k in wl]
        lens = np.asarray([v.size for v in vals], np.int64)
        ends = np.cumsum(lens)
        starts = ends - lens
        cov = [p.coverages[int(d.si[k])] for k in wl]
        acc, ok = _weighted(starts, ends, np.concatenate(vals), np.concatenate(tss),
                            np.asarray([x.lo for x in cov], np.int64), np.asarray([x.ws_end for x in cov], np.int64))
        for j, k in enumerate(wl):
            out[k]["weighted"] = int(acc[j]) if ok[j] else weighted_python(vals[j], tss[j], cov[j].lo, cov[j].ws_end)
    return out


def rate(subscriptions, cols):
    """Rate ``subscriptions`` over the event columns ``cols`` (store format).

    A subscription some kernel could not hold exactly (a value beyond int64
    at its column's scale, an overflowing product or sum) is rated on the
    exact path (``exact.rate_exact``) instead; one that cannot be rated at
    all is reported in ``RateResult.unrated``.  The others are never held up.
    """
    p = tables.build(subscriptions, cols)
    base, accs = run_pass(p, cols)
    bad = unheld(accs)
    d = decode(p, accs)
    ignored = _ignored(p, accs)
    side = _side(p, base, accs, d)
    result = _assemble(p, base, d, ignored, side, set(bad))
    if bad:
        other = exact.rate_exact(p, bad)
        lines = exact.merge(p.subs, attrs.evolve(result, in_advance=()), attrs.evolve(other, in_advance=()))
        result = attrs.evolve(lines, in_advance=merged_fees(p.subs, result.in_advance, other.in_advance))
    return result


class _Lines:
    """The decoded per-line arrays as Python lists (numpy scalars are slow to index)."""

    def __init__(self, p, d):
        self.count = d.count.tolist()
        self.sum = d.sum.tolist()
        has_ext = hasattr(d, "max")
        self.max = d.max.tolist() if has_ext else None
        self.lval = d.lval.tolist() if has_ext else None
        self.pror = d.pror.tolist() if has_ext else None
        self.cents = d.cents.tolist() if has_ext else None
        self.starts = d.starts.tolist()
        self.ends = d.ends.tolist()
        self.reason = d.reason.tolist()
        self.cnt = d.cnt.tolist()
        self.sm = d.sm.tolist()
        self.si, self.ci, self.b, self.g, self.w, self.cp = (x.tolist() for x in (d.si, d.ci, d.b, d.g, d.w, d.cp))
        self.order = d.order.tolist()


def _full(p, L, k, agg, pr, cov, side, Dn, Dd):
    """(full, prorated, sequence) of decoded line k."""
    if agg == "count":
        return (L.count[k], 1), None, None
    if agg == "sum":
        pror = (L.pror[k] * Dn, Dd * cov.duration_days) if pr.flags & F_PROR else None
        return (L.sum[k] * Dn, Dd), pror, None
    if agg == "max":
        return (L.max[k] * Dn, Dd), None, None
    if agg == "latest":
        return (max(L.lval[k], 0) * Dn, Dd), None, None
    seq = side[k]
    if agg == "unique_count":
        f, days = seq["unique"]
        return (f, 1), (days, cov.duration_days), seq
    return (seq["weighted"] * Dn, Dd * cov.duration_days * DAY_MS), None, seq


def _assemble(p, base, d, ignored, side, skip=frozenset()):
    """Every line and fee, priced by ``price.assemble_run`` (but the
    subscriptions in ``skip``, left to the exact path).  The cyclic garbage
    collector is paused meanwhile: pricing allocates a few objects per line,
    none of them in a cycle, and collections triggered by those allocations
    would rescan every live object many times (a quarter of the pricing time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        return assemble_run(p.subs, p.coverages, _DecodedSource(p, d, ignored, side), skip=skip)
    finally:
        if was:
            gc.enable()


_SIMPLE_AGGS = ("count", "sum", "max", "latest")


class _DecodedSource:
    """The fast engine's aggregation for ``price.assemble_run``: the decoded
    lines (``decode``) by (subscription, charge), their sequences (``_side``)
    and dropped-event counts.  A plain count / sum / max / latest line (no
    rounding, proration or sequence) goes straight to ``price_values``, the
    others through a ``LineUsage`` and ``price_line``."""

    def __init__(self, p, d, ignored, side):
        self.p, self.side, self._ignored = p, side, ignored
        L = self.L = _Lines(p, d)
        self.by_charge: dict = {}  # (sub, charge) -> its lines in canonical order
        for k in L.order:
            self.by_charge.setdefault((L.si[k], L.ci[k]), []).append(k)
        self.qnd = [(D.numerator, D.denominator) for D in p.q_scale]
        self.reason_of = [p.reason_values[r] for r in L.reason]
        self.groups: dict = {}

    def ignored(self, si, ci, bucket) -> int:
        return self._ignored.get((si, ci, bucket), 0) if self._ignored else 0

    def charge_lines(self, sub, si, ci, cc, cov) -> list:
        """The charge's priced lines, a list per bucket (``price.assemble_run``)."""
        nf = len(cc.charge.filters)
        out: list = [[] for _ in range(nf + 1)]
        plain = cc.rounding is None and not cc.is_prorated and cc.agg in _SIMPLE_AGGS
        L, programs, qnd, dd, agg = self.L, self.p.programs, self.qnd, cov.duration_days, cc.agg
        count, total, top, latest = L.count, L.sum, L.max, L.lval
        b_prev = -1
        for k in self.by_charge.get((si, ci), ()):
            b = L.b[k]
            if b != b_prev:  # a bucket's first line carries its dropped events
                b_prev, bucket = b, None if b == nf else b
                n_ign = self.ignored(si, ci, bucket)
            cp = L.cp[k]
            pr = programs[cp]
            if plain and not pr.flags & (F_SIDE | F_CENTS):
                # no rounding, proration or sequence: straight to price_values, end-reason maps built on first access
                v = count[k] if agg == "count" else total[k] if agg == "sum" else top[k] if agg == "max" else \
                    max(latest[k], 0)
                Dn, Dd = qnd[pr.q]
                full = ratio_to_decimal(v * Dn, Dd)
                w = L.w[k]
                lazy = (slot_reason_maps, (self.reason_of, L.sm, L.cnt, L.starts[k], L.ends[k], Dn, Dd, full, v))
                out[b].append(price_values(sub, cc, bucket, None if w == 0 else w - 1, self._group(pr, cp, L.g[k]),
                                           full, full, False, L.count[k], None, None, n_ign, None, dd, lazy))
            else:
                out[b].append(price_line(sub, cc, self._usage(si, ci, cc, bucket, k, pr, n_ign, cov), dd))
            n_ign = 0
        return out

    def _usage(self, si, ci, cc, bucket, k, pr, n_ign, cov) -> LineUsage:
        """The ``LineUsage`` of decoded line k (rounded, prorated, sequence or cents lines)."""
        L, p = self.L, self.p
        Dn, Dd = self.qnd[pr.q]
        full, pror, seq = _full(p, L, k, cc.agg, pr, cov, self.side, Dn, Dd)
        w = L.w[k]
        window = None if w == 0 else w - 1
        reasons = tuple((self.reason_of[x], L.sm[x] * Dn, Dd, L.cnt[x]) for x in range(L.starts[k], L.ends[k]))
        cents = (0, 1)
        if pr.flags & F_CENTS:
            c, sc = L.cents[k], p.cents_scale
            cents = (c * 10**sc, 1) if sc >= 0 else (c, 10 ** (-sc))
        u = LineUsage(si, ci, bucket, self._group(pr, L.cp[k], L.g[k]), window, full, L.count[k],
                      pror if cc.charge.prorated else None, reasons, cents, None, None, n_ign)
        if pr.flags & F_SIDE:
            seq = seq or self.side.get(k)
            if seq is not None:
                _seq_fields(p, u, cc, pr, seq, cov, bucket, window)
        return u

    def _group(self, pr, cp, g) -> tuple:
        """A line's group values, decoded once per (program, group id)."""
        if not pr.group_by:
            return ()
        group = self.groups.get((cp, g))
        if group is None:
            group = self.groups[(cp, g)] = _group_tuple(self.p, pr, g)
        return group

    def fees(self):
        """``(si, ci, fees_of)`` per line of a pay-in-advance charge, in canonical order."""
        p, L = self.p, self.L
        keys = [k for k in L.order if p.subs[L.si[k]].charges[L.ci[k]].pay_in_advance and k in self.side]
        tx_of = _transaction_ids(p, [self.side[k] for k in keys])
        for k in keys:
            si = L.si[k]
            yield si, L.ci[k], partial(_fees_of_line, p, self.side[k], tx_of, p.subs[si], L.cp[k], L.b[k], L.w[k],
                                       self._group(p.programs[L.cp[k]], L.cp[k], L.g[k]), si)


def _transaction_ids(p, seqs):
    """``seq -> [transaction id]`` for the event sequences that make fees:
    the columns' own ids, else the (few) rows that became fees resolved by
    the store in one query, else the row ids."""
    txs = getattr(p.cols, "transaction_ids", None)
    if txs is not None:
        return lambda seq: [str(txs[i]) for i in seq["idx"].tolist()]
    if seqs and hasattr(p.cols, "transaction_ids_of"):
        rowids = np.unique(np.concatenate([s["rowid"] for s in seqs])).tolist()
        by_rowid = dict(zip(rowids, p.cols.transaction_ids_of(rowids)))
        return lambda seq: [str(by_rowid[r]) for r in seq["rowid"].tolist()]
    return lambda seq: [str(r) for r in seq["rowid"].tolist()]


def _fees_of_line(p, seq, tx_of, sub, cp, b, w, group, si, cc):
    """The in-advance fees of a decoded line: a ``FeeBlock`` for a standard
    price on a count or sum (not prorated), else ``price.advance_fees``."""
    pr = p.programs[cp]
    bucket, window = None if b == pr.nf else b, None if w == 0 else w - 1
    model = cc.model(bucket, window)[0]
    charge = cc.charge
    if cc.agg in ("count", "sum") and not cc.is_prorated and not pr.flags & F_CENTS and isinstance(model, Standard):
        head = {"subscription": sub.external_id, "charge_id": charge.id, "metric": charge.metric.code,
                "filter": cc.filter_dict(bucket), "group": dict(zip(charge.group_by, group)), "window": window}
        D = p.q_scale[pr.q]
        return FeeBlock(head, (D.numerator, D.denominator), partial(linear_fee, price=model.amount), cc.rr,
                        rises(running_sum(seq["val"])), seq["rowid"], seq["ts"], tx_of(seq))
    evs = _advance_events(p, charge, pr, seq, tx_of(seq), p.coverages[si].eff_days)
    return advance_fees(sub, cc, bucket, group, window, evs, p.coverages[si].duration_days)


def _seq_fields(p, u, cc, pr, seq, cov, bucket, window):
    model = cc.model(bucket, window)[0]
    agg = cc.agg
    D = p.q_scale[pr.q]
    if isinstance(model, Percentage):
        if agg == "unique_count":
            u.values = ((1, 1),) * len(seq["val"])
        elif agg != "count":
            u.values = ScaledInts(seq["val"], D.numerator, D.denominator)
    if cc.charge.prorated and agg == "sum" and isinstance(model, Graduated):
        u.pror_events = tuple((v * D.numerator, D.denominator, cov.eff_days - max(x, 0))
                              for v, x in zip(seq["val"].tolist(), seq["aux"].tolist()))


def _advance_events(p, ch, pr, seq, tx_ids, eff_days):
    D = p.q_scale[pr.q]
    agg = ch.metric.aggregation
    cents_m = cents_e = None
    if pr.flags & F_CENTS:
        cents_m, cents_e = p.cols.precise_total_amount_cents if hasattr(p.cols, tables.CENTS_PROP) else \
            p.cols.numeric(tables.CENTS_PROP)
    strings = p.cols.strings
    out = []
    for i, v, x, t, r, tx in zip(seq["idx"].tolist(), seq["val"].tolist(), seq["aux"].tolist(), seq["ts"].tolist(),
                                 seq["rowid"].tolist(), tx_ids):
        cents = Fraction(0)
        if cents_m is not None and cents_e[i] != MISSING_EXPONENT:
            cents = int(cents_m[i]) * Fraction(10) ** int(cents_e[i])
        weight = None
        if agg == "unique_count":
            q, uid, rem = Fraction(1), strings[v], bool(x & 1)
        else:
            q, uid, rem = D * v, None, False
            if pr.flags & F_PROR:  # aux is the local day index
                weight = eff_days - max(x, 0)
        out.append(AdvanceEvent(t, r, tx, q, cents, uid, rem, weight))
    return out
