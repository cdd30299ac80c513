"""The main pass: every event -> its line slots, accumulated in one sweep.

``run_pass(plan, cols)`` calls the ``_accumulate`` kernel over the store's
columns directly (no per-property copies): per event it looks up the
subscription and code, walks the charge instances for that pair, checks the
time range, resolves the filter bucket through a per-key lookup table into a
bucket table, evaluates the int64 quantity polynomial (with per-event
rounding and the utilization factor), finds the price window, and adds into
the line's accumulator row (dense for ungrouped charges, an open-addressing
hash on (line, group code) for grouped ones).  Events of charges that need
the sequence (unique_count, weighted_sum, percentage, prorated graduated,
pay-in-advance) are also appended to a side buffer.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .kernels import (
    COUNT, CENTS, F_CENTS, F_GROUPED, F_PRORATED, F_SIDE, F_UTIL, FULL, LAST_ROW, LAST_TS, LAST_VAL,
    MAX, NFIXED, OK, OVERFLOW, P10, PROR, SUM, _add, _fixed_at, _mul, _per_event, _slot,
)


@njit(cache=True)
def _accumulate(
    sub_ids, code_ids, ts, rowid, mants, expos, dims,
    sub_lut, code_lut, ncodes, cs_start, cs_list,
    c_cp, c_sub, c_lo, c_hi, c_cb_off,
    cp_flags, cp_agg, cp_fk_off, cp_fk_n, cp_bt_off, cp_b_off, cp_t_off, cp_t_n,
    cp_gk_off, cp_gk_n, cp_util, cp_ufloor, cp_uceil, cp_uid_dim, cp_cents,
    fk_dim, fk_mult, fk_lut_off, luts, bt,
    b_win_off, win_from, win_to, cb_base,
    t_coef, t_f_off, t_f_n, f_slot, f_flags, f_inc, f_min, f_max,
    gk_dim, gk_mult, gk_lut_off,
    num_scale, reason_dim, reason_lut, nreasons, op_dim, remove_id,
    sub_bound_off, sub_bounds, sub_lo, sub_eff_days,
    acc, hkeys, hvals, n_dense, ignored,
    side_row, side_idx, side_val, side_aux,
):
    n = ts.shape[0]
    mask = hkeys.shape[0] - 1
    cap = acc.shape[0]
    next_row = n_dense
    nside = 0
    side_cap = side_row.shape[0]
    for i in range(n):
        sid = sub_ids[i]
        if sid < 0:
            continue
        s = sub_lut[sid]
        if s < 0:
            continue
        cid = code_ids[i]
        if cid < 0:
            continue
        k = code_lut[cid]
        if k < 0:
            continue
        pair = s * ncodes + k
        t = ts[i]
        for jj in range(cs_start[pair], cs_start[pair + 1]):
            c = cs_list[jj]
            if t < c_lo[c] or t > c_hi[c]:
                continue
            cp = c_cp[c]
            flags = cp_flags[cp]
            # filter bucket: mixed-radix code of the keys' compact values
            code = 0
            for j in range(cp_fk_off[cp], cp_fk_off[cp] + cp_fk_n[cp]):
                code += luts[fk_lut_off[j] + dims[fk_dim[j]][i] + 1] * fk_mult[j]
            b = bt[cp_bt_off[cp] + code]
            cb = c_cb_off[c] + b
            # quantity
            agg = cp_agg[cp]
            q = np.int64(1)
            ok = True
            if agg == 4:
                if dims[cp_uid_dim[cp]][i] < 0:
                    ok = False
            elif agg != 0:
                q = np.int64(0)
                for tt in range(cp_t_off[cp], cp_t_off[cp] + cp_t_n[cp]):
                    term = t_coef[tt]
                    for f in range(t_f_off[tt], t_f_off[tt] + t_f_n[tt]):
                        sl = f_slot[f]
                        x, valid, o = _fixed_at(mants[sl], expos[sl], num_scale[sl], i, P10)
                        if o:
                            return OVERFLOW, c, next_row, nside
                        if not valid:
                            ok = False
                            break
                        if f_flags[f] != 0:
                            x, o = _per_event(x, f_flags[f], f_inc[f], f_min[f], f_max[f])
                            if o:
                                return OVERFLOW, c, next_row, nside
                        term, o = _mul(term, x)
                        if o:
                            return OVERFLOW, c, next_row, nside
                    if not ok:
                        break
                    q, o = _add(q, term)
                    if o:
                        return OVERFLOW, c, next_row, nside
                if ok and flags & F_UTIL:
                    sl = cp_util[cp]
                    u, valid, o = _fixed_at(mants[sl], expos[sl], num_scale[sl], i, P10)
                    if not valid or o:
                        ok = False
                    else:
                        if u < cp_ufloor[cp]:
                            u = cp_ufloor[cp]
                        if u > cp_uceil[cp]:
                            u = cp_uceil[cp]
                        q, o = _mul(q, u)
                        if o:
                            return OVERFLOW, c, next_row, nside
            if not ok:
                ignored[cb] += 1
                continue
            # price window of the bucket
            pb = cp_b_off[cp] + b
            w = 0
            for kw in range(b_win_off[pb], b_win_off[pb + 1]):
                if win_from[kw] <= t and t < win_to[kw]:
                    w = kw - b_win_off[pb] + 1
                    break
            lid = cb_base[cb] + w
            if flags & F_GROUPED:
                g = np.int64(0)
                for j in range(cp_gk_off[cp], cp_gk_off[cp] + cp_gk_n[cp]):
                    g += np.int64(luts[gk_lut_off[j] + dims[gk_dim[j]][i] + 1]) * gk_mult[j]
                row, next_row = _slot(hkeys, hvals, mask, (lid << 32) | g, next_row, cap)
                if row < 0:
                    return FULL, c, next_row, nside
            else:
                row = lid
            a = acc[row]
            a[COUNT] += 1
            a[SUM], o = _add(a[SUM], q)
            if o:
                return OVERFLOW, c, next_row, nside
            if q > a[MAX]:
                a[MAX] = q
            if t > a[LAST_TS] or (t == a[LAST_TS] and rowid[i] > a[LAST_ROW]):
                a[LAST_TS] = t
                a[LAST_ROW] = rowid[i]
                a[LAST_VAL] = q
            dayidx = np.int64(-1)
            if flags & F_PRORATED:
                if t >= sub_lo[s]:
                    lo_ = sub_bound_off[s]
                    hi_ = sub_bound_off[s + 1]
                    while lo_ < hi_:
                        mid = (lo_ + hi_) >> 1
                        if sub_bounds[mid] <= t:
                            lo_ = mid + 1
                        else:
                            hi_ = mid
                    dayidx = lo_ - sub_bound_off[s]
                wgt = sub_eff_days[s] - (dayidx if dayidx > 0 else 0)
                pq, o = _mul(q, wgt)
                if o:
                    return OVERFLOW, c, next_row, nside
                a[PROR], o = _add(a[PROR], pq)
                if o:
                    return OVERFLOW, c, next_row, nside
            if flags & F_CENTS:
                sl = cp_cents[cp]
                cv, valid, o = _fixed_at(mants[sl], expos[sl], num_scale[sl], i, P10)
                if o:
                    return OVERFLOW, c, next_row, nside
                if valid:
                    a[CENTS], o = _add(a[CENTS], cv)
                    if o:
                        return OVERFLOW, c, next_row, nside
            if reason_dim >= 0:
                r = reason_lut[dims[reason_dim][i] + 1]
                a[NFIXED + r], o = _add(a[NFIXED + r], q)
                if o:
                    return OVERFLOW, c, next_row, nside
                a[NFIXED + nreasons + r] += 1
            if flags & F_SIDE:
                if nside >= side_cap:
                    return FULL, c, next_row, nside
                side_row[nside] = row
                side_idx[nside] = i
                if agg == 4:
                    side_val[nside] = dims[cp_uid_dim[cp]][i]
                    rem = 1 if (op_dim >= 0 and dims[op_dim][i] == remove_id) else 0
                    side_aux[nside] = (dayidx + 1) * 2 + rem
                else:
                    side_val[nside] = q
                    side_aux[nside] = dayidx
                nside += 1
    return OK, -1, next_row, nside
