"""The fast path: ``rate(subscriptions, cols) -> RateResult``.

``plan.build`` turns the program and the columns' dictionaries into arrays;
``accumulate._accumulate`` sweeps the events once; this module decodes the
accumulator rows into ``LineUsage`` values (applying each charge's rational
scale once per line), finishes the sequence-based aggregations from the side
buffer (unique_count, weighted_sum, percentage values, prorated graduated,
pay-in-advance), and hands everything to ``price.assemble`` -- the same
pricing the reference engine uses.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from . import plan as planmod
from .accumulate import _accumulate
from .kernels import COUNT, CENTS, FULL, I64_MIN, LAST_TS, LAST_VAL, MAX, NFIXED, OVERFLOW, PROR, SUM
from .money import EngineError, EngineOverflow
from .price import assemble, line_model
from .program import Graduated, Percentage
from .usage import AdvanceEvent, LineKey, LineUsage

_EMPTY = {np.int64: np.zeros(0, np.int64), np.int8: np.zeros(0, np.int8), np.int32: np.zeros(0, np.int32)}


def _pad(arrs, dtype):
    return tuple(list(arrs) + [_EMPTY[dtype]] * (planmod.MAXK - len(arrs)))


def _validate(cols):
    n = int(cols.n)
    for name in ("timestamp_ms", "rowid", "code", "subscription"):
        a = getattr(cols, name)
        if len(a) != n:
            raise EngineError(f"column {name} has {len(a)} rows, expected {n}")
    return n


def run_pass(p, cols, hash_cap=1 << 12, side_cap=None):
    """Run the accumulator kernel, growing the hash table / side buffer if needed."""
    n = _validate(cols)
    a = p.arrays
    nr = int(a["nreasons"])
    ts = np.ascontiguousarray(cols.timestamp_ms, np.int64)
    rowid = np.ascontiguousarray(cols.rowid, np.int64)
    subs = np.ascontiguousarray(cols.subscription, np.int32)
    codes = np.ascontiguousarray(cols.code, np.int32)
    mants = _pad([m for m, _ in a["mants"]], np.int64)
    expos = _pad([e for _, e in a["mants"]], np.int8)
    dims = _pad(a["dims"], np.int32)
    side_cap = side_cap if side_cap is not None else 1024
    while True:
        rows = p.n_dense + hash_cap // 2
        acc = np.zeros((rows, NFIXED + 2 * nr), np.int64)
        acc[:, MAX] = I64_MIN
        acc[:, LAST_TS] = I64_MIN
        hkeys = np.full(hash_cap, -1, np.int64)
        hvals = np.zeros(hash_cap, np.int64)
        ignored = np.zeros(max(len(a["cb_base"]), 1), np.int64)
        side = [np.zeros(side_cap, np.int64) for _ in range(4)]
        status, c, used, nside = _accumulate(
            subs, codes, ts, rowid, mants, expos, dims,
            a["sub_lut"], a["code_lut"], a["ncodes"], a["cs_start"], a["cs_list"],
            a["c_cp"], a["c_sub"], a["c_lo"], a["c_hi"], a["c_cb_off"],
            a["cp_flags"], a["cp_agg"], a["cp_fk_off"], a["cp_fk_n"], a["cp_bt_off"], a["cp_b_off"],
            a["cp_t_off"], a["cp_t_n"], a["cp_gk_off"], a["cp_gk_n"], a["cp_util"], a["cp_ufloor"],
            a["cp_uceil"], a["cp_uid_dim"], a["cp_cents"],
            a["fk_dim"], a["fk_mult"], a["fk_lut_off"], a["luts"], a["bt"],
            a["b_win_off"], a["win_from"], a["win_to"], a["cb_base"],
            a["t_coef"], a["t_f_off"], a["t_f_n"], a["f_slot"], a["f_flags"], a["f_inc"], a["f_min"], a["f_max"],
            a["gk_dim"], a["gk_mult"], a["gk_lut_off"],
            a["num_scale"], a["reason_dim"], a["reason_lut"], nr, a["op_dim"], a["remove_id"],
            a["sub_bound_off"], a["sub_bounds"], a["sub_lo"], a["sub_eff_days"],
            acc, hkeys, hvals, p.n_dense, ignored, *side,
        )
        if status == FULL:
            if nside >= side_cap:
                side_cap = max(side_cap * 4, n)
            else:
                hash_cap *= 4
            continue
        if status == OVERFLOW:
            si, ci, _ = p.instances[c]
            sub = p.subs[si]
            raise EngineOverflow(
                "an int64 quantity overflowed; use a coarser property scale",
                metric=sub.charges[ci].metric.code, subscription=sub.external_id,
            )
        return acc[:used], hkeys, hvals, ignored, [s[:nside] for s in side]


def _row_keys(p, hkeys, hvals, nrows):
    """row -> (lid, group code)."""
    lid = np.full(nrows, -1, np.int64)
    gcode = np.zeros(nrows, np.int64)
    lid[: p.n_dense] = np.arange(p.n_dense)
    used = hkeys >= 0
    lid[hvals[used]] = hkeys[used] >> 32
    gcode[hvals[used]] = hkeys[used] & 0xFFFFFFFF
    return lid, gcode


def _group_tuple(ch, g, group_values):
    out = []
    for k in ch.group_by:
        vals = group_values[k]
        out.append(vals[g % len(vals)])
        g //= len(vals)
    return tuple(out)


def rate(subscriptions, cols):
    """Rate ``subscriptions`` over the event columns ``cols`` (store format)."""
    p = planmod.build(subscriptions, cols)
    acc, hkeys, hvals, ignored_arr, side = run_pass(p, cols)
    lid, gcode = _row_keys(p, hkeys, hvals, acc.shape[0])
    ts = np.asarray(cols.timestamp_ms)
    rowid = np.asarray(cols.rowid)
    keys = {}
    for row in np.flatnonzero(acc[:, COUNT] > 0):
        lx = lid[row]
        c = p.lid_c[lx]
        si, ci, cp = p.instances[c]
        ch = p.subs[si].charges[ci]
        b = int(p.lid_b[lx])
        w = int(p.lid_w[lx])
        keys[int(row)] = LineKey(
            si, ci, None if b == p.nf_of[cp] else b, _group_tuple(ch, int(gcode[row]), p.group_values),
            None if w == 0 else w - 1,
        )
    seqs = _sequences(p, side, ts, rowid)
    usages, advances = [], {}
    cp_of = {(s, c): cp for s, c, cp in p.instances}
    for row, key in keys.items():
        si, ci = key.sub, key.charge
        ch = p.subs[si].charges[ci]
        fp = p.programs[cp_of[(si, ci)]][1]
        if ch.pay_in_advance:
            advances[key] = _advance_events(p, ch, fp, seqs.get(row, ()), cols, ts, rowid)
        else:
            usages.append(_usage(p, key, ch, fp, acc[row], seqs.get(row)))
    ignored = {}
    for c, (si, ci, cp) in enumerate(p.instances):
        base = int(p.arrays["c_cb_off"][c])
        for b in range(p.nf_of[cp] + 1):
            k = int(ignored_arr[base + b])
            if k:
                ignored[(si, ci, None if b == p.nf_of[cp] else b)] = k
    return assemble(p.subs, p.periods, usages, ignored, advances)


def _sequences(p, side, ts, rowid):
    srow, sidx, sval, saux = side
    if srow.size == 0:
        return {}
    order = np.lexsort((rowid[sidx], ts[sidx], srow))
    srow, sidx, sval, saux = srow[order], sidx[order], sval[order], saux[order]
    cuts = np.flatnonzero(np.diff(srow)) + 1
    out = {}
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, srow.size]):
        ix = sidx[a:b]
        out[int(srow[a])] = (ix, sval[a:b], saux[a:b], ts[ix])
    return out


def _usage(p, key, ch, fp, a, seq):
    m = ch.metric
    agg = m.aggregation
    per = p.periods[key.sub]
    d = fp.scale if fp is not None else Fraction(1)
    count = int(a[COUNT])
    pror = None
    values = pev = None
    if agg == "count":
        full = Fraction(count)
    elif agg == "sum":
        full = d * int(a[SUM])
        pror = d * int(a[PROR]) / per.duration_days
    elif agg == "max":
        full = d * int(a[MAX])
    elif agg == "latest":
        full = max(d * int(a[LAST_VAL]), Fraction(0))
    elif agg == "unique_count":
        full, pror = _unique(seq, per)
    else:
        full = _weighted(seq, per, d, p)
    nr = int(p.arrays["nreasons"])
    reasons = {}
    for r in range(nr):
        cnt = int(a[NFIXED + nr + r])
        if cnt:
            reasons[p.reason_values[r]] = (d * int(a[NFIXED + r]), cnt)
    model = line_model(ch, key.bucket, key.window)
    if seq is not None:
        idx, val, aux, _ = seq
        if isinstance(model, Percentage) and agg == "unique_count":
            values = (Fraction(1),) * len(val)
        elif isinstance(model, Percentage) and agg != "count":
            values = tuple(d * int(v) for v in val)
        if ch.prorated and agg == "sum" and isinstance(model, Graduated):
            pev = tuple((d * int(v), per.eff_days - max(int(x), 0)) for v, x in zip(val, aux))
    cents = Fraction(0)
    if int(a[CENTS]):
        cents = int(a[CENTS]) * Fraction(10) ** p.scales[planmod.CENTS_PROP]
    return LineUsage(
        key, full, count, prorated=pror if ch.prorated else None, reasons=reasons, cents=cents,
        values=values, pror_events=pev,
    )


def _unique(seq, per):
    idx, val, aux, _ = seq
    last = {}
    events = {}
    for v, x in zip(val.tolist(), aux.tolist()):
        rem = x & 1
        day = (x >> 1) - 1
        last[v] = rem
        events.setdefault(v, []).append((rem, day))
    full = Fraction(sum(1 for r in last.values() if not r))
    lastday = per.eff_days - 1
    total = 0
    for evs in events.values():
        prev, start, days = None, None, set()
        for rem, day in evs:
            op = "remove" if rem else "add"
            if op == prev or (op == "remove" and prev is None):
                continue
            if op == "add":
                start = max(day, 0)
            else:
                days.update(range(max(start, 0), min(day, lastday) + 1))
                start = None
            prev = op
        if start is not None:
            days.update(range(start, lastday + 1))
        total += len(days)
    return full, Fraction(total, per.duration_days)


def _weighted(seq, per, d, p):
    """Levels x milliseconds from lo to the end row, over the full period."""
    idx, val, aux, tss = seq
    level = 0
    acc = 0
    t = per.lo
    for v, x in zip(val.tolist(), tss.tolist()):
        if x < per.lo:
            level += v
            continue
        acc += level * (x - t)
        level += v
        t = x
    acc += level * (per.ws_end - t)
    return d * acc / (per.duration_days * 86_400_000)


def _advance_events(p, ch, fp, seq, cols, ts, rowid):
    if not len(seq):
        return []
    idx, val, aux, tss = seq
    d = fp.scale if fp is not None else Fraction(1)
    agg = ch.metric.aggregation
    txs = getattr(cols, "transaction_ids", None)
    cents_col = None
    if planmod.CENTS_PROP in p.numeric_slots:
        cents_col = p.arrays["mants"][p.numeric_slots[planmod.CENTS_PROP]]
    out = []
    for i, v, x in zip(idx.tolist(), val.tolist(), aux.tolist()):
        cents = Fraction(0)
        if cents_col is not None and cents_col[1][i] != -128:
            cents = int(cents_col[0][i]) * Fraction(10) ** int(cents_col[1][i])
        if agg == "unique_count":
            q, uid, rem = Fraction(1), cols.strings[v], bool(x & 1)
        else:
            q, uid, rem = d * v, None, False
        tx = str(txs[i]) if txs is not None else str(int(rowid[i]))
        out.append(AdvanceEvent(int(ts[i]), int(rowid[i]), tx, q, cents, uid, rem))
    return out
