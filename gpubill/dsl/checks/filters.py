"""Dimensions and their values: `where` filters, `by` tables, `group by`, reservations.

A key must be a dimension its metric declares; a value must be one the
dimension declares (its `in` list, or the canonical set of availability_class,
end_reason, operation_type), or the filter can never match. A `by` table
should price every declared value (a value without a row is billed at the
charge's default price, which is zero for a table: `missing-price`). A
condition that can never hold (`gpu_type = "A" and gpu_type = "B"`) and one
given twice in the same charge (the second never wins) are errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gpubill.dsl import ast, units
from gpubill.dsl.checks.common import charge_prices, contract_plan, declared_values, dimensions, find_charge, plans, walk
from gpubill.dsl.diagnostics import Diagnostic, did_you_mean, error, warning
from gpubill.dsl.resolve import Catalog


def check_filters(cat: Catalog) -> Iterator[Diagnostic]:
    for m in cat.metrics.values():
        yield from _metric(m)
    for e in cat.entities.values():
        yield from _duplicates(((t.name.value, t.name.span) for t in e.taxes), "tax")
    for plan in plans(cat):
        for ch in plan.charges:
            m = cat.metrics.get(ch.metric.name)
            if m is None:
                continue
            yield from _charge(m, ch)
    for c in cat.contracts.values():
        yield from _contract(cat, c)
    for t in cat.tests:
        yield from _test(cat, t)


def _metric(m: ast.Metric) -> Iterator[Diagnostic]:
    yield from _duplicates(((d.name.name, d.name.span) for d in m.dimensions), "dimension")
    for d in m.dimensions:
        if d.values is None:
            continue
        yield from _duplicates(((v.value, v.span) for v in d.values), "value")
        canonical = units.CANONICAL_VALUES.get(d.name.name)
        if canonical:
            for v in d.values:
                if v.value not in canonical:
                    yield _unknown_value(v, d.name.name, canonical, f"{d.name.name} only takes")


def _duplicates(items: Iterable[tuple[str, ast.Span]], what: str) -> Iterator[Diagnostic]:
    seen: dict[str, ast.Span] = {}
    for name, span in items:
        if name in seen:
            yield error(
                "duplicate-entry",
                f'{what} "{name}" is given twice',
                span,
                hints=("delete one of them",),
                notes=(("first given", seen[name]),),
            )
        else:
            seen[name] = span


def _unknown_dimension(m: ast.Metric, ref: ast.Ref) -> Diagnostic:
    names = [d.name.name for d in m.dimensions]
    hints = did_you_mean(ref.name, names)
    if names:
        hints += (f'metric "{m.name.name}" declares: {", ".join(names)}',)
    hints += (f'or declare it in metric "{m.name.name}": dimension {ref.name}',)
    return error(
        "unknown-dimension",
        f'metric "{m.name.name}" has no dimension "{ref.name}"',
        ref.span,
        hints=hints,
        notes=(("metric", m.name.span),),
    )


def _unknown_value(v: ast.Str, key: str, values, lead: str | None = None) -> Diagnostic:
    hints = did_you_mean(v.value, values) + (f"{lead or key + ' declares'}: {', '.join(_q(x) for x in values)}",)
    return error(
        "unknown-value",
        f'"{v.value}" is not a value of {key}: this can never match',
        v.span,
        hints=hints,
    )


def _key_value(m: ast.Metric, key: ast.Ref, values: Iterable[ast.Str]) -> Iterator[Diagnostic]:
    if key.name not in dimensions(m):
        yield _unknown_dimension(m, key)
        return
    declared = declared_values(m, key.name)
    if declared is None:
        return
    for v in values:
        if v.value not in declared:
            yield _unknown_value(v, key.name, declared)


def _condition(m: ast.Metric, cond: ast.Condition) -> Iterator[Diagnostic]:
    seen: dict[str, tuple[frozenset[str], ast.Match]] = {}
    for match in cond.matches:
        yield from _key_value(m, match.key, match.values)
        vals = frozenset(v.value for v in match.values)
        prev = seen.get(match.key.name)
        if prev is not None:
            common = prev[0] & vals
            if not common:
                yield error(
                    "filter-never-matches",
                    f"{match.key.name} cannot be both {_show(prev[0])} and {_show(vals)}",
                    match.span,
                    hints=(f"to match either, write {match.key.name} in ({', '.join(sorted(_q(x) for x in prev[0] | vals))})",),
                    notes=(("first condition on " + match.key.name, prev[1].span),),
                )
            vals = common
        seen[match.key.name] = (vals, match)


def _show(vals: frozenset[str]) -> str:
    return " or ".join(_q(v) for v in sorted(vals))


def _q(v: str) -> str:
    return f'"{v}"'


def condition_key(cond: ast.Condition | None) -> frozenset | None:
    if cond is None:
        return None
    out: dict[str, frozenset[str]] = {}
    for m in cond.matches:
        vals = frozenset(v.value for v in m.values)
        out[m.key.name] = out[m.key.name] & vals if m.key.name in out else vals
    return frozenset(out.items())


def _table(m: ast.Metric, t: ast.PriceTable) -> Iterator[Diagnostic]:
    if t.dimension.name not in dimensions(m):
        yield _unknown_dimension(m, t.dimension)
        return
    declared = declared_values(m, t.dimension.name)
    yield from _duplicates(((r.value.value, r.value.span) for r in t.rows), "row")
    if declared is None:
        return
    priced = {r.value.value for r in t.rows}
    for r in t.rows:
        if r.value.value not in declared:
            yield _unknown_value(r.value, t.dimension.name, declared)
    missing = [v for v in declared if v not in priced]
    if missing:
        yield warning(
            "missing-price",
            f"no price for {t.dimension.name} {', '.join(_q(v) for v in missing)}",
            t.dimension.span,
            hints=(f"add a row for each value, e.g. {_q(missing[0])} 0.00 if it is free",),
            notes=((f'{t.dimension.name} is declared in metric "{m.name.name}"', dimensions(m)[t.dimension.name].span),),
        )


def _prices(m: ast.Metric, prices: Iterable[ast.Price]) -> Iterator[Diagnostic]:
    for p in prices:
        for n in walk(p):
            if isinstance(n, ast.PriceTable):
                yield from _table(m, n)


def _charge(m: ast.Metric, ch: ast.Charge) -> Iterator[Diagnostic]:
    for g in ch.group_by:
        if g.name not in dimensions(m):
            yield _unknown_dimension(m, g)
    yield from _duplicates(((g.name, g.span) for g in ch.group_by), "group key")
    yield from _prices(m, charge_prices(ch))
    seen: dict[frozenset, ast.WherePrice] = {}
    for f in ch.filters:
        yield from _condition(m, f.condition)
        key = condition_key(f.condition)
        if key in seen:
            yield error(
                "duplicate-filter",
                "the same condition is given twice in this charge; the second is never used",
                f.condition.span,
                hints=("delete one of them, or change its condition",),
                notes=(("first given", seen[key].condition.span),),
            )
        else:
            seen[key] = f


def _contract(cat: Catalog, c: ast.Contract) -> Iterator[Diagnostic]:
    plan = contract_plan(cat, c)
    seen: dict[tuple, ast.Override] = {}
    for o in c.overrides:
        ch = find_charge(plan, o.charge.name) if plan else None
        m = cat.metrics.get(ch.metric.name) if ch else None
        if m is None:
            continue
        if o.condition is not None:
            yield from _condition(m, o.condition)
        yield from _prices(m, (o.price,))
        key = (o.charge.name, condition_key(o.condition))
        if key in seen:
            yield error(
                "duplicate-filter",
                f'"{o.charge.name}" is overridden twice with the same condition; the second is never used',
                o.span,
                hints=("delete one of the overrides",),
                notes=(("first override", seen[key].span),),
            )
        else:
            seen[key] = o
    charged = {ch.metric.name for ch in plan.charges} if plan else set()
    for r in c.reserves:
        m = cat.metrics.get(r.metric.name)
        if m is None or r.metric.name not in charged:  # else reserve-not-charged says it
            continue
        key = ast.Ref("gpu_type", span=r.gpu_type.span)
        if "gpu_type" not in dimensions(m):
            yield error(
                "unknown-dimension",
                f'metric "{m.name.name}" has no dimension gpu_type, so a reservation of "{r.gpu_type.value}" cannot apply',
                r.metric.span,
                hints=(f'declare it in metric "{m.name.name}": dimension gpu_type',),
                notes=(("metric", m.name.span),),
            )
        else:
            yield from _key_value(m, key, (r.gpu_type,))


def _test(cat: Catalog, t: ast.TestBlock) -> Iterator[Diagnostic]:
    c = cat.contracts.get(t.contract.name) if t.contract else None
    plan = contract_plan(cat, c) if c else None
    if plan is None:
        return
    for e in t.expects:
        if e.condition is None or e.target is None:
            continue
        ch = find_charge(plan, e.target.name)
        m = cat.metrics.get(ch.metric.name) if ch else None
        if m is not None:
            yield from _condition(m, e.condition)
