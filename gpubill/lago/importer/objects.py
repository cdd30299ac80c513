"""Find the Lago objects in a parsed JSON file, whatever its shape.

Accepted shapes, and mixes of them in one file:

* `{"plan": {...}}` (an API object response, with its root key);
* `{"plans": [...], "meta": {...}}` (an API list response);
* a bare object `{...}`, recognised by its fields;
* a JSON list of any of these.

Besides the plan import (billable metrics, plans, customers, subscriptions)
the commercial setup around it is read: billing entities, taxes, coupons,
applied coupons and wallets. Other Lago objects (add-ons, invoices, events,
...) are errors that say so; unknown shapes are errors too.
"""

from __future__ import annotations

import attrs

from gpubill.lago.importer.context import At, Ctx

KINDS = ("billable_metric", "plan", "customer", "subscription", "billing_entity", "tax", "coupon",
         "applied_coupon", "wallet")
_PLURAL = {"billing_entity": "billing_entities", "tax": "taxes"}
_ROOT = {k: k for k in KINDS} | {_PLURAL.get(k, k + "s"): k for k in KINDS}

#: Lago objects that a plan import does not cover, by root key.
_OTHER = {
    "add_on": "add-ons",
    "applied_add_on": "applied add-ons",
    "fixed_charge": "fixed charges",
    "invoice": "invoices",
    "credit_note": "credit notes",
    "event": "events",
    "fee": "fees",
    "payment_request": "payment requests",
    "webhook_endpoint": "webhook endpoints",
    "feature": "features (entitlements)",
}
_OTHER_HINTS = {
    "events": "ingest events with `gpubill ingest`, not `gpubill import`",
}


@attrs.frozen
class Obj:
    kind: str
    data: dict
    at: At


def collect(value, at: At, ctx: Ctx) -> list[Obj]:
    """The Lago objects of the kinds in KINDS in one JSON value."""
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
            "this object is not a Lago billable metric, plan, customer, subscription, billing entity, tax, "
            "coupon, applied coupon or wallet",
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
        "customers, subscriptions, billing entities, taxes, coupons, applied coupons and wallets",
        *hints,
    )


def _guess(d: dict) -> str | None:
    if "aggregation_type" in d:
        return "billable_metric"
    if "charges" in d or "interval" in d:
        return "plan"
    if "rate_amount" in d or "credits_balance" in d:
        return "wallet"
    if "coupon_type" in d:
        return "coupon"
    if "coupon_code" in d:
        return "applied_coupon"
    if "plan_code" in d or "external_customer_id" in d:
        return "subscription"
    if "transaction_id" in d:
        return _OTHER["event"]
    if "external_id" in d:
        return "customer"
    if "document_numbering" in d or "default_currency" in d:
        return "billing_entity"
    if "rate" in d and "code" in d:
        return "tax"
    if "amount_cents" in d and "code" in d:
        return _OTHER["add_on"]
    return None
