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
| customer `billing_entity_code` + currency    | `entity NAME`                           |

Customers without a billing entity get one default entity per currency,
named `lago_default_<currency>`.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

from gpubill.dsl import ast
from gpubill.lago.importer import values as V
from gpubill.lago.importer.context import Ctx
from gpubill.lago.importer.layout import Layout
from gpubill.lago.importer.objects import Obj


class Entities:
    """Billing entities by (Lago billing_entity_code or None, currency), laid out in `layout` as they are named."""

    def __init__(self, layout: Layout) -> None:
        self.by_key: dict[tuple, str] = {}
        self.namer = V.Namer("entity")
        self.layout = layout

    def get(self, code: str | None, cur: str) -> str:
        key = (code, cur)
        if key in self.by_key:
            return self.by_key[key]
        if code is None:
            name = self.namer.fresh(f"lago_default_{cur.lower()}")
            notes = (f"Default billing entity for {cur}: the Lago customers had no billing_entity_code.",
                     "Add its taxes, invoice prefix and timezone here.")
            display = f"Default billing entity ({cur}), created by gpubill import lago"
        else:
            same_code = any(k[0] == code for k in self.by_key)
            name = self.namer.fresh(f"{code}_{cur}" if same_code else code)
            notes = (f"Lago billing entity {V.string(code)} ({cur}): only its code and currency are imported;",
                     "add its taxes, invoice prefix and timezone here.")
            display = code
        self._add(name, notes, display, cur)
        self.by_key[key] = name
        return name

    def _add(self, name: str, notes: tuple, display: str, cur: str) -> None:
        lay = self.layout
        for note in notes:
            lay.note(note)
        head = lay.at()
        display_name = ast.Str(display, span=lay.at())
        currency = ast.Ref(cur, span=lay.at())
        lay.blocks.append(ast.Entity(ast.Ref(name), display_name=display_name, currency=currency,
                                     span=lay.close(head)))


def customer_currency(cust: Obj | None, ctx: Ctx) -> str | None:
    if cust is None or cust.data.get("currency") is None:
        return None
    try:
        return V.currency(cust.data["currency"])
    except V.BadValue as e:
        ctx.invalid(cust.at / "currency", str(e))
        return None


def convert_contract(sub: Obj, name: str, cust: Obj | None, plan_name: str, plan_currency: str,
                     commitment, entities: Entities, lay: Layout, ctx: Ctx) -> ast.Contract | None:
    """The subscription's contract, its nodes laid out in `lay` (None, and nothing laid out, on error)."""
    d, at = sub.data, sub.at
    start = len(ctx.diags)
    ext = d.get("external_id")
    cust_id = d.get("external_customer_id")
    if not isinstance(cust_id, str) or not cust_id:
        ctx.invalid(at / "external_customer_id", "a subscription needs its external_customer_id")
        return None
    cur = customer_currency(cust, ctx) or plan_currency
    if cur != plan_currency:
        ctx.invalid(cust.at / "currency", f"the customer pays in {cur} but the plan {d.get('plan_code')!r} is in "
                    f"{plan_currency}; Lago requires the same currency")
    cd = cust.data if cust is not None else {}
    if d.get("billing_entity_code"):
        entity = entities.get(_entity_code(d, sub, ctx), cur)
    else:
        entity = entities.get(_entity_code(cd, cust, ctx), cur)

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
    clauses["plan"] = ast.PlanRef(ast.Ref(plan_name), span=lay.at())
    begin = d.get("started_at") or d.get("subscription_at")
    which = "started_at" if d.get("started_at") else "subscription_at"
    if begin is None:
        ctx.invalid(at, "a subscription needs started_at or subscription_at")
    else:
        try:
            clauses["starts"] = _instant(begin, which, lay)
        except V.BadValue as e:
            ctx.invalid(at / which, str(e))
    if d.get("billing_time") == "anniversary" and d.get("started_at") and d.get("subscription_at"):
        if str(d["started_at"])[:10] != str(d["subscription_at"])[:10]:
            ctx.error(at / "subscription_at", "an anniversary date other than the start date is not supported",
                      "the .bill language anchors anniversary billing on the contract's start")
    end_key = "terminated_at" if d.get("terminated_at") else "ending_at"
    if d.get(end_key):
        try:
            clauses["ends"] = _instant(d[end_key], end_key, lay)
        except V.BadValue as e:
            ctx.invalid(at / end_key, str(e))
    if commitment:
        amount = ast.Amount(commitment, cur, text=V.num(commitment))
        clauses["commits"] = (ast.Commit(amount, per="period", true_up="period", span=lay.at()),)
    # Lago bills in the customer's timezone, else the one it inherits (applicable_timezone).
    tz = cd.get("timezone") or cd.get("applicable_timezone")
    if tz and (tz != "UTC" or cd.get("timezone")):
        try:
            zoneinfo.ZoneInfo(tz)
            clauses["timezone"] = ast.Str(V.writable(tz), span=lay.at())
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: a name too long
            ctx.invalid(cust.at / ("timezone" if cd.get("timezone") else "applicable_timezone"),
                        f"unknown timezone {tz!r}")
    grace = cd.get("invoice_grace_period")
    if grace is None and isinstance(cd.get("billing_configuration"), dict):
        grace = cd["billing_configuration"].get("invoice_grace_period")
    if grace:
        try:
            days = V.integer(grace, "invoice_grace_period")
            clauses["invoice_grace"] = ast.Quantity(Decimal(days), "days", span=lay.at())
        except V.BadValue as e:
            ctx.invalid(cust.at / "invoice_grace_period", str(e))
    if cd.get("net_payment_term"):
        ctx.warn(cust.at / "net_payment_term", "payment terms do not change amounts and are not imported")
    if ctx.errors_since(start):
        lay.drop_since(mark)
        return None
    return ast.Contract(ast.Ref(name), **clauses, span=lay.close(head))


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

