"""Lago customers and subscriptions -> `entity` and `contract` blocks.

One contract per subscription, joining its customer:

| Lago                                         | .bill                                   |
| -------------------------------------------- | --------------------------------------- |
| subscription `external_id`                   | `subscription "..."` (exact)            |
| customer `external_id`, `name`               | `customer "..." name "..."`             |
| `plan_code`                                  | `plan NAME`                             |
| `started_at` (else `subscription_at`)        | `starts 2024-01-01T00:00:00Z`           |
| `terminated_at`, else `ending_at`            | `ends ...`                              |
| customer `timezone` (else `applicable_timezone`) | `timezone "Europe/Paris"`           |
| customer `invoice_grace_period`              | `invoice grace N days`                  |
| plan `minimum_commitment`                    | `commit X CUR per period, true-up each period` |
| customer `billing_entity_code` + currency    | `entity NAME` (see `entities`)          |
| applied coupons, wallets of the customer     | `discount ...`, `credit ...` (see `terms`) |

The customer's own taxes, and those of its plan, charges and minimum
commitment, must be the entity's (see `entities`).
"""

from __future__ import annotations

import datetime as dt

import attrs

from gpubill.dsl import ast
from gpubill.lago.importer import terms as T
from gpubill.lago.importer import values as V
from gpubill.lago.importer.context import At, Ctx
from gpubill.lago.importer.entities import Entities, Taxes, describe, invoice_grace, tax_set
from gpubill.lago.importer.layout import Layout
from gpubill.lago.importer.objects import Obj
from gpubill.lago.importer.plans import PlanInfo


@attrs.frozen
class Setup:
    """What a contract gathers besides its subscription: the customer's coupons and wallets, the entities, taxes."""

    entities: Entities
    taxes: Taxes
    coupons: tuple = ()  # (applied coupon Obj, coupon Obj) for this subscription
    wallets: tuple = ()  # wallet Obj for this subscription


def customer_currency(cust: Obj | None, ctx: Ctx) -> str | None:
    if cust is None or cust.data.get("currency") is None:
        return None
    try:
        return V.currency(cust.data["currency"])
    except V.BadValue as e:
        ctx.invalid(cust.at / "currency", str(e))
        return None


def convert_contract(sub: Obj, name: str, cust: Obj | None, plan: PlanInfo, setup: Setup, lay: Layout,
                     ctx: Ctx) -> ast.Contract | None:
    """The subscription's contract, its nodes laid out in `lay` (None, and nothing laid out, on error)."""
    d, at = sub.data, sub.at
    start = len(ctx.diags)
    ext = d.get("external_id")
    cust_id = d.get("external_customer_id")
    if not isinstance(cust_id, str) or not cust_id:
        ctx.invalid(at / "external_customer_id", "a subscription needs its external_customer_id")
        return None
    cur = customer_currency(cust, ctx) or plan.currency
    if cur != plan.currency:
        ctx.invalid(cust.at / "currency", f"the customer pays in {cur} but the plan {d.get('plan_code')!r} is in "
                    f"{plan.currency}; Lago requires the same currency")
    cd = cust.data if cust is not None else {}
    if d.get("billing_entity_code"):
        entity = setup.entities.get(_entity_code(d, sub, ctx), cur)
    else:
        entity = setup.entities.get(_entity_code(cd, cust, ctx), cur)
    _check_taxes(cust, plan, setup.entities.taxes[entity], entity, setup.taxes, ctx)

    mark = lay.mark()
    lay.note(f"Lago subscription {V.string(ext)}" + (f": {V.comment(d['name'])}" if d.get("name") else ""))
    head = lay.at()
    clauses: dict = {}
    try:
        display = ast.Str(V.writable(V.comment(cd["name"]))) if cd.get("name") else None
        clauses["customer"] = ast.Customer(ast.Str(V.writable(cust_id)), display, span=lay.at())
        clauses["subscription"] = ast.Str(V.writable(ext), span=lay.at())
    except V.BadValue as e:
        ctx.invalid(at, str(e))
    clauses["entity"] = ast.Ref(entity, span=lay.at())
    clauses["plan"] = ast.PlanRef(ast.Ref(plan.name), span=lay.at())
    clauses.update(_term(d, sub, lay, ctx))
    if plan.commitment:
        amount = ast.Amount(plan.commitment, cur, text=V.num(plan.commitment))
        clauses["commits"] = (ast.Commit(amount, per="period", true_up="period", span=lay.at()),)
    clauses.update(_terms(setup, plan, cur, clauses.get("starts"), lay, ctx))
    # Lago bills in the customer's timezone, else the one it inherits (applicable_timezone).
    tz_key = "timezone" if cd.get("timezone") else "applicable_timezone"
    tz = cd.get(tz_key)
    if tz and (tz != "UTC" or tz_key == "timezone"):
        try:
            clauses["timezone"] = ast.Str(V.timezone(tz, tz_key), span=lay.at())
        except V.BadValue as e:
            ctx.invalid(cust.at / tz_key, str(e))
    grace = invoice_grace(cd, cust.at, ctx) if cust is not None else None
    if grace:
        clauses["invoice_grace"] = attrs.evolve(grace, span=lay.at())
    if cd.get("net_payment_term"):
        ctx.warn(cust.at / "net_payment_term", "payment terms do not change amounts and are not imported")
    if ctx.errors_since(start):
        lay.drop_since(mark)
        return None
    return ast.Contract(ast.Ref(name), **clauses, span=lay.close(head))


def _term(d: dict, sub: Obj, lay: Layout, ctx: Ctx) -> dict:
    """`starts` and `ends` from the subscription's dates."""
    at, out = sub.at, {}
    begin = d.get("started_at") or d.get("subscription_at")
    which = "started_at" if d.get("started_at") else "subscription_at"
    if begin is None:
        ctx.invalid(at, "a subscription needs started_at or subscription_at")
    else:
        try:
            out["starts"] = _instant(begin, which, lay)
        except V.BadValue as e:
            ctx.invalid(at / which, str(e))
    if d.get("billing_time") == "anniversary" and d.get("started_at") and d.get("subscription_at"):
        if str(d["started_at"])[:10] != str(d["subscription_at"])[:10]:
            ctx.error(at / "subscription_at", "an anniversary date other than the start date is not supported",
                      "the .bill language anchors anniversary billing on the contract's start")
    end_key = "terminated_at" if d.get("terminated_at") else "ending_at"
    if d.get(end_key):
        try:
            out["ends"] = _instant(d[end_key], end_key, lay)
        except V.BadValue as e:
            ctx.invalid(at / end_key, str(e))
    return out


def _terms(setup: Setup, plan: PlanInfo, cur: str, starts: ast.When | None, lay: Layout, ctx: Ctx) -> dict:
    """The `credit` and `discount` clauses from the customer's wallets and applied coupons, in Lago's order."""
    begin = starts.value if starts is not None else None
    credits = sorted((t for w in setup.wallets for t in T.credits(w, plan, cur, begin, ctx)), key=lambda t: t.order)
    discounts = [T.discount(a, c, plan, cur, ctx) for a, c in setup.coupons]
    discounts = sorted((t for t in discounts if t is not None), key=lambda t: t.order)
    out = {}
    for key, items in (("credits", credits), ("discounts", discounts)):
        nodes = []
        for t in items:
            lay.note(t.note)
            nodes.append(attrs.evolve(t.node, span=lay.at()))
        if nodes:
            out[key] = tuple(nodes)
    return out


def _check_taxes(cust: Obj | None, plan: PlanInfo, entity_taxes, entity: str, taxes: Taxes, ctx: Ctx) -> None:
    """The customer's, the plan's, its charges' and commitment's own taxes must be the entity's."""
    lists = list(plan.taxes)
    if cust is not None:
        lists = [(cust.at / k, cust.data[k]) for k in ("taxes", "tax_codes") if cust.data.get(k)][:1] + lists
    for at, items in lists:
        mine = taxes.listed(items, at, ctx)
        if mine is not None and tax_set(mine) != entity_taxes:
            _tax_mismatch(at, tax_set(mine), entity_taxes, entity, ctx)


def _tax_mismatch(at: At, mine, entity_taxes, entity: str, ctx: Ctx) -> None:
    ctx.error(at, f"these taxes ({describe(mine)}) are not those of the billing entity {entity} "
              f"({describe(entity_taxes)}); gpubill taxes every fee of an entity alike",
              "give these customers a billing entity of their own with these taxes in Lago, or remove the "
              "taxes here so that the entity's apply")


def _instant(v, what: str, lay: Layout) -> ast.When:
    """A Lago timestamp as a `.bill` instant (`V.instant`), on the next line of `lay`."""
    text = V.instant(v, what)
    return ast.When(dt.datetime.fromisoformat(text), text, span=lay.at())


def _entity_code(cd: dict, cust: Obj | None, ctx: Ctx) -> str | None:
    code = cd.get("billing_entity_code")
    if code is None:
        return None
    if not isinstance(code, str) or not code:
        ctx.invalid(cust.at / "billing_entity_code", "billing_entity_code must be a string")
        return None
    problem = V.unwritable(code)
    if problem:
        ctx.invalid(cust.at / "billing_entity_code", f"the billing_entity_code {problem}")
        return None
    return code


def skip_reason(sub: Obj) -> str | None:
    """Why a subscription does not become a contract (it never ran), or None."""
    if sub.data.get("status") == "canceled":
        return "a canceled subscription never started; it is not imported"
    return None

