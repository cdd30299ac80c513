"""Compile subscriptions + event columns into the tables the kernels run on.

Aggregation does not depend on prices, so charges are reduced to *programs*
keyed by structure (metric quantity, aggregation, filter conditions, group
keys, price-window bounds, flags): 1 000 subscriptions x 10 charges share a
handful of programs.  A *program list* is a distinct list of programs (one per
distinct charge list); an *instance* is one charge of a program list.  Each
subscription of a program list owns ``R x Lp`` dense slots (``R`` end reasons,
``Lp`` lines of all the program list's instances), laid out reason-major inside the
program list's block: slot = program list base + reason * (subscriptions * Lp) +
subscription rank * Lp + instance line offset + line.  Most events share one
end reason, so the slots they write lie together in one fifth of the block
(it stays in the core's cache: 1.6x faster than subscription-major).  Inside an instance a line is
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

``build`` is a chain of small builders, each returning a typed part: the
programs (``_Programs``), the loaded columns (``_Columns``), the per-program
tables (``program_tables``), the slot blocks (``_Blocks``), the (program list, code)
lists (``_CodeTables``) and the SUB table.  Every table's columns are named
in ``layout``.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs
import numpy as np

from gpubill.engine.spec import poly as polymod
from gpubill.engine.fast.accumulate import chunks, parallel_map
from gpubill.engine.fast.kernels import NO_EXPONENT, _finest_exponent, _mark_present, _min_exponent, address
from gpubill.engine.fast.layout import (
    F_EXT, F_SIDE, I_BASE, I_CP, I_HASHED, I_IGN, I_LOFF, I_NCOL, I_REC, I_STRIDE, I_XOFF, S_BOFF, S_DBASE, S_EFF, S_EP,
    S_HI, S_LO, S_LP, S_NCOL, S_PLIST, S_RANK, S_XBASE, vector,
)
from gpubill.engine.pricing.money import EngineError
from gpubill.engine.calendar.coverage import coverage_of
from gpubill.engine.spec.program import END_REASON
from gpubill.engine.fast.program_tables import Luts, ProgramTables, Quantities, needs_side

CENTS_PROP = "precise_total_amount_cents"
DENSE_LIMIT = 1 << 23  # slots of one instance block above which it is hashed
FINER_DIGITS = 6  # decimals a column's scale may add to what its metrics ask for


def program_key(ch):
    """Everything about a charge that changes how its events aggregate."""
    m = ch.metric
    return (
        m.event_code, m.aggregation, m.quantity(), m.field if m.aggregation == "unique_count" else None,
        m.unit_scale, m.per_event, m.recurring, tuple(sorted(m.property_scales.items())),
        tuple((f.canonical,
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
class Tables:
    """Everything a kernel call and the decoding after it need."""

    subs: list
    coverages: list
    arrays: dict
    programs: list  # [Program]
    q_scale: list  # per quantity: Fraction D (value = D * int)
    instances: list  # [(program list index, charge index, program index)]
    inst_subs: list  # per instance: np.int64 array of subscription indices by rank
    inst_ign: np.ndarray
    hashed: bool  # some instance block goes through the hash table
    hashed_ext: bool  # ... and needs max / latest / prorated / cents
    n_dense: int  # dense slots: program list base + reason * subscriptions * Lp + rank * Lp + instance line offset + line
    n_xdense: int  # dense ext slots (same shape over the ext instances)
    n_ign: int
    R: int
    reason_values: list
    group_values: dict  # prop -> [None, str, ...] by compact index
    cents_scale: int
    cols: object
    layout: dict  # pbase, Lp, nsubs, lkbase (first line key), plist_subs, n_lines (per program list)


def _coverages(subs):
    memo, out = {}, []
    for s in subs:
        k = (s.period_from_ms, s.period_to_ms, s.started_at_ms, s.terminated_at_ms, s.timezone)
        if k not in memo:
            memo[k] = coverage_of(s)
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


def build(subs, cols) -> Tables:
    """Subscriptions + event columns -> the kernel tables and what decoding needs."""
    subs = list(subs)
    ext = [s.external_id for s in subs]
    if len(set(ext)) != len(ext):
        raise EngineError("two subscriptions share an external_id in one run")
    coverages = _coverages(subs)
    progs = _dedupe_programs(subs)
    cs = _load_columns(progs.charges, cols)
    luts = Luts(cs, progs.charges)
    reason_dim = cs.dslot.get(END_REASON, -1)
    rlut, reason_values = luts.compact(END_REASON) if reason_dim >= 0 else (0, [None])
    R = len(reason_values)
    quantities = Quantities(cs)
    pt = ProgramTables()
    programs = [pt.add(ch, cs, luts, quantities, cs.nslot.get(CENTS_PROP, 0)) for ch in progs.charges]
    blocks = _slot_blocks(subs, progs.of_sub, coverages, programs, R)
    codes = _code_tables(progs.charges, programs, blocks, cs)
    SUB, sub_lut, bounds = _subtable(subs, coverages, blocks, R, cs)
    arrays = dict(
        **_column_arrays(cs), sub_lut=sub_lut, SUB=SUB, **codes._asdict(), INST=blocks.INST,
        **pt.arrays(), luts=luts.array(), **quantities.arrays(), R=R, reason_dim=reason_dim, rlut=rlut,
        op_dim=cs.dslot.get("operation_type", -1), remove_id=_remove_id(cs.strings), sub_bounds=vector(bounds),
        n_dense=blocks.n_dense, n_xdense=blocks.n_xdense, nstrings=cs.nstrings,
    )
    inst_subs = [np.asarray(blocks.plist_subs[P], np.int64) for P, _, _ in blocks.instances]
    layout = dict(pbase=np.asarray(blocks.pbase, np.int64), Lp=np.asarray(blocks.Lp, np.int64),
                  nsubs=np.asarray([len(x) for x in blocks.plist_subs], np.int64),
                  lkbase=np.asarray(blocks.lkbase, np.int64),
                  plist_subs=[np.asarray(x, np.int64) for x in blocks.plist_subs], n_lines=blocks.n_lines)
    return Tables(
        subs, coverages, arrays, programs, quantities.scale, blocks.instances, inst_subs, blocks.inst_ign,
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
    plist_memo: dict = {}
    for s in subs:
        key = id(s.charges)
        if key not in plist_memo:
            cps = []
            for ch in s.charges:
                cp = by_id.get(id(ch))
                if cp is None:
                    cp = by_key.setdefault(program_key(ch), len(charges))
                    if cp == len(charges):
                        charges.append(ch)
                    by_id[id(ch)] = cp
                cps.append(cp)
            plist_memo[key] = (s.charges, tuple(cps))  # keep s.charges alive: ids stay unique
        of_sub.append(plist_memo[key][1])
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
    polys, want = _numeric_wants(charges)
    prefetch = getattr(cols, "prefetch", None)
    if prefetch is not None:  # columns read over the network: every property in one round trip (numbers alone
        # of those only computed with)
        prefetch(_dim_names(charges), sorted(want))
    dims = _load_dims(cols, _dim_names(charges), n)
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
        dim_cols=list(cs.dims.values()),  # by dptr index: the arrays the addresses point into
        num_cols=list(cs.num.values()),  # by mptr / eptr index: (mantissas, exponents)
    )


# ---- program lists, instances, slot blocks


@attrs.frozen
class _Blocks:
    """Plans (distinct program lists), their instances and slot blocks."""

    plist_subs: list  # per program list: subscription indices by rank
    plist_of_sub: list  # per subscription: its program list (-1: an empty period)
    instances: list  # [(program list index, charge index, program index)]
    INST: np.ndarray
    inst_ign: np.ndarray
    Lp: list  # per program list: dense lines per subscription and reason
    Ep: list  # ... of its ext instances
    pbase: list  # per program list: first dense slot
    xbase: list  # ... first dense ext slot
    lkbase: list  # ... first line key
    n_dense: int
    n_xdense: int
    n_lines: int
    n_ign: int
    hashed: bool
    hashed_ext: bool


def _plists(of_sub, coverages):
    """Subscriptions with a non-empty period, grouped by their program list."""
    plist_keys, plist_of_sub, plist_subs = {}, [], []
    for si, cps in enumerate(of_sub):
        if coverages[si].empty:
            plist_of_sub.append(-1)
            continue
        P = plist_keys.setdefault(cps, len(plist_keys))
        if P == len(plist_subs):
            plist_subs.append([])
        plist_of_sub.append(P)
        plist_subs[P].append(si)
    return list(plist_keys), plist_of_sub, plist_subs


def _dense_offsets(INST, instances, programs, plist_subs, R):
    """Line offsets of the dense instances in their program list's block (I_LOFF, I_XOFF);
    a block too large is hashed (I_HASHED).  -> (Lp, Ep, hashed instances)."""
    Lp, Ep = [0] * len(plist_subs), [0] * len(plist_subs)
    hashed = []
    for x, (P, _, cp) in enumerate(instances):
        pr = programs[cp]
        if len(plist_subs[P]) * pr.lines * R > DENSE_LIMIT:
            hashed.append(x)
            INST[x, I_HASHED] = 1
            continue
        INST[x, I_LOFF] = Lp[P]
        Lp[P] += pr.lines
        if pr.flags & F_EXT:
            INST[x, I_XOFF] = Ep[P]
            Ep[P] += pr.lines
    return Lp, Ep, hashed


def _hashed_bases(INST, hashed, instances, programs, plist_subs, R, base) -> bool:
    """Virtual slot ids of the hashed instances (I_BASE, I_STRIDE), above the
    dense ones; -> whether one of them needs ext."""
    ext = False
    for x in hashed:
        P, _, cp = instances[x]
        pr = programs[cp]
        INST[x, I_BASE], INST[x, I_STRIDE] = base, pr.lines * R
        base += len(plist_subs[P]) * pr.lines * R
        ext |= bool(pr.flags & F_EXT)
    if base >= 2**62:
        raise EngineError("too many line slots in one run")
    return ext


def _instance_rows(INST, inst_ign, subs, instances, programs, plist_subs) -> int:
    """Program, recurring flag and ignored-counter base of every instance; -> counters used."""
    ign = 0
    for x, (P, ci, cp) in enumerate(instances):
        ch = subs[plist_subs[P][0]].charges[ci]
        INST[x, I_CP] = cp
        INST[x, I_REC] = 1 if (ch.metric.recurring and not ch.pay_in_advance) else 0
        INST[x, I_IGN] = inst_ign[x] = ign
        ign += len(plist_subs[P]) * (programs[cp].nf + 1)
    return ign


def _slot_blocks(subs, of_sub, coverages, programs, R) -> _Blocks:
    plists, plist_of_sub, plist_subs = _plists(of_sub, coverages)
    instances = [(P, ci, cp) for P, cps in enumerate(plists) for ci, cp in enumerate(cps)]
    INST = np.zeros((max(len(instances), 1), I_NCOL), np.int64)
    inst_ign = np.zeros(len(instances), np.int64)
    Lp, Ep, hashed = _dense_offsets(INST, instances, programs, plist_subs, R)
    pbase, xbase, lkbase = [], [], []
    n_dense = n_xdense = n_lines = 0
    for P, lst in enumerate(plist_subs):
        pbase.append(n_dense)
        xbase.append(n_xdense)
        lkbase.append(n_lines)
        n_dense += len(lst) * R * Lp[P]
        n_xdense += len(lst) * R * Ep[P]
        n_lines += len(lst) * Lp[P]
    hashed_ext = _hashed_bases(INST, hashed, instances, programs, plist_subs, R, n_dense)
    n_ign = _instance_rows(INST, inst_ign, subs, instances, programs, plist_subs)
    return _Blocks(plist_subs, plist_of_sub, instances, INST, inst_ign, Lp, Ep, pbase, xbase, lkbase, n_dense,
                   n_xdense, n_lines, n_ign, bool(hashed), hashed_ext)


# ---- event codes, (program list, code) lists


class _CodeTables(NamedTuple):
    code_lut: np.ndarray  # dictionary id -> code index (-1: no program reads it)
    ncodes: int
    pk_start: np.ndarray  # per (program list, code): first entry in pk_inst
    pk_inst: np.ndarray  # the instances of each (program list, code)
    pk_qstart: np.ndarray  # per (program list, code): first entry in pk_q
    pk_q: np.ndarray  # the quantities each (program list, code) needs
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
    npk = len(blocks.plist_subs) * ncodes
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
    return _CodeTables(_code_lut(codes, cs), ncodes, pk_start, vector(pk_inst), pk_qstart, vector(pk_q), pk_rec,
                       pk_nside)


# ---- subscriptions


def _subtable(subs, coverages, blocks: _Blocks, R, cs: _Columns):
    """-> (SUB, dictionary id -> subscription index, day bounds of every period)."""
    sub_lut = np.full(max(cs.nstrings, 1), -1, np.int32)
    SUB = np.zeros((len(subs) + 1, S_NCOL), np.int64)
    bounds = []
    rank_of = {si: rank for lst in blocks.plist_subs for rank, si in enumerate(lst)}
    for si, s in enumerate(subs):
        SUB[si, S_BOFF] = len(bounds)
        P = blocks.plist_of_sub[si]
        if P < 0:
            continue
        sid = cs.strings.id(s.external_id)
        if sid is not None and sid < cs.nstrings:
            sub_lut[sid] = si
        cov, rank, Lp, Ep = coverages[si], rank_of[si], blocks.Lp[P], blocks.Ep[P]
        SUB[si, S_PLIST], SUB[si, S_RANK], SUB[si, S_LO], SUB[si, S_HI] = P, rank, cov.lo, cov.hi
        SUB[si, S_EFF] = cov.eff_days
        nsub = len(blocks.plist_subs[P])  # reason-major in the program list's block: S_LP / S_EP are the reason strides
        SUB[si, S_DBASE], SUB[si, S_LP] = blocks.pbase[P] + rank * Lp, nsub * Lp
        SUB[si, S_XBASE], SUB[si, S_EP] = blocks.xbase[P] + rank * Ep, nsub * Ep
        bounds.extend(cov.day_bounds)
    SUB[len(subs), S_BOFF] = len(bounds)
    return SUB, sub_lut, bounds


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
