"""Lago charge models (`charge_model` + `properties`) -> `.bill` prices.

| Lago model             | .bill price                                              |
| ---------------------- | -------------------------------------------------------- |
| standard               | `AMOUNT per UNIT`                                        |
| graduated              | `graduated { FROM to TO at PRICE flat FLAT ... }`        |
| volume                 | `volume { ... }`                                         |
| package                | `package AMOUNT per SIZE UNITs free N UNITs`             |
| percentage             | `percentage R%, fixed F per event, free N events, free A, minimum m per event, maximum M per event` |
| graduated_percentage   | `graduated percentage { FROM to TO at R% flat FLAT ... }` |
| dynamic                | `dynamic`                                                |

Tier bounds are copied exactly as Lago gives them: the language's tiers use
Lago's reading (`to` inclusive, `from` + 1 widths, adjacent mode), and a
`to_value` of null is `and above`. Missing properties take Lago's defaults
(standard 0, one free tier, package of 1 at 0, rate 0). `custom` is
unsupported.
"""

from __future__ import annotations

from decimal import Decimal

from gpubill.dsl import ast, units
from gpubill.lago.importer import values as V
from gpubill.lago.importer.context import At, Ctx
from gpubill.lago.importer.metrics import MetricInfo

MODELS = ("standard", "graduated", "volume", "package", "percentage", "graduated_percentage", "dynamic")


def price(model: str, props, metric: MetricInfo, at: At, ctx: Ctx) -> ast.Price | None:
    """The price of one properties object (a charge's or a filter's); None on error."""
    if props is None:
        props = {}
    if not isinstance(props, dict):
        ctx.invalid(at, "properties must be an object")
        return None
    try:
        if model == "standard":
            return ast.Standard(amount(_dec(props, "amount", at, "0")), ast.Unit(metric.unit))
        if model in ("graduated", "volume"):
            key = "graduated_ranges" if model == "graduated" else "volume_ranges"
            tiers = _tiers(props.get(key), at / key, "per_unit_amount", amount, ctx)
            return (ast.Graduated if model == "graduated" else ast.Volume)(None, tiers)
        if model == "graduated_percentage":
            if not _whole_shared_bounds_ok(props.get("graduated_percentage_ranges"),
                                           at / "graduated_percentage_ranges", ctx):
                return None
            tiers = _tiers(props.get("graduated_percentage_ranges"), at / "graduated_percentage_ranges", "rate",
                           ast.Percent, ctx)
            return ast.GraduatedPercentage(tiers)
        if model == "package":
            return _package(props, metric, at)
        if model == "percentage":
            return _percentage(props, at)
        if model == "dynamic":
            if metric.aggregation != "sum":
                ctx.invalid(at, "the dynamic charge model needs a sum metric in Lago")
                return None
            return ast.Dynamic()
    except _Bad as e:
        ctx.invalid(e.at, str(e))
        return None
    raise AssertionError(model)  # the caller checks the model name


class _Bad(Exception):
    def __init__(self, at: At, message: str):
        super().__init__(message)
        self.at = at


def amount(d: Decimal) -> ast.Amount:
    """An amount in the plan's currency, written as the exact decimal it is."""
    return ast.Amount(d, text=V.num(d))


def number(d: Decimal) -> ast.Number:
    return ast.Number(d, V.num(d))


def _dec(props: dict, key: str, at: At, default: str | None = None) -> Decimal:
    v = props.get(key)
    if v is None:
        if default is None:
            raise _Bad(at / key, f"{key} is required")
        return Decimal(default)
    try:
        return V.decimal(v, key)
    except V.BadValue as e:
        raise _Bad(at / key, str(e)) from None


def _int(props: dict, key: str, at: At, default: int | None) -> int | None:
    v = props.get(key)
    if v is None:
        return default
    try:
        return V.integer(v, key)
    except V.BadValue as e:
        raise _Bad(at / key, str(e)) from None


def _tiers(ranges, at: At, price_key: str, node, ctx: Ctx) -> tuple[ast.Tier, ...]:
    """The tiers of Lago ranges; `node` makes a tier's price (an amount or a percent)."""
    if ranges is None:
        return (ast.Tier(number(Decimal(0)), None, node(Decimal(0))),)
    if not isinstance(ranges, list) or not ranges:
        raise _Bad(at, "ranges must be a non-empty list of {from_value, to_value, ...}")
    rows = []
    for i, r in enumerate(ranges):
        rat = at / i
        if not isinstance(r, dict):
            raise _Bad(rat, "a range must be an object")
        lo = _dec(r, "from_value", rat)
        hi = None if r.get("to_value") is None else _dec(r, "to_value", rat)
        p = _dec(r, price_key, rat, "0")
        flat = _dec(r, "flat_amount", rat, "0")
        if hi is None and i != len(ranges) - 1:
            raise _Bad(rat / "to_value", "only the last range may have no to_value")
        rows.append(ast.Tier(number(lo), None if hi is None else number(hi), node(p),
                             amount(flat) if flat != 0 else None))
    return tuple(rows)


def _whole_shared_bounds_ok(ranges, at: At, ctx: Ctx) -> bool:
    """False (reported) when a graduated_percentage range starts at the previous range's whole to_value.

    Lago accepts ``0 to 10``, ``10 and above`` and counts unit 10 in both tiers; a `.bill` schedule
    cannot say that exactly (a fractional shared bound such as ``0.01`` is fine and is copied as is).
    """
    if not isinstance(ranges, list):
        return True
    for i in range(1, len(ranges)):
        prev, cur = ranges[i - 1], ranges[i]
        if not (isinstance(prev, dict) and isinstance(cur, dict)):
            return True
        try:
            hi, lo = V.decimal(prev.get("to_value"), "to_value"), V.decimal(cur.get("from_value"), "from_value")
        except V.BadValue:
            return True  # reported by _tiers
        if lo == hi and lo == lo.to_integral_value():
            ctx.error(at / i / "from_value",
                      f"this range starts at the previous range's to_value {V.num(hi)}: Lago counts unit "
                      f"{V.num(hi)} in both tiers, which a .bill tier schedule cannot express",
                      f"start it at {V.num(hi + 1)} (the usual +1 schedule) before importing")
            return False
    return True


def _plural(unit: str, n: int) -> str:
    if n == 1:
        return unit
    many = unit + "s"
    one, other = units.lookup(unit), units.lookup(many)
    return many if other is not None and one == other else unit


def _package(props: dict, metric: MetricInfo, at: At) -> ast.Package:
    price = _dec(props, "amount", at, "0")
    size = _int(props, "package_size", at, 1)
    free = _int(props, "free_units", at, 0)
    if size <= 0:
        raise _Bad(at / "package_size", "package_size must be a positive whole number")
    free_units = ast.Quantity(Decimal(free), _plural(metric.unit, free)) if free else None
    return ast.Package(amount(price), ast.Quantity(Decimal(size), _plural(metric.unit, size)), free_units)


def _percentage(props: dict, at: At) -> ast.Percentage:
    def optional(key: str) -> ast.Amount | None:
        return None if props.get(key) is None else amount(_dec(props, key, at))

    rate = ast.Percent(_dec(props, "rate", at, "0"))  # each read in this order: the first bad one is reported
    fixed = optional("fixed_amount")
    n = _int(props, "free_units_per_events", at, None)
    free = optional("free_units_per_total_aggregation")
    minimum, maximum = optional("per_transaction_min_amount"), optional("per_transaction_max_amount")
    return ast.Percentage(rate, fixed=fixed if fixed and fixed.value != 0 else None,
                          free_events=number(Decimal(n)) if n else None,
                          free_amount=free if free and free.value != 0 else None, minimum=minimum, maximum=maximum)
