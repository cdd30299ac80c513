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
from typing import NamedTuple

import attrs
import numpy as np

from . import poly as polymod
from .accumulate import chunks, parallel_map
from .kernels import NO_EXPONENT, _finest_exponent, _mark_present, _min_exponent, address
from .layout import (
    B_CWOFF, B_LINE, B_NCOL, B_NW1, B_WBN, B_WBOFF, C_ALL, C_BOFF, C_CENTS, C_FLAGS, C_G, C_GN, C_GOFF, C_KN, C_KOFF,
    C_NCOL, C_NF, C_ORD, C_Q, F_CENTS, F_EXT, F_LAST, F_MAX, F_PROR, F_SIDE, F_UNIQUE, FA_FLAGS, FA_INC, FA_MAX,
    FA_MIN, FA_NCOL, FA_SLOT, G_DIM, G_LUT, G_MULT, G_NCOL, I_BASE, I_CP, I_HASHED, I_IGN, I_LOFF, I_NCOL, I_REC,
    I_STRIDE, I_XOFF, K_DIM, K_MOFF, K_NCOL, K_VLUT, PE_INC, PE_MAX, PE_MIN, Q_KIND, Q_NCOL, Q_TN, Q_TOFF, Q_UCEIL,
    Q_UFLOOR, Q_UID, Q_UTIL, QK_COUNT, QK_POLY, QK_UID, S_BOFF, S_DBASE, S_EFF, S_EP, S_HI, S_LO, S_LP, S_NCOL,
    S_PLAN, S_RANK, S_XBASE, T_COEF, T_FN, T_FOFF, T_NCOL, row,
)
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


def build(subs, cols) -> Plan:
    """Subscriptions + event columns -> the kernel tables and what decoding needs."""
    subs = list(subs)
    ext = [s.external_id for s in subs]
    if len(set(ext)) != len(ext):
        raise EngineError("two subscriptions share an external_id in one run")
    periods = _period_cache(subs)
    progs = _dedupe_programs(subs)
    cs = _load_columns(progs.charges, cols)
    luts = _Luts(cs, progs.charges)
    reason_dim = cs.dslot.get(END_REASON, -1)
    rlut, reason_values = luts.compact(END_REASON) if reason_dim >= 0 else (0, [None])
    R = len(reason_values)
    quantities = _Quantities(cs)
    pt = _ProgramTables()
    programs = [pt.add(ch, cs, luts, quantities) for ch in progs.charges]
    blocks = _slot_blocks(subs, progs.of_sub, periods, programs, R)
    codes = _code_tables(progs.charges, programs, blocks, cs)
    SUB, sub_lut, bounds = _sub_table(subs, periods, blocks, R, cs)
    arrays = dict(
        **_column_arrays(cs), sub_lut=sub_lut, SUB=SUB, **codes._asdict(), INST=blocks.INST,
        **pt.arrays(), luts=luts.array(), **quantities.arrays(), R=R, reason_dim=reason_dim, rlut=rlut,
        op_dim=cs.dslot.get("operation_type", -1), remove_id=_remove_id(cs.strings), sub_bounds=_ints(bounds),
        n_dense=blocks.n_dense, n_xdense=blocks.n_xdense, nstrings=cs.nstrings,
    )
    inst_subs = [np.asarray(blocks.plan_subs[P], np.int64) for P, _, _ in blocks.instances]
    layout = dict(pbase=np.asarray(blocks.pbase, np.int64), Lp=np.asarray(blocks.Lp, np.int64),
                  lkbase=np.asarray(blocks.lkbase, np.int64),
                  plan_subs=[np.asarray(x, np.int64) for x in blocks.plan_subs], n_lines=blocks.n_lines)
    return Plan(
        subs, periods, arrays, programs, quantities.scale, blocks.instances, inst_subs, blocks.inst_ign,
        blocks.hashed, blocks.hashed_ext, blocks.n_dense, blocks.n_xdense, blocks.n_ign, R, reason_values,
        luts.group_values, cs.scales.get(CENTS_PROP, 0), cols, layout,
    )


# ---- programs, deduplicated by structure


class _Programs(NamedTuple):
    charges: list  # per program: a representative charge
    of_sub: list  # per subscription: the tuple of its charges' program indices


def _dedupe_programs(subs) -> _Programs:
    """One program per distinct ``program_key`` (memo by object identity first)."""
    by_id, by_key, charges, of_sub = {}, {}, [], []
    plan_memo: dict = {}
    for s in subs:
        key = id(s.charges)
        if key not in plan_memo:
            cps = []
            for ch in s.charges:
                cp = by_id.get(id(ch))
                if cp is None:
                    cp = by_key.setdefault(program_key(ch), len(charges))
                    if cp == len(charges):
                        charges.append(ch)
                    by_id[id(ch)] = cp
                cps.append(cp)
            plan_memo[key] = (s.charges, tuple(cps))  # keep s.charges alive: ids stay unique
        of_sub.append(plan_memo[key][1])
    return _Programs(charges, of_sub)


# ---- event columns


@attrs.frozen
class _Columns:
    """The event columns the programs read, loaded once, with their scales."""

    strings: _Strings
    texts: object  # the column set's string table
    dims: dict  # dimension name -> int32 dictionary ids (load order)
    num: dict  # numeric name -> (int64 mantissas, int8 exponents), by name
    nstrings: int  # dictionary ids in use (the string table may grow while loading)
    present: dict  # dimension name -> uint8 flags of the ids present (index id + 1)
    scales: dict  # numeric name -> fixed-point exponent
    polys: dict  # id(charge) -> its quantity polynomial
    dslot: dict  # dimension name -> index into dptr
    nslot: dict  # numeric name -> index into mptr / eptr / nscale


def _dim_names(charges) -> list:
    names = []
    for ch in charges:
        names += sorted({k for f in ch.filters for k in f.values})
        names += ch.group_by
        if ch.metric.aggregation == "unique_count":
            names.append(ch.metric.field)
    names.append(END_REASON)
    if any(ch.metric.aggregation == "unique_count" for ch in charges):
        names.append("operation_type")
    return list(dict.fromkeys(names))


def _load_dims(cols, names, n) -> dict:
    dims = {}
    for p in names:
        try:
            dims[p] = np.ascontiguousarray(cols.dim(p), np.int32)
        except (KeyError, LookupError):
            if p not in (END_REASON, "operation_type"):
                raise
    for p, a in dims.items():
        if a.shape[0] != n:
            raise EngineError(f"column {p!r} has {a.shape[0]} rows, expected {n}")
    return dims


def _numeric_wants(charges):
    """(polynomial per charge, exponents each numeric property is asked for)."""
    polys, want = {}, {}
    for ch in charges:
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
    return polys, want


def _load_nums(cols, names, n) -> dict:
    num = {}
    for p in names:
        if p == CENTS_PROP and hasattr(cols, CENTS_PROP):
            mm, ee = getattr(cols, CENTS_PROP)
        else:
            mm, ee = cols.numeric(p)
        mm, ee = np.ascontiguousarray(mm, np.int64), np.ascontiguousarray(ee, np.int8)
        if mm.shape[0] != n or ee.shape[0] != n:
            raise EngineError(f"column {p!r} has {mm.shape[0]} rows, expected {n}")
        num[p] = (mm, ee)
    return num


def _load_columns(charges, cols) -> _Columns:
    """Load every column first (a store may intern strings while doing so), then the statistics."""
    n = int(cols.n)
    dims = _load_dims(cols, _dim_names(charges), n)
    polys, want = _numeric_wants(charges)
    num = _load_nums(cols, sorted(want), n)
    # ids the string table gave out while the columns loaded (a read-only
    # store's JSON numbers read as strings) may lie beyond its length
    nstrings = max([len(cols.strings)] + [int(a.max()) + 1 for a in dims.values() if n])
    mins, present = _column_stats(list(num.values()), [(a, nstrings) for a in dims.values()], n)
    scales = {p: column_scale(min(want[p]), me, num[p]) for p, me in zip(num, mins)}
    return _Columns(
        _Strings(cols), cols.strings, dims, num, nstrings, dict(zip(dims, present)),
        _fitting_scales(charges, polys, scales, want), polys,
        {p: i for i, p in enumerate(dims)}, {p: i for i, p in enumerate(num)},
    )


def _column_arrays(cs: _Columns) -> dict:
    """The columns' addresses and scales (the kernels read the columns in place)."""
    return dict(
        dptr=np.asarray([address(a) for a in cs.dims.values()] or [0], np.int64),
        mptr=np.asarray([address(m) for m, _ in cs.num.values()] or [0], np.int64),
        eptr=np.asarray([address(e) for _, e in cs.num.values()] or [0], np.int64),
        nscale=np.asarray([cs.scales[p] for p in cs.num] or [0], np.int64),
        keep=list(cs.dims.values()) + [a for p in cs.num for a in cs.num[p]],
    )


# ---- lookup tables


class _Luts:
    """The lookup tables, one int32 array (0 = missing / not mentioned): per
    grouped dimension its values' compact index in string order, per filtered
    dimension its filter values' index."""

    def __init__(self, cs: _Columns, charges):
        self.cs, self.charges = cs, charges
        self.parts, self.size = [np.zeros(1, np.int32)], 1
        self.group_values: dict = {}  # prop -> [None, str, ...] by compact index
        self._group: dict = {}  # prop -> lut offset
        self._values: dict = {}  # prop -> (lut offset, sorted filter values)

    def _add(self, arr) -> int:
        off = self.size
        self.parts.append(arr)
        self.size += arr.size
        return off

    def compact(self, p):
        """(lut offset, values by compact index) of dimension ``p``'s values present in the events."""
        if p not in self._group:
            pr = self.cs.present.get(p)
            ids = np.flatnonzero(pr[1:]) if pr is not None else np.zeros(0, np.int64)
            texts = [self.cs.texts[int(i)] for i in ids]
            order = sorted(range(len(ids)), key=lambda j: texts[j])
            lut = np.zeros(self.cs.nstrings + 1, np.int32)
            for rank, j in enumerate(order):
                lut[ids[j] + 1] = rank + 1
            self._group[p] = self._add(lut)
            self.group_values[p] = [None] + [texts[j] for j in order]
        return self._group[p], self.group_values[p]

    def values(self, p):
        """(lut offset, sorted values) of the values any filter names for dimension ``p``."""
        if p not in self._values:
            vs = sorted({v for ch in self.charges for f in ch.filters for v in f.values.get(p, ())})
            lut = np.zeros(self.cs.nstrings + 1, np.int32)
            for ix, v in enumerate(vs):
                sid = self.cs.strings.id(v)
                if sid is not None and sid < self.cs.nstrings:
                    lut[sid + 1] = ix + 1
            self._values[p] = (self._add(lut), vs)
        return self._values[p]

    def array(self):
        return np.concatenate(self.parts).astype(np.int32)


# ---- quantities


class _Quantities:
    """The Q / TERM / FAC tables: each distinct quantity once."""

    def __init__(self, cs: _Columns):
        self.cs = cs
        self.Q, self.TERM, self.FAC = [], [], []
        self.scale: list = []  # per quantity: Fraction D (value = D * int)
        self._index: dict = {}

    def _key(self, ch):
        m = ch.metric
        if m.aggregation == "count":
            return ("count",)
        if m.aggregation == "unique_count":
            return ("uid", m.field)
        util = ch.utilization
        scales = self.cs.scales
        fp = polymod.fix_poly(self.cs.polys[id(ch)], scales, scales[util.prop] if util is not None else 0)
        rules = {r.prop: r for r in reversed(m.per_event)}
        return ("poly", fp, tuple(sorted((p, rules[p]) for p in rules if any(p in t for t in fp.props))), util)

    def index(self, ch) -> int:
        key = self._key(ch)
        if key not in self._index:
            self._index[key] = len(self.Q)
            if key[0] == "count":
                self.Q.append(row(Q_NCOL, {Q_KIND: QK_COUNT, Q_UTIL: -1}))
                self.scale.append(Fraction(1))
            elif key[0] == "uid":
                self.Q.append(row(Q_NCOL, {Q_KIND: QK_UID, Q_UTIL: -1, Q_UID: self.cs.dslot[key[1]]}))
                self.scale.append(Fraction(1))
            else:
                self.Q.append(self._poly_row(*key[1:]))
                self.scale.append(key[1].scale)
        return self._index[key]

    def _poly_row(self, fp, rules, util):
        scales = self.cs.scales
        cells = {Q_KIND: QK_POLY, Q_TOFF: len(self.TERM), Q_TN: len(fp.coefs), Q_UTIL: -1}
        rules = dict(rules)
        for props, coef in zip(fp.props, fp.coefs):
            self.TERM.append(row(T_NCOL, {T_COEF: coef, T_FOFF: len(self.FAC), T_FN: len(props)}))
            self.FAC.extend(self._factor_row(p, rules.get(p), scales[p]) for p in props)
        if util is not None:
            us = scales[util.prop]
            cells.update({Q_UTIL: self.cs.nslot[util.prop],
                          Q_UFLOOR: int(Fraction(util.floor) / Fraction(10) ** us),
                          Q_UCEIL: int(Fraction(util.ceiling) / Fraction(10) ** us)})
        return row(Q_NCOL, cells)

    def _factor_row(self, p, rule, scale):
        cells = {FA_SLOT: self.cs.nslot[p], FA_FLAGS: 0}
        if rule is not None:
            for bit, col, v in ((PE_INC, FA_INC, rule.increment), (PE_MIN, FA_MIN, rule.minimum),
                                (PE_MAX, FA_MAX, rule.maximum)):
                if v is not None:
                    cells[FA_FLAGS] |= bit
                    cells[col] = _exact_int(v, scale, p)
        return row(FA_NCOL, cells)

    def arrays(self) -> dict:
        return dict(Q=_table(self.Q, Q_NCOL), TERM=_table(self.TERM, T_NCOL), FAC=_table(self.FAC, FA_NCOL))


# ---- programs: filters, buckets, windows, groups


def _flags(ch) -> int:
    agg = ch.metric.aggregation
    flags = 0
    if agg == "max":
        flags |= F_MAX
    if agg == "latest":
        flags |= F_LAST
    if ch.prorated and agg in ("sum", "unique_count"):
        flags |= F_PROR
    if ch.reads_cents():
        flags |= F_CENTS
    if needs_side(ch):
        flags |= F_SIDE
        if agg == "unique_count":
            flags |= F_UNIQUE
    return flags


def _signed64(bits: int) -> int:
    """A 64-bit mask as the int64 that holds it."""
    return bits - (1 << 64) if bits >= 1 << 63 else bits


def _group_count(ch, cards) -> int:
    G = 1
    for c in cards:
        G *= c
    if G >= MAX_GROUPS:
        raise EngineError(f"charge {ch.id!r}: its group by keys ({', '.join(ch.group_by)}) take {G:,} "
                          f"combinations of values in these events, more than {MAX_GROUPS:,}")
    return G


def _window_cells(ch, b):
    """(sorted window boundaries, window index + 1 of each cell between them) of bucket ``b``."""
    wins = ch.bucket_windows(b)
    bounds = sorted({x for w in wins for x in (w.from_ms, w.to_ms)})
    cells = [0] + [next((i + 1 for i, w in enumerate(wins) if w.from_ms <= x < w.to_ms), 0) for x in bounds]
    return len(wins) + 1, bounds, cells


@attrs.define
class _ProgramTables:
    """The CP / KEY / BKT / GK tables and the flat arrays they point into."""

    CP: list = attrs.Factory(list)
    KEY: list = attrs.Factory(list)
    masks: list = attrs.Factory(list)
    ordb: list = attrs.Factory(list)
    BKT: list = attrs.Factory(list)
    wb: list = attrs.Factory(list)
    cw: list = attrs.Factory(list)
    GK: list = attrs.Factory(list)

    def add(self, ch, cs: _Columns, luts: _Luts, quantities: _Quantities) -> Program:
        flags = _flags(ch)
        qi = quantities.index(ch)
        nf = len(ch.filters)
        if nf > MAX_FILTERS:
            raise EngineError(f"charge {ch.id!r}: more than {MAX_FILTERS} filters")
        k_off, ord_off = len(self.KEY), len(self.ordb)
        nkeys = self._add_filters(ch, cs, luts)
        g_off = len(self.GK)
        G = self._add_groups(ch, cs, luts)
        b_off = len(self.BKT)
        bucket_lines, lines = self._add_buckets(ch, G)
        self.CP.append(row(C_NCOL, {
            C_FLAGS: flags, C_Q: qi, C_NF: nf, C_ALL: _signed64((1 << nf) - 1), C_KOFF: k_off, C_KN: nkeys,
            C_ORD: ord_off, C_BOFF: b_off, C_GOFF: g_off, C_GN: len(ch.group_by), C_G: G,
            C_CENTS: cs.nslot.get(CENTS_PROP, 0),
        }))
        return Program(ch, qi, nf, G, ch.group_by, bucket_lines, lines, flags)

    def _add_filters(self, ch, cs, luts) -> int:
        """Per filter key a mask per value (bit j: the j-th most specific filter
        allows it); the bucket order -> filter index in ``ordb``."""
        nf = len(ch.filters)
        order = sorted(range(nf), key=lambda i: (-len(ch.filters[i].values), i))
        keys = sorted({k for f in ch.filters for k in f.values})
        for k in keys:
            voff, vs = luts.values(k)
            moff = len(self.masks)
            for vi in range(len(vs) + 1):
                bits = 0
                for j, fi in enumerate(order):
                    allowed = ch.filters[fi].values.get(k)
                    if allowed is None or (vi > 0 and vs[vi - 1] in allowed):
                        bits |= 1 << j
                self.masks.append(_signed64(bits))
            self.KEY.append(row(K_NCOL, {K_DIM: cs.dslot[k], K_VLUT: voff, K_MOFF: moff}))
        self.ordb.extend(order)
        return len(keys)

    def _add_groups(self, ch, cs, luts) -> int:
        """Groups: first key most significant, values in string order (0 = missing)."""
        cards = [len(luts.compact(g)[1]) for g in ch.group_by]
        G = _group_count(ch, cards)
        mult = G
        for g, c in zip(ch.group_by, cards):
            mult //= c
            self.GK.append(row(G_NCOL, {G_DIM: cs.dslot[g], G_LUT: luts.compact(g)[0], G_MULT: mult}))
        return G

    def _add_buckets(self, ch, G):
        """Per bucket (each filter, then the unfiltered rest) its lines and price windows."""
        line = 0
        bucket_lines = []
        for b in list(range(len(ch.filters))) + [None]:
            nw1, bounds, cells = _window_cells(ch, b)
            self.BKT.append(row(B_NCOL, {B_LINE: line, B_NW1: nw1, B_WBOFF: len(self.wb), B_WBN: len(bounds),
                                         B_CWOFF: len(self.cw)}))
            self.wb.extend(bounds)
            self.cw.extend(cells)
            bucket_lines.append((line, nw1))
            line += G * nw1
        return bucket_lines, line

    def arrays(self) -> dict:
        return dict(CP=_table(self.CP, C_NCOL), KEY=_table(self.KEY, K_NCOL), masks=_ints(self.masks),
                    ordb=_ints(self.ordb), BKT=_table(self.BKT, B_NCOL), wb=_ints(self.wb), cw=_ints(self.cw),
                    GK=_table(self.GK, G_NCOL))


# ---- plans, instances, slot blocks


@attrs.frozen
class _Blocks:
    """Plans (distinct program lists), their instances and slot blocks."""

    plan_subs: list  # per plan: subscription indices by rank
    plan_of_sub: list  # per subscription: its plan (-1: an empty period)
    instances: list  # [(plan index, charge index, program index)]
    INST: np.ndarray
    inst_ign: np.ndarray
    Lp: list  # per plan: dense lines per subscription and reason
    Ep: list  # ... of its ext instances
    pbase: list  # per plan: first dense slot
    xbase: list  # ... first dense ext slot
    lkbase: list  # ... first line key
    n_dense: int
    n_xdense: int
    n_lines: int
    n_ign: int
    hashed: bool
    hashed_ext: bool


def _plans(of_sub, periods):
    """Subscriptions with a non-empty period, grouped by their program list."""
    plan_keys, plan_of_sub, plan_subs = {}, [], []
    for si, cps in enumerate(of_sub):
        if periods[si].empty:
            plan_of_sub.append(-1)
            continue
        P = plan_keys.setdefault(cps, len(plan_keys))
        if P == len(plan_subs):
            plan_subs.append([])
        plan_of_sub.append(P)
        plan_subs[P].append(si)
    return list(plan_keys), plan_of_sub, plan_subs


def _dense_offsets(INST, instances, programs, plan_subs, R):
    """Line offsets of the dense instances in their plan's block (I_LOFF, I_XOFF);
    a block too large is hashed (I_HASHED).  -> (Lp, Ep, hashed instances)."""
    Lp, Ep = [0] * len(plan_subs), [0] * len(plan_subs)
    hashed = []
    for x, (P, _, cp) in enumerate(instances):
        pr = programs[cp]
        if len(plan_subs[P]) * pr.lines * R > DENSE_LIMIT:
            hashed.append(x)
            INST[x, I_HASHED] = 1
            continue
        INST[x, I_LOFF] = Lp[P]
        Lp[P] += pr.lines
        if pr.flags & F_EXT:
            INST[x, I_XOFF] = Ep[P]
            Ep[P] += pr.lines
    return Lp, Ep, hashed


def _hashed_bases(INST, hashed, instances, programs, plan_subs, R, base) -> bool:
    """Virtual slot ids of the hashed instances (I_BASE, I_STRIDE), above the
    dense ones; -> whether one of them needs ext."""
    ext = False
    for x in hashed:
        P, _, cp = instances[x]
        pr = programs[cp]
        INST[x, I_BASE], INST[x, I_STRIDE] = base, pr.lines * R
        base += len(plan_subs[P]) * pr.lines * R
        ext |= bool(pr.flags & F_EXT)
    if base >= 2**62:
        raise EngineError("too many line slots in one run")
    return ext


def _instance_rows(INST, inst_ign, subs, instances, programs, plan_subs) -> int:
    """Program, recurring flag and ignored-counter base of every instance; -> counters used."""
    ign = 0
    for x, (P, ci, cp) in enumerate(instances):
        ch = subs[plan_subs[P][0]].charges[ci]
        INST[x, I_CP] = cp
        INST[x, I_REC] = 1 if (ch.metric.recurring and not ch.pay_in_advance) else 0
        INST[x, I_IGN] = inst_ign[x] = ign
        ign += len(plan_subs[P]) * (programs[cp].nf + 1)
    return ign


def _slot_blocks(subs, of_sub, periods, programs, R) -> _Blocks:
    plan_list, plan_of_sub, plan_subs = _plans(of_sub, periods)
    instances = [(P, ci, cp) for P, cps in enumerate(plan_list) for ci, cp in enumerate(cps)]
    INST = np.zeros((max(len(instances), 1), I_NCOL), np.int64)
    inst_ign = np.zeros(len(instances), np.int64)
    Lp, Ep, hashed = _dense_offsets(INST, instances, programs, plan_subs, R)
    pbase, xbase, lkbase = [], [], []
    n_dense = n_xdense = n_lines = 0
    for P, lst in enumerate(plan_subs):
        pbase.append(n_dense)
        xbase.append(n_xdense)
        lkbase.append(n_lines)
        n_dense += len(lst) * R * Lp[P]
        n_xdense += len(lst) * R * Ep[P]
        n_lines += len(lst) * Lp[P]
    hashed_ext = _hashed_bases(INST, hashed, instances, programs, plan_subs, R, n_dense)
    n_ign = _instance_rows(INST, inst_ign, subs, instances, programs, plan_subs)
    return _Blocks(plan_subs, plan_of_sub, instances, INST, inst_ign, Lp, Ep, pbase, xbase, lkbase, n_dense,
                   n_xdense, n_lines, n_ign, bool(hashed), hashed_ext)


# ---- event codes, (plan, code) lists


class _CodeTables(NamedTuple):
    code_lut: np.ndarray  # dictionary id -> code index (-1: no program reads it)
    ncodes: int
    pk_start: np.ndarray  # per (plan, code): first entry in pk_inst
    pk_inst: np.ndarray  # the instances of each (plan, code)
    pk_qstart: np.ndarray  # per (plan, code): first entry in pk_q
    pk_q: np.ndarray  # the quantities each (plan, code) needs
    pk_rec: np.ndarray  # whether some instance of it is recurring
    pk_nside: np.ndarray  # side entries one event of it appends


def _code_lut(codes, cs: _Columns):
    code_lut = np.full(max(cs.nstrings, 1), -1, np.int32)
    for i, c in enumerate(codes):
        sid = cs.strings.id(c)
        if sid is not None and sid < cs.nstrings:
            code_lut[sid] = i
    return code_lut


def _code_tables(charges, programs, blocks: _Blocks, cs: _Columns) -> _CodeTables:
    codes = sorted({ch.metric.event_code for ch in charges})
    code_idx = {c: i for i, c in enumerate(codes)}
    ncodes = max(len(codes), 1)
    npk = len(blocks.plan_subs) * ncodes
    pk_lists = [[] for _ in range(npk)]
    for x, (P, _, cp) in enumerate(blocks.instances):
        pk_lists[P * ncodes + code_idx[charges[cp].metric.event_code]].append(x)
    pk_start = np.zeros(npk + 1, np.int64)
    pk_qstart = np.zeros(npk + 1, np.int64)
    pk_inst, pk_q = [], []
    pk_rec = np.zeros(max(npk, 1), np.int64)
    pk_nside = np.zeros(max(npk, 1), np.int64)
    for k, lst in enumerate(pk_lists):
        pk_inst.extend(lst)
        pk_start[k + 1] = len(pk_inst)
        pk_q.extend(sorted({programs[blocks.instances[x][2]].q for x in lst}))
        pk_qstart[k + 1] = len(pk_q)
        pk_rec[k] = int(any(blocks.INST[x, I_REC] for x in lst))
        pk_nside[k] = sum(1 for x in lst if programs[blocks.instances[x][2]].flags & F_SIDE)
    return _CodeTables(_code_lut(codes, cs), ncodes, pk_start, _ints(pk_inst), pk_qstart, _ints(pk_q), pk_rec,
                       pk_nside)


# ---- subscriptions


def _sub_table(subs, periods, blocks: _Blocks, R, cs: _Columns):
    """-> (SUB, dictionary id -> subscription index, day bounds of every period)."""
    sub_lut = np.full(max(cs.nstrings, 1), -1, np.int32)
    SUB = np.zeros((len(subs) + 1, S_NCOL), np.int64)
    bounds = []
    rank_of = {si: rank for lst in blocks.plan_subs for rank, si in enumerate(lst)}
    for si, s in enumerate(subs):
        SUB[si, S_BOFF] = len(bounds)
        P = blocks.plan_of_sub[si]
        if P < 0:
            continue
        sid = cs.strings.id(s.external_id)
        if sid is not None and sid < cs.nstrings:
            sub_lut[sid] = si
        per, rank, Lp, Ep = periods[si], rank_of[si], blocks.Lp[P], blocks.Ep[P]
        SUB[si, S_PLAN], SUB[si, S_RANK], SUB[si, S_LO], SUB[si, S_HI] = P, rank, per.lo, per.hi
        SUB[si, S_EFF] = per.eff_days
        SUB[si, S_DBASE], SUB[si, S_LP] = blocks.pbase[P] + rank * R * Lp, Lp
        SUB[si, S_XBASE], SUB[si, S_EP] = blocks.xbase[P] + rank * R * Ep, Ep
        bounds.extend(per.day_bounds)
    SUB[len(subs), S_BOFF] = len(bounds)
    return SUB, sub_lut, bounds


def _ints(values):
    """An int64 vector (one zero when empty: numba takes no empty typed array here)."""
    return np.asarray(values if len(values) else [0], np.int64)


def _table(rows, width):
    """An int64 table of ``width`` columns (one zero row when empty)."""
    return np.asarray(rows or [[0] * width], np.int64).reshape(-1, width)


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
