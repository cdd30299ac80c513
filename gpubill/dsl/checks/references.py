"""Names that refer to nothing: metrics, plans, versions, entities, contracts, charges.

Also names given twice where only one can win: two charges of one plan with
the same name (the metric, or the `as` label).
"""

from __future__ import annotations

from collections.abc import Iterator

from gpubill.dsl import ast
from gpubill.dsl.checks.common import contract_plan, plans
from gpubill.dsl.diagnostics import Diagnostic, did_you_mean, error
from gpubill.dsl.resolve import Catalog, unknown


def check_references(cat: Catalog) -> Iterator[Diagnostic]:
    for plan in plans(cat):
        yield from _plan(cat, plan)
    for c in cat.contracts.values():
        yield from _contract(cat, c)
    for t in cat.tests:
        if t.contract is not None and t.contract.name not in cat.contracts:
            yield unknown("contract", t.contract, cat.contracts)


def _plan(cat: Catalog, plan: ast.Plan) -> Iterator[Diagnostic]:
    seen: dict[str, ast.Charge] = {}
    for ch in plan.charges:
        if ch.metric.name not in cat.metrics:
            yield unknown("metric", ch.metric, cat.metrics)
        first = seen.get(ch.key)
        if first is not None:
            at = (ch.label or ch.metric).span
            yield error(
                "duplicate-charge",
                f'plan "{plan.name.name}" charges "{ch.key}" twice',
                at,
                hints=(f"give one of them a name of its own: charge {ch.metric.name} as NAME ...",),
                notes=(("first charge", (first.label or first.metric).span),),
            )
        else:
            seen[ch.key] = ch


def _contract(cat: Catalog, c: ast.Contract) -> Iterator[Diagnostic]:
    if c.entity is not None and c.entity.name not in cat.entities:
        yield unknown("entity", c.entity, cat.entities)
    for r in c.reserves:
        if r.metric.name not in cat.metrics:
            yield unknown("metric", r.metric, cat.metrics)
    if c.plan is None:
        return
    if c.plan.name.name not in cat.plans:
        yield unknown("plan", c.plan.name, cat.plans)
        return
    plan = contract_plan(cat, c)
    if plan is None:
        ids = [p.version.id for p in cat.plans[c.plan.name.name] if p.version]
        hints = did_you_mean(c.plan.version or "", ids) or (
            (f"versions of this plan: {', '.join(ids)}",) if ids else ("this plan has no versions; drop `version`",)
        )
        yield error(
            "unknown-plan-version",
            f'plan "{c.plan.name.name}" has no version {c.plan.version}',
            c.plan.span,
            hints=hints,
        )
        return
    keys = {ch.key for ch in plan.charges}
    for o in c.overrides:
        if o.charge.name not in keys:
            yield unknown("charge", o.charge, keys)
    charged_metrics = {ch.metric.name for ch in plan.charges}
    for r in c.reserves:
        if r.metric.name in cat.metrics and r.metric.name not in charged_metrics:
            yield error(
                "reserve-not-charged",
                f'plan "{plan.name.name}" has no charge on metric "{r.metric.name}"',
                r.metric.span,
                hints=did_you_mean(r.metric.name, charged_metrics)
                or (f"reserve capacity on a metric the plan charges: {', '.join(sorted(charged_metrics))}",),
                notes=(("plan", plan.name.span),),
            )
    scopes = keys | charged_metrics
    for item in (*c.credits, *c.discounts):
        if item.scope is not None and item.scope.name not in scopes:
            yield unknown("charge", item.scope, scopes)
