"""Which pricing models, aggregations and charge options go together (Lago's rules).

From reference/lago-semantics.md, "Charge constraints" and "Metered vs recurring":

* pay in advance: only count, sum and unique count metrics, never a volume price;
* prorated: only recurring metrics, never weighted sum; in advance only with a
  standard price (or a `by` table of them); in arrears with standard, volume or
  graduated prices;
* `minimum spend` only on charges paid in arrears;
* dynamic prices need a sum metric; percentage prices cannot read a latest metric;
* `recurring` only for sum, unique count and weighted sum metrics.

Overrides are held to the same rules as the charge they replace a price of.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gpubill.dsl import ast
from gpubill.dsl.checks.common import charge_prices, contract_plan, find_charge, plans, walk
from gpubill.dsl.diagnostics import Diagnostic, error
from gpubill.dsl.resolve import Catalog

ADVANCE_AGGREGATIONS = ("count", "sum", "unique_count")
RECURRING_AGGREGATIONS = ("sum", "unique_count", "weighted_sum")


def _agg(m: ast.Metric) -> str | None:
    return m.aggregation.kind if m.aggregation is not None else None


def _word(kind: str) -> str:
    return kind.replace("_", " ")


def check_constraints(cat: Catalog) -> Iterator[Diagnostic]:
    for m in cat.metrics.values():
        kind = _agg(m)
        if m.recurring and kind is not None and kind not in RECURRING_AGGREGATIONS:
            yield error(
                "recurring-not-allowed",
                f"a {_word(kind)} metric cannot be recurring",
                m.recurring_span or m.aggregation.span,
                hints=("recurring metrics are sum, unique count or weighted sum; drop `recurring`",),
            )
    for plan in plans(cat):
        for ch in plan.charges:
            m = cat.metrics.get(ch.metric.name)
            if m is not None and _agg(m) is not None:
                yield from _charge(m, ch)
                yield from _models(m, ch, charge_prices(ch))
    for c in cat.contracts.values():
        plan = contract_plan(cat, c)
        if plan is None:
            continue
        for o in c.overrides:
            ch = find_charge(plan, o.charge.name)
            m = cat.metrics.get(ch.metric.name) if ch else None
            if m is not None and _agg(m) is not None:
                yield from _models(m, ch, (o.price,))


def _charge(m: ast.Metric, ch: ast.Charge) -> Iterator[Diagnostic]:
    kind = _agg(m)
    if ch.timing == "advance" and kind not in ADVANCE_AGGREGATIONS:
        yield error(
            "advance-not-allowed",
            f'charge "{ch.key}" is paid in advance, but metric "{m.name.name}" is a {_word(kind)}',
            ch.timing_span or ch.metric.span,
            hints=("only count, sum and unique count metrics can be paid in advance; drop `in advance`",),
            notes=(("metric", m.name.span),),
        )
    if ch.prorated:
        why = None
        if not m.recurring:
            why = f'metric "{m.name.name}" is not recurring'
        elif kind == "weighted_sum":
            why = "a weighted sum is already weighted by time"
        if why:
            yield error(
                "prorated-not-allowed",
                f'charge "{ch.key}" is prorated, but {why}',
                ch.prorated_span or ch.metric.span,
                hints=("prorate only charges on recurring sum or unique count metrics; drop `prorated`",),
                notes=(("metric", m.name.span),),
            )
    if ch.minimum_spend is not None and ch.timing == "advance":
        yield error(
            "minimum-spend-in-advance",
            "a minimum spend applies only to charges paid in arrears",
            ch.minimum_spend.span,
            hints=("drop `in advance`, or drop the minimum",),
        )


def _models(m: ast.Metric, ch: ast.Charge, prices: Iterable[ast.Price]) -> Iterator[Diagnostic]:
    kind = _agg(m)
    for price in prices:
        for n in walk(price):
            if isinstance(n, ast.Volume) and ch.timing == "advance":
                yield error(
                    "advance-not-allowed",
                    "a volume price cannot be paid in advance",
                    n.span,
                    hints=("use a graduated price, or bill this charge in arrears",),
                )
            if ch.prorated and m.recurring and kind != "weighted_sum":
                allowed = (ast.Standard, ast.PriceTable) if ch.timing == "advance" else (
                    ast.Standard, ast.PriceTable, ast.Volume, ast.Graduated,
                )
                if isinstance(n, (ast.Standard, ast.PriceTable, ast.Volume, ast.Graduated, ast.Package,
                                  ast.Percentage, ast.GraduatedPercentage, ast.Dynamic)) and not isinstance(n, allowed):
                    timing = "in advance" if ch.timing == "advance" else "in arrears"
                    names = "a standard price" if ch.timing == "advance" else "standard, volume or graduated prices"
                    yield error(
                        "prorated-not-allowed",
                        f"a prorated charge {timing} cannot use a {_model(n)} price",
                        n.span,
                        hints=(f"a prorated charge {timing} takes {names}",),
                    )
            if isinstance(n, ast.Dynamic) and kind != "sum":
                yield error(
                    "model-not-allowed",
                    f'a dynamic price needs a sum metric; "{m.name.name}" is a {_word(kind)}',
                    n.span,
                    hints=("sum the events' amounts: sum PROPERTY",),
                    notes=(("metric", m.name.span),),
                )
            if isinstance(n, (ast.Percentage, ast.GraduatedPercentage)) and kind == "latest":
                yield error(
                    "model-not-allowed",
                    f'a {_model(n)} price cannot read a latest metric ("{m.name.name}")',
                    n.span,
                    hints=("use a sum metric for percentage prices",),
                    notes=(("metric", m.name.span),),
                )


def _model(n) -> str:
    return {
        ast.Standard: "standard", ast.PriceTable: "standard", ast.Volume: "volume", ast.Graduated: "graduated",
        ast.Package: "package", ast.Percentage: "percentage", ast.GraduatedPercentage: "graduated percentage",
        ast.Dynamic: "dynamic",
    }[type(n)]
