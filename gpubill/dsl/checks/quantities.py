"""Units and quantity expressions.

* An expression reads numeric properties only (gpu_type is a string), divides
  only by non-zero constants, and adds only quantities of one kind (seconds +
  tokens is meaningless).
* A metric's `in UNIT` fits its expression; a price `per UNIT`, a package
  size, a reservation rate and a per-event increment fit the quantity they
  price or round; a grace period is a time.
* Every price of a charge converts exactly to the unit the charge counts in
  (see gpubill.dsl.checks.common), and package sizes are whole units of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

from gpubill.dsl import ast, units
from gpubill.dsl.checks.common import (
    charge_prices, charge_unit, contract_plan, exact_factor, expr_props, expr_unit, find_charge, in_unit, metric_unit, plans,
    price_unit, walk,
)
from gpubill.dsl.diagnostics import Diagnostic, error
from gpubill.dsl.limits import MAX_EXPR_TERMS
from gpubill.dsl.resolve import Catalog

TIME = units.lookup("second")

_SUGGEST = {
    (("time", 1),): "hour",
    (("token", 1),): "Mtoken",
    (("byte", 1),): "GB",
    (("flop", 1),): "PFLOP",
    (("byte", 1), ("time", 1)): "GB-hour",
    (("flop", 1), ("time", 1)): "PFLOP-hour",
    (): "event",
}


def check_quantities(cat: Catalog) -> Iterator[Diagnostic]:
    for m in cat.metrics.values():
        yield from _metric(m)
    for e in cat.entities.values():
        yield from _time(e.invoice_grace, "an invoice grace period")
    for plan in plans(cat):
        for ch in plan.charges:
            m = cat.metrics.get(ch.metric.name)
            if m is not None:
                yield from _charge(m, ch, charge_prices(ch))
    for c in cat.contracts.values():
        yield from _contract(cat, c)


def _time(q: ast.Quantity | None, what: str) -> Iterator[Diagnostic]:
    u = units.lookup(q.unit) if q is not None else None
    if u is not None and not u.compatible(TIME):
        yield error(
            "unit-mismatch", f"{what} is a time, not {u.describe()}", q.span,
            hints=(f"write it in days or hours, e.g. {q.value.normalize():f} days",),
        )


# ---------------------------------------------------------------- metrics


def _metric(m: ast.Metric) -> Iterator[Diagnostic]:
    agg = m.aggregation
    if agg is None:
        return
    if agg.expr is not None:
        yield from _expr(agg.expr)
        yield from _expansion(agg.expr)
        if agg.unit is not None:
            u, natural = units.lookup(agg.unit.name), expr_unit(agg.expr)
            if u is not None and not natural.compatible(u):
                hints = (f"drop `in {agg.unit.name}`: the expression is measured in {natural.describe()}",)
                if not natural.dims:
                    hints = (
                        "the expression is a plain number: only canonical properties such as duration_seconds, "
                        "input_tokens or peak_vram_gb carry a unit",
                    )
                yield error(
                    "unit-mismatch",
                    f"the expression is measured in {natural.describe()}; it cannot be expressed in {agg.unit.name}",
                    agg.unit.span,
                    hints=hints,
                )
    used = {p.name for p in expr_props(agg.expr)}
    for pe in m.per_event:
        if pe.prop.name not in used:
            hints = (f"the metric's expression reads: {', '.join(sorted(used))}",) if used else (
                f"a {agg.kind.replace('_', ' ')} metric reads no property to round",
            )
            yield error(
                "unused-per-event",
                f'per-event rounding of "{pe.prop.name}", which the metric does not read',
                pe.prop.span,
                hints=hints,
            )
        yield from _per_event(pe)


def _per_event(pe: ast.PerEvent) -> Iterator[Diagnostic]:
    pu = units.property_unit(pe.prop.name)
    for q in (pe.increment, pe.minimum, pe.maximum):
        u = units.lookup(q.unit) if q is not None else None
        if u is not None and pu.dims and not u.compatible(pu):
            yield error(
                "unit-mismatch",
                f"{pe.prop.name} is measured in {pu.describe()}, not {u.describe()}",
                q.span,
                hints=(f"give it in {units.PROPERTY_UNITS.get(pe.prop.name, 'the property')}s",),
            )
    if pe.minimum is not None and pe.maximum is not None:
        lo, hi = in_unit(pe.minimum, units.DIMENSIONLESS), in_unit(pe.maximum, units.DIMENSIONLESS)
        if lo is not None and hi is not None and lo > hi:
            yield error(
                "minimum-above-maximum",
                f"the minimum {pe.minimum.text} is above the maximum {pe.maximum.text}",
                pe.minimum.span,
                notes=(("maximum", pe.maximum.span),),
            )


def _expansion(e: ast.Expr) -> Iterator[Diagnostic]:
    if _terms(e) > MAX_EXPR_TERMS:
        yield error(
            "expression-too-complex",
            f"this expression multiplies out to more than {MAX_EXPR_TERMS} terms, "
            "which the rating engine would expand one by one",
            e.span,
            hints=("compute the quantity where the events are made and send it as one property",),
        )


def _terms(e: ast.Expr) -> int:
    """How many terms the expression has once multiplied out (at most), counted up to just past the limit.

    Recursive: the parser refuses an expression of more than MAX_EXPR_OPERATORS operators.
    """
    if isinstance(e, ast.Neg):
        return _terms(e.operand)
    if not isinstance(e, ast.BinOp):
        return 1
    left = _terms(e.left)
    if e.op == "/":
        return left
    right = _terms(e.right)
    return min(left * right if e.op == "*" else left + right, MAX_EXPR_TERMS + 1)


def _value(e: ast.Expr) -> Fraction | None:
    """The exact value of a constant expression; None when it divides by zero itself (reported there).

    Recursive: the parser refuses an expression of more than MAX_EXPR_OPERATORS operators.
    """
    if isinstance(e, ast.Const):
        return Fraction(e.value)
    if isinstance(e, ast.Neg):
        v = _value(e.operand)
        return None if v is None else -v
    a, b = _value(e.left), _value(e.right)
    if a is None or b is None:
        return None
    if e.op == "/":
        return None if b == 0 else a / b
    return a + b if e.op == "+" else a - b if e.op == "-" else a * b


def _constant(e: ast.Expr) -> bool:
    return not any(True for _ in expr_props(e))


def _expr(e: ast.Expr) -> Iterator[Diagnostic]:
    for n in walk(e):
        if isinstance(n, ast.Prop) and n.name in units.STRING_PROPERTIES:
            yield error(
                "non-numeric-property",
                f'"{n.name}" is a string property; a quantity needs numbers',
                n.span,
                hints=(f"filter or group by {n.name} instead: dimension {n.name}",),
            )
        elif isinstance(n, ast.BinOp) and n.op == "/":
            if not _constant(n.right):
                yield error(
                    "divide-by-property",
                    "a quantity cannot be divided by a property",
                    n.right.span,
                    hints=("divide only by constants, e.g. / 3600", "or convert with `in UNIT`: sum duration_seconds in hours"),
                )
            elif _value(n.right) == 0:
                yield error("division-by-zero", "division by zero", n.right.span)
        elif isinstance(n, ast.BinOp) and n.op in "+-":
            if _constant(n.left) or _constant(n.right):
                continue
            a, b = expr_unit(n.left), expr_unit(n.right)
            if a.dims != b.dims:
                yield error(
                    "unit-mismatch",
                    f"cannot {'add' if n.op == '+' else 'subtract'} {b.describe()} "
                    f"{'to' if n.op == '+' else 'from'} {a.describe()}",
                    n.span,
                    hints=("only quantities of one kind add up: tokens + tokens, seconds + seconds",),
                )


# ---------------------------------------------------------------- prices


def _singular(name: str) -> str:
    """`hours` -> `hour`, for "price it per hour"."""
    if name.endswith("s") and units.lookup(name[:-1]) is not None:
        return name[:-1]
    return name


def _fit(m: ast.Metric, mu: units.UnitValue, name: str, span) -> Diagnostic | None:
    u = units.lookup(name)
    if u is None or u.compatible(mu):
        return None
    agg = m.aggregation
    suggest = _singular(agg.unit.name) if agg is not None and agg.unit is not None else _SUGGEST.get(mu.hard_dims)
    hints = (f"price it per {suggest}",) if suggest else ()
    return error(
        "unit-mismatch",
        f'a price per {name} does not fit metric "{m.name.name}", measured in {mu.describe()}',
        span,
        hints=hints,
        notes=(("metric", m.name.span),),
    )


def _charge(m: ast.Metric, ch: ast.Charge, prices) -> Iterator[Diagnostic]:
    mu, cu = metric_unit(m), charge_unit(ch, m)
    if mu is None or cu is None:
        return
    for p in prices:
        for n in walk(p):
            unit = price_unit(n) if isinstance(n, (ast.Standard, ast.PriceTable, ast.Graduated, ast.Volume)) else None
            if unit is not None:
                bad = _fit(m, mu, unit.name, unit.span)
                if bad is not None:
                    yield bad
                    continue
                u = units.lookup(unit.name)
                if u is not None and not exact_factor(cu, u):
                    yield _inexact(unit, cu, m)
            if isinstance(n, ast.Package):
                for q in (n.size, n.free):
                    if q is None:
                        continue
                    bad = _fit(m, mu, q.unit, q.span)
                    if bad is not None:
                        yield bad
                        continue
                    v = in_unit(q, cu)
                    if v is not None and v != v.to_integral_value():
                        yield error(
                            "not-whole",
                            f"{q.text} is not a whole number of the units this charge counts in",
                            q.span,
                            hints=(f"the charge counts in {_unit_word(ch, m)}; give the size in whole units of it",),
                        )


def _unit_word(ch: ast.Charge, m: ast.Metric) -> str:
    pu = price_unit(ch.price)
    if pu is not None:
        return pu.name
    if m.aggregation is not None and m.aggregation.unit is not None:
        return m.aggregation.unit.name
    return "the metric's natural unit"


def _inexact(unit: ast.Unit, cu: units.UnitValue, m: ast.Metric) -> Diagnostic:
    return error(
        "inexact-unit",
        f"a price per {unit.name} cannot be converted exactly to the unit this charge counts in",
        unit.span,
        hints=(
            "give every price of a charge the same unit",
            f'or measure metric "{m.name.name}" in {unit.name}: `in {unit.name}`',
        ),
    )


def _contract(cat: Catalog, c: ast.Contract) -> Iterator[Diagnostic]:
    yield from _time(c.invoice_grace, "an invoice grace period")
    if c.late_events is not None:
        yield from _time(c.late_events.grace, "a late-events grace period")
    plan = contract_plan(cat, c)
    if plan is not None:
        for o in c.overrides:
            ch = find_charge(plan, o.charge.name)
            m = cat.metrics.get(ch.metric.name) if ch else None
            if m is not None:
                yield from _charge(m, ch, (o.price,))
    for r in c.reserves:
        m = cat.metrics.get(r.metric.name)
        mu = metric_unit(m) if m is not None else None
        if mu is not None:
            bad = _fit(m, mu, r.unit.name, r.unit.span)
            if bad is not None:
                yield bad
