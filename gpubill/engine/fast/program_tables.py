"""The per-program kernel tables: lookup tables, quantities, filters, buckets, groups.

``tables.build`` hands each distinct charge program (a representative charge)
to ``ProgramTables.add`` once, with the loaded event columns: the program's
quantity is deduplicated into the Q / TERM / FAC tables (``Quantities``),
its filter keys become per-value bitmasks (KEY, masks, ordb), its group by
keys dense per-key remaps into one int32 lookup array (``Luts``), its
buckets the lines and price-window boundaries they own (BKT, wb, cw), and
one CP row points into all of them.  Every row is written by column name
(``layout.row``); the kernels read the tables with the same names.
"""

from __future__ import annotations

from fractions import Fraction

import attrs
import numpy as np

from gpubill.engine.spec import poly as polymod
from gpubill.engine.fast.layout import (
    B_CWOFF, B_LINE, B_NCOL, B_NW1, B_WBN, B_WBOFF, C_ALL, C_BOFF, C_CENTS, C_FLAGS, C_G, C_GN, C_GOFF, C_KN, C_KOFF,
    C_NCOL, C_NF, C_ORD, C_Q, F_CENTS, F_LAST, F_MAX, F_PROR, F_SIDE, F_UNIQUE, FA_FLAGS, FA_INC, FA_MAGIC, FA_MAX, FA_MIN,
    FA_NCOL, FA_SHIFT, FA_SLOT, G_DIM, G_LUT, G_MULT, G_NCOL, K_DIM, K_MOFF, K_NCOL, K_VLUT, PE_INC, PE_MAX, PE_MIN, Q_KIND,
    Q_NCOL, Q_TN, Q_TOFF, Q_UCEIL, Q_UFLOOR, Q_UID, Q_UTIL, QK_COUNT, QK_POLY, QK_UID, T_COEF, T_FN, T_FOFF, T_NCOL,
    row, table, vector,
)
from gpubill.engine.fast.kernels import divider
from gpubill.engine.pricing.money import EngineError
from gpubill.engine.spec.program import Graduated, Percentage, match_order

MAX_FILTERS = 63
MAX_GROUPS = 2**40  # value combinations of one charge's group by keys (slot ids stay int64)


def needs_side(charge) -> bool:
    agg = charge.metric.aggregation
    if charge.pay_in_advance or agg in ("unique_count", "weighted_sum"):
        return True
    ms = list(charge.models())
    if agg != "count" and any(isinstance(m, Percentage) for m in ms):
        return True
    return charge.prorated and agg == "sum" and any(isinstance(m, Graduated) for m in ms)


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


# ---- lookup tables


class Luts:
    """The lookup tables, one int32 array (0 = missing / not mentioned): per
    grouped dimension its values' compact index in string order, per filtered
    dimension its filter values' index (``cs``: the loaded event columns, ``tables._Columns``)."""

    def __init__(self, cs, charges):
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


class Quantities:
    """The Q / TERM / FAC tables: each distinct quantity once (``cs``: the loaded event columns)."""

    def __init__(self, cs):
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
        inc = cells.get(FA_INC, 1)
        cells[FA_MAGIC], cells[FA_SHIFT] = divider(inc) if inc >= 2 else (0, -1)
        return row(FA_NCOL, cells)

    def arrays(self) -> dict:
        return dict(Q=table(self.Q, Q_NCOL), TERM=table(self.TERM, T_NCOL), FAC=table(self.FAC, FA_NCOL))


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
class ProgramTables:
    """The CP / KEY / BKT / GK tables and the flat arrays they point into."""

    CP: list = attrs.Factory(list)
    KEY: list = attrs.Factory(list)
    masks: list = attrs.Factory(list)
    ordb: list = attrs.Factory(list)
    BKT: list = attrs.Factory(list)
    wb: list = attrs.Factory(list)
    cw: list = attrs.Factory(list)
    GK: list = attrs.Factory(list)

    def add(self, ch, cs, luts: Luts, quantities: Quantities, cents_slot: int) -> Program:
        """Program ``ch`` into the tables (``cs``: the loaded event columns,
        ``cents_slot``: the numeric column of the amount in cents)."""
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
            C_CENTS: cents_slot,
        }))
        return Program(ch, qi, nf, G, ch.group_by, bucket_lines, lines, flags)

    def _add_filters(self, ch, cs, luts) -> int:
        """Per filter key a mask per value (bit j: the j-th most specific filter
        allows it); the bucket order -> filter index in ``ordb``."""
        order = match_order(ch.filters)
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
        return dict(CP=table(self.CP, C_NCOL), KEY=table(self.KEY, K_NCOL), masks=vector(self.masks),
                    ordb=vector(self.ordb), BKT=table(self.BKT, B_NCOL), wb=vector(self.wb), cw=vector(self.cw),
                    GK=table(self.GK, G_NCOL))


def _exact_int(v, scale, prop):
    x = Fraction(v) / Fraction(10) ** scale
    if x.denominator != 1:  # pragma: no cover - scales include the rule's exponent
        raise EngineError(f"per-event rounding of {prop!r} is finer than its scale")
    return int(x)
