"""The invoice document: JSON with Lago's field names, a table, CSV.

JSON (docs/invoice-json.md) copies Lago's invoice object where gpubill has
the concept -- ``*_amount_cents`` integers in the currency's minor unit --
and writes the exact decimal beside each as a string (``fees_amount``).  An
amount finer than the minor unit (a plan rounding to 0.001) has no integer
cents: its ``*_amount_cents`` is then a decimal string.  Drafts are numbered
``PREFIX-DRAFT`` (numbers are assigned at finalization: the lifecycle issue).
The same store and files give a byte-identical document.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from gpubill import text
from gpubill.contracts.invoice import Invoice
from gpubill.dsl.currencies import minor_unit
from gpubill.engine.pricing.money import EXACT, round_amount
from gpubill.engine.spec.program import MoneyRounding
from gpubill.service.exports.csv_lines import write_csv
from gpubill.service.invoicing import InvoiceReport
from gpubill.service.report import display

SCHEMA_VERSION = 1
TOTALS = (
    "fees_amount", "progressive_billing_credit_amount", "coupons_amount", "sub_total_excluding_taxes_amount",
    "taxes_amount", "sub_total_including_taxes_amount", "credit_notes_amount", "prepaid_credit_amount",
    "prepaid_granted_credit_amount", "prepaid_purchased_credit_amount", "total_amount",
)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _s(d: Decimal | None) -> str | None:
    return None if d is None else format(d, "f")


def cents(amount: Decimal, currency: str) -> int | str:
    """The amount in the currency's minor unit: an int when whole, else its exact decimal string."""
    v = EXACT.multiply(amount, Decimal(10) ** minor_unit(currency))
    return int(v) if v == v.to_integral_value() else format(v.normalize(EXACT), "f")


def amount_text(amount: Decimal, currency: str) -> str:
    """The exact amount, with at least the currency's minor digits (0 -> "0.00")."""
    places = minor_unit(currency)
    exp = amount.as_tuple().exponent
    if isinstance(exp, int) and exp > -places:  # coarser than the minor unit: padded, never rounded
        amount = round_amount(amount, MoneyRounding("ROUND_HALF_EVEN", Decimal(1).scaleb(-places)))
    return format(amount, "f")


def money(fields: dict, name: str, amount: Decimal, currency: str) -> None:
    """``name_cents`` (Lago's integer) and ``name`` (the exact decimal string)."""
    fields[f"{name}_cents"] = cents(amount, currency)
    fields[name] = amount_text(amount, currency)


def draft_number(inv: Invoice) -> str:
    e = inv.billing.entity
    prefix = e.invoice_prefix.value if e is not None and e.invoice_prefix is not None else (
        (e.name.name if e is not None else "INV")[:3].upper())
    return f"{prefix}-DRAFT"


def invoice_json(inv: Invoice) -> dict:
    b, cur = inv.billing, inv.currency
    c = b.contract
    out = {
        "invoice_type": inv.invoice_type, "status": "draft", "number": draft_number(inv),
        "issuing_date": inv.issuing_date.isoformat(), "currency": cur,
        "billing_entity_code": c.entity.name if c.entity else None,
        "billing_entity": _entity_json(b.entity, c.entity.name if c.entity else None),
        "customer": {"external_id": c.customer.id.value, "name": _v(c.customer.display_name),
                     **_address_json(c.bill_to, c.bill_to.country if c.bill_to else None, c.vat_id)},
        "contract": c.name.name, "external_subscription_id": b.subscription_id,
        "plan": {"code": b.plan.name.name, "version": b.plan.version.id if b.plan.version else None},
        "billing_period": {"from": _iso(b.period.from_ms), "to": _iso(b.period.to_ms), "label": b.period.label,
                           "charges_from_datetime": _iso(inv.from_ms), "charges_to_datetime": _iso(inv.to_ms)},
    }
    for name in TOTALS:
        money(out, name, getattr(inv, name), cur)
    money(out, "total_due_amount", inv.total_amount, cur)  # nothing is paid on a draft
    out["payment_status"] = "succeeded" if inv.total_amount <= 0 else "pending"
    out["fees"] = [_fee_json(inv, i) for i in range(len(inv.fees))]
    out["credits"] = [_credit_json(a, cur) for a in inv.credits]
    out["applied_taxes"] = [_tax_json(t, cur) for t in inv.taxes]
    if inv.invoice_type == "progressive_billing":
        out["applied_usage_thresholds"] = [_s(t) for t in inv.thresholds]
    return out


def _v(s) -> str | None:
    return None if s is None else s.value


def _address_json(address, country, vat_id) -> dict:
    """The postal address and VAT id of a party (Lago's names), each field null when the .bill has no clause for it."""
    return {"address_lines": [line.value for line in address.lines] if address else [],
            "country": _v(country), "tax_identification_number": _v(vat_id)}


def _entity_json(e, code: str | None) -> dict:
    if e is None:
        return {"code": code, "name": None, **_address_json(None, None, None)}
    return {"code": code, "name": _v(e.display_name), **_address_json(e.address, e.country, e.vat_id)}


def _fee_json(inv: Invoice, i: int) -> dict:
    f, cur = inv.fees[i], inv.currency
    out = {
        "item": {"type": f.fee_type, "code": f.code, "name": f.description, "charge": f.charge, "kind": f.kind},
        "dimensions": dict(f.dimensions), "reason": f.reason, "clause": f.clause,
        "pay_in_advance": f.pay_in_advance, "events_count": f.events_count,
        "units": _s(f.units), "precise_unit_amount": _s(f.unit_price), "precise_amount": _s(f.precise_amount),
    }
    money(out, "amount", f.amount, cur)
    out["precise_progressive_credit_amount"] = _s(inv.progressive_shares[i])
    out["precise_coupons_amount"] = _s(inv.coupon_shares[i])
    out["taxes_precise_amount"] = _s(inv.fee_taxes[i])
    out["from_datetime"], out["to_datetime"] = _iso(f.from_ms), _iso(f.to_ms)
    if f.adjusts is not None:
        out["adjusts_invoice_number"] = f.adjusts
    return out


def _credit_json(a, cur: str) -> dict:
    item_type = {"coupon": "coupon", "progressive": "invoice", "credit_note": "credit_note", "prepaid": "wallet"}[a.kind]
    out = {"item": {"type": item_type, "code": a.code, "name": a.description}, "clause": a.clause,
           "before_taxes": a.kind in ("coupon", "progressive")}
    money(out, "amount", a.amount, cur)
    if a.kind == "prepaid":
        out["granted"] = a.granted
    return out


def _tax_json(t, cur: str) -> dict:
    out = {"tax_name": t.name, "tax_rate": _s(t.rate)}
    money(out, "fees_amount", t.base, cur)
    money(out, "amount", t.amount, cur)
    out["precise_amount"] = _s(t.precise_amount)
    return out


def report_json(report: InvoiceReport) -> dict:
    return {"schema": SCHEMA_VERSION, "invoices": [invoice_json(i) for i in report.invoices],
            "unrated": list(report.unrated)}


# ------------------------------------------------------------------ table


def biggest_line(inv: Invoice):
    """The fee that explains most of the bill: the largest by absolute amount."""
    return max(inv.fees, key=lambda f: abs(f.amount), default=None)


def invoice_table(inv: Invoice, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    b, cur = inv.billing, inv.currency
    c = b.contract
    who = c.customer.display_name.value if c.customer.display_name else c.customer.id.value
    kind = "" if inv.invoice_type == "subscription" else " · progressive"
    t = Table(title=escape(f"{draft_number(inv)} · {text.escape(who)} · {b.period.label}{kind} · plan "
                           f"{b.plan.name.name} · {cur}"), title_justify="left")
    for col, just in (("type", "left"), ("line", "left"), ("units", "right"), ("unit price", "right"),
                      ("amount", "right"), ("why", "left")):
        t.add_column(col, justify=just)
    for f in inv.fees:
        t.add_row(f.fee_type, escape(text.escape(f.description)), display(f.units, 4), display(f.unit_price, 4),
                  _s(f.amount), escape(f.reason))
    _totals_rows(t, inv)
    console.print(t)
    top = biggest_line(inv)
    if top is not None and top.amount:
        console.print(escape(f"  most of this bill: {text.escape(top.description)} = {_s(top.amount)} {cur} "
                             f"({top.reason}; {top.clause or 'the contract'})"))


def _totals_rows(t, inv: Invoice) -> None:
    rows = [("fees", inv.fees_amount)]
    rows += [(f"progressive credit ({a.code})", -a.amount) for a in inv.credits if a.kind == "progressive"]
    rows += [(a.description, -a.amount) for a in inv.credits if a.kind == "coupon"]
    rows.append(("subtotal excl. taxes", inv.sub_total_excluding_taxes_amount))
    rows += [(f"{tx.name} {_s(tx.rate)}%", tx.amount) for tx in inv.taxes]
    rows += [(a.description, -a.amount) for a in inv.credits if a.kind in ("credit_note", "prepaid")]
    rows.append(("[b]total due[/b]", inv.total_amount))
    for label, amount in rows:
        t.add_row("", label, "", "", _s(amount), "")


def report_table(report: InvoiceReport, file=None) -> None:
    from rich.console import Console

    console = Console(file=file, highlight=False, soft_wrap=False,
                      width=180 if file is not None and not file.isatty() else None)
    for inv in report.invoices:
        invoice_table(inv, console)


# ------------------------------------------------------------------ csv


def report_csv(report: InvoiceReport, file) -> None:
    """One row per fee line (gpubill.service.exports.csv_lines); the invoice's totals are sums of its rows' amounts."""
    write_csv(report_json(report)["invoices"], file)
