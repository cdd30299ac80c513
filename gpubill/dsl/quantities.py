"""Units of the IR's quantities: one set of rules for the checker and the compiler.

* a metric counts events (count, unique_count) or is measured in its `in
  UNIT`, else in the natural unit of its expression (canonical properties
  carry units, any other property is a plain number);
* a charge counts in the unit of its main price (`per hour`) when that fits
  the metric, else in the metric's unit; every other price of the charge is
  converted to that unit, and the conversion must be an exact decimal.

`gpubill check` reports what breaks these rules; `gpubill.engine.spec.compile`
relies on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction

from gpubill.dsl import ast, units

def expr_unit(e: ast.Expr) -> units.UnitValue:
    """The unit of an expression, as the engine computes it."""
    if isinstance(e, ast.Const):
        return units.DIMENSIONLESS
    if isinstance(e, ast.Prop):
        return units.property_unit(e.name)
    if isinstance(e, ast.Neg):
        return expr_unit(e.operand)
    left = expr_unit(e.left)
    if e.op == "*":
        return left * expr_unit(e.right)
    return left


def expr_props(e: ast.Expr | None) -> Iterator[ast.Prop]:
    """Every property reference in an expression, in source order."""
    if e is None:
        return
    if isinstance(e, ast.Prop):
        yield e
    elif isinstance(e, ast.Neg):
        yield from expr_props(e.operand)
    elif isinstance(e, ast.BinOp):
        yield from expr_props(e.left)
        yield from expr_props(e.right)


def metric_unit(metric: ast.Metric) -> units.UnitValue | None:
    """The unit of a metric's quantities; None when it cannot be known (unknown unit, no aggregation)."""
    agg = metric.aggregation
    if agg is None:
        return None
    if agg.kind in ("count", "unique_count"):
        return units.lookup("event")
    if agg.unit is not None:
        return units.lookup(agg.unit.name)
    if agg.expr is None:
        return None
    return expr_unit(agg.expr)


def price_unit(price: ast.Price) -> ast.Unit | None:
    return getattr(price, "unit", None)


def charge_unit(charge: ast.Charge, metric: ast.Metric) -> units.UnitValue | None:
    """The unit a charge counts in: its main price's unit if it fits the metric, else the metric's."""
    mu = metric_unit(metric)
    if mu is None:
        return None
    pu = price_unit(charge.price)
    agg = metric.aggregation
    if pu is not None and agg is not None and agg.expr is not None:
        u = units.lookup(pu.name)
        if u is not None and u.compatible(mu):
            return u
    return mu


def exact_factor(target: units.UnitValue, unit: units.UnitValue) -> bool:
    """Whether a price per `unit` converts to a price per `target` as an exact decimal."""
    f = Fraction(target.scale) / Fraction(unit.scale)
    d = f.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def in_unit(q: ast.Quantity, target: units.UnitValue) -> Decimal | None:
    u = units.lookup(q.unit)
    if u is None:
        return None
    return q.value * u.scale / target.scale
