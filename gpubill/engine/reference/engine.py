"""The reference engine: the rating semantics stated plainly, in exact rationals.

``rate_reference(subscriptions, events) -> RateResult``.  Slow and obvious on
purpose; the numba engine (``rate.py``) must give the same answer exactly.

Events are Lago-shaped dicts: ``transaction_id``, ``external_subscription_id``,
``code``, ``timestamp`` (Unix seconds: int, Decimal or numeric string) or
``timestamp_ms`` (int), ``properties`` (values compared as strings),
optional ``precise_total_amount_cents`` and ``rowid`` (ingestion order,
default: list position).

The rules, for each subscription and charge:

* An event belongs to the charge when its subscription id and code match and
  ``lo <= timestamp <= hi`` (inclusive; ``lo``/``hi`` are the period cut by
  started_at / terminated_at).  Recurring metrics drop the lower bound (all
  history); pay-in-advance charges always use the period.
* Filter bucket: the matching filter with the most keys (ties: the earlier
  filter); a filter matches when every key's string value is allowed.  No
  match (or a missing key) -> the default bucket.  Group: the string values
  of ``group_by`` (None when missing).  Window: the first of the bucket's
  price windows with ``from_ms <= ts < to_ms``.
* Quantity: every property the quantity uses must match
  ``^-?[0-9]+(\\.[0-9]+)?$`` (and so must the utilization property), else
  the event is ignored and not counted.  A strictly numeric value that the
  store cannot hold (``held_pair``: more than an int64 mantissa, or an
  exponent outside -126..127) is never ignored: its subscription is left
  out of the run (``RateResult.unrated``), and so is one whose amounts
  cannot be priced exactly; every other subscription is rated.  Per-event rounding applies to the
  property, then the expression, then ``* min(max(u, floor), ceiling)``.
* count: number of events.  sum: sum.  max: max (0 when empty).  latest:
  the value with the greatest (timestamp, rowid), negative -> 0.
  unique_count: ids whose last operation (by timestamp, rowid) is an add.
  weighted_sum: levels x milliseconds from ``lo`` to ``hi`` rounded up to the
  second, over the full period's days x 86 400 000; recurring starts from the
  sum of the earlier deltas.
* Events are indexed by (subscription, code) first, so a run costs
  O(events x charges of the event's subscription), not O(subs x charges x events).
* Prorated (sum): each event weighs its remaining local days in the covered
  period (events before the period weigh all of them) over the full period's
  days; (unique_count): each id's active days, the removal day included.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from gpubill.numbers import MIN_EXPONENT, STRICT, UNHOLDABLE, parse_strict

from gpubill.engine.spec import poly as polymod
from gpubill.engine.calendar.coverage import DAY_MS, NEG_INF, coverage_of
from gpubill.engine.pricing.price import assemble, line_model
from gpubill.engine.spec.program import END_REASON, Graduated, NotRated, Percentage, Unrated, match_order
from gpubill.engine.pricing.usage import AdvanceEvent, LineKey, LineUsage, nd

REMOVE = "remove"
CENTS = "precise_total_amount_cents"


def is_numeric(s) -> bool:
    return s is not None and STRICT.fullmatch(s) is not None


def held_pair(s: str) -> tuple[int, int] | None:
    """(mantissa, exponent) of a strictly numeric string as the store holds it,
    or None when the number form cannot hold it (``gpubill.numbers``)."""
    p = parse_strict(s)
    return None if p is None or p[1] == UNHOLDABLE else p


class Unholdable(Exception):
    """A strictly numeric value the store cannot hold exactly (``held_pair``)."""

    def __init__(self, prop: str):
        super().__init__(prop)
        self.prop = prop

    def unrated(self, sub, charge, tx) -> Unrated:
        return Unrated(sub.external_id, charge.id, charge.metric.code,
                       f'event "{tx}": {self.prop} is a number too large or too precise to hold exactly '
                       f"(its digits exceed a 64-bit integer, or it has more than {-MIN_EXPONENT} decimals)")


def _number(s, prop):
    """The exact value of a property string; None if not strictly numeric."""
    if not is_numeric(s):
        return None
    if held_pair(s) is None:
        raise Unholdable(prop)
    return Fraction(Decimal(s))


def _str(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        raise TypeError("float property values are not accepted; send strings")
    return str(v)


def _timestamp_ms(e) -> int:
    if "timestamp_ms" in e:
        return int(e["timestamp_ms"])
    ts = Decimal(str(e["timestamp"]))
    return int((ts * 1000).to_integral_value(rounding="ROUND_FLOOR"))


def normalize(events):
    out = []
    for i, e in enumerate(events):
        props = {k: _str(v) for k, v in (e.get("properties") or {}).items() if v is not None}
        cents = _str(e.get(CENTS))
        out.append(
            dict(
                tx=e.get("transaction_id", ""),
                sub=e.get("external_subscription_id"),
                code=e.get("code"),
                ts=_timestamp_ms(e),
                rowid=int(e.get("rowid", i)),
                props=props,
                cents=cents if is_numeric(cents) else None,
            )
        )
    return out


def bucket_of(charge, props):
    for i in match_order(charge.filters):
        f = charge.filters[i]
        if all(props.get(k) in vs for k, vs in f.values.items()):
            return i
    return None


def window_of(windows, ts):
    for i, w in enumerate(windows):
        if w.from_ms <= ts < w.to_ms:
            return i
    return None


def quantity(charge, poly, props):
    """The event's exact per-event quantity, or None when it is ignored.
    Raises ``Unholdable`` when a value it reads cannot be held, even beside
    a missing one (an event is never ignored for holding a huge number)."""
    m = charge.metric
    if m.aggregation == "count":
        return Fraction(1)
    if m.aggregation == "unique_count":
        return Fraction(1) if props.get(m.field) is not None else None
    names = list(poly.props())
    if charge.utilization is not None:
        names.append(charge.utilization.prop)
    values = {p: _number(props.get(p), p) for p in names}
    if any(v is None for v in values.values()):
        return None
    for rule in m.per_event:
        if rule.prop in values:
            values[rule.prop] = polymod.per_event_fraction(rule, values[rule.prop])
    q = poly.evaluate({p: values[p] for p in poly.props()})
    if charge.utilization is not None:
        u = charge.utilization
        q *= min(max(values[u.prop], Fraction(u.floor)), Fraction(u.ceiling))
    return q


def event_cents(charge, e) -> Fraction:
    """The event's precise_total_amount_cents (0 when absent or not numeric);
    ``Unholdable`` when a dynamic charge reads one it cannot hold."""
    if e["cents"] is None or not charge.reads_cents():
        return Fraction(0)
    return _number(e["cents"], CENTS)


def _unique_prorated(rows, cov):
    """Sum over ids of active local days (removal day included)."""
    total = 0
    by_id: dict = {}
    for r in rows:
        by_id.setdefault(r["uid"], []).append(r)
    last = cov.eff_days - 1
    for rs in by_id.values():
        intervals, start, prev = [], None, None
        for r in rs:
            op = "remove" if r["remove"] else "add"
            if op == prev or (op == "remove" and prev is None):
                continue
            d = cov.day_index(r["ts"])
            if op == "add":
                start = max(d, 0)
            else:
                intervals.append((start, d))
                start = None
            prev = op
        if start is not None:
            intervals.append((start, last))
        days = set()
        for a, b in intervals:
            days.update(range(max(a, 0), min(b, last) + 1))
        total += len(days)
    return Fraction(total, cov.duration_days)


def _aggregate(charge, si, ci, key, rows, cov):
    m = charge.metric
    agg = m.aggregation
    rows.sort(key=lambda r: (r["ts"], r["rowid"]))
    pror = None
    if agg == "count":
        full = Fraction(len(rows))
    elif agg == "sum":
        full = sum((r["q"] for r in rows), Fraction(0))
        w = [cov.eff_days - max(cov.day_index(r["ts"]), 0) for r in rows]
        pror = sum((r["q"] * wi for r, wi in zip(rows, w)), Fraction(0)) / cov.duration_days
    elif agg == "max":
        full = max((r["q"] for r in rows), default=Fraction(0))
    elif agg == "latest":
        full = max(rows[-1]["q"], Fraction(0)) if rows else Fraction(0)
    elif agg == "unique_count":
        last = {}
        for r in rows:
            last[r["uid"]] = r["remove"]
        full = Fraction(sum(1 for rem in last.values() if not rem))
        pror = _unique_prorated(rows, cov)
    else:  # weighted_sum
        level = sum((r["q"] for r in rows if r["ts"] < cov.lo), Fraction(0))
        acc, t = Fraction(0), cov.lo
        for r in rows:
            if r["ts"] < cov.lo:
                continue
            acc += level * (r["ts"] - t)
            level += r["q"]
            t = r["ts"]
        acc += level * (cov.ws_end - t)
        full = acc / (cov.duration_days * DAY_MS)
    reasons: dict = {}
    for r in rows:
        u, c = reasons.get(r["reason"], (Fraction(0), 0))
        reasons[r["reason"]] = (u + r["q"], c + 1)
    bucket, group, window = key
    model = line_model(charge, bucket, window)
    values = tuple(nd(r["q"]) for r in rows) if isinstance(model, Percentage) and agg != "count" else None
    pev = None
    if charge.prorated and agg == "sum" and isinstance(model, Graduated):
        pev = tuple(nd(r["q"]) + (cov.eff_days - max(cov.day_index(r["ts"]), 0),) for r in rows)
    return LineUsage(
        si, ci, bucket, group, window, nd(full), len(rows),
        prorated=nd(pror) if (charge.prorated and pror is not None) else None,
        reasons=tuple((k, v.numerator, v.denominator, c) for k, (v, c) in reasons.items()),
        cents=nd(sum((r["cents"] for r in rows), Fraction(0))), values=values, pror_events=pev,
    )


def rate_reference(subscriptions, events):
    subs = list(subscriptions)
    evs = normalize(events)
    by_pair: dict = {}
    for e in evs:
        by_pair.setdefault((e["sub"], e["code"]), []).append(e)
    coverages = [coverage_of(s) for s in subs]
    usages, ignored, advances, unrated = [], {}, {}, {}
    for si, sub in enumerate(subs):
        if coverages[si].empty:
            continue
        try:
            u, ig, adv = aggregate_subscription(si, sub, coverages[si], by_pair)
        except NotRated as x:
            unrated[si] = x.unrated
            continue
        usages.extend(u)
        ignored.update(ig)
        advances.update(adv)
    return assemble(subs, coverages, usages, ignored, advances, unrated)


def aggregate_subscription(si, sub, cov, by_pair):
    """One subscription's line usages, ignored counts and advance sequences;
    ``NotRated`` when one of its events holds a value that cannot be held."""
    usages, ignored, advances = [], {}, {}
    for ci, charge in enumerate(sub.charges):
        m = charge.metric
        q_expr = m.quantity()
        poly = polymod.compile_expr(q_expr, m.unit_scale) if q_expr is not None else None
        lo = NEG_INF if (m.recurring and not charge.pay_in_advance) else cov.lo
        lines: dict = {}
        for e in by_pair.get((sub.external_id, m.event_code), ()):
            if not lo <= e["ts"] <= cov.hi:
                continue
            props = e["props"]
            b = bucket_of(charge, props)
            try:
                q = quantity(charge, poly, props)
                cents = event_cents(charge, e) if q is not None else None
            except Unholdable as x:
                raise NotRated(x.unrated(sub, charge, e["tx"])) from None
            if q is None:
                ignored[(si, ci, b)] = ignored.get((si, ci, b), 0) + 1
                continue
            w = window_of(charge.bucket_windows(b), e["ts"])
            key = (b, tuple(props.get(k) for k in charge.group_by), w)
            uid = props.get(m.field) if m.aggregation == "unique_count" else None
            lines.setdefault(key, []).append(
                dict(ts=e["ts"], rowid=e["rowid"], tx=e["tx"], q=q, cents=cents, uid=uid,
                     remove=props.get("operation_type") == REMOVE, reason=props.get(END_REASON))
            )
        for key, rows in lines.items():
            if charge.pay_in_advance:
                rows.sort(key=lambda r: (r["ts"], r["rowid"]))
                advances[LineKey(si, ci, *key)] = [
                    AdvanceEvent(r["ts"], r["rowid"], r["tx"], r["q"], r["cents"], r["uid"], r["remove"],
                                 cov.eff_days - max(cov.day_index(r["ts"]), 0))
                    for r in rows
                ]
            else:
                usages.append(_aggregate(charge, si, ci, key, rows, cov))
    return usages, ignored, advances
