"""Compile the resolved IR of a contract into the engine's program.

`compile_subscription(catalog, resolved) -> SubscriptionSpec` takes a
subscription resolved once (`gpubill.engine.spec.subscription`: its plan version,
timezone, period and bounds, as values), applies the contract's overrides and
idle policy, and turns every charge of that version into a `ChargeSpec` whose
prices are expressed per the metric's unit (a price `per minute` on a metric
`in hours` is multiplied by 60, exactly). Units come from `gpubill.dsl.units`;
the checker has already rejected incompatible ones, so a mismatch here is a
`CompileError`.

Rules stated here (and in docs/language.md):
* Quantities are in the metric's unit: its `in UNIT`, else the natural unit
  of its expression (seconds, tokens, ...). Tier bounds and package sizes are
  in that unit too.
* An unconditional `override` replaces the charge's whole price (its default,
  table rows, filters and windows); an override with `where`, or with a `by`
  table, replaces (or adds) only the matching filters.
* A `during A .. B` window holds events with A <= timestamp < B; dates are
  midnight in the plan's timezone.
* Money rounds once per line: the charge's `rounding`, else the plan's, else
  half-up to the currency's minor unit.
* Every compiled price keeps its source (`file:line:col` of the charge,
  table row, `where` filter, `during` window or contract override that set
  it last), so that explain looks it up instead of re-deciding precedence.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from gpubill.dsl import ast, currencies, quantities, units
from gpubill.dsl.resolve import Catalog
from gpubill.engine.spec import program as p
from gpubill.engine.calendar.period import start_of, to_ms

if TYPE_CHECKING:  # resolving a subscription builds on this module's errors
    from gpubill.engine.spec.subscription import Resolved

DEFAULT_CURRENCY = "USD"  # a plan that names no currency

_ROUND_MODES = {
    "half_up": "ROUND_HALF_UP",
    "half_even": "ROUND_HALF_EVEN",
    "half_down": "ROUND_HALF_DOWN",
    "up": "ROUND_UP",
    "down": "ROUND_DOWN",
    "ceiling": "ROUND_CEILING",
    "floor": "ROUND_FLOOR",
}

#: Fixed-point exponents for canonical properties (value = int * 10**exp).
PROPERTY_SCALES = {
    "gpu_count": -3,
    "duration_seconds": -3,
    "avg_utilization": -4,
    "peak_vram_gb": -3,
    "input_tokens": 0,
    "output_tokens": 0,
    "cached_tokens": 0,
    "total_flops": 9,
}
DEFAULT_SCALE = -6


class CompileError(Exception):
    """The IR cannot become a program (the checker should have said so)."""


# ---------------------------------------------------------------- expressions


def _expr(e: ast.Expr) -> p.Expr:
    if isinstance(e, ast.Const):
        return p.Const(e.value)
    if isinstance(e, ast.Prop):
        return p.Prop(e.name)
    if isinstance(e, ast.Neg):
        return p.Sub(p.Const(0), _expr(e.operand))
    ops = {"+": p.Add, "-": p.Sub, "*": p.Mul, "/": p.Div}
    return ops[e.op](_expr(e.left), _expr(e.right))


def _props(e: ast.Expr) -> set[str]:
    return {p.name for p in quantities.expr_props(e)}


def metric_unit(m: ast.Metric) -> units.UnitValue:
    """The unit a metric's quantities are expressed in (see gpubill.dsl.quantities)."""
    u = quantities.metric_unit(m)
    if u is None:
        raise CompileError(f'metric "{m.name.name}": its unit is unknown')
    return u


def charge_unit(charge: ast.Charge, metric: ast.Metric) -> units.UnitValue:
    u = quantities.charge_unit(charge, metric)
    if u is None:
        raise CompileError(f'charge "{charge.key}": its unit is unknown')
    return u


def compile_metric(m: ast.Metric, target: units.UnitValue | None = None) -> p.MetricSpec:
    """The metric as the engine sees it, its quantity expressed in `target` units.

    The unit conversion is folded into the expression as an exact rational
    (`x * natural / target`), never as a rounded Decimal factor.
    """
    agg = m.aggregation
    if agg is None or m.event is None:
        raise CompileError(f'metric "{m.name.name}" needs an event and an aggregation')
    expr = _expr(agg.expr) if agg.expr is not None else None
    scales: dict[str, int] = {}
    if agg.expr is not None:
        natural = quantities.expr_unit(agg.expr)
        target = target or metric_unit(m)
        if natural.scale != target.scale:
            expr = p.Div(p.Mul(expr, p.Const(natural.scale)), p.Const(target.scale))
        for name in _props(agg.expr):
            scales[name] = PROPERTY_SCALES.get(name, DEFAULT_SCALE)
    per_event = []
    for pe in m.per_event:
        prop_unit = units.property_unit(pe.prop.name)

        def conv(q: ast.Quantity | None):
            if q is None:
                return None
            u = units.lookup(q.unit)
            if u is None:
                raise CompileError(f'unknown unit "{q.unit}"')
            return q.value * u.scale / prop_unit.scale

        per_event.append(p.PerEvent(pe.prop.name, conv(pe.increment), conv(pe.minimum), conv(pe.maximum)))
        scales.setdefault(pe.prop.name, PROPERTY_SCALES.get(pe.prop.name, DEFAULT_SCALE))
    rounding = p.MetricRounding(m.rounding.function, m.rounding.precision) if m.rounding else None
    return p.MetricSpec(
        code=m.name.name,
        event_code=m.event.name,
        aggregation=agg.kind,
        expr=expr,
        field=agg.field.name if agg.field is not None else None,
        per_event=tuple(per_event),
        recurring=m.recurring,
        rounding=rounding,
        property_scales=scales,
    )


# ---------------------------------------------------------------- prices


def _factor(metric_u: units.UnitValue, price_unit: ast.Unit | None) -> Decimal:
    """Multiply a price per `price_unit` by this to get a price per metric unit."""
    if price_unit is None:
        return Decimal(1)
    u = units.lookup(price_unit.name)
    if u is None:
        raise CompileError(f'unknown unit "{price_unit.name}"')
    if not u.compatible(metric_u):
        raise CompileError(f'a price per {price_unit.name} does not fit a metric measured in {metric_u.describe()}')
    factor = Fraction(metric_u.scale) / Fraction(u.scale)
    exact = Decimal(factor.numerator) / Decimal(factor.denominator)
    if Fraction(exact) != factor:
        raise CompileError(f"price per {price_unit.name} cannot be converted exactly; give every price of a charge the same unit")
    return exact


def compile_price(price: ast.Price, metric_u: units.UnitValue) -> p.Model:
    if isinstance(price, ast.Standard):
        return p.Standard(price.amount.value * _factor(metric_u, price.unit))
    if isinstance(price, (ast.Graduated, ast.Volume)):
        f = _factor(metric_u, price.unit)
        tiers = tuple(
            p.Tier(
                t.from_value.value,
                t.to_value.value if t.to_value is not None else None,
                t.price.value * f,
                t.flat.value if t.flat is not None else Decimal(0),
            )
            for t in price.tiers
        )
        return p.Graduated(tiers) if isinstance(price, ast.Graduated) else p.Volume(tiers)
    if isinstance(price, ast.GraduatedPercentage):
        tiers = tuple(
            p.Tier(
                t.from_value.value,
                t.to_value.value if t.to_value is not None else None,
                t.price.value,
                t.flat.value if t.flat is not None else Decimal(0),
            )
            for t in price.tiers
        )
        return p.GraduatedPercentage(tiers)
    if isinstance(price, ast.Package):
        size = _in_metric_units(price.size, metric_u)
        free = _in_metric_units(price.free, metric_u) if price.free is not None else Decimal(0)
        if size != size.to_integral_value() or free != free.to_integral_value() or size <= 0:
            raise CompileError("a package size and its free units must be whole metric units")
        return p.Package(price.amount.value, int(size), int(free))
    if isinstance(price, ast.Percentage):
        return p.Percentage(
            rate=price.rate.value,
            fixed_amount=price.fixed.value if price.fixed else None,
            free_events=int(price.free_events.value) if price.free_events else None,
            free_amount=price.free_amount.value if price.free_amount else None,
            min_per_event=price.minimum.value if price.minimum else None,
            max_per_event=price.maximum.value if price.maximum else None,
        )
    if isinstance(price, ast.Dynamic):
        return p.Dynamic()
    raise CompileError(f"a {type(price).__name__} price has no model of its own")


def _in_metric_units(q: ast.Quantity, metric_u: units.UnitValue) -> Decimal:
    u = units.lookup(q.unit)
    if u is None:
        raise CompileError(f'unknown unit "{q.unit}"')
    return q.value * u.scale / metric_u.scale


def _condition(c: ast.Condition) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for m in c.matches:
        vals = frozenset(v.value for v in m.values)
        out[m.key.name] = out[m.key.name] & vals if m.key.name in out else vals
    return out


def _where(span: ast.Span | None) -> str | None:
    """A clause's source as explain shows it (file:line:col)."""
    return None if span is None else str(span)


class _ChargeBuilder:
    """Default model, filters (keyed by their condition) and windows of one
    charge, each with the source of the clause that set it last."""

    def __init__(self, metric_u: units.UnitValue, tz: str):
        self.metric_u = metric_u
        self.tz = tz
        self.default: p.Model = p.Standard(Decimal(0))
        self.default_source: str | None = None
        self.filters: dict[tuple, p.Filter] = {}
        self.windows: list[p.PriceWindow] = []

    def set_price(self, price: ast.Price, source: str | None) -> None:
        """The default price, written at `source` (a table's rows keep their own)."""
        self.default_source = source
        if isinstance(price, ast.PriceTable):
            self.default = p.Standard(Decimal(0))
            self.add_table(price)
        else:
            self.default = compile_price(price, self.metric_u)

    def add_table(self, table: ast.PriceTable, base: dict | None = None) -> None:
        """One filter per row: `base` and the row's value, priced and sourced by the row."""
        f = _factor(self.metric_u, table.unit)
        for row in table.rows:
            values = {**(base or {}), table.dimension.name: frozenset({row.value.value})}
            self.put_filter(values, p.Standard(row.amount.value * f), _where(row.span))

    def put_filter(self, values: dict, model: p.Model, source: str | None) -> None:
        # An identical condition replaces the earlier one (an override), keeping its place.
        self.filters[p.canonical_filter(values)] = p.Filter(values, model, source=source)

    def add_where(self, cond: ast.Condition, price: ast.Price, source: str | None) -> None:
        values = _condition(cond)
        if isinstance(price, ast.PriceTable):
            self.add_table(price, values)
        else:
            self.put_filter(values, compile_price(price, self.metric_u), source)

    def add_window(self, w: ast.WindowPrice) -> None:
        if isinstance(w.price, ast.PriceTable):
            raise CompileError("a price window takes one price, not a table")
        self.windows.append(p.PriceWindow(when_ms(w.start, self.tz), when_ms(w.end, self.tz),
                                          compile_price(w.price, self.metric_u), source=_where(w.span)))

    def reset(self) -> None:
        self.filters.clear()
        self.windows.clear()


def when_ms(w: ast.When, tz: str) -> int:
    if w.value is None:
        raise CompileError(f"{w.text} is not a valid date")
    return to_ms(start_of(w.value, tz))


def _apply_override(b: _ChargeBuilder, o: ast.Override) -> None:
    if o.condition is not None:
        b.add_where(o.condition, o.price, _where(o.span))
    elif isinstance(o.price, ast.PriceTable):
        b.add_table(o.price)
    else:
        b.reset()
        b.set_price(o.price, _where(o.span))


def _utilization(contract: ast.Contract, metric: ast.Metric) -> p.Utilization | None:
    """The idle policy, for metrics that measure GPU time and not utilization already."""
    idle = contract.idle
    if idle is None or idle.kind == "allocation":
        return None
    agg = metric.aggregation
    if agg is None or agg.expr is None:
        return None
    dims = dict(quantities.expr_unit(agg.expr).dims)
    if dims.get("gpu") != 1 or dims.get("time") != 1 or "avg_utilization" in _props(agg.expr):
        return None
    floor = idle.minimum.value / 100 if (idle.kind == "hybrid" and idle.minimum is not None) else Decimal(0)
    return p.Utilization("avg_utilization", floor, Decimal(1))


def compile_charge(
    catalog: Catalog, plan: ast.Plan, charge: ast.Charge, contract: ast.Contract | None, tz: str
) -> p.ChargeSpec:
    metric = catalog.metrics.get(charge.metric.name)
    if metric is None:
        raise CompileError(f'unknown metric "{charge.metric.name}"')
    mu = charge_unit(charge, metric)
    spec = compile_metric(metric, mu)
    b = _ChargeBuilder(mu, tz)
    b.set_price(charge.price, _where(charge.span))
    for wp in charge.filters:
        b.add_where(wp.condition, wp.price, _where(wp.span))
    for w in charge.windows:
        b.add_window(w)
    if contract is not None:
        for o in contract.overrides:
            if o.charge.name == charge.key:
                _apply_override(b, o)
    currency = plan.currency.name if plan.currency else DEFAULT_CURRENCY
    rounding = charge.rounding or plan.rounding
    if rounding is not None:
        money = p.MoneyRounding(_ROUND_MODES[rounding.mode], rounding.quantum.value)
    else:
        money = p.MoneyRounding("ROUND_HALF_UP", currencies.quantum(currency))
    return p.ChargeSpec(
        id=charge.key,
        metric=spec,
        model=b.default,
        filters=tuple(b.filters.values()),
        group_by=tuple(g.name for g in charge.group_by),
        pay_in_advance=charge.timing == "advance",
        prorated=charge.prorated,
        min_amount=charge.minimum_spend.value if charge.minimum_spend else None,
        money_rounding=money,
        windows=tuple(b.windows),
        utilization=_utilization(contract, metric) if contract is not None else None,
        source=b.default_source,
    )


def compile_subscription(catalog: Catalog, resolved: Resolved) -> p.SubscriptionSpec:
    """The program that rates one resolved subscription: its version's charges,
    its period, bounds and timezone, all as `resolved` decided them."""
    contract, plan, tz = resolved.contract, resolved.plan, resolved.timezone
    if contract.subscription is None:
        raise CompileError(f'contract "{contract.name.name}" has no subscription id')
    return p.SubscriptionSpec(
        external_id=contract.subscription.value,
        charges=tuple(compile_charge(catalog, plan, ch, contract, tz) for ch in plan.charges),
        period_from_ms=resolved.period.from_ms,
        period_to_ms=resolved.period.to_ms,
        started_at_ms=resolved.started_ms,
        terminated_at_ms=resolved.terminated_ms,
        timezone=tz,
    )
