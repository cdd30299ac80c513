"""Charge models, exactly as Lago computes them (lago-semantics.md section a).

Every function takes Decimal units and returns a ``Priced`` with the exact,
unrounded amount, the denominator for ``unit_price`` (Lago's unit_amount
rule) and the per-tier breakdown for explain.  Nothing here rounds money:
the line is rounded once, by the charge's rule, in ``price.py``.  All
arithmetic runs in a local, high-precision context.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Optional, Sequence

import attrs

from gpubill.engine.pricing.money import EXACT, ceil_decimals
from gpubill.engine.spec.program import Dynamic, Graduated, GraduatedPercentage, Package, Percentage, Standard, TierPart, Volume

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


@attrs.frozen
class Priced:
    amount: Decimal
    denominator: Decimal  # unit_price = amount / denominator (0 when it is 0)
    tiers: tuple = ()


def standard(units: Decimal, amount: Decimal) -> Priced:
    with decimal.localcontext(EXACT):
        return Priced(units * amount, units)


def _adjacent(tiers) -> bool:
    return len(tiers) > 1 and all(b.from_value == a.to_value for a, b in zip(tiers, tiers[1:]))


def graduated(units: Decimal, tiers: Sequence) -> Priced:
    """Graduated: ``to_value`` inclusive; +1 widths unless every pair is adjacent;
    every tier reached charges its flat fee (the first even at 0 units)."""
    adjacent = _adjacent(tiers)
    parts = []
    total = ZERO
    with decimal.localcontext(EXACT):
        for i, t in enumerate(tiers):
            eff = units if t.to_value is None else min(units, t.to_value)
            if t.from_value == 0:
                held = eff
            else:
                held = eff - t.from_value if adjacent else eff - t.from_value + 1
            held = max(held, ZERO)
            amt = held * t.per_unit + t.flat
            parts.append(TierPart(i, held, t.per_unit, t.flat, amt))
            total += amt
            if t.to_value is None or t.to_value >= units:
                break
    return Priced(total, units, tuple(parts))


def graduated_percentage(units: Decimal, tiers: Sequence) -> Priced:
    """Graduated percentage: rates in percent, no adjacent mode: a full tier
    holds to - from + 1 units, a from of 0 counting as 1 (so a tier starting
    at a fractional previous bound, 0.01 to 10, holds 10.99, as in Lago)."""
    parts = []
    total = ZERO
    with decimal.localcontext(EXACT):
        for i, t in enumerate(tiers):
            if t.to_value is not None and units >= t.to_value:
                held = t.to_value - (ONE if t.from_value == 0 else t.from_value) + 1
            elif t.from_value == 0:
                held = units
            else:
                held = units - t.from_value + 1
            held = max(held, ZERO)
            amt = held * t.per_unit / HUNDRED + t.flat
            parts.append(TierPart(i, held, t.per_unit, t.flat, amt))
            total += amt
            if t.to_value is None or t.to_value >= units:
                break
    return Priced(total, units, tuple(parts))


def volume_tier(tiers: Sequence, units: Decimal) -> Optional[int]:
    """Index (in the given order) of the tier with from <= ceil(units) <= .. units <= to."""
    c = units.to_integral_value(rounding=decimal.ROUND_CEILING)
    for i in sorted(range(len(tiers)), key=lambda j: tiers[j].from_value):
        t = tiers[i]
        if t.from_value <= c and (t.to_value is None or units <= t.to_value):
            return i
    return None


def volume(units: Decimal, tiers: Sequence, full_units: Optional[Decimal] = None) -> Priced:
    """Volume: the tier is picked with ``full_units`` (non-prorated) and its
    price applied to ``units``; only that tier's flat fee is charged."""
    pick = units if full_units is None else full_units
    i = volume_tier(tiers, pick)
    if i is None:
        return Priced(ZERO, pick)
    t = tiers[i]
    with decimal.localcontext(EXACT):
        amt = units * t.per_unit + t.flat
    return Priced(amt, pick, (TierPart(i, units, t.per_unit, t.flat, amt),))


def package(units: Decimal, m: Package) -> Priced:
    with decimal.localcontext(EXACT):
        paid = units - m.free_units
        if paid <= 0:
            return Priced(ZERO, max(paid, ZERO))
        packages = (paid / m.size).to_integral_value(rounding=decimal.ROUND_CEILING)
        return Priced(packages * m.amount, paid)


def dynamic(units: Decimal, cents: Decimal) -> Priced:
    with decimal.localcontext(EXACT):
        return Priced(ZERO if units == 0 else cents / HUNDRED, units)


def percentage(values: Sequence[Decimal], m: Percentage) -> Priced:
    """Percentage of the event values (in timestamp order)."""
    if m.min_per_event is not None or m.max_per_event is not None:
        return _percentage_min_max(values, m)
    with decimal.localcontext(EXACT):
        units = sum(values, ZERO)
        n = m.free_events or 0
        f = m.free_amount if m.free_amount is not None else ZERO
        kept: list = []
        running = ZERO
        for v in values:
            if n > 0:
                if len(kept) >= n:
                    break
            elif f > 0:
                if kept and kept[-1] > f:
                    break
            else:
                break
            running += v
            kept.append(running)
        free_amount = ZERO if not kept else (min(kept[-1], f) if f > 0 else kept[-1])
        below = sum(1 for k in kept if k < f) if f > 0 else 0
        candidates = [x for x in (n, below) if x]
        free_count = min(candidates) if candidates else 0
        pct = ZERO if free_amount > units else (units - free_amount) * m.rate / HUNDRED
        count = len(values)
        if units == 0 or not m.fixed_amount or free_count >= count:
            fixed = ZERO
        else:
            fixed = (count - free_count) * m.fixed_amount
        return Priced(pct + fixed, units)


def _percentage_min_max(values: Sequence[Decimal], m: Percentage) -> Priced:
    """Per-transaction min/max (Lago's ``compute_amount_with_transaction_min_max``):
    each event priced alone, in order.  While free events or free amount are
    left the event is in the free allowance; with no free amount it is wholly
    free, otherwise the free amount absorbs it when larger than its value, and
    else it pays on the rest (value - free amount left) and the allowance ends.
    So with a free amount the count of free events changes nothing.  Free
    events are never raised to the minimum; a paying one is, even at 0."""
    with decimal.localcontext(EXACT):
        units = sum(values, ZERO)
        free_n = m.free_events or 0
        free_f = m.free_amount if m.free_amount is not None else ZERO
        fixed = m.fixed_amount or ZERO
        total = ZERO
        for v in values:
            if free_n > 0 or free_f > 0:
                free_n -= 1
                if free_f <= 0:
                    continue
                if free_f > v:
                    free_f -= v
                    continue
                v, free_f, free_n = v - free_f, ZERO, 0
            total += _clamp(v * m.rate / HUNDRED + fixed, m)
        return Priced(total, units)


def _clamp(amount: Decimal, m: Percentage) -> Decimal:
    """Lago's ``apply_min_max``: the minimum is tested first."""
    if m.min_per_event is not None and amount < m.min_per_event:
        return m.min_per_event
    if m.max_per_event is not None and amount > m.max_per_event:
        return m.max_per_event
    return amount


def prorated_graduated(events: Sequence, tiers: Sequence) -> Priced:
    """Prorated graduated over ``events`` = [(full, prorated), ...] in time
    order: tiers placed by the running full sum, money from the prorated share
    of each placed part, flat fees up to the tier of the maximum running sum."""
    bounds = [t.to_value for t in tiers]  # upper edge of each tier in running-sum space
    money = [ZERO] * len(tiers)
    held = [ZERO] * len(tiers)
    with decimal.localcontext(EXACT):
        running = peak = ZERO
        for full, pror in events:
            if pror == 0 or full == 0:
                continue
            ratio = pror / full
            lo, hi = (running, running + full) if full > 0 else (running + full, running)
            sign = 1 if full > 0 else -1
            edge = ZERO
            for i, top in enumerate(bounds):
                a, b = max(lo, edge), hi if top is None else min(hi, top)
                if b > a:
                    money[i] += sign * (b - a) * ratio * tiers[i].per_unit
                    held[i] += sign * (b - a)
                if top is None or hi <= top:
                    break
                edge = top
            running += full
            peak = max(peak, running)
        last = next((i for i, top in enumerate(bounds) if top is None or peak <= top), len(tiers) - 1)
        parts = []
        for i in range(last + 1):
            parts.append(TierPart(i, held[i], tiers[i].per_unit, tiers[i].flat, money[i] + tiers[i].flat))
        for i in range(last + 1, len(tiers)):
            if money[i]:
                parts.append(TierPart(i, held[i], tiers[i].per_unit, ZERO, money[i]))
        if running < 0:
            return Priced(ZERO, running, tuple(parts))
        total = sum((p.amount for p in parts), ZERO)
        return Priced(total, running, tuple(parts))


def prorate_event(value: Decimal, weight: int, duration_days: int) -> Decimal:
    """One event's prorated value, ceiled to 5 decimals (as Lago's spec shows)."""
    with decimal.localcontext(EXACT):
        return ceil_decimals(value * weight / duration_days, 5)


def apply(model, units: Decimal, *, full_units=None, values=None, cents=ZERO, prorated_events=None) -> Priced:
    """Price one line with its model (dispatch)."""
    if isinstance(model, Standard):
        p = standard(units, model.amount)
    elif isinstance(model, Graduated):
        if prorated_events is not None:
            return prorated_graduated(prorated_events, model.tiers)
        p = graduated(units, model.tiers)
    elif isinstance(model, Volume):
        return volume(units, model.tiers, full_units)
    elif isinstance(model, Package):
        return package(units, model)
    elif isinstance(model, Percentage):
        p = percentage(values if values is not None else [units], model)
    elif isinstance(model, GraduatedPercentage):
        p = graduated_percentage(units, model.tiers)
    elif isinstance(model, Dynamic):
        p = dynamic(units, cents)
    else:
        raise TypeError(f"unknown charge model {model!r}")
    if full_units is not None:
        p = attrs.evolve(p, denominator=full_units)
    return p


def advance_delta(model, incl: Decimal, excl: Decimal) -> Decimal:
    """Pay-in-advance fee: model(including) - model(excluding); an excluding
    side of 0 is worth 0 for graduated models (no flat fee)."""
    a = apply(model, incl).amount
    if excl == 0 and isinstance(model, (Graduated, GraduatedPercentage)):
        b = ZERO
    else:
        b = apply(model, excl).amount
    with decimal.localcontext(EXACT):
        return a - b


def min_true_up(min_amount: Decimal, fees_total: Decimal, days_billed: int, duration_days: int) -> Decimal:
    """Spending minimum true-up (unrounded): prorated minimum minus all of the
    charge's fees (every filter and group); 0 when not positive."""
    with decimal.localcontext(EXACT):
        r = min_amount * days_billed / duration_days - fees_total
    return r if r > 0 else ZERO
