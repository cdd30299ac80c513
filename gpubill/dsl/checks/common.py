"""What several checks need: walking the IR, finding a charge's metric, units, instants.

Nothing here reports a diagnostic; these are lookups over a resolved Catalog.
The unit rules mirror the engine's compiler (gpubill/engine/spec/compile.py), so
that whatever `gpubill check` accepts compiles:

* a metric counts events (count, unique_count) or is measured in its `in
  UNIT`, else in the natural unit of its expression (canonical properties
  carry units, any other property is a plain number);
* a charge counts in the unit of its main price (`per hour`) when that fits
  the metric, else in the metric's unit; every other price of the charge is
  converted to that unit, and the conversion must be an exact decimal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import attrs

from gpubill.dsl import ast, units
from gpubill.dsl.resolve import Catalog

UTC = dt.timezone.utc


def walk(node) -> Iterator[object]:
    """Every IR node under `node` (itself included), depth first, in field order."""
    if isinstance(node, tuple):
        for x in node:
            yield from walk(x)
        return
    if not attrs.has(type(node)):
        return
    yield node
    for f in attrs.fields(type(node)):
        if f.name != "span":
            yield from walk(getattr(node, f.name))


def blocks(cat: Catalog) -> Iterator[ast.Block]:
    """Every block the catalog kept (duplicates were dropped by resolve)."""
    yield from cat.entities.values()
    yield from cat.metrics.values()
    for versions in cat.plans.values():
        yield from versions
    yield from cat.contracts.values()
    yield from cat.tests


def plans(cat: Catalog) -> Iterator[ast.Plan]:
    for versions in cat.plans.values():
        yield from versions


def contract_plan(cat: Catalog, contract: ast.Contract) -> ast.Plan | None:
    """The plan version a contract is checked against (pinned, else the latest)."""
    if contract.plan is None:
        return None
    return cat.plan_version(contract.plan)


def find_charge(plan: ast.Plan, key: str) -> ast.Charge | None:
    for ch in plan.charges:
        if ch.key == key:
            return ch
    return None


def charge_prices(charge: ast.Charge) -> Iterator[ast.Price]:
    """The charge's own price, then its filters' and windows' prices."""
    yield charge.price
    for f in charge.filters:
        yield f.price
    for w in charge.windows:
        yield w.price


# ---------------------------------------------------------------- dimensions


def dimensions(metric: ast.Metric) -> dict[str, ast.Dimension]:
    out: dict[str, ast.Dimension] = {}
    for d in metric.dimensions:
        out.setdefault(d.name.name, d)
    return out


def declared_values(metric: ast.Metric, key: str) -> tuple[str, ...] | None:
    """The values a dimension may take: its `in` list, the canonical set, or None (any)."""
    d = dimensions(metric).get(key)
    if d is None:
        return None
    if d.values is not None:
        return tuple(v.value for v in d.values)
    return units.CANONICAL_VALUES.get(key)


# Units of quantities live in gpubill.dsl.quantities (shared with the engine's compiler).
from gpubill.dsl.quantities import (  # noqa: E402,F401
    charge_unit,
    exact_factor,
    expr_props,
    expr_unit,
    in_unit,
    metric_unit,
    price_unit,
)


# ---------------------------------------------------------------- time


def instant(w: ast.When | None) -> dt.datetime | None:
    """A comparable instant: a date is its midnight UTC; invalid and naive values give None."""
    if w is None or w.value is None:
        return None
    v = w.value
    if isinstance(v, dt.datetime):
        return v if v.tzinfo is not None else None
    return dt.datetime(v.year, v.month, v.day, tzinfo=UTC)


def end_instant(w: ast.When | None) -> dt.datetime | None:
    """Like `instant`, but a date means the end of that day (for inclusive ends)."""
    t = instant(w)
    if t is not None and w is not None and not isinstance(w.value, dt.datetime):
        t += dt.timedelta(days=1)
    return t


def version_ranges(versions: tuple[ast.Plan, ...]) -> dict[int, tuple[dt.datetime | None, dt.datetime | None]]:
    """id(plan) -> [from, to) of each version: `to` is the end of its own `to` date (the last day it
    is in effect), else the next version's start."""
    starts = sorted(
        {t for p in versions if p.version and (t := instant(p.version.effective_from)) is not None}
    )
    out = {}
    for p in versions:
        v = p.version
        start = instant(v.effective_from) if v else None
        end = end_instant(v.effective_to) if v else None
        if end is None and start is not None:
            later = [s for s in starts if s > start]
            end = later[0] if later else None
        out[id(p)] = (start, end)
    return out
