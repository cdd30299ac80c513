"""Compile subscriptions + event columns into the tables the kernels run on.

Aggregation does not depend on prices, so charges are reduced to *programs*
keyed by structure (metric quantity, aggregation, filter conditions, group
keys, price-window bounds, flags): 1 000 subscriptions x 10 charges share a
handful of programs.  A *plan* is a distinct list of programs (one per
distinct charge list); an *instance* is one charge of a plan.  Each
subscription of a plan owns ``R x Lp`` dense slots (``R`` end reasons,
``Lp`` lines of all the plan's instances): slot = subscription base +
reason * Lp + instance line offset + line, so the lines of one customer's
common end reason share a few cache lines.  Inside an instance a line is
``bucket line offset + group * (windows + 1) + window`` (groups numbered in
string order, first key most significant): decoding gives the canonical
order with one sort.  An instance whose block would exceed ``DENSE_LIMIT``
slots goes through a per-thread hash table instead (virtual slot ids above
``n_dense``).

Quantities (count, uid presence, or an int64 polynomial over fixed-point
properties) are deduplicated too and evaluated once per event.  Columns
are never copied: the kernels get their addresses.  The only whole-column
passes here are the column statistics (valid exponent range of each numeric
property, dictionary ids present in each dimension), run in parallel.
"""

from __future__ import annotations

from fractions import Fraction

import attrs
import numpy as np

from . import poly as polymod
from .accumulate import (
    B_NCOL, C_NCOL, F_CENTS, F_LAST, F_MAX, FA_NCOL, F_PROR, F_SIDE, F_UNIQUE, G_NCOL, I_NCOL, K_NCOL, Q_NCOL,
    QK_COUNT, QK_POLY, QK_UID, S_NCOL, T_NCOL, chunks, parallel_map,
)
from .kernels import NO_EXPONENT, _finest_exponent, _mark_present, _min_exponent, address
from .money import EngineError
from .period import period_of
from .program import END_REASON, Graduated, Percentage

CENTS_PROP = "precise_total_amount_cents"
DENSE_LIMIT = 1 << 23  # slots of one instance block above which it is hashed
MAX_FILTERS = 63
FINER_DIGITS = 6  # decimals a column's scale may add to what its metrics ask for
MAX_GROUPS = 2**40  # value combinations of one charge's group by keys (slot ids stay int64)


def needs_side(charge) -> bool:
    agg = charge.metric.aggregation
    if charge.pay_in_advance or agg in ("unique_count", "weighted_sum"):
        return True
    ms = list(charge.models())
    if agg != "count" and any(isinstance(m, Percentage) for m in ms):
        return True
    return charge.prorated and agg == "sum" and any(isinstance(m, Graduated) for m in ms)


def program_key(ch):
    """Everything about a charge that changes how its events aggregate."""
    m = ch.metric
    return (
        m.event_code, m.aggregation, m.quantity(), m.field if m.aggregation == "unique_count" else None,
        m.unit_scale, m.per_event, m.recurring, tuple(sorted(m.property_scales.items())),
        tuple((tuple(sorted((k, tuple(sorted(v))) for k, v in f.values.items())),
               tuple((w.from_ms, w.to_ms) for w in f.windows)) for f in ch.filters),
        tuple((w.from_ms, w.to_ms) for w in ch.windows), ch.group_by, ch.pay_in_advance, ch.prorated,
        ch.utilization, needs_side(ch), ch.reads_cents(),
    )


class _Strings:
    def __init__(self, cols):
        self.cols = cols
        self._index = None

    def id(self, s):
        for owner in (self.cols, self.cols.strings):
            if hasattr(owner, "lookup"):
                i = owner.lookup(s)
                return None if i is None or i < 0 else int(i)
        if self._index is None:
            self._index = {v: i for i, v in enumerate(self.cols.strings)}
        return self._index.get(s)


@attrs.define
class Program:
    charge: object  # a representative charge (structure only)
    q: int  # quantity index
    nf: int
    G: int
    group_by: tuple
    bucket_lines: list  # per bucket: (line offset, windows + 1)
    lines: int  # lines per subscription
    flags: int


@attrs.define
class Plan:
    """Everything a kernel call and the decoding after it need."""

    subs: list
    periods: list
    arrays: dict
    programs: list  # [Program]
    q_scale: list  # per quantity: Fraction D (value = D * int)
    instances: list  # [(plan index, charge index, program index)]
    inst_subs: list  # per instance: np.int64 array of subscription indices by rank
    inst_ign: np.ndarray
    hashed: bool  # some instance block goes through the hash table
    hashed_ext: bool  # ... and needs max / latest / prorated / cents
    n_dense: int  # dense slots: plan base + rank * R * Lp + reason * Lp + instance line offset + line
    n_xdense: int  # dense ext slots (same shape over the ext instances)
    n_ign: int
    R: int
    reason_values: list
    group_values: dict  # prop -> [None, str, ...] by compact index
    cents_scale: int
    cols: object
    layout: dict  # pbase, Lp, lkbase (first line key), plan_subs, n_lines (per plan)


def _period_cache(subs):
    memo, out = {}, []
    for s in subs:
        k = (s.period_from_ms, s.period_to_ms, s.started_at_ms, s.terminated_at_ms, s.timezone)
        if k not in memo:
            memo[k] = period_of(s)
        out.append(memo[k])
    return out


def _column_stats(num_cols, dim_cols, n):
    """Per numeric column the smallest valid exponent; per dim the ids present."""
    parts = chunks(n)
    jobs = [("e", k, lo, hi) for k in range(len(num_cols)) for lo, hi in parts]
    jobs += [("d", k, lo, hi) for k in range(len(dim_cols)) for lo, hi in parts]
    present = [None] * len(dim_cols)
    sizes = [dim_cols[k][1] for k in range(len(dim_cols))]

    def run(job):
        kind, k, lo, hi = job
        if kind == "e":
            return int(_min_exponent(num_cols[k][1], lo, hi))
        out = np.zeros(sizes[k] + 1, np.uint8)
        top = int(_mark_present(dim_cols[k][0], lo, hi, out))
        if top >= sizes[k]:
            raise EngineError("a dimension column holds ids outside the string dictionary")
        return out

    res = parallel_map(run, jobs)
    mins = [NO_EXPONENT] * len(num_cols)
    for job, r in zip(jobs, res):
        kind, k = job[0], job[1]
        if kind == "e":
            mins[k] = min(mins[k], r)
        else:
            present[k] = r if present[k] is None else (present[k] | r)
    return mins, present


# C901 exempt until issue 8 item 1 splits it into small builders returning typed parts.
def build(subs, cols) -> Plan:  # noqa: C901
    subs = list(subs)
    n = int(cols.n)
    strings = _Strings(cols)
    ext = [s.external_id for s in subs]
    if len(set(ext)) != len(ext):
        raise EngineError("two subscriptions share an external_id in one run")
    periods = _period_cache(subs)

    # ---- programs, deduplicated by structure (memo by object identity first)
    by_id, by_key, programs_ch = {}, {}, []
    sub_cps = []
    plan_memo: dict = {}
    for s in subs:
        key = id(s.charges)
        if key not in plan_memo:
            cps = []
            for ch in s.charges:
                cp = by_id.get(id(ch))
                if cp is None:
                    pk = program_key(ch)
                    cp = by_key.get(pk)
                    if cp is None:
                        cp = by_key[pk] = len(programs_ch)
                        programs_ch.append(ch)
                    by_id[id(ch)] = cp
                cps.append(cp)
            plan_memo[key] = (s.charges, tuple(cps))  # keep s.charges alive: ids stay unique
        sub_cps.append(plan_memo[key][1])

    # ---- load every column first (a store may intern strings while doing so)
    dim_names: list = []

    def want_dim(p):
        if p not in dim_names:
            dim_names.append(p)

    for ch in programs_ch:
        for k in sorted({k for f in ch.filters for k in f.values}):
            want_dim(k)
        for g in ch.group_by:
            want_dim(g)
        if ch.metric.aggregation == "unique_count":
            want_dim(ch.metric.field)
    want_dim(END_REASON)
    if any(ch.metric.aggregation == "unique_count" for ch in programs_ch):
        want_dim("operation_type")
    dims = {}
    for p in dim_names:
        try:
            dims[p] = np.ascontiguousarray(cols.dim(p), np.int32)
        except (KeyError, LookupError):
            if p not in (END_REASON, "operation_type"):
                raise
    polys, want = {}, {}
    for ch in programs_ch:
        m = ch.metric
        q = m.quantity()
        if q is not None and id(ch) not in polys:
            polys[id(ch)] = polymod.compile_expr(q, m.unit_scale)
            for p in polys[id(ch)].props():
                want.setdefault(p, []).append(m.property_scales.get(p, 0))
            for rule in m.per_event:
                for v in (rule.increment, rule.minimum, rule.maximum):
                    if v is not None:
                        want.setdefault(rule.prop, []).append(polymod.decimal_exponent(v))
            if ch.utilization is not None:
                u = ch.utilization
                want.setdefault(u.prop, []).extend([m.property_scales.get(u.prop, -4),
                                                    polymod.decimal_exponent(u.floor),
                                                    polymod.decimal_exponent(u.ceiling)])
        if ch.reads_cents():
            want.setdefault(CENTS_PROP, []).append(0)
    num_names = sorted(want)
    num = {}
    for p in num_names:
        if p == CENTS_PROP and hasattr(cols, CENTS_PROP):
            mm, ee = getattr(cols, CENTS_PROP)
        else:
            mm, ee = cols.numeric(p)
        mm, ee = np.ascontiguousarray(mm, np.int64), np.ascontiguousarray(ee, np.int8)
        if mm.shape[0] != n or ee.shape[0] != n:
            raise EngineError(f"column {p!r} has {mm.shape[0]} rows, expected {n}")
        num[p] = (mm, ee)
    dim_list = list(dims)
    for p in dim_list:
        if dims[p].shape[0] != n:
            raise EngineError(f"column {p!r} has {dims[p].shape[0]} rows, expected {n}")
    # ids the string table gave out while the columns loaded (a read-only
    # store's JSON numbers read as strings) may lie beyond its length
    nstrings = max([len(cols.strings)] + [int(dims[p].max()) + 1 for p in dim_list if n])
    mins, present = _column_stats([num[p] for p in num_names], [(dims[p], nstrings) for p in dim_list], n)
    present = dict(zip(dim_list, present))
    scales = {p: column_scale(min(want[p]), me, num[p]) for p, me in zip(num_names, mins)}
    scales = _fitting_scales(programs_ch, polys, scales, want)
    nslot = {p: i for i, p in enumerate(num_names)}
    dslot = {p: i for i, p in enumerate(dim_list)}

    # ---- lookup tables (one int32 array; 0 = missing / not mentioned)
    luts = [np.zeros(1, np.int32)]
    lut_len = [1]

    def add_lut(arr):
        off = lut_len[0]
        luts.append(arr)
        lut_len[0] += arr.size
        return off

    group_values, group_lut = {}, {}

    def compact(p):
        if p not in group_lut:
            pr = present.get(p)
            ids = np.flatnonzero(pr[1:]) if pr is not None else np.zeros(0, np.int64)
            texts = [cols.strings[int(i)] for i in ids]
            order = sorted(range(len(ids)), key=lambda j: texts[j])
            lut = np.zeros(nstrings + 1, np.int32)
            for rank, j in enumerate(order):
                lut[ids[j] + 1] = rank + 1
            group_lut[p] = add_lut(lut)
            group_values[p] = [None] + [texts[j] for j in order]
        return group_lut[p], group_values[p]

    reason_dim = dslot.get(END_REASON, -1)
    rlut, reason_values = 0, [None]
    if reason_dim >= 0:
        rlut, reason_values = compact(END_REASON)
    R = len(reason_values)

    value_luts = {}

    def value_lut(p):
        if p not in value_luts:
            vs = sorted({v for ch in programs_ch for f in ch.filters for v in f.values.get(p, ())})
            lut = np.zeros(nstrings + 1, np.int32)
            for ix, v in enumerate(vs):
                sid = strings.id(v)
                if sid is not None and sid < nstrings:
                    lut[sid + 1] = ix + 1
            value_luts[p] = (add_lut(lut), vs)
        return value_luts[p]

    # ---- quantities
    Q, TERM, FAC, q_scale, q_index = [], [], [], [], {}

    def quantity(ch):
        m = ch.metric
        if m.aggregation == "count":
            key = ("count",)
        elif m.aggregation == "unique_count":
            key = ("uid", m.field)
        else:
            util = ch.utilization
            extra = scales[util.prop] if util is not None else 0
            fp = polymod.fix_poly(polys[id(ch)], scales, extra)
            rules = {r.prop: r for r in reversed(m.per_event)}
            key = ("poly", fp, tuple(sorted((p, rules[p]) for p in rules if any(p in t for t in fp.props))), util)
        if key in q_index:
            return q_index[key]
        qi = q_index[key] = len(Q)
        row = [0] * Q_NCOL
        row[3] = -1  # Q_UTIL
        if key[0] == "count":
            row[0] = QK_COUNT
            q_scale.append(Fraction(1))
        elif key[0] == "uid":
            row[0] = QK_UID
            row[6] = dslot[m.field]
            q_scale.append(Fraction(1))
        else:
            fp, util = key[1], key[3]
            row[0], row[1], row[2] = QK_POLY, len(TERM), len(fp.coefs)
            for props, coef in zip(fp.props, fp.coefs):
                TERM.append([coef, len(FAC), len(props)])
                for p in props:
                    r = rules.get(p)
                    fl, vals = 0, [0, 0, 0]
                    if r is not None:
                        for bit, (ix, v) in zip((1, 2, 4), enumerate((r.increment, r.minimum, r.maximum))):
                            if v is not None:
                                fl |= bit
                                vals[ix] = _exact_int(v, scales[p], p)
                    FAC.append([nslot[p], fl] + vals)
            if util is not None:
                us = scales[util.prop]
                row[3] = nslot[util.prop]
                row[4] = int(Fraction(util.floor) / Fraction(10) ** us)
                row[5] = int(Fraction(util.ceiling) / Fraction(10) ** us)
            q_scale.append(fp.scale)
        Q.append(row)
        return qi

    # ---- programs: filters, buckets, windows, groups
    CP, KEY, masks, ordb, BKT, wb, cw, GK = [], [], [], [], [], [], [], []
    programs = []
    for ch in programs_ch:
        m = ch.metric
        flags = 0
        if m.aggregation == "max":
            flags |= F_MAX
        if m.aggregation == "latest":
            flags |= F_LAST
        if ch.prorated and m.aggregation in ("sum", "unique_count"):
            flags |= F_PROR
        if ch.reads_cents():
            flags |= F_CENTS
        if needs_side(ch):
            flags |= F_SIDE
            if m.aggregation == "unique_count":
                flags |= F_UNIQUE
        qi = quantity(ch)
        nf = len(ch.filters)
        if nf > MAX_FILTERS:
            raise EngineError(f"charge {ch.id!r}: more than {MAX_FILTERS} filters")
        order = sorted(range(nf), key=lambda i: (-len(ch.filters[i].values), i))
        keys = sorted({k for f in ch.filters for k in f.values})
        k_off = len(KEY)
        for k in keys:
            voff, vs = value_lut(k)
            moff = len(masks)
            for vi in range(len(vs) + 1):
                bits = 0
                for j, fi in enumerate(order):
                    allowed = ch.filters[fi].values.get(k)
                    if allowed is None or (vi > 0 and vs[vi - 1] in allowed):
                        bits |= 1 << j
                masks.append(bits - (1 << 64) if bits >= 1 << 63 else bits)
            KEY.append([dslot[k], voff, moff])
        ord_off = len(ordb)
        ordb.extend(order)
        all_mask = (1 << nf) - 1
        # groups: first key most significant, values in string order (0 = missing)
        g_off = len(GK)
        cards = [len(compact(g)[1]) for g in ch.group_by]
        G = 1
        for c in cards:
            G *= c
        if G >= MAX_GROUPS:
            raise EngineError(f"charge {ch.id!r}: its group by keys ({', '.join(ch.group_by)}) take {G:,} "
                              f"combinations of values in these events, more than {MAX_GROUPS:,}")
        mult = G
        for g, c in zip(ch.group_by, cards):
            mult //= c
            GK.append([dslot[g], compact(g)[0], mult])
        b_off = len(BKT)
        line = 0
        bucket_lines = []
        for b in list(range(nf)) + [None]:
            wins = ch.bucket_windows(b)
            bounds = sorted({x for w in wins for x in (w.from_ms, w.to_ms)})
            cells = [0]
            for x in bounds:
                cells.append(next((i + 1 for i, w in enumerate(wins) if w.from_ms <= x < w.to_ms), 0))
            nw1 = len(wins) + 1
            BKT.append([line, nw1, len(wb), len(bounds), len(cw)])
            wb.extend(bounds)
            cw.extend(cells)
            bucket_lines.append((line, nw1))
            line += G * nw1
        CP.append([flags, qi, nf, all_mask - (1 << 64) if all_mask >= 1 << 63 else all_mask, k_off, len(keys),
                   ord_off, b_off, g_off, len(ch.group_by), G, nslot.get(CENTS_PROP, 0)])
        programs.append(Program(ch, qi, nf, G, ch.group_by, bucket_lines, line, flags))

    # ---- plans, instances, slot blocks
    plan_keys, plan_of_sub, plan_subs = {}, [], []
    for si, cps in enumerate(sub_cps):
        if periods[si].empty:
            plan_of_sub.append(-1)
            continue
        P = plan_keys.setdefault(cps, len(plan_keys))
        if P == len(plan_subs):
            plan_subs.append([])
        plan_of_sub.append(P)
        plan_subs[P].append(si)
    plan_list = list(plan_keys)
    instances = []
    for P, cps in enumerate(plan_list):
        for ci, cp in enumerate(cps):
            instances.append((P, ci, cp))
    EXT = F_MAX | F_LAST | F_PROR | F_CENTS
    ninst = len(instances)
    INST = np.zeros((max(ninst, 1), I_NCOL), np.int64)
    inst_ign = np.zeros(ninst, np.int64)
    nplans = len(plan_list)
    Lp, Ep = [0] * nplans, [0] * nplans
    hashed_insts = []
    for x, (P, ci, cp) in enumerate(instances):
        pr = programs[cp]
        if len(plan_subs[P]) * pr.lines * R > DENSE_LIMIT:
            hashed_insts.append(x)
            INST[x, 5] = 1
            continue
        INST[x, 6] = Lp[P]
        Lp[P] += pr.lines
        if pr.flags & EXT:
            INST[x, 7] = Ep[P]
            Ep[P] += pr.lines
    pbase, xbase, lkbase = [0] * nplans, [0] * nplans, [0] * nplans
    n_dense = n_xdense = n_lines = 0
    for P in range(nplans):
        pbase[P], xbase[P], lkbase[P] = n_dense, n_xdense, n_lines
        n_dense += len(plan_subs[P]) * R * Lp[P]
        n_xdense += len(plan_subs[P]) * R * Ep[P]
        n_lines += len(plan_subs[P]) * Lp[P]
    base = n_dense
    hashed_ext = False
    for x in hashed_insts:
        P, ci, cp = instances[x]
        pr = programs[cp]
        INST[x, 2], INST[x, 3] = base, pr.lines * R
        base += len(plan_subs[P]) * pr.lines * R
        hashed_ext |= bool(pr.flags & EXT)
    if base >= 2**62:
        raise EngineError("too many line slots in one run")
    ign = 0
    for x, (P, ci, cp) in enumerate(instances):
        ch = subs[plan_subs[P][0]].charges[ci]
        INST[x, 0] = cp
        INST[x, 1] = 1 if (ch.metric.recurring and not ch.pay_in_advance) else 0
        INST[x, 4] = inst_ign[x] = ign
        ign += len(plan_subs[P]) * (programs[cp].nf + 1)

    # ---- codes, (plan, code) lists
    codes = sorted({ch.metric.event_code for ch in programs_ch})
    code_idx = {c: i for i, c in enumerate(codes)}
    ncodes = max(len(codes), 1)
    code_lut = np.full(max(nstrings, 1), -1, np.int32)
    for c, i in code_idx.items():
        sid = strings.id(c)
        if sid is not None and sid < nstrings:
            code_lut[sid] = i
    npk = len(plan_list) * ncodes
    pk_lists = [[] for _ in range(npk)]
    for x, (P, ci, cp) in enumerate(instances):
        pk_lists[P * ncodes + code_idx[programs_ch[cp].metric.event_code]].append(x)
    pk_start = np.zeros(npk + 1, np.int64)
    pk_qstart = np.zeros(npk + 1, np.int64)
    pk_inst, pk_q = [], []
    pk_rec = np.zeros(max(npk, 1), np.int64)
    pk_nside = np.zeros(max(npk, 1), np.int64)
    for k, lst in enumerate(pk_lists):
        pk_inst.extend(lst)
        pk_start[k + 1] = len(pk_inst)
        qs = sorted({programs[instances[x][2]].q for x in lst})
        pk_q.extend(qs)
        pk_qstart[k + 1] = len(pk_q)
        pk_rec[k] = int(any(INST[x, 1] for x in lst))
        pk_nside[k] = sum(1 for x in lst if programs[instances[x][2]].flags & F_SIDE)

    # ---- subscriptions
    sub_lut = np.full(max(nstrings, 1), -1, np.int32)
    SUB = np.zeros((len(subs) + 1, S_NCOL), np.int64)
    bounds = []
    rank_of = {}
    for P, lst in enumerate(plan_subs):
        for rank, si in enumerate(lst):
            rank_of[si] = rank
    for si, s in enumerate(subs):
        per = periods[si]
        SUB[si, 4] = len(bounds)
        if plan_of_sub[si] < 0:
            continue
        sid = strings.id(s.external_id)
        if sid is not None and sid < nstrings:
            sub_lut[sid] = si
        P, rank = plan_of_sub[si], rank_of[si]
        SUB[si, 0], SUB[si, 1], SUB[si, 2], SUB[si, 3], SUB[si, 5] = P, rank, per.lo, per.hi, per.eff_days
        SUB[si, 6], SUB[si, 7] = pbase[P] + rank * R * Lp[P], Lp[P]
        SUB[si, 8], SUB[si, 9] = xbase[P] + rank * R * Ep[P], Ep[P]
        bounds.extend(per.day_bounds)
    SUB[len(subs), 4] = len(bounds)

    cents_scale = scales.get(CENTS_PROP, 0)
    i64 = lambda v, w=None: np.asarray(v, np.int64).reshape(-1, w) if w else np.asarray(v if len(v) else [0], np.int64)  # noqa: E731
    keep = [dims[p] for p in dim_list] + [a for p in num_names for a in num[p]]
    arrays = dict(
        dptr=np.asarray([address(dims[p]) for p in dim_list] or [0], np.int64),
        mptr=np.asarray([address(num[p][0]) for p in num_names] or [0], np.int64),
        eptr=np.asarray([address(num[p][1]) for p in num_names] or [0], np.int64),
        nscale=np.asarray([scales[p] for p in num_names] or [0], np.int64),
        sub_lut=sub_lut, code_lut=code_lut, ncodes=ncodes, SUB=SUB,
        pk_start=pk_start, pk_inst=i64(pk_inst), pk_qstart=pk_qstart, pk_q=i64(pk_q), pk_rec=pk_rec,
        pk_nside=pk_nside, INST=INST,
        CP=i64(CP or [[0] * C_NCOL], C_NCOL), KEY=i64(KEY or [[0] * K_NCOL], K_NCOL), masks=i64(masks),
        ordb=i64(ordb), BKT=i64(BKT or [[0] * B_NCOL], B_NCOL), wb=i64(wb), cw=i64(cw),
        GK=i64(GK or [[0] * G_NCOL], G_NCOL), luts=np.concatenate(luts).astype(np.int32),
        Q=i64(Q or [[0] * Q_NCOL], Q_NCOL), TERM=i64(TERM or [[0] * T_NCOL], T_NCOL),
        FAC=i64(FAC or [[0] * FA_NCOL], FA_NCOL), R=R, reason_dim=reason_dim, rlut=rlut,
        op_dim=dslot.get("operation_type", -1), remove_id=_remove_id(strings), sub_bounds=i64(bounds),
        n_dense=n_dense, n_xdense=n_xdense, keep=keep, nstrings=nstrings,
    )
    inst_subs = [np.asarray(plan_subs[P], np.int64) for P, _, _ in instances]
    layout = dict(pbase=np.asarray(pbase, np.int64), Lp=np.asarray(Lp, np.int64), lkbase=np.asarray(lkbase, np.int64),
                  plan_subs=[np.asarray(x, np.int64) for x in plan_subs], n_lines=n_lines)
    return Plan(
        subs, periods, arrays, programs, q_scale, instances, inst_subs, inst_ign, bool(hashed_insts), hashed_ext,
        n_dense, n_xdense, ign, R, reason_values, group_values, cents_scale, cols, layout,
    )


def _remove_id(strings):
    rid = strings.id("remove")
    return -2 if rid is None else rid


def column_scale(wanted: int, min_exponent: int, column) -> int:
    """The fixed-point exponent of a numeric column: what the metrics ask
    for, finer when the data has more decimals, but at most ``FINER_DIGITS``
    finer: one event with 22 decimals must not push every other value of the
    column (and every product with it) beyond int64.  A value finer than the
    scale is not held; the kernels hand its subscription to the exact path."""
    if min_exponent >= wanted:
        return wanted
    fe = int(_finest_exponent(*column))
    if fe == NO_EXPONENT:
        return wanted
    return min(wanted, max(fe, wanted - FINER_DIGITS))


def _fitting_scales(charges, polys, scales, want) -> dict:
    """Scales at which every quantity's coefficients fit int64.  A column
    that went finer for its data (``column_scale``) goes back to what its
    metrics ask for when a quantity over it would not fit (``a*b*c + 1``
    with 12 decimals in each): its finer rows take the exact path instead of
    one event stopping the whole run."""
    scales = dict(scales)
    changed = True
    while changed:
        changed = False
        for ch in charges:
            poly = polys.get(id(ch))
            if poly is None:
                continue
            util = ch.utilization.prop if ch.utilization is not None else None
            try:
                polymod.fix_poly(poly, scales, scales[util] if util else 0)
            except EngineError:
                for p in poly.props() + ((util,) if util else ()):
                    if scales[p] != min(want[p]):
                        scales[p] = min(want[p])
                        changed = True
    return scales


def _exact_int(v, scale, prop):
    x = Fraction(v) / Fraction(10) ** scale
    if x.denominator != 1:  # pragma: no cover - scales include the rule's exponent
        raise EngineError(f"per-event rounding of {prop!r} is finer than its scale")
    return int(x)
