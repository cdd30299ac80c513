"""Pricing: ``LineUsage`` -> ``RatedLine``; advance sequences -> ``InAdvanceFee``.

Shared by both engines.  Order of operations for one line:

1. units: the exact aggregation; a prorated charge (recurring sum or
   unique_count) prices ``ceil(prorated, 5 decimals)`` and shows the full
   units beside it;
2. billable-metric rounding (round half-up / ceil / floor, precision may be
   negative), computed on the exact rational;
3. negative units -> a zero line;
4. the charge model (window model, else filter model, else charge model);
5. a negative amount becomes 0; ``amount`` = ``precise_amount`` rounded once
   by the charge's ``money_rounding``; ``unit_price`` = precise amount over
   Lago's denominator (full units, paid package units, or the volume pick).

``assemble_run`` is the one assembler of both engines: it walks the
subscriptions, charges and filter buckets in canonical order, asks the
engine's source for each bucket's priced lines and each in-advance line's
fees, adds empty lines and true-ups, and leaves out a subscription whose
amounts cannot be priced exactly.

``ChargeCtx`` holds what does not change from line to line (filter dicts,
the model of each bucket and window, the standard model's unit price), so
that a line costs a few Decimal operations and one ``RatedLine``.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from functools import partial
from math import gcd

import numpy as np

from gpubill.engine.pricing import models
from gpubill.engine.pricing.fees import Fees, rises
from gpubill.engine.pricing.money import EXACT, check_rounding, ratio_to_decimal, round_amount
from gpubill.engine.spec.program import (
    Dynamic, Graduated, InAdvanceFee, NotRated, Percentage, RatedLine, RateResult, Standard, Unrated,
)
from gpubill.engine.pricing.usage import LineUsage, ScaledInts, line_sort_key

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


def round_ratio(num: int, den: int, function: str, precision: int) -> Decimal:
    """Billable-metric rounding of num/den to ``precision`` decimals."""
    if precision >= 0:
        n2, d2 = num * 10**precision, den
    else:
        n2, d2 = num, den * 10 ** (-precision)
    if function == "ceil":
        n = -((-n2) // d2)
    elif function == "floor":
        n = n2 // d2
    else:  # half-up, away from zero
        n = (2 * abs(n2) + d2) // (2 * d2)
        n = n if n2 >= 0 else -n
    if precision < 0:  # an integer: n tens, hundreds...
        return Decimal(n * 10 ** (-precision))
    return EXACT.scaleb(Decimal(n), -precision)


def _filter_dict(charge, bucket):
    """A line's ``filter``: its bucket's canonical form as a dict (None: the default bucket)."""
    return None if bucket is None else dict(charge.filters[bucket].canonical)


def line_model(charge, bucket, window):
    if window is not None:
        return charge.bucket_windows(bucket)[window].model
    return charge.bucket_model(bucket)


def decimal_values(values) -> list:
    """Per-event values (``(num, den)`` pairs or ``ScaledInts``) as the
    Decimals ``ratio_to_decimal`` makes of them; ``ScaledInts`` at a scale
    with a finite decimal expansion are converted in bulk (int64 numpy)."""
    if isinstance(values, ScaledInts):
        bulk = _scaled_decimals(values.ints, values.num, values.den)
        if bulk is not None:
            return bulk
    return [ratio_to_decimal(n, d) for n, d in values]


def _scaled_decimals(ints, num: int, den: int):
    """``[ratio_to_decimal(v * num, den) for v in ints]`` in bulk, or None
    where the scale does not terminate or int64 cannot hold ``v * num * 10**k / den``."""
    g = gcd(num, den)
    num, den = num // g, den // g
    k, rest = 0, den
    while rest % 10 == 0:
        rest, k = rest // 10, k + 1
    while rest % 2 == 0 or rest % 5 == 0:
        rest, k = rest // (2 if rest % 2 == 0 else 5), k + 1
    if rest != 1 or ints.dtype == object:  # no finite expansion, or a sum beyond int64
        return None
    if not len(ints):
        return []
    mult = num * 10**k // den
    if max(int(ints.max()), -int(ints.min())) * abs(mult) >= 2**63:
        return None
    n = ints.astype(np.int64) * mult
    places = np.full(n.size, k, np.int64)
    for _ in range(k):  # the fewest decimals that hold each value
        z = (n % 10 == 0) & (places > 0)
        if not z.any():
            break
        n = np.where(z, n // 10, n)
        places -= z
    return [Decimal(a).scaleb(-b, EXACT) if b else Decimal(a) for a, b in zip(n.tolist(), places.tolist())]


def div(a: Decimal, b: Decimal) -> Decimal:
    na, da = a.as_integer_ratio()
    nb, db = b.as_integer_ratio()
    return ratio_to_decimal(na * db, da * nb)


class ChargeCtx:
    """Per-charge constants for pricing its lines."""

    def __init__(self, charge, duration_days=None):
        self.charge = charge
        m = charge.metric
        self.agg = m.aggregation
        self.code = m.code
        self.is_prorated = charge.prorated and m.aggregation in ("sum", "unique_count")
        self.rounding = m.rounding
        rr = charge.money_rounding
        check_rounding(rr)  # a bad plan fails even where it has no line
        self.rr = rr
        self.filters = [_filter_dict(charge, b) for b in range(len(charge.filters))] + [None]
        self.group_by = charge.group_by
        self._models: dict = {}
        self._groups: dict = {}

    def group_dict(self, group: tuple) -> dict:
        """A line's ``group`` field: its values by key (a fresh dict, paired once per group)."""
        d = self._groups.get(group)
        if d is None:
            d = self._groups[group] = dict(zip(self.group_by, group))
        return d.copy()

    def filter_dict(self, bucket):
        return self.filters[-1 if bucket is None else bucket]

    def model(self, bucket, window):
        k = (bucket, window)
        mi = self._models.get(k)
        if mi is None:
            model = line_model(self.charge, bucket, window)
            std = isinstance(model, Standard)
            unit = div(model.amount, ONE) if std else None
            mi = self._models[k] = (model, std, unit)
        return mi

    def units(self, u: LineUsage):
        full = u.full
        prorated = self.is_prorated and u.prorated is not None
        if prorated:
            pn, pd = u.prorated
            units = (-((-pn * 100000) // pd), 100000)
        else:
            units = full
        r = self.rounding
        if r is not None:
            return (round_ratio(units[0], units[1], r.function, r.precision),
                    round_ratio(full[0], full[1], r.function, r.precision), prorated)
        f = ratio_to_decimal(full[0], full[1])
        return (ratio_to_decimal(units[0], units[1]) if prorated else f), f, prorated


def reason_maps(reasons, full_nd, full: Decimal, rounded: bool):
    """(units_by_end_reason, count_by_end_reason) of ``((reason, num, den,
    count), ...)``; a single reason holding the whole line reuses ``full``
    (the same Decimal ``ratio_to_decimal`` would give) unless the line's
    units were rounded."""
    if not reasons:
        return {}, {}
    if len(reasons) == 1:
        r, n, d, c = reasons[0]
        if not rounded and n * full_nd[1] == full_nd[0] * d:
            return {r: full}, {r: c}
        return {r: ratio_to_decimal(n, d)}, {r: c}
    return {r: ratio_to_decimal(n, d) for r, n, d, _ in reasons}, {r: c for r, _, _, c in reasons}


def price_line(sub, cc: ChargeCtx, u: LineUsage, duration_days: int) -> RatedLine:
    units, full, prorated = cc.units(u)
    by_units, by_count = reason_maps(u.reasons, u.full, full, cc.rounding is not None)
    return price_values(sub, cc, u.bucket, u.window, u.group, units, full, prorated, u.count, by_units, by_count,
                        u.ignored, u, duration_days)


def price_values(sub, cc: ChargeCtx, bucket, window, group, units: Decimal, full: Decimal, prorated: bool,
                 count: int, by_units, by_count, ignored: int, u, duration_days: int, lazy=None) -> RatedLine:
    """The priced line from its units (both engines end here).  ``u`` (the
    LineUsage) is read only by the models that need per-event values
    (percentage of a non-count metric, prorated graduated) or cents
    (dynamic); the fast engine passes None for lines that need neither.
    ``lazy``: ``(fn, args)`` whose call returns the two end-reason maps,
    built on first access instead of ``by_units`` / ``by_count``."""
    mi = cc._models.get((bucket, window))
    model, std, std_unit = mi if mi is not None else cc.model(bucket, window)
    tiers: tuple = ()
    if units < 0 or full < 0:
        units = full = precise = unit_price = ZERO
    elif std and not prorated:
        precise = EXACT.multiply(units, model.amount)
        if precise > 0:
            unit_price = std_unit
        else:
            precise = unit_price = ZERO
    else:
        values = None
        if isinstance(model, Percentage):
            if cc.agg == "count":
                values = [ONE] * count
            else:
                values = decimal_values(u.values or ())
        pev = None
        if prorated and isinstance(model, Graduated) and u.pror_events is not None:
            pev = [(v, models.prorate_event(v, w, duration_days))
                   for v, w in ((ratio_to_decimal(n, d), w) for n, d, w in u.pror_events)]
        cents = ZERO if u is None else ratio_to_decimal(*u.cents)
        p = models.apply(model, units, full_units=full if prorated else None, values=values, cents=cents,
                         prorated_events=pev)
        precise = p.amount if p.amount > 0 else ZERO
        tiers = p.tiers
        unit_price = ZERO if p.denominator == 0 else div(precise, p.denominator)
    amount = round_amount(precise, cc.rr)
    fdict = cc.filters[-1 if bucket is None else bucket]
    gdict = cc.group_dict(group) if group else {}
    if lazy is None:
        return RatedLine(sub.external_id, cc.charge.id, cc.code, fdict, gdict, window, units, full, count, unit_price,
                         precise, amount, tiers, by_units, by_count, cc.rr, ignored)
    # the instance dict attrs' __init__ would fill (RatedLine has no converters
    # or validators), the two end-reason maps deferred
    line = _new(RatedLine)
    _set_dict(line, "__dict__", {
        "subscription": sub.external_id, "charge_id": cc.charge.id, "metric": cc.code, "filter": fdict,
        "group": gdict, "window": window, "units": units, "full_units": full, "event_count": count,
        "unit_price": unit_price, "precise_amount": precise, "amount": amount, "tiers": tiers, "rounding": cc.rr,
        "ignored_count": ignored, "kind": "usage", "_lazy_reasons": lazy,
    })
    return line


_new = object.__new__
_set_dict = object.__setattr__


def slot_reason_maps(reason_of, sm, cnt, s0, e0, dn, dd, full, whole):
    """The end-reason maps of a line whose slots ``[s0, e0)`` hold reason
    ``reason_of[x]``, integer sum ``sm[x]`` (units ``sm[x] * dn / dd``) and
    count ``cnt[x]``; ``whole``: the line's integer value, whose units are
    ``full`` (a reason holding all of it reuses that Decimal)."""
    if e0 - s0 == 1:
        r = reason_of[s0]
        v = sm[s0]
        return {r: full if v == whole else ratio_to_decimal(v * dn, dd)}, {r: cnt[s0]}
    return ({reason_of[x]: ratio_to_decimal(sm[x] * dn, dd) for x in range(s0, e0)},
            {reason_of[x]: cnt[x] for x in range(s0, e0)})


def empty_usage(si, ci, charge, bucket, ignored=0) -> LineUsage:
    """The line of a bucket without events (its first-tier flat fee still applies)."""
    return LineUsage(si, ci, bucket, (None,) * len(charge.group_by), None, (0, 1), 0,
                     prorated=(0, 1) if charge.prorated else None, ignored=ignored)


def true_up_line(sub, charge, lines, eff_days: int, duration_days: int):
    """The spending-minimum true-up line of one charge, or None."""
    if charge.min_amount is None or charge.pay_in_advance:
        return None
    total = ZERO
    for ln in lines:
        total = EXACT.add(total, ln.amount)
    precise = models.min_true_up(charge.min_amount, total, eff_days, duration_days)
    if precise <= 0:
        return None
    rr = charge.money_rounding
    return RatedLine(
        subscription=sub.external_id, charge_id=charge.id, metric=charge.metric.code, filter=None, group={},
        window=None, units=Decimal(1), full_units=Decimal(1), event_count=0, unit_price=precise,
        precise_amount=precise, amount=round_amount(precise, rr), tiers=(),
        units_by_end_reason={}, count_by_end_reason={}, rounding=rr, kind="min_true_up",
    )


def prorated_increment(inc, weight: int, duration_days: int):
    """The in-advance units of a prorated sum: the event's billable rise x
    (days left in the period, the event's day included) / period days,
    ceiled to 5 decimals (Lago's ``compute_pay_in_advance_aggregation``, on
    exact rationals where Lago multiplies by a float coefficient)."""
    from fractions import Fraction

    x = Fraction(inc) * weight / duration_days * 100000
    return Fraction(-((-x.numerator) // x.denominator), 100000)


def linear_fee(units: Decimal, price: Decimal) -> Decimal:
    """The in-advance fee of a rise of ``units`` at a standard ``price``:
    model(with) - model(without) = price x the rise, exactly (0 for no rise)."""
    return EXACT.multiply(units, price) if units else ZERO


def advance_fees(sub, cc: ChargeCtx, bucket, group, window, events, duration_days: int = 0) -> list:
    """One fee per event: model(with) - model(without), cumulative in
    (timestamp, ingestion) order; sum and unique_count bill only the rise
    above the period's earlier maximum (``fees.rises``).  A prorated sum
    bills the rise prorated by the event's remaining days
    (``prorated_increment``)."""
    from gpubill.engine.pricing.money import fraction_to_decimal

    charge = cc.charge
    model = cc.model(bucket, window)[0]
    if isinstance(model, Dynamic):
        priced = [(e.value, div(fraction_to_decimal(e.cents), HUNDRED)) for e in events]
    elif isinstance(model, Percentage):
        priced = _percentage_fees(model, events)
    else:
        prorated = cc.is_prorated and cc.agg == "sum"
        priced = _rise_fees(model, rises(_running(cc.agg, events)), events, prorated, duration_days)
    fdict = cc.filter_dict(bucket)
    return [
        InAdvanceFee(
            subscription=sub.external_id, charge_id=charge.id, metric=charge.metric.code,
            filter=None if fdict is None else dict(fdict), group=dict(zip(charge.group_by, group)),
            window=window, transaction_id=e.transaction_id, rowid=e.rowid, timestamp_ms=e.timestamp_ms,
            units=fraction_to_decimal(inc), precise_amount=fee, amount=round_amount(fee, cc.rr),
        )
        for e, (inc, fee) in zip(events, priced)
    ]


def _percentage_fees(model, events) -> list:
    """(units, fee) per event of a percentage price: the model's rise with the event."""
    from gpubill.engine.pricing.money import fraction_to_decimal

    values: list = []
    out = []
    for e in events:
        before = models.percentage(values, model).amount
        values.append(fraction_to_decimal(e.value))
        after = models.percentage(values, model).amount
        with decimal.localcontext(decimal.Context(prec=200)):
            out.append((e.value, after - before))
    return out


def _running(agg: str, events) -> np.ndarray:
    """The running total after each event (exact): the sum of the values,
    or for unique_count the number of ids added and not removed since."""
    if agg != "unique_count":
        return np.cumsum(np.asarray([e.value for e in events], dtype=object))
    state: dict = {}
    running = 0
    out = []
    for e in events:
        prev = state.get(e.uid)
        if e.remove:
            running -= prev == "add"
            state[e.uid] = "remove"
        else:
            running += prev != "add"
            state[e.uid] = "add"
        out.append(running)
    return np.asarray(out, dtype=object)


def _rise_fees(model, incs, events, prorated: bool, duration_days: int) -> list:
    """(units, fee) per event that bills the rise ``incs[i]`` of its line (standard, package, tiers...)."""
    from fractions import Fraction

    from gpubill.engine.pricing.money import fraction_to_decimal

    standard = isinstance(model, Standard)
    billed = peak = Fraction(0)
    out = []
    for e, rise in zip(events, incs.tolist()):
        if not rise:
            inc, fee = rise, ZERO
        elif prorated:
            inc = prorated_increment(rise, e.weight, duration_days)
            fee = models.advance_delta(model, fraction_to_decimal(billed + inc), fraction_to_decimal(billed))
            billed += inc
        elif standard:
            inc, fee = rise, linear_fee(fraction_to_decimal(rise), model.amount)
        else:
            inc, fee = rise, models.advance_delta(model, fraction_to_decimal(peak + rise), fraction_to_decimal(peak))
        peak += rise
        out.append((inc, fee))
    return out


def unpriceable(sub, charge, error: ArithmeticError) -> Unrated:
    """Why a charge whose amounts exceed exact Decimal arithmetic is left out."""
    why = (f"a number beyond {EXACT.prec} significant digits" if isinstance(error, decimal.InvalidOperation)
           else f"{type(error).__name__}: {error}")
    return Unrated(sub.external_id, charge.id, charge.metric.code, f"cannot be priced exactly ({why})")


def in_sub_order(subs, lines, fee_parts, unrated: dict) -> RateResult:
    """The result of a run: the lines and fees of the subscriptions not in
    ``unrated`` (sub index -> Unrated), then those, in the order of
    ``subs``.  ``fee_parts``: ``(sub index, fees)`` pairs in order, the fees
    a ``FeeBlock`` or a sequence of ``InAdvanceFee``."""
    gone = {subs[si].external_id for si in unrated}
    if gone:
        lines = [ln for ln in lines if ln.subscription not in gone]
    fees = Fees(tuple(part) if isinstance(part, list) else part for si, part in fee_parts if si not in unrated)
    return RateResult(tuple(lines), fees, tuple(unrated[si] for si in sorted(unrated)))


def assemble_run(subs, coverages, source, unrated=None, skip=frozenset()) -> RateResult:
    """Price every line and fee in canonical order: the one assembler of both engines.

    ``source`` is an engine's aggregation:
    ``source.charge_lines(sub, si, ci, cc, per)`` prices one charge's lines,
    a list per filter bucket (the filters' order, the default bucket last;
    each in canonical order, the bucket's dropped events counted on its
    first line), ``source.ignored(si, ci, bucket)`` counts a bucket's
    dropped events, and ``source.fees()`` yields ``(si, ci, fees_of)`` per
    line of a pay-in-advance charge in canonical order, ``fees_of(cc)``
    giving that line's fees (a ``FeeBlock`` or a list of ``InAdvanceFee``).
    Every bucket of every in-arrears charge gets a line: an empty one is a
    single line with all group keys null and no window.  ``unrated``: sub
    index -> ``Unrated`` for subscriptions already left out (one whose
    amounts cannot be priced exactly joins them); ``skip``: subscriptions
    another path rates.
    """
    unrated = dict(unrated or {})
    ctxs: dict = {}
    lines = []
    for si, sub in enumerate(subs):
        if coverages[si].empty or si in unrated or si in skip:
            continue
        try:
            lines.extend(_subscription_lines(sub, si, coverages[si], source, ctxs))
        except NotRated as x:
            unrated[si] = x.unrated
    fee_parts = []
    for si, ci, fees_of in source.fees():
        if si in unrated or si in skip:
            continue
        sub = subs[si]
        try:
            fee_parts.append((si, fees_of(_ctx(ctxs, sub.charges[ci]))))
        except ArithmeticError as e:
            unrated[si] = unpriceable(sub, sub.charges[ci], e)
    return in_sub_order(subs, lines, fee_parts, unrated)


def _ctx(ctxs: dict, charge) -> ChargeCtx:
    cc = ctxs.get(id(charge))
    if cc is None:
        cc = ctxs[id(charge)] = ChargeCtx(charge)
    return cc


def _subscription_lines(sub, si, cov, source, ctxs) -> list:
    """The lines of one subscription's in-arrears charges, each charge's true-up last
    (``NotRated`` when an amount is beyond exact Decimal)."""
    out = []
    for ci, charge in enumerate(sub.charges):
        if charge.pay_in_advance:
            continue
        cc = _ctx(ctxs, charge)
        nf = len(charge.filters)
        try:
            priced = []
            for b, lines in enumerate(source.charge_lines(sub, si, ci, cc, cov)):
                if lines:
                    priced.extend(lines)
                else:  # a bucket without events: its line all the same (a first tier's flat fee applies)
                    bucket = None if b == nf else b
                    priced.append(price_line(sub, cc, empty_usage(si, ci, charge, bucket, source.ignored(si, ci, bucket)),
                                             cov.duration_days))
            t = None if charge.min_amount is None else true_up_line(sub, charge, priced, cov.eff_days,
                                                                    cov.duration_days)
        except ArithmeticError as e:
            raise NotRated(unpriceable(sub, charge, e)) from None
        out.extend(priced)
        if t is not None:
            out.append(t)
    return out


class UsageSource:
    """The reference engine's aggregation for ``assemble_run``: ``usages``
    (LineUsage values), ``ignored``: (sub, charge, bucket) -> count of
    dropped events, ``advances``: (sub, charge, bucket, group, window) ->
    [AdvanceEvent] (time order)."""

    def __init__(self, subs, coverages, usages, ignored, advances):
        self.subs, self.coverages, self._ignored, self.advances = subs, coverages, ignored, advances
        self.by_bucket: dict = {}
        for u in usages:
            self.by_bucket.setdefault((u.sub, u.charge, u.bucket), []).append(u)

    def ignored(self, si, ci, bucket) -> int:
        return self._ignored.get((si, ci, bucket), 0)

    def charge_lines(self, sub, si, ci, cc, cov) -> list:
        return [self._bucket_lines(sub, si, ci, cc, b, cov) for b in list(range(len(cc.charge.filters))) + [None]]

    def _bucket_lines(self, sub, si, ci, cc, bucket, cov) -> list:
        us = sorted(self.by_bucket.get((si, ci, bucket), []), key=LineUsage.sort_key)
        if us:
            us[0].ignored = self.ignored(si, ci, bucket)
        return [price_line(sub, cc, u, cov.duration_days) for u in us]

    def fees(self):
        for key in sorted(self.advances, key=line_sort_key):  # LineKey keys
            si, ci, b, g, w = key
            yield si, ci, partial(_fees_of_key, self.subs[si], b, g, w, self.advances[key],
                                  self.coverages[si].duration_days)


def _fees_of_key(sub, b, g, w, events, duration_days, cc) -> list:
    return advance_fees(sub, cc, b, g, w, events, duration_days)


def assemble(subs, coverages, usages, ignored, advances, unrated=None) -> RateResult:
    """The reference engine's run: ``assemble_run`` over its ``UsageSource``."""
    return assemble_run(subs, coverages, UsageSource(subs, coverages, usages, ignored, advances), unrated)
