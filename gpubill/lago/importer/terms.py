"""Lago applied coupons and wallets -> `discount` and `credit` clauses of a contract.

| Lago                                                   | .bill                                     |
| ------------------------------------------------------ | ----------------------------------------- |
| coupon `percentage` + `percentage_rate`                | `discount 10%`                            |
| coupon `fixed_amount` + `amount_cents`                 | `discount 50.00 USD`                      |
| `frequency` once / recurring + `frequency_duration` / forever | `once` / `recurring N periods` / `forever` |
| limited to one billable metric                         | `for CHARGE` (the plan's charge on it)    |
| limited to plans that include the subscription's      | (no clause: the contract is on that plan) |
| wallet `granted_credits` / `paid_credits` x `rate_amount` | `credit 100.00 USD granted` / `paid`   |
| wallet `credits_balance` (a wallet as the API returns it) | `credit 100.00 USD`                    |
| wallet `expiration_at`, `priority`                     | `expires ...`, `priority N`               |
| wallet `applies_to` one billable metric                | `for CHARGE`                              |

An applied coupon's own amount, rate, frequency and duration override its
coupon's. The terms are imported as agreed, from the contract's start: the
remaining amount or number of periods Lago shows for a coupon already in use
is not. Discounts are written in Lago's order of application: coupons limited
to a billable metric, then those limited to plans, then the others, each
group oldest first. Credits are written wallet by wallet, oldest first.

A coupon or wallet belongs to its customer's one imported subscription (or,
for a coupon limited to plans, to the one on such a plan). Errors
(`lago-unsupported`), each naming its JSON path: a coupon or wallet that
would apply across several subscriptions, a coupon limited to plans none of
the customer's subscriptions is on, a limitation to several billable metrics
(or to one the plan charges twice or not at all), a wallet limited to fee
types other than charges, recurring top-ups, credits whose value at
`rate_amount` is not a whole number of the currency's minor unit, and a
coupon or wallet in another currency than the contract's.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs

from gpubill.dsl import ast
from gpubill.lago.importer import values as V
from gpubill.lago.importer.context import At, Ctx
from gpubill.lago.importer.objects import Obj
from gpubill.lago.importer.plans import PlanInfo
from gpubill.lago.importer.prices import amount, number

FREQUENCIES = ("once", "recurring", "forever")
FEE_TYPES = frozenset({"charge", "subscription", "commitment"})


@attrs.frozen
class Term:
    """A clause for a contract, the comment before it, and where it goes among its kind (sort key)."""

    note: str
    node: ast.Discount | ast.Credit
    order: tuple = ()


def limited_plans(coupon: Obj | None, ctx: Ctx) -> list | None:
    """The plan codes a coupon is limited to, or None."""
    return _limits(coupon, "plan_codes", ctx)[0] if coupon is not None else None


def _limits(o: Obj, key: str, ctx: Ctx) -> tuple[list | None, At]:
    """The codes a coupon (`applies_to.KEY`, else `KEY`) or a wallet (`applies_to.KEY`) is limited to (None: not
    limited), and where they were read."""
    applies = o.data.get("applies_to") if isinstance(o.data.get("applies_to"), dict) else {}
    if applies.get(key) is not None or o.kind == "wallet":
        codes, at = applies.get(key), o.at / "applies_to" / key
    else:
        codes, at = o.data.get(key), o.at / key
    if codes is not None and (not isinstance(codes, list) or not all(isinstance(c, str) for c in codes)):
        ctx.invalid(at, f"{key} must be a list of codes")
        return None, at
    return codes or None, at


def discount(applied: Obj, coupon: Obj, plan: PlanInfo, cur: str, ctx: Ctx) -> Term | None:
    """The applied coupon as a `discount` of a contract on `plan` in `cur` (None, reported, on error)."""
    a, c = applied.data, coupon.data
    start = len(ctx.diags)

    def pick(key):  # the applied coupon's value, else its coupon's, and where it was read
        if a.get(key) is not None:
            return a[key], applied.at / key
        return c.get(key), coupon.at / key

    kind = c.get("coupon_type")
    value = None
    if kind == "percentage":
        rate, at = pick("percentage_rate")
        try:
            value = ast.Percent(V.decimal(rate, "percentage_rate"))
            if value.value > 100:
                ctx.invalid(at, f"a coupon of {V.num(value.value)}% is more than 100%")
        except V.BadValue as e:
            ctx.invalid(at, str(e))
    elif kind == "fixed_amount":
        value = _fixed(pick, cur, ctx)
    else:
        ctx.invalid(coupon.at / "coupon_type", f"unknown coupon_type {kind!r}", "expected fixed_amount or percentage")
    frequency, f_at = pick("frequency")
    periods = None
    if frequency not in FREQUENCIES:
        ctx.invalid(f_at, f"unknown coupon frequency {frequency!r}", "expected once, recurring or forever")
    elif frequency == "recurring":
        n, n_at = pick("frequency_duration")
        try:
            periods = number(Decimal(V.integer(n, "frequency_duration")))
        except V.BadValue as e:
            ctx.invalid(n_at, str(e))
    scope = _metric_scope(coupon, plan, ctx)
    if ctx.errors_since(start):
        return None
    group = 0 if scope is not None else 1 if limited_plans(coupon, ctx) else 2
    node = ast.Discount(value, frequency, periods, scope)
    return Term(f"Lago coupon {V.string(V.comment(c.get('code')))}", node, (group, str(a.get("created_at") or "")))


def _fixed(pick, cur: str, ctx: Ctx) -> ast.Amount | None:
    currency, c_at = pick("amount_currency")
    if currency is not None and currency != cur:
        ctx.error(c_at, f"a {currency} coupon on a contract in {cur}", "Lago applies fixed amount coupons only to "
                  "invoices in their currency; leave it out", rule="lago-invalid")
        return None
    cents, at = pick("amount_cents")
    try:
        return attrs.evolve(amount(V.cents(cents, cur, "amount_cents")), currency=cur)
    except V.BadValue as e:
        ctx.invalid(at, str(e))
        return None


def _metric_scope(obj: Obj, plan: PlanInfo, ctx: Ctx) -> ast.Ref | None:
    """`for CHARGE`: the plan's one charge on the one billable metric a coupon or wallet is limited to."""
    codes, at = _limits(obj, "billable_metric_codes", ctx)
    if not codes:
        return None
    if len(codes) > 1:
        ctx.error(at, f"a limitation to several billable metrics ({', '.join(codes)}) is not supported",
                  "a .bill discount or credit is limited to one charge; make one coupon or wallet per metric")
        return None
    keys = plan.charges.get(codes[0], ())
    if len(keys) != 1:
        what = "no charge" if not keys else f"{len(keys)} charges ({', '.join(keys)})"
        ctx.error(at / 0, f"the plan {plan.code!r} has {what} on the billable metric {codes[0]!r}",
                  "a .bill discount or credit is limited to exactly one charge of the contract's plan")
        return None
    return ast.Ref(keys[0])


def credits(wallet: Obj, plan: PlanInfo, cur: str, starts: dt.datetime | None, ctx: Ctx) -> list[Term]:
    """The wallet as `credit` clauses of a contract on `plan` in `cur` starting at `starts`."""
    d, at = wallet.data, wallet.at
    start = len(ctx.diags)
    if d.get("currency") is not None and d["currency"] != cur:
        ctx.error(at / "currency", f"a {d['currency']} wallet for a contract in {cur}",
                  "Lago applies wallets only to invoices in their currency; leave it out", rule="lago-invalid")
        return []
    if d.get("recurring_transaction_rules"):
        ctx.error(at / "recurring_transaction_rules", "recurring top-ups of a wallet are not supported",
                  "write each top-up as a credit of its own on the contract")
    try:
        rate = V.decimal(d.get("rate_amount", "1"), "rate_amount")
    except V.BadValue as e:
        ctx.invalid(at / "rate_amount", str(e))
        return []
    options = _credit_options(wallet, plan, starts, ctx)
    amounts = _credit_amounts(wallet, rate, cur, ctx)
    if ctx.errors_since(start) or options is None:
        return []
    name = d.get("name") or d.get("code") or d.get("lago_id")
    note = "Lago wallet" + (f" {V.string(V.comment(name))}" if name else "")
    if rate != 1:
        note += f" ({V.num(rate)} {cur} per credit)"
    order = (str(d.get("created_at") or ""),)
    return [Term(note, ast.Credit(money, kind, **options), order) for money, kind in amounts]


def _credit_amounts(wallet: Obj, rate: Decimal, cur: str, ctx: Ctx) -> list[tuple[ast.Amount, str | None]]:
    """(amount, kind) per non-zero kind of credits: granted and paid (a creation), else the balance (a response)."""
    d = wallet.data
    keys = (("granted_credits", "granted"), ("paid_credits", "paid"))
    if not any(k in d for k, _ in keys):
        keys = (("credits_balance", None),)
    out = []
    for key, kind in keys:
        if d.get(key) is None:
            continue
        try:
            credits_ = V.decimal(d[key], key)
        except V.BadValue as e:
            ctx.invalid(wallet.at / key, str(e))
            continue
        money = credits_ * rate
        quantum = Decimal(1).scaleb(-V.minor_unit(cur))
        if money != money.quantize(quantum):
            ctx.error(wallet.at / key, f"{V.num(credits_)} credits at rate_amount {V.num(rate)} are "
                      f"{V.num(money)} {cur}, not a whole number of the currency's minor unit",
                      "a .bill credit is an amount of money; give the wallet credits worth whole cents")
            continue
        if money:
            out.append((attrs.evolve(amount(money.quantize(quantum)), currency=cur), kind))
    return out


def _credit_options(wallet: Obj, plan: PlanInfo, starts: dt.datetime | None, ctx: Ctx) -> dict | None:
    """The credit's expiry, priority and scope (None when it expired before the contract starts)."""
    d, at = wallet.data, wallet.at
    out: dict = {}
    if d.get("expiration_at"):
        try:
            text = V.instant(d["expiration_at"], "expiration_at")
        except V.BadValue as e:
            ctx.invalid(at / "expiration_at", str(e))
            return None
        if starts is not None and dt.datetime.fromisoformat(text) <= starts:
            ctx.warn(at / "expiration_at", "the wallet expires before the subscription starts; it is not imported")
            return None
        out["expires"] = ast.When(dt.datetime.fromisoformat(text), text)
    if d.get("priority") is not None:
        try:
            out["priority"] = number(Decimal(V.integer(d["priority"], "priority")))
        except V.BadValue as e:
            ctx.invalid(at / "priority", str(e))
    applies = d.get("applies_to") or {}
    if not isinstance(applies, dict):
        ctx.invalid(at / "applies_to", "applies_to must be an object {fee_types, billable_metric_codes}")
        return out
    fee_types = applies.get("fee_types") or list(FEE_TYPES)
    if not isinstance(fee_types, list) or not all(isinstance(f, str) for f in fee_types):
        ctx.invalid(at / "applies_to" / "fee_types", "fee_types must be a list of fee types")
        return out
    limited = bool(_limits(wallet, "billable_metric_codes", ctx)[0])
    if set(fee_types) != FEE_TYPES and not (set(fee_types) == {"charge"} and limited):
        ctx.error(at / "applies_to" / "fee_types", f"a wallet limited to the fee types {sorted(fee_types)} is not "
                  "supported", "a .bill credit applies to every fee, or to one charge (billable_metric_codes)")
    out["scope"] = _metric_scope(wallet, plan, ctx)
    return out
