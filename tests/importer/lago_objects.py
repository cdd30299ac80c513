"""Builders for Lago API objects (the shapes of GET /api/v1/... responses) used by the importer tests."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
CREATED = "2024-05-01T10:00:00Z"


def metric(code, aggregation="sum_agg", field="value", filters=(), **kw):
    m = {
        "lago_id": f"bm-{code}",
        "name": code.replace("_", " ").title(),
        "code": code,
        "description": None,
        "aggregation_type": aggregation,
        "weighted_interval": "seconds" if aggregation == "weighted_sum_agg" else None,
        "recurring": False,
        "rounding_function": None,
        "rounding_precision": None,
        "created_at": CREATED,
        "field_name": None if aggregation == "count_agg" else field,
        "expression": None,
        "filters": [{"key": k, "values": list(v)} for k, v in filters],
    }
    m.update(kw)
    return m


def charge(metric_code, model="standard", properties=None, n=1, **kw):
    c = {
        "lago_id": f"ch-{metric_code}-{n}",
        "lago_billable_metric_id": f"bm-{metric_code}",
        "billable_metric_code": metric_code,
        "created_at": CREATED,
        "charge_model": model,
        "invoiceable": True,
        "invoice_display_name": None,
        "pay_in_advance": False,
        "regroup_paid_fees": None,
        "prorated": False,
        "min_amount_cents": 0,
        "properties": properties if properties is not None else {},
        "filters": [],
        "taxes": [],
    }
    c.update(kw)
    return c


def plan(code="pro", charges=(), interval="monthly", currency="USD", amount_cents=0, **kw):
    p = {
        "lago_id": f"plan-{code}",
        "name": code.title(),
        "invoice_display_name": None,
        "created_at": CREATED,
        "code": code,
        "interval": interval,
        "description": "",
        "amount_cents": amount_cents,
        "amount_currency": currency,
        "trial_period": 0.0,
        "pay_in_advance": False,
        "bill_charges_monthly": None,
        "minimum_commitment": None,
        "charges": list(charges),
        "usage_thresholds": [],
        "taxes": [],
    }
    p.update(kw)
    return p


def customer(external_id="acme", currency="USD", **kw):
    c = {
        "lago_id": f"cus-{external_id}",
        "external_id": external_id,
        "name": external_id.title(),
        "currency": currency,
        "timezone": "UTC",
        "applicable_timezone": "UTC",
        "net_payment_term": None,
        "billing_entity_code": None,
        "billing_configuration": {"invoice_grace_period": None},
        "created_at": CREATED,
        "updated_at": CREATED,
    }
    c.update(kw)
    return c


def subscription(external_id="sub_1", customer_id="acme", plan_code="pro", started="2024-06-01T00:00:00Z", **kw):
    s = {
        "lago_id": f"sub-{external_id}",
        "external_id": external_id,
        "external_customer_id": customer_id,
        "billing_time": "calendar",
        "name": None,
        "plan_code": plan_code,
        "status": "active",
        "created_at": started,
        "canceled_at": None,
        "started_at": started,
        "ending_at": None,
        "subscription_at": started,
        "terminated_at": None,
    }
    s.update(kw)
    return s


def write(tmp_path: Path, name: str, obj) -> str:
    p = tmp_path / name
    p.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    return str(p)


def sources(**objs) -> dict[str, str]:
    """In-memory sources for import_lago: name -> JSON text."""
    return {f"{k}.json": json.dumps(v, indent=2) for k, v in objs.items()}


def tax(code="vat_20", rate=20.0, name=None, **kw):
    t = {"lago_id": f"tax-{code}", "name": name or code.upper(), "code": code, "rate": rate, "description": None,
         "applied_to_organization": False, "applied_to_billing_entities_codes": [], "created_at": CREATED}
    t.update(kw)
    return t


def billing_entity(code="acme_eu", currency="EUR", **kw):
    b = {"lago_id": f"be-0000-{code}", "code": code, "name": code.replace("_", " ").title(),
         "default_currency": currency, "created_at": CREATED, "updated_at": CREATED, "timezone": "UTC",
         "net_payment_term": 0, "document_numbering": "per_customer", "document_number_prefix": "ACM-0001",
         "invoice_grace_period": 0, "finalize_zero_amount_invoice": True, "is_default": False,
         "eu_tax_management": False, "taxes": []}
    b.update(kw)
    return b


def coupon(code="welcome", coupon_type="percentage", **kw):
    c = {"lago_id": f"cp-{code}", "name": code.title(), "code": code, "coupon_type": coupon_type,
         "amount_cents": None, "amount_currency": None, "percentage_rate": None, "frequency": "once",
         "frequency_duration": None, "reusable": True, "limited_plans": False, "plan_codes": [],
         "limited_billable_metrics": False, "billable_metric_codes": [], "created_at": CREATED,
         "expiration": "no_expiration", "expiration_at": None, "terminated_at": None}
    c.update(kw)
    return c


def applied_coupon(coupon_code="welcome", customer_id="acme", n=1, **kw):
    a = {"lago_id": f"ac-{coupon_code}-{n}", "lago_coupon_id": f"cp-{coupon_code}", "coupon_code": coupon_code,
         "lago_customer_id": f"cus-{customer_id}", "external_customer_id": customer_id, "status": "active",
         "amount_cents": None, "amount_cents_remaining": None, "amount_currency": None, "percentage_rate": None,
         "frequency": None, "frequency_duration": None, "frequency_duration_remaining": None,
         "expiration_at": None, "created_at": f"2024-06-0{n}T00:00:00Z", "terminated_at": None}
    a.update(kw)
    return a


def wallet(customer_id="acme", currency="USD", granted="0", paid="0", rate="1.0", n=1, **kw):
    """A wallet as created (POST /api/v1/wallets): paid and granted credits apart."""
    w = {"lago_id": f"w-{n}", "external_customer_id": customer_id, "status": "active", "currency": currency,
         "name": f"Wallet {n}", "rate_amount": rate, "paid_credits": paid, "granted_credits": granted,
         "priority": 50, "expiration_at": None, "created_at": f"2024-06-0{n}T00:00:00Z",
         "recurring_transaction_rules": [], "applies_to": {"fee_types": [], "billable_metric_codes": []}}
    w.update(kw)
    return w
