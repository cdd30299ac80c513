"""One currency per bill: amounts, plans, contracts and entities agree.

An amount without a currency is in its plan's currency. An amount that names
one must name that currency; a contract's commitments, credits, discounts,
budgets, thresholds, reservations and overrides are in its plan's currency;
and the plan's currency is the one its contract's entity invoices in.
"""

from __future__ import annotations

from collections.abc import Iterator

from gpubill.dsl import ast
from gpubill.dsl.checks.common import contract_plan, plans, walk
from gpubill.dsl.checks.literals import CURRENCIES
from gpubill.dsl.diagnostics import Diagnostic, error
from gpubill.dsl.resolve import Catalog


def check_currencies(cat: Catalog) -> Iterator[Diagnostic]:
    for plan in plans(cat):
        if plan.currency is not None and plan.currency.name in CURRENCIES:
            yield from _amounts(plan.charges, plan.currency.name, f'plan "{plan.name.name}"', plan.currency.span)
            for part in (plan.fee, plan.progressive):
                yield from _amounts(part, plan.currency.name, f'plan "{plan.name.name}"', plan.currency.span)
    for c in cat.contracts.values():
        yield from _contract(cat, c)
    for t in cat.tests:
        c = cat.contracts.get(t.contract.name) if t.contract else None
        plan = contract_plan(cat, c) if c else None
        if plan is not None and plan.currency is not None and plan.currency.name in CURRENCIES:
            yield from _amounts(t.expects, plan.currency.name, f'plan "{plan.name.name}"', plan.currency.span)


def _amounts(root, currency: str, owner: str, where) -> Iterator[Diagnostic]:
    for n in walk(root):
        if isinstance(n, ast.Amount) and n.currency in CURRENCIES and n.currency != currency:
            yield error(
                "currency-mismatch",
                f"{n.text} {n.currency} is not in {currency}, the currency of {owner}",
                n.span,
                hints=(f"write the amount in {currency}",),
                notes=((f"{owner} bills in {currency}", where),),
            )


def _contract(cat: Catalog, c: ast.Contract) -> Iterator[Diagnostic]:
    entity = cat.entities.get(c.entity.name) if c.entity else None
    ecur = entity.currency if entity is not None else None
    plan = contract_plan(cat, c)
    if c.plan is not None and c.plan.version is None:
        versions = cat.plans.get(c.plan.name.name, ())
    else:
        versions = (plan,) if plan is not None else ()
    for p in versions:
        if p.currency is None or ecur is None or not {p.currency.name, ecur.name} <= CURRENCIES:
            continue
        if p.currency.name != ecur.name:
            yield error(
                "currency-mismatch",
                f'plan "{p.name.name}" bills in {p.currency.name}, but entity "{entity.name.name}" invoices in {ecur.name}',
                c.plan.span,
                hints=("use a plan in the entity's currency, or an entity that invoices in the plan's",),
                notes=(("plan currency", p.currency.span), ("entity currency", ecur.span)),
            )
            break
    if plan is not None and plan.currency is not None and plan.currency.name in CURRENCIES:
        cur, owner, where = plan.currency.name, f'plan "{plan.name.name}"', plan.currency.span
    elif ecur is not None and ecur.name in CURRENCIES:
        cur, owner, where = ecur.name, f'entity "{entity.name.name}"', ecur.span
    else:
        return
    parts = (c.overrides, c.commits, c.reserves, c.credits, c.discounts, c.progressive, c.budget, c.job_limit)
    yield from _amounts(parts, cur, owner, where)
