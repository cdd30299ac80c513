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
"""

from __future__ import annotations

import decimal

import attrs
from decimal import Decimal
from fractions import Fraction
from math import ceil, floor

from . import models
from .money import fraction_to_decimal, ratio_to_decimal, round_money
from .program import Dynamic, Graduated, InAdvanceFee, Percentage, RatedLine
from .usage import LineUsage

ZERO = Decimal(0)


def round_fraction(f: Fraction, function: str, precision: int) -> Decimal:
    q = f * Fraction(10) ** precision
    if function == "ceil":
        n = ceil(q)
    elif function == "floor":
        n = floor(q)
    else:  # half-up, away from zero
        n = floor(abs(q) + Fraction(1, 2))
        n = n if q >= 0 else -n
    d = Decimal(n).scaleb(-precision)
    return d.quantize(Decimal(1)) if precision < 0 else d


def _filter_dict(charge, bucket):
    if bucket is None:
        return None
    return {k: tuple(sorted(v)) for k, v in sorted(charge.filters[bucket].values.items())}


def line_model(charge, bucket, window):
    if window is not None:
        return charge.bucket_windows(bucket)[window].model
    return charge.bucket_model(bucket)


def _units(charge, u: LineUsage):
    metric = charge.metric
    full_f = u.full
    prorated = charge.prorated and metric.aggregation in ("sum", "unique_count") and u.prorated is not None
    units_f = Fraction(ceil(u.prorated * 100000), 100000) if prorated else full_f
    if metric.rounding is not None:
        r = metric.rounding
        return round_fraction(units_f, r.function, r.precision), round_fraction(full_f, r.function, r.precision), prorated
    return fraction_to_decimal(units_f), fraction_to_decimal(full_f), prorated


def price_line(sub, charge, u: LineUsage, duration_days: int) -> RatedLine:
    key = u.key
    metric = charge.metric
    units, full, prorated = _units(charge, u)
    model = line_model(charge, key.bucket, key.window)
    tiers: tuple = ()
    if units < 0 or full < 0:
        units = full = precise = unit_price = ZERO
    else:
        values = None
        if isinstance(model, Percentage):
            if metric.aggregation == "count":
                values = [Decimal(1)] * u.count
            else:
                values = [fraction_to_decimal(v) for v in (u.values or ())]
        pev = None
        if prorated and isinstance(model, Graduated) and u.pror_events is not None:
            pev = [
                (fraction_to_decimal(v), models.prorate_event(fraction_to_decimal(v), w, duration_days))
                for v, w in u.pror_events
            ]
        p = models.apply(
            model,
            units,
            full_units=full if prorated else None,
            values=values,
            cents=fraction_to_decimal(u.cents),
            prorated_events=pev,
        )
        precise = p.amount if p.amount > 0 else ZERO
        tiers = p.tiers
        unit_price = ZERO if p.denominator == 0 else _div(precise, p.denominator)
    rr = charge.money_rounding
    return RatedLine(
        subscription=sub.external_id,
        charge_id=charge.id,
        metric=metric.code,
        filter=_filter_dict(charge, key.bucket),
        group=dict(zip(charge.group_by, key.group)),
        window=key.window,
        units=units,
        full_units=full,
        event_count=u.count,
        unit_price=unit_price,
        precise_amount=precise,
        amount=round_money(precise, rr.mode, rr.quantum),
        tiers=tiers,
        units_by_end_reason={r: fraction_to_decimal(v) for r, (v, _) in u.reasons.items()},
        count_by_end_reason={r: c for r, (_, c) in u.reasons.items()},
        rounding=rr,
        ignored_count=u.ignored,
    )


def _div(a: Decimal, b: Decimal) -> Decimal:
    fa, fb = Fraction(a), Fraction(b)
    q = fa / fb
    return ratio_to_decimal(q.numerator, q.denominator)


def true_up_line(sub, charge, lines, eff_days: int, duration_days: int):
    """The spending-minimum true-up line of one charge, or None."""
    if charge.min_amount is None or charge.pay_in_advance:
        return None
    total = sum((ln.amount for ln in lines), ZERO)
    precise = models.min_true_up(charge.min_amount, total, eff_days, duration_days)
    if precise <= 0:
        return None
    rr = charge.money_rounding
    return RatedLine(
        subscription=sub.external_id, charge_id=charge.id, metric=charge.metric.code, filter=None, group={},
        window=None, units=Decimal(1), full_units=Decimal(1), event_count=0, unit_price=precise,
        precise_amount=precise, amount=round_money(precise, rr.mode, rr.quantum), tiers=(),
        units_by_end_reason={}, count_by_end_reason={}, rounding=rr, kind="min_true_up",
    )


def advance_fees(sub, charge, key, events) -> list:
    """One fee per event: model(with) - model(without), cumulative in
    (timestamp, ingestion) order; sum and unique_count bill only the rise
    above the period's earlier maximum."""
    metric = charge.metric
    agg = metric.aggregation
    model = line_model(charge, key.bucket, key.window)
    rr = charge.money_rounding
    out = []
    running = peak = Fraction(0)
    state: dict = {}
    values: list = []
    for e in events:
        if isinstance(model, Dynamic):
            inc = e.value
            fee = _div(fraction_to_decimal(e.cents), Decimal(100))
        elif isinstance(model, Percentage):
            before = models.percentage(values, model).amount
            values.append(fraction_to_decimal(e.value))
            after = models.percentage(values, model).amount
            inc = e.value
            with decimal.localcontext(decimal.Context(prec=200)):
                fee = after - before
        else:
            if agg == "unique_count":
                prev = state.get(e.uid)
                if e.remove:
                    if prev == "add":
                        running -= 1
                    state[e.uid] = "remove"
                else:
                    if prev != "add":
                        running += 1
                    state[e.uid] = "add"
            else:
                running += e.value
            new_peak = max(peak, running)
            inc = new_peak - peak
            fee = models.advance_delta(model, fraction_to_decimal(new_peak), fraction_to_decimal(peak)) if inc else ZERO
            peak = new_peak
        out.append(
            InAdvanceFee(
                subscription=sub.external_id, charge_id=charge.id, metric=metric.code,
                filter=_filter_dict(charge, key.bucket), group=dict(zip(charge.group_by, key.group)),
                window=key.window, transaction_id=e.transaction_id, rowid=e.rowid, timestamp_ms=e.timestamp_ms,
                units=fraction_to_decimal(inc), precise_amount=fee, amount=round_money(fee, rr.mode, rr.quantum),
            )
        )
    return out


def assemble(subs, periods, usages, ignored, advances) -> "RateResult":
    """Price every line and fee in canonical order.

    ``usages``: LineUsage values; ``ignored``: (sub, charge, bucket) -> count
    of dropped events; ``advances``: LineKey -> [AdvanceEvent] (time order).
    Every bucket of every in-arrears charge gets a line: an empty one is a
    single line with all group keys null and no window (its first-tier flat
    fee still applies).  Ignored counts sit on the bucket's first line.
    """
    from .program import RateResult
    from .usage import LineKey

    by_bucket: dict = {}
    for u in usages:
        by_bucket.setdefault((u.key.sub, u.key.charge, u.key.bucket), []).append(u)
    lines = []
    for si, sub in enumerate(subs):
        per = periods[si]
        if per.empty:
            continue
        for ci, charge in enumerate(sub.charges):
            if charge.pay_in_advance:
                continue
            charge_lines = []
            for b in list(range(len(charge.filters))) + [None]:
                us = sorted(by_bucket.get((si, ci, b), []), key=lambda u: u.key.sort_key())
                if not us:
                    key = LineKey(si, ci, b, (None,) * len(charge.group_by), None)
                    us = [LineUsage(key, Fraction(0), 0, prorated=Fraction(0) if charge.prorated else None)]
                n_ign = ignored.get((si, ci, b), 0)
                if n_ign:
                    us[0] = attrs.evolve(us[0], ignored=n_ign)
                for u in us:
                    charge_lines.append(price_line(sub, charge, u, per.duration_days))
            lines.extend(charge_lines)
            t = true_up_line(sub, charge, charge_lines, per.eff_days, per.duration_days)
            if t is not None:
                lines.append(t)
    fees = []
    for key in sorted(advances, key=lambda k: k.sort_key()):
        sub = subs[key.sub]
        fees.extend(advance_fees(sub, sub.charges[key.charge], key, advances[key]))
    return RateResult(tuple(lines), tuple(fees))
