"""Lago billable metrics -> `metric` blocks.

| Lago                                   | .bill                          |
| -------------------------------------- | ------------------------------ |
| `count_agg`                            | `count`                        |
| `sum_agg` / `max_agg` / `latest_agg`   | `sum F` / `max F` / `latest F` |
| `unique_count_agg`                     | `unique count F`               |
| `weighted_sum_agg`                     | `weighted sum F`               |
| `recurring: true`                      | `recurring`                    |
| `rounding_function` + precision        | `rounding ceil 2`              |
| `filters: [{key, values}]`             | `dimension key in "a", "b"`    |
| `expression` over `event.properties.x` | the same arithmetic over `x`   |

The event code is the metric's Lago code (Lago matches events by it), so it
must be a valid name; the block name may be sanitized. `custom_agg` and
expressions with functions (`ceil`, `round`, `concat`) or timestamps are
unsupported.
"""

from __future__ import annotations

import re

from decimal import Decimal

import attrs

from gpubill.dsl import ast, units
from gpubill.lago.importer import values as V
from gpubill.lago.importer.context import At, Ctx
from gpubill.lago.importer.layout import Layout
from gpubill.lago.importer.objects import Obj
from gpubill.dsl.limits import MAX_ROUNDING_PRECISION

AGGREGATIONS = {
    "count_agg": "count",
    "sum_agg": "sum",
    "max_agg": "max",
    "latest_agg": "latest",
    "unique_count_agg": "unique_count",
    "weighted_sum_agg": "weighted_sum",
}
RECURRING_OK = ("sum", "unique_count", "weighted_sum")


@attrs.define
class MetricInfo:
    """What plans need to know about an imported metric, and the parts of its block.

    Plans may add `extra_dimensions`: Lago groups charges by any event
    property, while a `.bill` charge groups by the metric's dimensions. The
    block is laid out (`lay_out`) once every plan has been converted.
    """

    code: str
    name: str
    aggregation: str
    unit: str  # the unit a price `per UNIT` of this metric is written in
    dimensions: dict  # key -> tuple of declared values
    recurring: bool
    notes: tuple  # the comments before the block
    quantity: ast.Aggregation | None
    rounding: ast.MetricRounding | None
    extra_dimensions: list = attrs.Factory(list)

    def add_dimension(self, key: str) -> None:
        if key not in self.dimensions and key not in self.extra_dimensions:
            self.extra_dimensions.append(key)

    def lay_out(self, lay: Layout) -> ast.Metric:
        """The `metric` block, its clauses in `.bill` order on the next lines of `lay`."""
        for note in self.notes:
            lay.note(note)
        head = lay.at()
        event = ast.Ref(self.code, span=lay.at())
        quantity = attrs.evolve(self.quantity, span=lay.at()) if self.quantity else None
        dims = []
        for key, vals in self.dimensions.items():
            dims.append(ast.Dimension(ast.Ref(key), tuple(ast.Str(v) for v in vals) if vals else None, span=lay.at()))
        for key in self.extra_dimensions:
            dims.append(ast.Dimension(ast.Ref(key), None, span=lay.at()))
            lay.trail("a pricing group key in Lago")
        rounding = attrs.evolve(self.rounding, span=lay.at()) if self.rounding else None
        recurring_span = lay.at() if self.recurring else None
        return ast.Metric(ast.Ref(self.name), event, quantity, dimensions=tuple(dims), rounding=rounding,
                          recurring=self.recurring, recurring_span=recurring_span, span=lay.close(head))


def convert_metric(obj: Obj, name: str, ctx: Ctx) -> MetricInfo | None:
    d, at = obj.data, obj.at
    start = len(ctx.diags)
    code = d.get("code")
    agg_type = d.get("aggregation_type")
    kind = AGGREGATIONS.get(agg_type) if isinstance(agg_type, str) else None
    if kind is None:
        if agg_type == "custom_agg":
            ctx.error(at / "aggregation_type", "the custom aggregation is not supported",
                      "custom aggregations run a script inside Lago; express the quantity as "
                      "sum/max/latest/weighted sum of event properties")
        else:
            ctx.invalid(at / "aggregation_type", f"unknown aggregation type {agg_type!r}",
                        "expected count_agg, sum_agg, max_agg, latest_agg, unique_count_agg or weighted_sum_agg")
        return None
    if not V.is_name(code):
        ctx.error(at / "code", f"the metric code {code!r} is not a valid event code here",
                  "Lago matches events by this code; a .bill event code is a name "
                  "([A-Za-z_][A-Za-z0-9_]*): rename the metric in Lago and in the event senders, e.g. "
                  f"{re.sub(r'[^A-Za-z0-9_]', '_', str(code))!r}")
        return None
    recurring = d.get("recurring") is True
    if recurring and kind not in RECURRING_OK:
        ctx.invalid(at / "recurring", f"a {agg_type} metric cannot be recurring in Lago")
    if d.get("weighted_interval") not in (None, "seconds"):
        ctx.error(at / "weighted_interval", f"weighted interval {d.get('weighted_interval')!r} is not supported",
                  "only the seconds interval (Lago's default) is")
    if d.get("group"):
        ctx.error(at / "group", "legacy metric groups are not supported", "migrate them to metric filters in Lago first")

    quantity, unit = _quantity(d, at, kind, ctx)
    dims = _dimensions(d, at, ctx)
    notes = [f"Lago billable metric {V.string(str(code))}" + (f": {V.comment(d['name'])}" if d.get("name") else "")]
    if d.get("description"):
        notes.append(V.comment(d["description"]))
    rounding = _rounding(d, at, ctx)
    if ctx.errors_since(start):
        return None
    return MetricInfo(code, name, kind, unit, dims, recurring, tuple(notes), quantity, rounding)


def _quantity(d: dict, at: At, kind: str, ctx: Ctx) -> tuple[ast.Aggregation | None, str]:
    expression = d.get("expression")
    field = d.get("field_name")
    if kind == "count":
        if expression:
            ctx.warn(at / "expression", "a count metric counts events; its expression is not imported",
                     "Lago still rejects events whose expression fails to evaluate; gpubill counts them")
        return ast.Aggregation("count"), "event"
    if expression:
        tree = parse_expression(expression, at / "expression", ctx)
        if tree is None:
            return None, "unit"
        if kind == "unique_count":
            if tree[0] != "prop":
                ctx.error(at / "expression", "a unique count of a computed value is not supported",
                          "count the distinct values of one event property")
                return None, "unit"
            return ast.Aggregation("unique_count", field=ast.Ref(tree[1])), "unit"
        expr = expression_node(tree)
        unit = expression_unit(tree)
    else:
        if not isinstance(field, str) or not field:
            ctx.invalid(at / "field_name", f"a {kind.replace('_', ' ')} metric needs a field_name")
            return None, "unit"
        if not V.is_name(field):
            ctx.error(at / "field_name", f"the event property {field!r} cannot be named in a .bill file",
                      "property names are [A-Za-z_][A-Za-z0-9_]*; rename it in Lago and in the event senders")
            return None, "unit"
        if kind == "unique_count":
            return ast.Aggregation("unique_count", field=ast.Ref(field)), "unit"
        expr = ast.Prop(field)
        unit = expression_unit(("prop", field))
    return ast.Aggregation(kind, expr), unit


def _dimensions(d: dict, at: At, ctx: Ctx) -> dict:
    dims: dict = {}
    filters = d.get("filters") or []
    if not isinstance(filters, list):
        ctx.invalid(at / "filters", "filters must be a list of {key, values}")
        return dims
    for i, f in enumerate(filters):
        fat = at / "filters" / i
        if not isinstance(f, dict):
            ctx.invalid(fat, "a metric filter must be an object {key, values}")
            continue
        key, vals = f.get("key"), f.get("values") or []
        if not V.is_name(key):
            ctx.error(fat / "key", f"the filter key {key!r} cannot be named in a .bill file",
                      "property names are [A-Za-z_][A-Za-z0-9_]*; rename it in Lago and in the event senders")
            continue
        if not isinstance(vals, list) or not all(isinstance(v, str) for v in vals):
            ctx.invalid(fat / "values", "filter values must be a list of strings")
            continue
        for j, v in enumerate(vals):
            try:
                V.writable(v)
            except V.BadValue as e:
                ctx.error(fat / "values" / j, str(e))
        merged = list(dims.get(key, ()))
        merged += [v for v in vals if v not in merged]
        dims[key] = tuple(merged)
    return dims


def _rounding(d: dict, at: At, ctx: Ctx) -> ast.MetricRounding | None:
    fn = d.get("rounding_function")
    if fn is None:
        return None
    if fn not in ("round", "ceil", "floor"):
        ctx.invalid(at / "rounding_function", f"unknown rounding function {fn!r}", "expected round, ceil or floor")
        return None
    prec = d.get("rounding_precision")
    if prec is None:
        return ast.MetricRounding(fn)
    if isinstance(prec, bool) or not isinstance(prec, int):
        ctx.invalid(at / "rounding_precision", "the rounding precision must be a whole number")
        return None
    if abs(prec) > MAX_ROUNDING_PRECISION:
        ctx.invalid(at / "rounding_precision",
                    f"the rounding precision {prec} is outside -{MAX_ROUNDING_PRECISION} .. {MAX_ROUNDING_PRECISION}")
        return None
    return ast.MetricRounding(fn, prec)


# ---------------------------------------------------------------- expressions

_TOKEN = re.compile(
    r"\s*(?:(?P<prop>event\.properties\.(?P<pname>[A-Za-z0-9_\-]+))|(?P<num>[0-9]+(?:\.[0-9]+)?)"
    r"|(?P<op>[-+*/()])|(?P<other>[A-Za-z_][A-Za-z0-9_.]*|\S))"
)


class _ExprError(Exception):
    pass


def parse_expression(text, at: At, ctx: Ctx):
    """A Lago metric expression -> a small tree, or None (with a diagnostic).

    Trees: ("prop", name) | ("num", text) | ("neg", t) | ("paren", t) | (op, left, right).
    """
    if not isinstance(text, str):
        ctx.invalid(at, "an expression must be a string")
        return None
    toks = []
    for m in _TOKEN.finditer(text):
        if m.group("prop"):
            name = m.group("pname")
            if not V.is_name(name):
                ctx.error(at, f"the event property {name!r} cannot be named in a .bill file",
                          "property names are [A-Za-z_][A-Za-z0-9_]*")
                return None
            toks.append(("prop", name))
        elif m.group("num"):
            toks.append(("num", m.group("num")))
        elif m.group("op"):
            toks.append(("op", m.group("op")))
        elif m.group("other"):
            ctx.error(at, f"the expression {text!r} uses {m.group('other')!r}, which is not supported",
                      "only + - * / over event.properties.NAME and numbers can be expressed "
                      "(no functions such as ceil/round/concat, no event.timestamp)")
            return None
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else (None, None)

    def take():
        t = peek()
        pos[0] += 1
        return t

    def expr():
        left = term()
        while peek() in (("op", "+"), ("op", "-")):
            left = (take()[1], left, term())
        return left

    def term():
        left = factor()
        while peek() in (("op", "*"), ("op", "/")):
            op = take()[1]
            right = factor()
            if op == "/" and _has_prop(right):
                raise _ExprError("divides by an event property; a .bill quantity divides by constants only")
            left = (op, left, right)
        return left

    def factor():
        kind, val = take()
        if kind in ("prop", "num"):
            return (kind, val)
        if (kind, val) == ("op", "-"):
            return ("neg", factor())
        if (kind, val) == ("op", "("):
            inner = expr()
            if take() != ("op", ")"):
                raise _ExprError("has an unclosed parenthesis")
            return ("paren", inner)
        raise _ExprError("is not a complete arithmetic expression")

    try:
        tree = expr()
        if pos[0] != len(toks):
            raise _ExprError("is not a complete arithmetic expression")
    except _ExprError as e:
        ctx.error(at, f"the expression {text!r} {e}")
        return None
    return tree


def _has_prop(t) -> bool:
    if t[0] == "prop":
        return True
    if t[0] == "num":
        return False
    return any(_has_prop(x) for x in t[1:] if isinstance(x, tuple))


def expression_node(t) -> ast.Expr:
    """The `.bill` quantity expression of a parsed Lago expression (parentheses are the printer's)."""
    k = t[0]
    if k == "prop":
        return ast.Prop(t[1])
    if k == "num":
        return ast.Const(Decimal(t[1]), t[1])
    if k == "neg":
        return ast.Neg(expression_node(t[1]))
    if k == "paren":
        return expression_node(t[1])
    return ast.BinOp(k, expression_node(t[1]), expression_node(t[2]))


def _unit_parts(t) -> list[str]:
    """The unit names whose product is the expression's unit (the engine's rule:
    products multiply, quotients and sums keep the left operand's unit)."""
    k = t[0]
    if k == "prop":
        u = units.PROPERTY_UNITS.get(t[1])
        return [u] if u else []
    if k == "num":
        return []
    if k in ("neg", "paren"):
        return _unit_parts(t[1])
    if k == "*":
        return _unit_parts(t[1]) + _unit_parts(t[2])
    return _unit_parts(t[1])


def expression_unit(t) -> str:
    """The unit to write prices `per`: exactly the metric's natural unit (scale 1 per unit)."""
    parts = _unit_parts(t)
    return "-".join(parts) if parts else "unit"
