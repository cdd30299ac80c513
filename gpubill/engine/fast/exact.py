"""The exact path: subscriptions the kernels cannot hold, rated in rationals.

A kernel marks a subscription when one of its values cannot be held at its
column's fixed-point scale (too large, finer than the scale, or a value the
store itself could not hold: exponent ``UNHOLDABLE_EXPONENT``) or when int64
arithmetic on its quantities would overflow.  Its events are read back from
the columns as the reference engine's dicts -- the strings the kernels
compared, the exact decimals they read -- and rated by ``rate_reference``:
the two engines give one answer for them by construction, and a value that
cannot be held at all makes the subscription ``unrated`` in both.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from gpubill.engine.spec import poly as polymod
from gpubill.engine.pricing.money import MISSING_EXPONENT, UNHOLDABLE_EXPONENT
from gpubill.engine.fast.tables import CENTS_PROP, _Strings
from gpubill.engine.spec.program import END_REASON, RateResult
from gpubill.engine.reference.engine import rate_reference

# Stands for a value the store could not hold: strictly numeric and beyond
# an int64 mantissa, so the reference engine's ``held_pair`` refuses it too.
UNHOLDABLE_TEXT = "9" * 20


def rate_exact(p, bad: list[int]) -> RateResult:
    """Rate the subscriptions ``p.subs[si]`` for ``si`` in ``bad`` exactly."""
    subs = [p.subs[si] for si in bad]
    return rate_reference(subs, events_of(p.cols, subs))


def merge(subs, fast: RateResult, exact: RateResult) -> RateResult:
    """One result, in the order of ``subs``, from two runs over disjoint subscriptions."""
    order = {s.external_id: i for i, s in enumerate(subs)}

    def by_sub(items):
        return tuple(sorted(items, key=lambda x: order[x.subscription]))  # stable: each sub's order is kept

    return RateResult(by_sub(fast.lines + exact.lines), by_sub(fast.in_advance + exact.in_advance),
                      by_sub(fast.unrated + exact.unrated))


def decimal_text(m: int, e: int) -> str | None:
    """The plain decimal string of ``m * 10**e`` (None: not a number)."""
    if e == MISSING_EXPONENT:
        return None
    if e == UNHOLDABLE_EXPONENT:
        return UNHOLDABLE_TEXT
    return format(Decimal(f"{m}E{e}"), "f")


def _props_read(subs) -> tuple[set, set]:
    """(dimension properties, numeric-only properties) the subscriptions' charges read."""
    dims, nums = {END_REASON}, set()
    for s in subs:
        for ch in s.charges:
            m = ch.metric
            dims.update(k for f in ch.filters for k in f.values)
            dims.update(ch.group_by)
            if m.aggregation == "unique_count":
                dims.update((m.field, "operation_type"))
            q = m.quantity()
            if q is not None:
                nums.update(polymod.compile_expr(q, m.unit_scale).props())
            if ch.utilization is not None:
                nums.add(ch.utilization.prop)
    return dims, nums - dims


def _texts(strings, ids) -> list:
    """Dictionary ids -> strings (None for -1), decoding each distinct id once."""
    uniq = {i: strings[i] for i in set(ids) if i >= 0}
    return [uniq.get(i) for i in ids]


def _dim(cols, name, rows):
    try:
        return cols.dim(name)[rows].tolist()
    except (KeyError, LookupError):
        return [-1] * rows.size


def _transaction_ids(cols, rows) -> list:
    txs = getattr(cols, "transaction_ids", None)
    if txs is not None:
        return [txs[i] for i in rows.tolist()]
    return cols.transaction_ids_of(cols.rowid[rows])


def events_of(cols, subs) -> list[dict]:
    """The reference engine's event dicts for every row of ``subs`` in ``cols``, in row order."""
    strings = _Strings(cols)
    ids = [i for i in (strings.id(s.external_id) for s in subs) if i is not None]
    rows = np.flatnonzero(np.isin(cols.subscription, np.asarray(ids, np.int64)))
    dims, nums = _props_read(subs)
    props = {k: _texts(cols.strings, _dim(cols, k, rows)) for k in sorted(dims)}
    for k in sorted(nums):
        m, e = cols.numeric(k)
        props[k] = [decimal_text(a, b) for a, b in zip(m[rows].tolist(), e[rows].tolist())]
    if any(ch.reads_cents() for s in subs for ch in s.charges):
        m, e = getattr(cols, CENTS_PROP) if hasattr(cols, CENTS_PROP) else cols.numeric(CENTS_PROP)
        cents = [decimal_text(a, b) for a, b in zip(m[rows].tolist(), e[rows].tolist())]
    else:
        cents = [None] * rows.size
    names = list(props)
    values = list(zip(*(props[k] for k in names))) if names else [()] * rows.size
    return [
        {"transaction_id": tx, "external_subscription_id": sub, "code": code, "timestamp_ms": ts, "rowid": rid,
         "properties": {k: v for k, v in zip(names, vals) if v is not None}, CENTS_PROP: c}
        for tx, sub, code, ts, rid, vals, c in zip(
            _transaction_ids(cols, rows), _texts(cols.strings, cols.subscription[rows].tolist()),
            _texts(cols.strings, cols.code[rows].tolist()), cols.timestamp_ms[rows].tolist(),
            cols.rowid[rows].tolist(), values, cents)
    ]
