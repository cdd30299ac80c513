"""The fast path: ``rate(subscriptions, cols) -> RateResult``.

1. ``plan.build``: programs, lookup tables, slot layout (no per-event work
   except the parallel column statistics);
2. ``run_pass``: the accumulator kernel over row ranges, one per thread;
3. ``decode``: merge the threads' accumulators, reduce the end-reason slots
   of each line, and map slots back to (subscription, charge, bucket,
   group, window) -- all numpy, lines come out in canonical order;
4. sequences (unique_count, weighted_sum, percentage values, prorated
   graduated, pay in advance) from the sorted side buffer;
5. pricing with ``price.price_line`` -- the same function the reference
   engine uses -- applying each quantity's rational scale once per line.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from . import plan as planmod
from .accumulate import (
    C_BOFF, F_CENTS, F_PROR, F_SIDE, F_UNIQUE, I_CP, X_CENTS, X_LROW, X_LTS, X_LVAL, X_MAX, X_NCOL, X_PROR, ThreadAcc, chunks,
    parallel_map, run_chunk, side_bound,
)
from .kernels import FULL, I64_MIN, OVERFLOW
from .money import EngineError, EngineOverflow
from .price import ChargeCtx, advance_fees, empty_usage, price_line, true_up_line
from .program import Graduated, Percentage, RateResult
from .sequence import _unique, _weighted, segments, weighted_python
from .usage import AdvanceEvent, LineUsage


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

    def one(job):
        (lo, hi), side_cap = job
        cap = hash_cap or (1 << max(12, min(2 * (hi - lo), 1 << 22).bit_length())) if p.hashed else 0
        while True:
            n_ext = p.n_ext if p.n_ext >= 0 else p.n_dense + cap // 2
            acc = ThreadAcc(p.n_dense, cap, n_ext, side_cap, nq, p.n_ign)
            status, inst, s = run_chunk(p, base, lo, hi, acc)
            if status == FULL and p.hashed:
                cap *= 4
                continue
            return status, inst, s, acc

    results = parallel_map(one, list(zip(parts, caps)))
    for status, inst, s, _ in results:
        if status == OVERFLOW:
            P, ci, cp = p.instances[inst]
            sub = p.subs[s]
            raise EngineOverflow("an int64 quantity overflowed; use a coarser property scale",
                                 metric=sub.charges[ci].metric.code, subscription=sub.external_id)
        if status == FULL:  # pragma: no cover - the side bound is exact
            raise EngineError("side buffer overflow")
    return base, [r[3] for r in results]


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


def decode(p, accs):
    R = p.R
    nd_ = p.n_dense
    # ---- slots with events: dense (summed over threads) then hashed rows
    cnt_d = np.sum([a.acc[:nd_, 0] for a in accs], axis=0) if nd_ else np.zeros(0, np.int64)
    nz = np.flatnonzero(cnt_d)
    slot = [nz.astype(np.int64)]
    cnt = [cnt_d[nz]]
    sm = [_total([a.acc[nz, 1] for a in accs])]
    ext_rows = [a.ext.shape[0] for a in accs][0]
    has_ext = p.n_ext != 0
    ext = []
    if has_ext:
        sel = nz < ext_rows
        inext = nz[sel]
        parts = [a.ext[inext] for a in accs]
        e = np.zeros((nz.size, X_NCOL), np.int64)
        e[:, X_MAX] = I64_MIN
        e[:, X_LTS] = I64_MIN
        if inext.size:
            e[sel, X_MAX] = np.max([x[:, X_MAX] for x in parts], axis=0)
            best = parts[0].copy()
            for x in parts[1:]:
                take = (x[:, X_LTS] > best[:, X_LTS]) | ((x[:, X_LTS] == best[:, X_LTS]) & (x[:, X_LROW] > best[:, X_LROW]))
                best[take] = x[take]
            for c in (X_LTS, X_LROW, X_LVAL):
                e[sel, c] = best[:, c]
        tp = _total([x[:, X_PROR] for x in parts]) if inext.size else np.zeros(0, np.int64)
        tc = _total([x[:, X_CENTS] for x in parts]) if inext.size else np.zeros(0, np.int64)
        pror = np.zeros(nz.size, object if tp.dtype == object else np.int64)
        cents = np.zeros(nz.size, object if tc.dtype == object else np.int64)
        pror[sel], cents[sel] = tp, tc
        ext = [e, pror, cents]
    if p.hashed:
        hs, hc, hsm, he, hp, hcn = [], [], [], [], [], []
        for a in accs:
            used = a.hkeys >= 0
            rows = a.hvals[used]
            hs.append(a.hkeys[used])
            hc.append(a.acc[rows, 0])
            hsm.append(a.acc[rows, 1])
            if has_ext:
                x = a.ext[rows] if p.n_ext < 0 else np.zeros((rows.size, X_NCOL), np.int64)
                if p.n_ext >= 0:
                    x[:, X_MAX] = I64_MIN
                    x[:, X_LTS] = I64_MIN
                he.append(x)
        keys = np.concatenate(hs)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        st, _ = segments(keys)
        slot.append(keys[st])
        cnt.append(np.add.reduceat(np.concatenate(hc)[order], st) if st.size else np.zeros(0, np.int64))
        sm.append(_reduce(np.concatenate(hsm)[order], st) if st.size else np.zeros(0, np.int64))
        if has_ext:
            x = np.concatenate(he)[order]
            m = np.maximum.reduceat(x[:, X_MAX], st) if st.size else np.zeros(0, np.int64)
            # latest within equal slots: the last of each segment after sorting by (slot, ts, row)
            o2 = np.lexsort((x[:, X_LROW], x[:, X_LTS], keys))
            x2 = x[o2]
            last = np.r_[st[1:], keys.size] - 1 if st.size else st
            e = np.zeros((st.size, X_NCOL), np.int64)
            e[:, X_MAX] = m
            e[:, X_LTS], e[:, X_LROW], e[:, X_LVAL] = x2[last, X_LTS], x2[last, X_LROW], x2[last, X_LVAL]
            ext[0] = np.concatenate([ext[0], e])
            ext[1] = np.concatenate([ext[1], _reduce(x[:, X_PROR], st) if st.size else np.zeros(0, np.int64)])
            ext[2] = np.concatenate([ext[2], _reduce(x[:, X_CENTS], st) if st.size else np.zeros(0, np.int64)])
    slot = np.concatenate(slot)
    cnt = np.concatenate(cnt)
    sm = np.concatenate(sm) if len(sm) > 1 else sm[0]
    # ---- lines: runs of slots with the same slot // R
    d = Decoded()
    d.slot, d.cnt, d.sm = slot, cnt, sm
    line_v = slot // R
    d.reason = slot - line_v * R
    st, en = segments(line_v)
    d.starts, d.ends = st, en
    lv = line_v[st] if st.size else line_v
    d.line_v = lv
    d.count = np.add.reduceat(cnt, st) if st.size else cnt
    d.sum = _reduce(sm, st)
    if has_ext:
        e, pror, cents = ext
        d.max = np.maximum.reduceat(e[:, X_MAX], st) if st.size else e[:, X_MAX]
        o = np.lexsort((e[:, X_LROW], e[:, X_LTS], line_v))
        d.lval = e[o[en - 1], X_LVAL] if st.size else e[:, X_LVAL]
        d.pror = _reduce(pror, st)
        d.cents = _reduce(cents, st)
    # ---- slot -> (instance, rank, bucket, group, window)
    inst_order = np.argsort(p.inst_lbase, kind="stable")
    lb = p.inst_lbase[inst_order]
    inst = inst_order[np.searchsorted(lb, lv, "right") - 1]
    rem = lv - p.inst_lbase[inst]
    stride = p.inst_lstride[inst]
    rank = rem // stride
    local = rem - rank * stride
    cp = p.arrays["INST"][inst, I_CP]
    a = p.arrays
    bkt_line = a["BKT"][:, 0]
    prog_lines = np.asarray([pr.lines for pr in p.programs], np.int64)
    prog_base = np.r_[0, np.cumsum(prog_lines)[:-1]] if prog_lines.size else prog_lines
    bkt_prog = np.repeat(np.arange(len(p.programs)), [pr.nf + 1 for pr in p.programs])
    gstart = prog_base[bkt_prog] + bkt_line[: bkt_prog.size] if bkt_prog.size else bkt_prog
    bo = np.searchsorted(gstart, prog_base[cp] + local, "right") - 1 if lv.size else lv
    b = bo - a["CP"][cp, C_BOFF]
    within = local - bkt_line[bo]
    nw1 = a["BKT"][bo, 1]
    g = within // nw1
    w = within - g * nw1
    sub_off = np.r_[0, np.cumsum([x.size for x in p.inst_subs])[:-1]] if p.inst_subs else np.zeros(0, np.int64)
    all_subs = np.concatenate(p.inst_subs) if p.inst_subs else np.zeros(0, np.int64)
    si = all_subs[sub_off[inst] + rank] if lv.size else lv
    inst_ci = np.asarray([c for _, c, _ in p.instances], np.int64)
    ci = inst_ci[inst] if lv.size else lv
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


def _side(p, base, accs, d):
    """Sequences per line index (into d's arrays): sorted event rows and values."""
    if not any(a.nside for a in accs):
        return {}
    R = p.R
    slot = np.concatenate([a.side[0][: a.nside] for a in accs])
    idx = np.concatenate([a.side[1][: a.nside] for a in accs])
    val = np.concatenate([a.side[2][: a.nside] for a in accs])
    aux = np.concatenate([a.side[3][: a.nside] for a in accs])
    line_v = slot // R
    ts = base.timestamp_ms[idx]
    rid = base.rowid[idx]
    li = np.searchsorted(d.line_v, line_v)  # every side line has events, so it is in d
    cpl = d.cp[li]
    uniq = np.asarray([bool(pr.flags & F_UNIQUE) for pr in p.programs])[cpl]
    out = {}
    # time order for everything (unique_count too: pay in advance, percentage)
    o = np.lexsort((rid, ts, li))
    st, en = segments(li[o])
    lines = li[o][st] if st.size else st
    for k, s0, e0 in zip(lines.tolist(), st.tolist(), en.tolist()):
        sl = o[s0:e0]
        out[k] = {"idx": idx[sl], "val": val[sl], "aux": aux[sl], "ts": ts[sl], "rowid": rid[sl]}
    # unique_count: (line, uid, time) order, one kernel
    if uniq.any():
        u = np.flatnonzero(uniq)
        o = u[np.lexsort((rid[u], ts[u], val[u], li[u]))]
        st, en = segments(li[o])
        lines = li[o][st]
        lastday = np.asarray([p.periods[int(d.si[k])].eff_days - 1 for k in lines.tolist()], np.int64)
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
        per = [p.periods[int(d.si[k])] for k in wl]
        acc, ok = _weighted(starts, ends, np.concatenate(vals), np.concatenate(tss),
                            np.asarray([x.lo for x in per], np.int64), np.asarray([x.ws_end for x in per], np.int64))
        for j, k in enumerate(wl):
            out[k]["weighted"] = int(acc[j]) if ok[j] else weighted_python(vals[j], tss[j], per[j].lo, per[j].ws_end)
    return out


def rate(subscriptions, cols):
    """Rate ``subscriptions`` over the event columns ``cols`` (store format)."""
    p = planmod.build(subscriptions, cols)
    base, accs = run_pass(p, cols)
    d = decode(p, accs)
    ignored = _ignored(p, accs)
    side = _side(p, base, accs, d)
    return _assemble(p, base, d, ignored, side)


def _nd(v, scale):
    return (int(v) * scale.numerator, scale.denominator)


def _usage(p, d, k, si, ch, pr, slot_lists, side):
    """LineUsage of decoded line k."""
    agg = ch.metric.aggregation
    per = p.periods[si]
    D = p.q_scale[pr.q]
    count = int(d.count[k])
    pror = None
    seq = None
    if agg == "count":
        full = (count, 1)
    elif agg == "sum":
        full = _nd(d.sum[k], D)
        if pr.flags & F_PROR:
            pror = (int(d.pror[k]) * D.numerator, D.denominator * per.duration_days)
    elif agg == "max":
        full = _nd(d.max[k], D)
    elif agg == "latest":
        full = _nd(max(int(d.lval[k]), 0), D)
    elif agg == "unique_count":
        seq = side[k]
        f, days = seq["unique"]
        full = (f, 1)
        pror = (days, per.duration_days)
    else:
        seq = side[k]
        full = (seq["weighted"] * D.numerator, D.denominator * per.duration_days * 86_400_000)
    slots, cnts, sums = slot_lists
    s0, s1 = int(d.starts[k]), int(d.ends[k])
    rv = p.reason_values
    R = p.R
    reasons = tuple((rv[slots[j] % R], sums[j] * D.numerator, D.denominator, cnts[j]) for j in range(s0, s1))
    if pr.flags & F_SIDE:
        seq = side.get(k)
    cents = (0, 1)
    if pr.flags & F_CENTS:
        c = int(d.cents[k])
        sc = p.cents_scale
        cents = (c * 10**sc, 1) if sc >= 0 else (c, 10 ** (-sc))
    return full, count, pror, reasons, cents, seq


def _assemble(p, base, d, ignored, side):
    order = d.order.tolist()
    si_l, ci_l, b_l, g_l, w_l = (x.tolist() for x in (d.si, d.ci, d.b, d.g, d.w))
    slot_lists = (d.slot.tolist(), d.cnt.tolist(), d.sm.tolist())
    cp_l = d.cp.tolist()
    # group lines by (sub, charge)
    by_sc: dict = {}
    for k in order:
        by_sc.setdefault((si_l[k], ci_l[k]), []).append(k)
    lines, fees = [], []
    ctxs: dict = {}
    txs = getattr(p.cols, "transaction_ids", None)
    adv_keys = []
    for si, sub in enumerate(p.subs):
        per = p.periods[si]
        if per.empty:
            continue
        for ci, charge in enumerate(sub.charges):
            cc = ctxs.get(id(charge))
            if cc is None:
                cc = ctxs[id(charge)] = ChargeCtx(charge)
            ks = by_sc.get((si, ci), ())
            if charge.pay_in_advance:
                for k in ks:
                    adv_keys.append((si, ci, k))
                continue
            nf = len(charge.filters)
            charge_lines = []
            j = 0
            for b in range(nf + 1):
                bucket = None if b == nf else b
                first = True
                n_ign = ignored.get((si, ci, bucket), 0)
                while j < len(ks) and b_l[ks[j]] == b:
                    k = ks[j]
                    j += 1
                    pr = p.programs[cp_l[k]]
                    full, count, pror, reasons, cents, seq = _usage(p, d, k, si, charge, pr, slot_lists, side)
                    w = w_l[k]
                    window = None if w == 0 else w - 1
                    group = _group_tuple(p, pr, g_l[k]) if pr.group_by else ()
                    u = LineUsage(si, ci, bucket, group, window, full, count,
                                  prorated=pror if charge.prorated else None, reasons=reasons, cents=cents,
                                  ignored=n_ign if first else 0)
                    if seq is not None:
                        _seq_fields(p, u, cc, pr, seq, per, bucket, window)
                    first = False
                    charge_lines.append(price_line(sub, cc, u, per.duration_days))
                if first:
                    charge_lines.append(price_line(sub, cc, empty_usage(si, ci, charge, bucket, n_ign),
                                                   per.duration_days))
            lines.extend(charge_lines)
            t = true_up_line(sub, charge, charge_lines, per.eff_days, per.duration_days)
            if t is not None:
                lines.append(t)
    # pay in advance: canonical order is (sub, charge, bucket, group, window) = d.order
    for si, ci, k in adv_keys:
        sub = p.subs[si]
        charge = sub.charges[ci]
        pr = p.programs[cp_l[k]]
        nf = pr.nf
        b = b_l[k]
        w = w_l[k]
        seq = side.get(k)
        evs = _advance_events(p, charge, pr, seq, txs)
        group = _group_tuple(p, pr, g_l[k]) if pr.group_by else ()
        fees.extend(advance_fees(sub, ctxs[id(charge)], None if b == nf else b, group, None if w == 0 else w - 1,
                                 evs))
    return RateResult(tuple(lines), tuple(fees))


def _seq_fields(p, u, cc, pr, seq, per, bucket, window):
    model = cc.model(bucket, window)[0]
    agg = cc.agg
    D = p.q_scale[pr.q]
    if isinstance(model, Percentage):
        if agg == "unique_count":
            u.values = ((1, 1),) * len(seq["val"])
        elif agg != "count":
            u.values = tuple((v * D.numerator, D.denominator) for v in seq["val"].tolist())
    if cc.charge.prorated and agg == "sum" and isinstance(model, Graduated):
        u.pror_events = tuple((v * D.numerator, D.denominator, per.eff_days - max(x, 0))
                              for v, x in zip(seq["val"].tolist(), seq["aux"].tolist()))


def _advance_events(p, ch, pr, seq, txs):
    if seq is None or not len(seq["idx"]):
        return []
    D = p.q_scale[pr.q]
    agg = ch.metric.aggregation
    cents_m = cents_e = None
    if pr.flags & F_CENTS:
        cents_m, cents_e = p.cols.precise_total_amount_cents if hasattr(p.cols, planmod.CENTS_PROP) else \
            p.cols.numeric(planmod.CENTS_PROP)
    strings = p.cols.strings
    out = []
    for i, v, x, t, r in zip(seq["idx"].tolist(), seq["val"].tolist(), seq["aux"].tolist(), seq["ts"].tolist(),
                             seq["rowid"].tolist()):
        cents = Fraction(0)
        if cents_m is not None and cents_e[i] != -128:
            cents = int(cents_m[i]) * Fraction(10) ** int(cents_e[i])
        if agg == "unique_count":
            q, uid, rem = Fraction(1), strings[v], bool(x & 1)
        else:
            q, uid, rem = D * v, None, False
        tx = str(txs[i]) if txs is not None else str(r)
        out.append(AdvanceEvent(t, r, tx, q, cents, uid, rem))
    return out
