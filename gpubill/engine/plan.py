"""Compile subscriptions + event columns into the arrays the kernels run on.

A subscription's charge becomes a *charge instance* (time range, line slot
bases) pointing at a *charge program* shared by every subscription with an
equal ``ChargeSpec`` (filter lookup tables, bucket table, windows, quantity
polynomial, group keys).  Nothing here touches events one by one except
numpy passes over whole columns (finest exponent, group dictionaries).

The columns object is duck-typed (the store's format): ``n``,
``timestamp_ms``, ``rowid``, ``code``, ``subscription`` (int32 ids into
``strings``), ``strings``, ``numeric(name) -> (mantissa int64[], exponent
int8[])`` and ``dim(name) -> int32[]`` (-1 = missing); an optional
``lookup(str) -> id | None`` avoids building a reverse dictionary.  The
dynamic model reads ``numeric("precise_total_amount_cents")``.
"""

from __future__ import annotations

from fractions import Fraction
from itertools import product

import attrs
import numpy as np

from . import poly as polymod
from .kernels import F_CENTS, F_GROUPED, F_PRORATED, F_SIDE, F_UTIL
from .money import EngineError, finest_exponent
from .period import NEG_INF, period_of
from .program import END_REASON, Dynamic, Graduated, Percentage
from .reference import bucket_of

AGG_CODE = {"count": 0, "sum": 1, "max": 2, "latest": 3, "unique_count": 4, "weighted_sum": 5}
MAXK = 16  # numeric columns and dimension columns passed to one kernel call
CENTS_PROP = "precise_total_amount_cents"
MAX_BUCKET_TABLE = 1 << 22


class _Strings:
    def __init__(self, cols):
        self.cols = cols
        self._index = None

    def id(self, s):
        for owner in (self.cols, self.cols.strings):
            if hasattr(owner, "lookup"):
                i = owner.lookup(s)
                return None if i is None or i < 0 else i
        if self._index is None:
            self._index = {v: i for i, v in enumerate(self.cols.strings)}
        return self._index.get(s)


def _models(charge):
    yield charge.model
    for w in charge.windows:
        yield w.model
    for f in charge.filters:
        yield f.model
        for w in f.windows:
            yield w.model


def needs_side(charge) -> bool:
    if charge.pay_in_advance or charge.metric.aggregation in ("unique_count", "weighted_sum"):
        return True
    ms = list(_models(charge))
    if any(isinstance(m, Percentage) for m in ms) and charge.metric.aggregation != "count":
        return True
    return charge.prorated and charge.metric.aggregation == "sum" and any(isinstance(m, Graduated) for m in ms)


@attrs.define
class Plan:
    """Everything a kernel call and the decoding after it need."""

    subs: list
    periods: list
    arrays: dict
    numeric_slots: dict  # prop -> slot
    dim_slots: dict  # prop -> slot
    scales: dict  # prop -> decimal exponent
    programs: list  # [(charge, FixedPoly | None)]
    instances: list  # [(si, ci, cp)]
    lid_c: np.ndarray
    lid_b: np.ndarray
    lid_w: np.ndarray
    group_values: dict  # prop -> list of strings by compact index (0 = None)
    reason_values: list
    n_dense: int
    nf_of: list  # per program: number of filters (default bucket index)


def _compact_lut(col, nstrings):
    """dim ids present in the column -> 1.., missing/absent -> 0."""
    present = np.bincount(col[col >= 0], minlength=nstrings) > 0 if col.size else np.zeros(nstrings, bool)
    lut = np.zeros(nstrings + 1, dtype=np.int32)
    ids = np.flatnonzero(present)
    lut[ids + 1] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lut, ids


def build(subs, cols) -> Plan:
    subs = list(subs)
    strings = _Strings(cols)
    periods = [period_of(s) for s in subs]
    ext = [s.external_id for s in subs]
    if len(set(ext)) != len(ext):
        raise EngineError("two subscriptions share an external_id in one run")

    numeric_slots: dict = {}
    dim_slots: dict = {}
    num_arrays: list = []
    dim_arrays: list = []

    def nslot(p):
        if p not in numeric_slots:
            if len(num_arrays) >= MAXK:
                raise EngineError(f"more than {MAXK} numeric properties in one run")
            if p == CENTS_PROP and hasattr(cols, CENTS_PROP):
                m, e = getattr(cols, CENTS_PROP)
            else:
                m, e = cols.numeric(p)
            numeric_slots[p] = len(num_arrays)
            num_arrays.append((np.ascontiguousarray(m, np.int64), np.ascontiguousarray(e, np.int8)))
        return numeric_slots[p]

    def dslot(p):
        if p not in dim_slots:
            if len(dim_arrays) >= MAXK:
                raise EngineError(f"more than {MAXK} dimension properties in one run")
            dim_slots[p] = len(dim_arrays)
            dim_arrays.append(np.ascontiguousarray(cols.dim(p), np.int32))
        return dim_slots[p]

    # ---- charge programs (deduplicated by value)
    programs, cp_index = [], {}
    for s in subs:
        for ch in s.charges:
            if ch not in cp_index:
                cp_index[ch] = len(programs)
                programs.append(ch)

    # ---- load every dimension first: a store may intern strings while doing so,
    # and every lookup table must cover every id that occurs.
    for ch in programs:
        for k in sorted({k for f in ch.filters for k in f.values}) + list(ch.group_by):
            dslot(k)
        if ch.metric.aggregation == "unique_count":
            dslot(ch.metric.field)
    reason_dim = op_dim = -1
    try:
        reason_dim = dslot(END_REASON)
    except (KeyError, LookupError):
        pass
    if any(ch.metric.aggregation == "unique_count" for ch in programs):
        try:
            op_dim = dslot("operation_type")
        except (KeyError, LookupError):
            pass
    nstrings = len(cols.strings)
    for arr in dim_arrays + [np.asarray(cols.subscription), np.asarray(cols.code)]:
        if arr.size:
            nstrings = max(nstrings, int(arr.max()) + 1)

    # ---- fixed-point scale of every numeric property
    scales: dict = {}
    want: dict = {}
    for ch in programs:
        m = ch.metric
        q = m.quantity()
        if q is not None:
            for p in polymod.compile_expr(q, m.unit_scale).props():
                want.setdefault(p, []).append(m.property_scales.get(p, 0))
        for rule in m.per_event:
            for v in (rule.increment, rule.minimum, rule.maximum):
                if v is not None:
                    want.setdefault(rule.prop, []).append(polymod.decimal_exponent(v))
        if ch.utilization is not None:
            u = ch.utilization
            want.setdefault(u.prop, []).extend(
                [m.property_scales.get(u.prop, -4), polymod.decimal_exponent(u.floor), polymod.decimal_exponent(u.ceiling)]
            )
        if any(isinstance(x, Dynamic) for x in _models(ch)):
            want.setdefault(CENTS_PROP, []).append(0)
    for p, cands in want.items():
        sl = nslot(p)
        fe = finest_exponent(*num_arrays[sl])
        scales[p] = min(cands + ([fe] if fe is not None else []))

    A: dict = {k: [] for k in (
        "cp_flags cp_agg cp_fk_off cp_fk_n cp_bt_off cp_b_off cp_t_off cp_t_n cp_gk_off cp_gk_n cp_util "
        "cp_ufloor cp_uceil cp_uid_dim cp_cents fk_dim fk_mult fk_lut_off bt b_win_off win_from win_to "
        "t_coef t_f_off t_f_n f_slot f_flags f_inc f_min f_max gk_dim gk_mult gk_lut_off"
    ).split()}
    luts: list = [np.zeros(1, np.int32)]
    lut_len = [1]
    lut_cache: dict = {}
    group_values: dict = {}

    def add_lut(key, arr):
        if key not in lut_cache:
            lut_cache[key] = lut_len[0]
            luts.append(arr)
            lut_len[0] += arr.size
        return lut_cache[key]

    fixed_polys, nf_of = [], []
    A["b_win_off"].append(0)
    for ch in programs:
        m = ch.metric
        flags = (F_GROUPED if ch.group_by else 0) | (F_SIDE if needs_side(ch) else 0)
        if ch.prorated and m.aggregation in ("sum", "unique_count"):
            flags |= F_PRORATED
        if any(isinstance(x, Dynamic) for x in _models(ch)):
            flags |= F_CENTS
        if ch.utilization is not None and m.aggregation not in ("count", "unique_count"):
            flags |= F_UTIL
        A["cp_flags"].append(flags)
        A["cp_agg"].append(AGG_CODE[m.aggregation])
        A["cp_cents"].append(numeric_slots[CENTS_PROP] if flags & F_CENTS else 0)
        A["cp_uid_dim"].append(dslot(m.field) if m.aggregation == "unique_count" else 0)
        # filters -> keys, luts, bucket table
        keys = sorted({k for f in ch.filters for k in f.values})
        A["cp_fk_off"].append(len(A["fk_dim"]))
        A["cp_fk_n"].append(len(keys))
        vals_per_key = []
        mult = 1
        for k in keys:
            vs = sorted({v for f in ch.filters for v in f.values.get(k, ())})
            lut = np.zeros(nstrings + 1, np.int32)
            for ix, v in enumerate(vs):
                sid = strings.id(v)
                if sid is not None:
                    lut[sid + 1] = ix + 1
            A["fk_dim"].append(dslot(k))
            A["fk_mult"].append(mult)
            A["fk_lut_off"].append(add_lut(("f", k, tuple(vs)), lut))
            vals_per_key.append([None] + vs)
            mult *= len(vs) + 1
        if mult > MAX_BUCKET_TABLE:
            raise EngineError(f"charge {ch.id!r}: too many filter value combinations ({mult})")
        nf = len(ch.filters)
        nf_of.append(nf)
        A["cp_bt_off"].append(len(A["bt"]))
        table = [0] * mult
        for combo in product(*[range(len(v)) for v in vals_per_key]):
            props = {k: vals_per_key[j][c] for j, (k, c) in enumerate(zip(keys, combo)) if c}
            b = bucket_of(ch, props)
            code = sum(c * int(np.prod([len(v) for v in vals_per_key[:j]])) for j, c in enumerate(combo))
            table[code] = nf if b is None else b
        A["bt"].extend(table)
        # windows per bucket
        A["cp_b_off"].append(len(A["b_win_off"]) - 1)
        for b in list(range(nf)) + [None]:
            for w in ch.bucket_windows(b):
                A["win_from"].append(w.from_ms)
                A["win_to"].append(w.to_ms)
            A["b_win_off"].append(len(A["win_from"]))
        # group keys
        A["cp_gk_off"].append(len(A["gk_dim"]))
        A["cp_gk_n"].append(len(ch.group_by))
        gmult = 1
        for g in ch.group_by:
            sl = dslot(g)
            if g not in group_values:
                lut, ids = _compact_lut(dim_arrays[sl], nstrings)
                group_values[g] = (add_lut(("g", g), lut), [None] + [cols.strings[i] for i in ids])
            off, gv = group_values[g]
            A["gk_dim"].append(sl)
            A["gk_mult"].append(gmult)
            A["gk_lut_off"].append(off)
            gmult *= len(gv)
        if gmult >= 2**31:
            raise EngineError(f"charge {ch.id!r}: too many group combinations")
        # quantity polynomial
        fp = None
        A["cp_t_off"].append(len(A["t_coef"]))
        q = m.quantity()
        extra = 0
        if flags & F_UTIL:
            u = ch.utilization
            us = scales[u.prop]
            extra = us
            A["cp_util"].append(nslot(u.prop))
            A["cp_ufloor"].append(int(Fraction(u.floor) / Fraction(10) ** us))
            A["cp_uceil"].append(int(Fraction(u.ceiling) / Fraction(10) ** us))
        else:
            A["cp_util"].append(0)
            A["cp_ufloor"].append(0)
            A["cp_uceil"].append(0)
        if q is not None:
            fp = polymod.fix_poly(polymod.compile_expr(q, m.unit_scale), scales, extra)
            rules = {r.prop: r for r in reversed(m.per_event)}
            for props, coef in zip(fp.props, fp.coefs):
                A["t_coef"].append(coef)
                A["t_f_off"].append(len(A["f_slot"]))
                A["t_f_n"].append(len(props))
                for p in props:
                    A["f_slot"].append(nslot(p))
                    r = rules.get(p)
                    fl, vals = 0, [0, 0, 0]
                    if r is not None:
                        for bit, (ix, v) in zip((1, 2, 4), enumerate((r.increment, r.minimum, r.maximum))):
                            if v is not None:
                                fl |= bit
                                vals[ix] = int(Fraction(v) / Fraction(10) ** scales[p])
                    A["f_flags"].append(fl)
                    A["f_inc"].append(vals[0])
                    A["f_min"].append(vals[1])
                    A["f_max"].append(vals[2])
            A["cp_t_n"].append(len(fp.coefs))
        else:
            A["cp_t_n"].append(0)
        fixed_polys.append(fp)

    # ---- instances, codes, line ids
    codes = sorted({ch.metric.event_code for ch in programs})
    code_idx = {c: i for i, c in enumerate(codes)}
    sub_lut = np.full(max(nstrings, 1), -1, np.int32)
    code_lut = np.full(max(nstrings, 1), -1, np.int32)
    for i, c in enumerate(codes):
        sid = strings.id(c)
        if sid is not None:
            code_lut[sid] = i
    for si, s in enumerate(subs):
        sid = strings.id(s.external_id)
        if sid is not None:
            sub_lut[sid] = si
    pairs: dict = {}
    instances = []
    c_cp, c_sub, c_lo, c_hi, c_cb_off, cb_base = [], [], [], [], [], []
    lid_c, lid_b, lid_w = [], [], []
    for si, s in enumerate(subs):
        per = periods[si]
        if per.empty:
            continue
        for ci, ch in enumerate(s.charges):
            cp = cp_index[ch]
            c = len(instances)
            instances.append((si, ci, cp))
            pairs.setdefault((si, code_idx[ch.metric.event_code]), []).append(c)
            c_cp.append(cp)
            c_sub.append(si)
            c_lo.append(NEG_INF if (ch.metric.recurring and not ch.pay_in_advance) else per.lo)
            c_hi.append(per.hi)
            c_cb_off.append(len(cb_base))
            nf = nf_of[cp]
            for b in range(nf + 1):
                cb_base.append(len(lid_c))
                for w in range(len(ch.bucket_windows(None if b == nf else b)) + 1):
                    lid_c.append(c)
                    lid_b.append(b)
                    lid_w.append(w)
    ncodes = max(len(codes), 1)
    cs_start = np.zeros(len(subs) * ncodes + 1, np.int32)
    cs_list = []
    for key in range(len(subs) * ncodes):
        lst = pairs.get(divmod(key, ncodes), [])
        cs_list.extend(lst)
        cs_start[key + 1] = len(cs_list)

    bounds, bound_off = [], [0]
    for per in periods:
        bounds.extend(per.day_bounds)
        bound_off.append(len(bounds))

    reason_values = [None]
    reason_lut = np.zeros(nstrings + 1, np.int32)
    if reason_dim >= 0:
        reason_lut, ids = _compact_lut(dim_arrays[reason_dim], nstrings)
        reason_values = [None] + [cols.strings[i] for i in ids]
    remove_id = -2
    if op_dim >= 0:
        rid = strings.id("remove")
        remove_id = -2 if rid is None else rid

    i32 = lambda v: np.asarray(v if len(v) else [0], np.int32)  # noqa: E731
    i64 = lambda v: np.asarray(v if len(v) else [0], np.int64)  # noqa: E731
    arrays = {k: (i64(v) if k in ("win_from", "win_to", "t_coef", "f_inc", "f_min", "f_max", "gk_mult",
                                  "cp_ufloor", "cp_uceil") else i32(v)) for k, v in A.items()}
    num_scale = [0] * MAXK
    for p, sl in numeric_slots.items():
        num_scale[sl] = scales.get(p, 0)
    arrays.update(
        sub_lut=sub_lut, code_lut=code_lut, ncodes=ncodes, cs_start=cs_start, cs_list=i32(cs_list),
        c_cp=i32(c_cp), c_sub=i32(c_sub), c_lo=i64(c_lo), c_hi=i64(c_hi), c_cb_off=i32(c_cb_off),
        cb_base=i64(cb_base), luts=np.concatenate(luts).astype(np.int32), num_scale=np.asarray(num_scale, np.int64),
        reason_dim=reason_dim, reason_lut=reason_lut.astype(np.int32), nreasons=len(reason_values),
        op_dim=op_dim, remove_id=remove_id, sub_bound_off=np.asarray(bound_off, np.int64), sub_bounds=i64(bounds),
        sub_lo=i64([p.lo for p in periods]), sub_eff_days=i64([p.eff_days for p in periods]),
        mants=tuple(num_arrays), dims=tuple(dim_arrays),
    )
    return Plan(
        subs, periods, arrays, numeric_slots, dim_slots, scales, list(zip(programs, fixed_polys)), instances,
        np.asarray(lid_c, np.int64), np.asarray(lid_b, np.int64), np.asarray(lid_w, np.int64),
        {g: v[1] for g, v in group_values.items()}, reason_values, len(lid_c), nf_of,
    )
