"""Names that refer to nothing: metrics, plans, entities, contracts, charges."""

from __future__ import annotations

from collections.abc import Iterator

from gpubill.dsl import ast
from gpubill.dsl.diagnostics import Diagnostic, did_you_mean, error
from gpubill.dsl.resolve import Catalog, unknown


def check_references(cat: Catalog) -> Iterator[Diagnostic]:
    for versions in cat.plans.values():
        for plan in versions:
            for ch in plan.charges:
                if ch.metric.name not in cat.metrics:
                    yield unknown("metric", ch.metric, cat.metrics)
    for c in cat.contracts.values():
        if c.entity is not None and c.entity.name not in cat.entities:
            yield unknown("entity", c.entity, cat.entities)
        if c.plan is None:
            continue
        if c.plan.name.name not in cat.plans:
            yield unknown("plan", c.plan.name, cat.plans)
            continue
        plan = cat.plan_version(c.plan)
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
            continue
        keys = {ch.key for ch in plan.charges}
        for o in c.overrides:
            if o.charge.name not in keys:
                yield unknown("charge", o.charge, keys)
    for t in cat.tests:
        if t.contract is not None and t.contract.name not in cat.contracts:
            yield unknown("contract", t.contract, cat.contracts)
