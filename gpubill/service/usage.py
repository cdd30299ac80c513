"""A customer's usage so far in the current billing period, as Lago's ``customer_usage`` object.

Receives a store, the contracts, the actor (it reads), a customer's external
id and one of its subscriptions, and answers what ``GET
/api/v1/customers/{id}/current_usage`` answers in Lago: the billing period
containing now (``from_datetime``, ``to_datetime``), the usage charges so far
(``charges_usage``: one per charge, its units, events and amount, with one
``grouped_usage`` entry per line of filter or group values), their amount,
taxes and total in minor units. The charges are priced exactly as `gpubill
invoice` prices the period from the events stored so far (the draft invoice
as of now); the plan's fixed fee and the credits are not usage and are left
out, as in Lago. Taxes are each line's own tax, summed, then rounded once to
the currency's minor unit.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal

from gpubill.dsl.currencies import minor_unit
from gpubill.engine.pricing.money import round_amount
from gpubill.engine.spec.program import MoneyRounding
from gpubill.service.invoice_report import cents, invoice_json
from gpubill.service.invoicing import invoice_period
from gpubill.service.rating import ServiceError
from gpubill.store.roles import Actor
from gpubill.store.store import now_ms as clock_ms

ZERO = Decimal(0)


class UsageNotFound(ServiceError):
    """No such subscription of that customer in the contracts (one line)."""


def current_usage(store, contracts: Sequence[str], actor: Actor, customer: str, subscription: str, *,
                  now_ms: int | None = None) -> dict:
    """Lago's customer_usage for ``subscription`` of ``customer`` in its billing period containing now."""
    store.require(actor, "read", "customer.current_usage", "customer", customer)
    now = clock_ms() if now_ms is None else now_ms
    day = dt.datetime.fromtimestamp(now / 1000, dt.timezone.utc).date().isoformat()
    report = invoice_period(store, contracts, day, subscription)
    for line in report.unrated:
        raise ServiceError(line)
    inv = next((i for i in report.invoices if i.billing.subscription_id == subscription
                and i.invoice_type == "subscription"), None)
    doc = invoice_json(inv) if inv is not None else None
    if doc is None or doc["customer"]["external_id"] != customer:
        raise UsageNotFound(f"customer {customer!r} has no subscription {subscription!r} active on {day}")
    cur = inv.currency
    charges = _charges(inv.billing.plan, report.catalog)
    usage = [_charge_usage(code, fees, charges.get(code), cur) for code, fees in _by_charge(doc["fees"]).items()]
    amount = sum((Decimal(f["amount"]) for f in _usage_fees(doc["fees"])), ZERO)
    taxes = round_amount(sum((Decimal(f["taxes_precise_amount"]) for f in _usage_fees(doc["fees"])), ZERO),
                         MoneyRounding(quantum=Decimal(1).scaleb(-minor_unit(cur))))
    period = doc["billing_period"]
    return {"from_datetime": period["from"], "to_datetime": period["to"], "issuing_date": doc["issuing_date"],
            "lago_invoice_id": None, "currency": cur, "amount_cents": cents(amount, cur),
            "taxes_amount_cents": cents(taxes, cur), "total_amount_cents": cents(amount + taxes, cur),
            "charges_usage": usage}


def _usage_fees(fees: list[dict]) -> list[dict]:
    return [f for f in fees if f["item"]["type"] == "charge"]


def _by_charge(fees: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in _usage_fees(fees):
        out.setdefault(f["item"]["charge"] or f["item"]["code"], []).append(f)
    return out


def _charges(plan, catalog) -> dict:
    """The plan's charges by key, with their metric: (Charge, Metric or None)."""
    return {c.key: (c, catalog.metrics.get(c.metric.name)) for c in plan.charges}


def _charge_usage(code: str, fees: list[dict], charge, cur: str) -> dict:
    units = sum((Decimal(f["units"]) for f in fees), ZERO)
    amount = sum((Decimal(f["amount"]) for f in fees), ZERO)
    c, metric = charge if charge is not None else (None, None)
    metric_name = c.metric.name if c is not None else code
    return {"units": str(units), "total_aggregated_units": str(units),
            "events_count": sum(f["events_count"] for f in fees), "amount_cents": cents(amount, cur),
            "amount_currency": cur,
            "charge": {"lago_id": code, "charge_model": _snake(type(c.price).__name__) if c is not None else None,
                       "invoice_display_name": code},
            "billable_metric": {"lago_id": metric_name, "name": metric_name, "code": metric_name,
                                "aggregation_type": f"{metric.aggregation.kind}_agg"
                                if metric is not None and metric.aggregation is not None else None},
            "filters": [],
            "grouped_usage": [{"amount_cents": f["amount_cents"], "events_count": f["events_count"],
                               "units": f["units"], "total_aggregated_units": f["units"],
                               "grouped_by": f["dimensions"], "filters": []} for f in fees if f["dimensions"]]}


def _snake(name: str) -> str:
    """A price's class name as Lago's charge_model: Graduated -> graduated, GraduatedPercentage -> graduated_percentage."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
