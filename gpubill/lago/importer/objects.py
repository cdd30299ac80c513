"""Find the Lago objects in a parsed JSON file, whatever its shape.

Accepted shapes, and mixes of them in one file:

* `{"plan": {...}}` (an API object response, with its root key);
* `{"plans": [...], "meta": {...}}` (an API list response);
* a bare object `{...}`, recognised by its fields;
* a JSON list of any of these.

Objects that are not part of a plan import (wallets, coupons, add-ons,
invoices, events, ...) are errors that say so; unknown shapes are errors too.
"""

from __future__ import annotations

import attrs

from gpubill.lago.importer.context import At, Ctx

KINDS = ("billable_metric", "plan", "customer", "subscription")
_ROOT = {k: k for k in KINDS} | {k + "s": k for k in KINDS}

#: Lago objects that a plan import does not cover, by root key.
_OTHER = {
    "wallet": "wallets (prepaid credits)",
    "coupon": "coupons",
    "applied_coupon": "applied coupons",
    "add_on": "add-ons",
    "applied_add_on": "applied add-ons",
    "fixed_charge": "fixed charges",
    "invoice": "invoices",
    "credit_note": "credit notes",
    "event": "events",
    "fee": "fees",
    "tax": "taxes",
    "billing_entity": "billing entities",
    "payment_request": "payment requests",
    "webhook_endpoint": "webhook endpoints",
    "feature": "features (entitlements)",
}
_OTHER_HINTS = {
    "wallets (prepaid credits)": "write prepaid credits on the contract: credit 5_000 USD granted, expires 2026-12-31",
    "coupons": "write discounts on the contract: discount 10% recurring 3 periods",
    "applied coupons": "write discounts on the contract: discount 10% recurring 3 periods",
    "events": "ingest events with `gpubill ingest`, not `gpubill import`",
}


@attrs.frozen
class Obj:
    kind: str
    data: dict
    at: At


def collect(value, at: At, ctx: Ctx) -> list[Obj]:
    """The billable metrics, plans, customers and subscriptions in one JSON value."""
    out: list[Obj] = []
    _walk(value, at, ctx, out, top=True)
    return out


def _walk(value, at: At, ctx: Ctx, out: list[Obj], top: bool) -> None:
    if isinstance(value, list):
        for i, v in enumerate(value):
            _walk(v, at / i, ctx, out, top=False)
        return
    if not isinstance(value, dict):
        ctx.invalid(at, "expected a Lago object or a list of them, not a bare value")
        return
    roots = [k for k in value if k != "meta"]
    if roots and all(k in _ROOT or _other(k) for k in roots):
        for k in roots:
            _root(k, value[k], at / k, ctx, out)
        return
    kind = _guess(value)
    if kind in KINDS:
        out.append(Obj(kind, value, at))
    elif kind is not None:
        _not_plan(kind, at, ctx)
    else:
        ctx.invalid(
            at,
            "this object is not a Lago billable metric, plan, customer or subscription",
            'wrap it in its root key, e.g. {"plan": {...}}, or export it with the Lago API (GET /api/v1/plans/CODE)',
        )


def _other(key: str) -> str | None:
    return _OTHER.get(key) or (_OTHER.get(key[:-1]) if key.endswith("s") else None)


def _root(key: str, value, at: At, ctx: Ctx, out: list[Obj]) -> None:
    if key in _ROOT:
        kind = _ROOT[key]
        items = value if isinstance(value, list) else [value]
        for i, v in enumerate(items):
            sub = at / i if isinstance(value, list) else at
            if isinstance(v, dict):
                out.append(Obj(kind, v, sub))
            else:
                ctx.invalid(sub, f"expected a {kind.replace('_', ' ')} object")
        return
    _not_plan(_other(key), at, ctx)


def _not_plan(what: str, at: At, ctx: Ctx) -> None:
    hints = [h for h in (_OTHER_HINTS.get(what),) if h]
    ctx.error(
        at,
        f"{what} are not part of a plan import; `gpubill import lago` reads billable metrics, plans, "
        "customers and subscriptions",
        *hints,
    )


def _guess(d: dict) -> str | None:
    if "aggregation_type" in d:
        return "billable_metric"
    if "charges" in d or "interval" in d:
        return "plan"
    if "plan_code" in d or "external_customer_id" in d:
        return "subscription"
    if "rate_amount" in d or "credits_balance" in d:
        return _OTHER["wallet"]
    if "coupon_type" in d:
        return _OTHER["coupon"]
    if "transaction_id" in d:
        return _OTHER["event"]
    if "external_id" in d:
        return "customer"
    if "amount_cents" in d and "code" in d:
        return _OTHER["add_on"]
    return None
