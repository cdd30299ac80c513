"""Which events made a rated line, and where its price was written: the
engine's part of `gpubill rate --explain`.

`price_source(charge, line)` is a lookup: compile stores on each price the
clause that set it last (`file:line:col`), so explain never re-decides
override precedence.

`trace(subscription, events) -> {LineRef: [EventRef, ...]}` replays the
reference engine's routing (subscription, code, period bounds, most specific
filter, group values, price window) on one subscription's events, so that a
line can be traced back to its transaction ids. It routes; it does not
aggregate or price, and it reuses the reference engine's own routing
functions so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from gpubill.engine.spec import poly as polymod
from gpubill.engine.calendar.coverage import NEG_INF, coverage_of
from gpubill.engine.spec.program import ChargeSpec, SubscriptionSpec, canonical_filter
from gpubill.engine.reference.engine import Unholdable, bucket_of, normalize, quantity, window_of


@attrs.frozen
class LineRef:
    """The identity of a rated line, as RatedLine carries it."""

    charge_id: str
    filter: tuple  # ((key, (values...)), ...) sorted; () for the default bucket
    group: tuple  # ((key, value), ...)
    window: int | None


@attrs.frozen
class EventRef:
    transaction_id: str
    timestamp_ms: int
    counted: bool  # False: ignored (a value missing or not strictly numeric)


def line_ref(line) -> LineRef:
    """The LineRef of a RatedLine (or of its JSON-like fields)."""
    flt = canonical_filter(line.filter or {})
    return LineRef(line.charge_id, flt, tuple(line.group.items()), line.window)


def price_source(charge: ChargeSpec, line) -> str | None:
    """Where the price of `line` (a RatedLine of `charge`) was written: its
    price window's clause, else its filter's, else the charge default's."""
    bucket = None
    if line.filter is not None:
        flt = canonical_filter(line.filter)
        bucket = next(i for i, f in enumerate(charge.filters) if f.canonical == flt)
    if line.window is not None:
        return charge.bucket_windows(bucket)[line.window].source
    return charge.source if bucket is None else charge.filters[bucket].source


def trace(sub: SubscriptionSpec, events: Iterable[dict]) -> dict[LineRef, list[EventRef]]:
    cov = coverage_of(sub)
    out: dict[LineRef, list[EventRef]] = {}
    evs = [e for e in normalize(events) if e["sub"] == sub.external_id]
    evs.sort(key=lambda e: (e["ts"], e["rowid"]))
    for charge in sub.charges:
        m = charge.metric
        q_expr = m.quantity()
        poly = polymod.compile_expr(q_expr, m.unit_scale) if q_expr is not None else None
        lo = NEG_INF if (m.recurring and not charge.pay_in_advance) else cov.lo
        for e in evs:
            if e["code"] != m.event_code or not lo <= e["ts"] <= cov.hi:
                continue
            props = e["props"]
            b = bucket_of(charge, props)
            flt = () if b is None else charge.filters[b].canonical
            counted = _counted(charge, poly, props)
            w = window_of(charge.bucket_windows(b), e["ts"]) if counted else None
            group = tuple((k, props.get(k)) for k in charge.group_by)
            key = LineRef(charge.id, flt, group, w)
            out.setdefault(key, []).append(EventRef(e["tx"], e["ts"], counted))
    return out


def _counted(charge, poly, props) -> bool:
    """Whether the event enters its line (a value that cannot be held leaves
    the whole subscription out: it counts nowhere)."""
    try:
        return quantity(charge, poly, props) is not None
    except Unholdable:
        return False
