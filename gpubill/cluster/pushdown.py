"""Rating pushed down to the shards: ``rate_pushed_down(events, specs, window) -> RateResult``.

The result equals ``gpubill.engine.fast.rate.rate(specs, events.read_columns(**window))``
(exact: lines are Decimal). Each subscription's events live on one shard, so
each shard, queried directly on ``events_local FINAL`` in a thread of its own,
reduces its subscriptions' events to one row per (subscription, charge, filter
bucket, group, price window, end reason) and only those sums cross the
network. Python turns them into ``LineUsage`` values, which the engine's own
Decimal pricing (``price.assemble_run``) prices.

Pushed down, per charge: count, sum, max, latest (greatest (timestamp, id)),
unique_count (the last operation of each id by (timestamp, id)), weighted_sum
(each event's quantity x the milliseconds from max(its timestamp, the covered
period's start) to the period's end rounded up to the second), prorated sum
(each event's quantity x its local days left in the covered period); per-event
rounding (``PerEvent``), utilization, unit scale and the quantity polynomial;
filters (bucket = first match in ``match_order``), group_by values, price
windows; end-reason maps with each job's end reason given to its events
(``store.job_reason``: the latest ended event of (subscription, job_id,
attempt) among the events read, any code); dynamic cents; ignored counts
(a quantity property missing or not strictly numeric).

Rated by the fast engine over the cluster's columns instead (the *column
path*), per subscription: pay-in-advance charges, percentage models (but on
a count), prorated unique_count, prorated sum priced by graduated tiers; a subscription
with a value the store could not hold (exponent -127, rated as unrated by the
engine) and one whose bounds could overflow Int64 in SQL.

Exactness: each quantity is an Int64 polynomial over property mantissas
aligned to one exponent per (shard, charge, property) (the smallest the
shard's events of those subscriptions hold, and fine enough for the rounding
and utilization constants), with ``fix_poly``'s integer coefficients; the
rational scale is applied in Python. A first query per shard gives, per
subscription, code and property, the exponent range and the largest
|mantissa|; from those a subscription is pushed down only when every value,
rounding step, product and the sum over all its events stay below 2**63.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import attrs

from gpubill.engine.calendar.coverage import DAY_MS, NEG_INF, coverage_of
from gpubill.engine.fast import exact
from gpubill.engine.fast.rate import rate
from gpubill.engine.pricing.fees import merged as merged_fees
from gpubill.engine.pricing.money import EngineError
from gpubill.engine.pricing.price import UsageSource, assemble_run
from gpubill.engine.pricing.usage import LineUsage
from gpubill.engine.spec import poly as polymod
from gpubill.engine.spec.program import Graduated, Percentage, RateResult, match_order
from gpubill.store.job_reason import ATTEMPT, END_REASON, JOB_ID

from . import pushdown_sql as sq
from .client import QUERY_SETTINGS, shard_client
from .columns import ClusterColumns
from .select import Selection

I64 = 2**63 - 1
MAX_SHIFT = 18  # the largest exponent difference a value is scaled by (10**18 < 2**63)
CENTS = "precise_total_amount_cents"
REMOVE = "remove"
OPERATION = "operation_type"


# ---- which subscriptions can be pushed down, from their plans alone


def charge_decomposes(ch) -> bool:
    """The charge's lines follow from per-line sums (no per-event sequence)."""
    agg = ch.metric.aggregation
    if ch.pay_in_advance:
        return False
    if ch.prorated and agg == "unique_count":
        return False
    for m in ch.models():
        if isinstance(m, Percentage) and agg != "count":
            return False
        if ch.prorated and agg == "sum" and isinstance(m, Graduated):  # prorated per event through the tiers
            return False
    return True


@attrs.frozen
class _Quantity:
    """One charge's per-event quantity: Int64 SQL over scaled properties, and the rational scale."""

    kind: str  # count | uid | poly
    props: tuple = ()  # the properties that must be strictly numeric (poly and utilization)
    fixed: object = None  # polymod.FixedPoly
    rules: dict = attrs.field(factory=dict)  # prop -> PerEvent (the first per property)


def _quantity(ch) -> _Quantity:
    m = ch.metric
    if m.aggregation == "count":
        return _Quantity("count")
    if m.aggregation == "unique_count":
        return _Quantity("uid")
    poly = polymod.compile_expr(m.quantity(), m.unit_scale)
    names = list(poly.props())
    if ch.utilization is not None and ch.utilization.prop not in names:
        names.append(ch.utilization.prop)
    rules = {r.prop: r for r in reversed(m.per_event)}
    rules = {p: r for p, r in rules.items() if p in poly.props()}
    return _Quantity("poly", tuple(names), poly, rules)


def _finest(values) -> int:
    """The largest exponent e with every value an integer multiple of 10**e."""
    from decimal import Decimal
    return min([polymod.decimal_exponent(Decimal(v)) for v in values if v is not None] or [127])


# ---- the per-shard work


def _needs(ch) -> set:
    """The properties a charge's lines read (quantity, utilization, filters, groups, ids, end reason)."""
    m = ch.metric
    names = set(_quantity(ch).props) | {END_REASON} | set(ch.group_by)
    for f in ch.filters:
        names |= set(f.values)
    if m.aggregation == "unique_count":
        names |= {m.field, OPERATION}
    return names


@attrs.define
class _Stats:
    """What the first query found on one shard, per subscription and code."""

    props: dict  # (sub, code, prop) -> (held, min e, max e, max |m|, unholdable), where present
    events: dict  # (sub, code) -> (n, held cents, min e, max e, max |m|, unholdable cents)
    present: set  # the properties some event holds
    numbers: set  # the properties some event holds as a JSON number

    def has_prop(self, name: str) -> bool:
        return name in self.present


@attrs.frozen
class _Group:
    """The subscriptions of one shard that share one charge at one index."""

    ci: int
    charge: object
    subs: tuple  # external ids
    si: dict  # external id -> sub index


class _Shard:
    def __init__(self, events, host: str, port: int):
        self.events, self.host, self.port = events, host, port
        self.db = events.db
        self.client = None

    def run(self, sql: str) -> list:
        if self.client is None:
            self.client = shard_client(self.host, self.port)
        return self.events.cluster.run_on(self.client, sql, None, columnar=False, settings=QUERY_SETTINGS)

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()

    def stats(self, sel: Selection, subs, names) -> _Stats:
        names = sorted(set(names))
        props, evs, present, numbers = {}, {}, set(), set()
        w = sq.PROP_STATS
        for row in self.run(sq.stats_sql(self.db, sel, subs, names)):
            s, c = row[0], row[1]
            evs[(s, c)] = tuple(row[2:8])
            for j, n in enumerate(names):
                has, held, lo, hi, top, bad, number = row[8 + w * j: 8 + w * (j + 1)]
                if has:
                    present.add(n)
                    props[(s, c, n)] = (held, lo, hi, top, bad)
                if number:
                    numbers.add(n)
        return _Stats(props, evs, present, numbers)


class _Plan:
    """One charge group's SQL on one shard: scales chosen, bounds proved (``fits``)."""

    def __init__(self, group: _Group, stats: _Stats, bounds: dict, sel: Selection, with_jobs: bool):
        self.g, self.stats, self.bounds, self.sel, self.with_jobs = group, stats, bounds, sel, with_jobs
        ch = group.charge
        self.ch = ch
        self.code = ch.metric.event_code
        self.q = _quantity(ch)
        self.reads_cents = ch.reads_cents()
        self.weighted = ch.metric.aggregation == "weighted_sum"
        self.prorated = ch.prorated and ch.metric.aggregation == "sum"
        self.scales: dict = {}
        self.fixed = None
        self.D = Fraction(1)
        self.cents_scale = 0
        self._choose_scales()

    def _prop_stats(self, sub, p):
        return self.stats.props.get((sub, self.code, p))

    def _choose_scales(self) -> None:
        q, ch = self.q, self.ch
        if q.kind == "poly":
            for p in q.props:
                found = [v[1] for s in self.g.subs if (v := self._prop_stats(s, p)) and v[0]]
                consts = []
                r = q.rules.get(p)
                if r is not None:
                    consts += [r.increment, r.minimum, r.maximum]
                u = ch.utilization
                if u is not None and u.prop == p:
                    consts += [u.floor, u.ceiling]
                self.scales[p] = min(found + [_finest(consts), 0])
            u = ch.utilization
            self.fixed = polymod.fix_poly(q.fixed, self.scales, self.scales[u.prop] if u is not None else 0)
            self.D = self.fixed.scale
        if self.reads_cents:
            found = [v[2] for s in self.g.subs if (v := self.stats.events.get((s, self.code))) and v[1]]
            self.cents_scale = min(found + [0])

    # -- bounds
    def _value_bound(self, sub, p) -> int | None:
        """The largest |value| of property p at its scale after rounding; None: it could overflow."""
        v = self._prop_stats(sub, p)
        b = 0
        if v and v[0]:
            shift = v[2] - self.scales[p]
            if shift > MAX_SHIFT:
                return None
            b = v[3] * 10**shift
        if b > I64:
            return None
        r = self.q.rules.get(p)
        if r is not None:
            s = self.scales[p]
            inc = sq.at_scale(r.increment, s) if r.increment is not None else 0
            mn = abs(sq.at_scale(r.minimum, s)) if r.minimum is not None else 0
            mx = abs(sq.at_scale(r.maximum, s)) if r.maximum is not None else 0
            if b + 2 * mn + inc > I64:
                return None
            b = max(b + 2 * mn + inc, mx)
        return b

    def fits(self, sub) -> bool:
        """Every value this charge reads of the subscription is held, and no Int64 can overflow."""
        n = self.stats.events.get((sub, self.code), (0,))[0]
        if not n:
            return True
        if any((v := self._prop_stats(sub, p)) and v[4] for p in self.q.props):
            return False  # a value the store could not hold: the engine leaves the subscription out
        if self.reads_cents and self.stats.events[(sub, self.code)][5]:
            return False
        qb = 1
        if self.q.kind == "poly":
            bounds = {}
            for p in self.q.props:
                b = self._value_bound(sub, p)
                if b is None:
                    return False
                bounds[p] = b
            total = 0
            for props, k in zip(self.fixed.props, self.fixed.coefs):
                t = abs(k)
                for p in props:
                    t *= max(bounds[p], 1)
                    if t > I64:
                        return False
                total += t
            u = self.ch.utilization
            if u is not None:
                s = self.scales[u.prop]
                total *= max(abs(sq.at_scale(u.floor, s)), abs(sq.at_scale(u.ceiling, s)), 1)
            qb = max(total, 1)
        if self.weighted:  # each event weighs ws_end - max(ts, lo) <= ws_end - lo milliseconds
            lo, ws_end = self.bounds[sub][2:4]
            qb *= max(ws_end - lo, 1)
        if self.prorated:  # each event weighs its local days left in the covered period
            qb *= max(self.bounds[sub][5], 1)
        if n * qb > I64:
            return False
        if self.reads_cents:
            v = self.stats.events.get((sub, self.code))
            if v and v[1]:
                shift = v[3] - self.cents_scale
                if shift > MAX_SHIFT or n * v[4] * 10**shift > I64:
                    return False
        return True

    # -- SQL
    def _props_needed(self) -> set:
        names = _needs(self.ch)
        if self.with_jobs:
            names |= {JOB_ID, ATTEMPT}
        return names

    def _q_sql(self, P: sq.Props) -> str:
        q = self.q
        if q.kind != "poly":
            return "toInt64(1)"
        terms = []
        for props, k in zip(self.fixed.props, self.fixed.coefs):
            factors = [sq.int_lit(k)]
            for p in props:
                x = P.scaled(p, self.scales[p])
                r = q.rules.get(p)
                if r is not None:
                    x = self._rounded(x, r, self.scales[p])
                factors.append(f"({x})")
            terms.append(" * ".join(factors))
        out = " + ".join(terms) if terms else "toInt64(0)"
        u = self.ch.utilization
        if u is not None:
            s = self.scales[u.prop]
            x = P.scaled(u.prop, s)
            lo, hi = sq.int_lit(sq.at_scale(u.floor, s)), sq.int_lit(sq.at_scale(u.ceiling, s))
            out = f"({out}) * least(greatest({x}, {lo}), {hi})"
        return out

    @staticmethod
    def _rounded(x: str, r, scale: int) -> str:
        inc = sq.at_scale(r.increment, scale) if r.increment is not None else None
        if r.minimum is not None:
            mn = sq.int_lit(sq.at_scale(r.minimum, scale))
            above = f"({sq.ceil_to(f'({x} - {mn})', inc)} + {mn})" if inc else f"({x})"
            q = f"if(({x}) <= {mn}, {mn}, {above})"
        else:
            q = sq.ceil_to(f"({x})", inc) if inc else f"({x})"
        if r.maximum is not None:
            q = f"least({q}, {sq.int_lit(sq.at_scale(r.maximum, scale))})"
        return q

    def _ok_sql(self, P: sq.Props) -> str:
        q = self.q
        if q.kind == "count":
            return "1"
        if q.kind == "uid":
            return P.has(self.ch.metric.field)
        return " AND ".join([P.held(p) for p in q.props]) or "1"

    def _bucket_sql(self, P: sq.Props) -> str:
        filters = self.ch.filters
        if not filters:
            return "toInt32(-1)"
        arms = []
        for i in match_order(filters):
            conds = [f"({P.has(k)} AND {P.text(k)} IN {sq.in_list(sorted(vs))})" if vs else "0"
                     for k, vs in sorted(filters[i].values.items())]
            arms += [" AND ".join(conds) or "1", f"toInt32({i})"]
        return f"multiIf({', '.join(arms)}, toInt32(-1))"

    def _window_sql(self, bkt: str) -> str:
        ch = self.ch
        arms = []
        for b in list(range(len(ch.filters))) + [None]:
            for w, win in enumerate(ch.bucket_windows(b)):
                arms += [f"{bkt} = {-1 if b is None else b} AND ts >= {int(win.from_ms)} AND ts < {int(win.to_ms)}",
                         f"toInt32({w})"]
        return f"multiIf({', '.join(arms)}, toInt32(-1))" if arms else "toInt32(-1)"

    def _cents_sql(self) -> str:
        if not self.reads_cents:
            return "toInt64(0)"
        return (f"if(ptac_e > {sq.UNHOLDABLE}, ptac_m * toInt64(intExp10(toInt16(ptac_e) - {self.cents_scale})),"
                f" toInt64(0))")

    def row_exprs(self, P: sq.Props, subs, k: int, ngroups: int, all_subs) -> list[str]:
        """This charge's columns of one event (the ``_ROW`` order, ``ngroups`` group pairs), aliased
        with suffix ``k``: in its range, quantity held, bucket, window, groups, q, cents, weighted q, uid."""
        ch = self.ch
        names = sorted(subs)
        arr = "[" + ", ".join(sq.lit(x) for x in names) + "]"

        def per_sub(i: int) -> str:
            """Bound i of each event's subscription (a constant where they all share it)."""
            found = {self.bounds[x][i] for x in names}
            if len(found) == 1:
                return sq.int_lit(found.pop())
            vals = "[" + ", ".join(sq.int_lit(self.bounds[x][i]) for x in names) + "]"
            return f"transform(sub, {arr}, {vals}, toInt64(0))"

        mine = "1" if set(names) == set(all_subs) else f"sub IN {sq.in_list(names)}"
        out = [f"toUInt8(code = {sq.lit(self.code)} AND {mine}"
               f" AND ts >= {per_sub(0)} AND ts <= {per_sub(1)}) AS inr{k}",
               f"toUInt8({self._ok_sql(P)}) AS ok{k}", f"toInt32({self._bucket_sql(P)}) AS bkt{k}",
               f"toInt32({self._window_sql(f'bkt{k}')}) AS w{k}"]
        for j in range(ngroups):
            if j < len(ch.group_by):
                g = ch.group_by[j]
                out += [f"toUInt8({P.has(g)}) AS gh{j}_{k}", f"if({P.has(g)}, {P.text(g)}, '') AS gv{j}_{k}"]
            else:
                out += [f"toUInt8(0) AS gh{j}_{k}", f"'' AS gv{j}_{k}"]
        out += [f"toInt64({self._q_sql(P)}) AS q{k}", f"toInt64({self._cents_sql()}) AS c{k}"]
        wq = "toInt64(0)"
        if self.weighted:  # q x (period end - max(ts, covered start))
            wq = f"q{k} * ({per_sub(3)} - greatest(ts, {per_sub(2)}))"
        elif self.prorated:  # q x (covered days - the event's local day index, 0 before the period)
            arms = []
            by_cov: dict = {}
            for x in names:
                by_cov.setdefault((self.bounds[x][5], self.bounds[x][6]), []).append(x)
            for (eff, days), those in sorted(by_cov.items()):
                w = sq.int_lit(eff)
                if days:
                    w += f" - toInt64(arrayCount(d -> d <= ts, [{', '.join(sq.int_lit(d) for d in days)}]))"
                arms += [f"sub IN {sq.in_list(those)}", w] if len(by_cov) > 1 else [w]
            wq = f"q{k} * ({arms[0] if len(arms) == 1 else 'multiIf(' + ', '.join(arms) + ', toInt64(0))'})"
        out.append(f"toInt64({wq}) AS wq{k}")
        uid = P.text(ch.metric.field) if self.q.kind == "uid" else "''"
        out.append(f"{uid} AS uid{k}")
        return out

    sel_db = ""


def _props_of(plans) -> set:
    out: set = set()
    for plan in plans:
        out |= plan._props_needed()
    return out


def code_sql(db: str, sel: Selection, plans: list, subs_of: list, with_jobs: bool) -> tuple[str, str | None, int]:
    """One scan of a code's events on one shard for all its charges (``plans``, each rating the
    subscriptions ``subs_of[k]``): (lines SQL, unique-ids SQL or None, group pairs). Each event becomes
    one row per charge whose range holds it (``arrayJoin`` over tuples computed once per event)."""
    code = plans[0].code
    ngroups = max(len(p.ch.group_by) for p in plans)
    numbers = plans[0].stats.numbers
    P = sq.Props(_props_of(plans) | ({OPERATION} if any(p.q.kind == "uid" for p in plans) else set()), numbers)
    all_subs = sorted({x for subs in subs_of for x in subs})
    cols = "id, sub, code, ts, pk, ps, px, pm, pe, ptac_m, ptac_e"
    inner = sq.base_sql(db, sel, cols, code=code, subs=all_subs)
    base = f"SELECT {cols}, {', '.join(P.index_cols())} FROM ({inner})"
    groups = [f"{x}{j}" for j in range(ngroups) for x in ("gh", "gv")]
    fields = ["chg", "inr", "ok", "bkt", "w", *groups, "q", "c", "wq", "uid"]
    unpack = ", ".join(f"tupleElement(t, {i + 1}) AS {f}" for i, f in enumerate(fields))

    def rows_sql(which: list, reasons: bool) -> str:
        """One row per (event, charge ``which`` whose range holds it); ``reasons``: with end reasons."""
        reason, has_reason = P.text(END_REASON), P.has(END_REASON)
        if reasons and with_jobs:
            left = (f"SELECT *, toUInt8({P.has(JOB_ID)} AND NOT {has_reason}) AS jk_ok, {P.text(JOB_ID)} AS jk_job,"
                    f" toUInt8({P.has(ATTEMPT)}) AS jk_att_has, {P.text(ATTEMPT)} AS jk_att FROM ({base})")
            J = sq.Props([END_REASON, JOB_ID, ATTEMPT], numbers)
            jcols = "id, sub, ts, pk, ps, px, pm, pe"
            jinner = sq.base_sql(db, sel, jcols, subs=all_subs)
            right = (f"SELECT sub, toUInt8(1) AS jk_ok, {J.text(JOB_ID)} AS jk_job,"
                     f" toUInt8({J.has(ATTEMPT)}) AS jk_att_has, {J.text(ATTEMPT)} AS jk_att,"
                     f" argMax({J.text(END_REASON)}, (ts, id)) AS jr, toUInt8(1) AS jf"
                     f" FROM (SELECT {jcols}, {', '.join(J.index_cols())} FROM ({jinner}))"
                     f" WHERE {J.has(END_REASON)} AND {J.has(JOB_ID)} GROUP BY sub, jk_job, jk_att_has, jk_att")
            src = f"({left}) ANY LEFT JOIN ({right}) USING (sub, jk_ok, jk_job, jk_att_has, jk_att)"
            r_has, r = f"toUInt8({has_reason} OR jf = 1)", f"if({has_reason}, {reason}, jr)"
        elif reasons:
            src, r_has, r = f"({base})", f"toUInt8({has_reason})", reason
        else:
            src, r_has, r = f"({base})", "toUInt8(0)", "''"
        rm = "0"
        if any(plans[k].q.kind == "uid" for k in which):
            rm = f"{P.has(OPERATION)} AND {P.text(OPERATION)} = {sq.lit(REMOVE)}"
        per_event = [f"{r_has} AS rh", f"if(rh = 1, {r}, '') AS rv", f"toUInt8({rm}) AS rm"]
        tuples = []
        for k in which:
            exprs = plans[k].row_exprs(P, subs_of[k], k, ngroups, all_subs)
            per_event += exprs
            tuples.append(f"tuple(toUInt16({k}), {', '.join(e.rsplit(' AS ', 1)[1] for e in exprs)})")
        B = f"SELECT sub, ts, id, {', '.join(per_event)} FROM {src}"
        return (f"SELECT sub, ts, id, rh, rv, rm, {unpack} FROM (SELECT sub, ts, id, rh, rv, rm,"
                f" arrayJoin([{', '.join(tuples)}]) AS t FROM ({B})) WHERE inr = 1")

    keys = ", ".join(["chg", "sub", "ok", "bkt", "w", *groups, "rh", "rv"])
    lines = (f"SELECT {keys}, count(), sum(q), max(q), argMax(q, (ts, id)), max((ts, id)), sum(c), sum(wq)"
             f" FROM ({rows_sql(list(range(len(plans))), True)}) GROUP BY {keys}")
    uniq = None
    unique = [k for k, p in enumerate(plans) if p.q.kind == "uid"]
    if unique:
        lk = ", ".join(["chg", "sub", "bkt", "w", *groups])
        uniq = (f"SELECT {lk}, sum(1 - last_rm) FROM (SELECT {lk}, uid, argMax(rm, (ts, id)) AS last_rm"
                f" FROM ({rows_sql(unique, False)}) WHERE ok = 1 GROUP BY {lk}, uid) GROUP BY {lk}")
    return lines, uniq, ngroups




@attrs.define
class _Line:
    count: int = 0
    total: int = 0
    top: int | None = None
    latest: tuple | None = None  # ((ts, id), q)
    cents: int = 0
    reasons: dict = attrs.field(factory=dict)  # reason -> [sum q, count]
    active: int = 0
    weighted: int = 0


def _shard_lines(shard: _Shard, sel: Selection, groups: list, bounds_of, usages: list, ignored: dict,
                 column_subs: set) -> None:
    """One shard's part of the run: its pushed-down lines into ``usages`` / ``ignored``, the
    subscriptions it sends to the column path into ``column_subs``."""
    all_subs = sorted({s for g in groups for s in g.subs})
    if not all_subs:
        return
    names = {END_REASON, JOB_ID, ATTEMPT, OPERATION}
    for g in groups:
        names |= _needs(g.charge)
    stats = shard.stats(sel, all_subs, names)
    present = {s for s, _ in stats.events}
    bad: set = set()
    with_jobs = stats.has_prop(JOB_ID)
    plans = []
    for g in groups:
        subs = [s for s in g.subs if s in present and s not in bad]
        if not subs:
            continue
        try:
            plan = _Plan(attrs.evolve(g, subs=tuple(subs)), stats, bounds_of(g), sel, with_jobs)
        except (EngineError, AssertionError):
            bad |= set(subs)
            continue
        plan.sel_db = shard.db
        for s in subs:
            if not plan.fits(s):
                bad.add(s)
        plans.append(plan)
    column_subs |= bad
    by_code: dict = {}
    for plan in plans:
        subs = [x for x in plan.g.subs if x not in bad]
        if subs:
            by_code.setdefault(plan.code, []).append((plan, subs))
    for pairs in by_code.values():
        _run_code(shard, sel, [p for p, _ in pairs], [x for _, x in pairs], with_jobs, usages, ignored)


def _run_code(shard: _Shard, sel: Selection, plans: list, subs_of: list, with_jobs: bool, usages: list,
              ignored: dict) -> None:
    lines_sql, uniq_sql, ng = code_sql(shard.db, sel, plans, subs_of, with_jobs)
    lines: list = [{} for _ in plans]
    for row in shard.run(lines_sql):
        k, sub, ok, bkt, w = row[:5]
        gv = row[5:5 + 2 * ng]
        rh, rv, n, sq_, mq, lq, lk, c, wq = row[5 + 2 * ng:]
        plan = plans[k]
        si, ci = plan.g.si[sub], plan.g.ci
        bucket = None if bkt < 0 else int(bkt)
        if not ok:
            key = (si, ci, bucket)
            ignored[key] = ignored.get(key, 0) + int(n)
            continue
        group = tuple(gv[2 * j + 1] if gv[2 * j] else None for j in range(len(plan.ch.group_by)))
        key = (si, bucket, group, None if w < 0 else int(w))
        ln = lines[k].get(key)
        if ln is None:
            ln = lines[k][key] = _Line()
        ln.count += n
        ln.total += sq_
        ln.top = mq if ln.top is None else max(ln.top, mq)
        lk = tuple(lk)
        if ln.latest is None or lk > ln.latest[0]:
            ln.latest = (lk, lq)
        ln.cents += c
        ln.weighted += wq
        r = rv if rh else None
        acc = ln.reasons.setdefault(r, [0, 0])
        acc[0] += sq_
        acc[1] += n
    if uniq_sql is not None:
        for row in shard.run(uniq_sql):
            k, sub, bkt, w = row[:4]
            gv = row[4:4 + 2 * ng]
            plan = plans[k]
            group = tuple(gv[2 * j + 1] if gv[2 * j] else None for j in range(len(plan.ch.group_by)))
            key = (plan.g.si[sub], None if bkt < 0 else int(bkt), group, None if w < 0 else int(w))
            if key in lines[k]:
                lines[k][key].active += row[-1]
    for plan, found in zip(plans, lines):
        _usages(plan, found, usages)


def _usages(plan: _Plan, lines: dict, usages: list) -> None:
    """The plan's lines as ``LineUsage`` values (exact rationals from the Int64 sums)."""
    ci, agg = plan.g.ci, plan.ch.metric.aggregation
    D = plan.D
    ext = {i: s for s, i in plan.g.si.items()}
    for (si, bucket, group, window), ln in lines.items():
        if agg == "count":
            full = (ln.count, 1)
        elif agg == "unique_count":
            full = (ln.active, 1)
        elif agg == "weighted_sum":
            full = (ln.weighted * D.numerator, D.denominator * plan.bounds[ext[si]][4] * DAY_MS)
        else:
            v = ln.total if agg == "sum" else ln.top if agg == "max" else max(ln.latest[1], 0)
            full = (v * D.numerator, D.denominator)
        reasons = tuple((r, s * D.numerator, D.denominator, n) for r, (s, n) in ln.reasons.items())
        cents = (0, 1)
        if plan.reads_cents:
            cs = Fraction(ln.cents) * Fraction(10) ** plan.cents_scale
            cents = (cs.numerator, cs.denominator)
        pror = None
        if plan.prorated:
            pror = (ln.weighted * D.numerator, D.denominator * plan.bounds[ext[si]][4])
        usages.append(LineUsage(si, ci, bucket, group, window, full, ln.count, pror, reasons, cents, None, None, 0))


# ---- the run


def _one_replica_per_shard(events) -> list:
    """(host, port) of one server per shard of the cluster (a replica's rows are its shard's)."""
    rows = events.cluster.query("SELECT shard_num, host_address, port FROM system.clusters WHERE cluster = %(c)s"
                                " ORDER BY shard_num, replica_num", {"c": events.url.cluster})
    first: dict = {}
    for shard, host, port in rows:
        first.setdefault(shard, (host, int(port)))
    return [first[k] for k in sorted(first)] or events.cluster.shards()


def rate_pushed_down(events, specs, window: dict, *, column_path: set | None = None) -> RateResult:
    """Rate ``specs`` over the cluster's events in ``window`` (``read_columns``' arguments).
    ``column_path``: a set that receives the ids of the subscriptions rated over columns."""
    specs = list(specs)
    until = events.watermark()
    sel = Selection.of(codes=window.get("codes"), subscriptions=window.get("subscriptions"),
                       time_from_ms=window.get("time_from_ms"), time_to_ms=window.get("time_to_ms"),
                       since=window.get("since_rowid", 0), until=until)
    coverages = [coverage_of(s) for s in specs]
    ids = [s.external_id for s in specs]
    unique_ids = len(set(ids)) == len(ids)
    column: set = set()
    groups: dict = {}  # (ci, charge) -> {sub: si}
    bounds: dict = {}  # (ci, charge) -> {sub: (lo, hi)}
    for si, sub in enumerate(specs):
        cov = coverages[si]
        if cov.empty:
            continue
        if not unique_ids or not all(charge_decomposes(ch) for ch in sub.charges):
            column.add(sub.external_id)
            continue
        for ci, ch in enumerate(sub.charges):
            key = (ci, ch)
            m = ch.metric
            lo = NEG_INF if m.recurring else cov.lo
            groups.setdefault(key, {})[sub.external_id] = si
            bounds.setdefault(key, {})[sub.external_id] = (lo, cov.hi, cov.lo, cov.ws_end, cov.duration_days,
                                                            cov.eff_days, cov.day_bounds)
    group_list = [_Group(ci, ch, tuple(sorted(subs)), subs) for (ci, ch), subs in groups.items()]
    if sel.empty():
        group_list = []

    def bounds_of(g):
        return bounds[(g.ci, g.charge)]

    usages: list = []
    ignored: dict = {}
    shards = [_Shard(events, h, p) for h, p in _one_replica_per_shard(events)] if group_list else []
    parts = [([], {}, set()) for _ in shards]
    static = set(column)  # known before any query: rated over columns while the shards aggregate the rest
    try:
        with ThreadPoolExecutor(len(shards) + 1) as pool:
            early = pool.submit(_column_rate, events, sel, specs, static) if static else None
            futures = [pool.submit(_shard_lines, sh, sel, group_list, bounds_of, *part)
                       for sh, part in zip(shards, parts)]
            for f in futures:
                f.result()
            results = [early.result()] if early is not None else []
    finally:
        for sh in shards:
            sh.close()
    for u, ig, col in parts:
        usages += u
        ignored.update(ig)
        column |= col
    skip = {si for si, s in enumerate(specs) if s.external_id in column}
    if column_path is not None:
        column_path |= column
    if column - static:  # subscriptions the shards' bounds sent to the column path
        results.append(_column_rate(events, sel, specs, column - static))
    out = assemble_run(specs, coverages, UsageSource(specs, coverages, usages, ignored, {}), skip=skip)
    for other in results:
        lines = exact.merge(specs, attrs.evolve(out, in_advance=()), attrs.evolve(other, in_advance=()))
        out = attrs.evolve(lines, in_advance=merged_fees(specs, out.in_advance, other.in_advance))
    return out


def _column_rate(events, sel: Selection, specs: list, ids: set) -> RateResult:
    """The fast engine's result for the subscriptions ``ids`` over their columns read from the cluster."""
    subs = sorted(ids) if sel.subscriptions is None else sorted(ids & set(sel.subscriptions))
    cols = ClusterColumns(events.cluster, attrs.evolve(sel, subscriptions=tuple(subs)))
    return rate([s for s in specs if s.external_id in ids], cols)
