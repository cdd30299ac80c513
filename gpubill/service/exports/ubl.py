"""UBL 2.1 invoices and credit notes following EN 16931 (CEN/TS 16931-3-2), built with lxml.

Element order is the XSD sequence (docs: reference invoicing.md section 2.6);
amounts are the document's rounded strings, so the totals add up exactly as
in the JSON (BR-CO-10..16). Lago's mapping: a line per fee that carries
money, a document allowance for the coupons and one for the progressive
credit, prepaid credits and credit notes as the prepaid amount, the total as
the payable amount. gpubill's taxes all apply to every fee, so the document
has one VAT category whose rate is the sum of the entity's tax rates.
"""

from __future__ import annotations

from decimal import Decimal

from lxml import etree

from gpubill.dsl.currencies import minor_unit

from gpubill.service.exports.common import (
    DIMENSION_COLUMNS, PAYMENT_TERMS, ExportError, after_tax_credits, before_tax_credits, billed_fees, dec, is_draft,
    period_dates,
)

CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017"
INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
COMMERCIAL_INVOICE, CREDIT_NOTE = "380", "381"  # UNTDID 1001
DISCOUNT_REASON = "95"  # UNTDID 5189: discount
#: UN/ECE Rec 20: GPU-hours are hours; everything else is counted in ones.
HOUR, ONE = "HUR", "C62"
ZERO = Decimal(0)


def invoice_ubl(doc: dict) -> bytes:
    """A finalized invoice document as a UBL 2.1 `Invoice` (type 380); a draft is refused."""
    if is_draft(doc):
        raise ExportError(f"invoice {doc['number']} is a draft: only a finalized invoice is written as UBL "
                          "(finalize it first)")
    what = f"invoice {doc['number']}"
    seller, buyer = _seller(doc, what), _buyer(doc, what)
    _need(doc["fees"], what, "it has no fee line (EN 16931 BR-16: an invoice has at least one line)")
    cur = doc["currency"]
    root = etree.Element(f"{{{INVOICE_NS}}}Invoice", nsmap={None: INVOICE_NS, "cac": CAC, "cbc": CBC})
    _header(root, doc["number"], doc["issuing_date"])
    if doc.get("payment_due_date"):
        _cbc(root, "DueDate", doc["payment_due_date"])
    _cbc(root, "InvoiceTypeCode", COMMERCIAL_INVOICE)
    _cbc(root, "Note", f"Billing period {doc['billing_period']['label']}, contract {doc['contract']}")
    _cbc(root, "DocumentCurrencyCode", cur)
    _cbc(root, "BuyerReference", doc["customer"]["external_id"])
    start, end = period_dates(doc)
    period = _cac(root, "InvoicePeriod")
    _cbc(period, "StartDate", start.isoformat())
    _cbc(period, "EndDate", end.isoformat())
    _parties(root, seller, buyer)
    if doc.get("payment_due_date") is None:
        _cbc(_cac(root, "PaymentTerms"), "Note", PAYMENT_TERMS)
    category = _category(doc["applied_taxes"])
    allowances = [(c["item"]["name"], dec(c["amount"])) for c in before_tax_credits(doc) if dec(c["amount"])]
    for reason, amount in allowances:
        _allowance(root, reason, amount, cur, category)
    exclusive, tax = dec(doc["sub_total_excluding_taxes_amount"]), dec(doc["taxes_amount"])
    _tax_total(root, exclusive, tax, cur, category)
    _monetary_total(root, what, cur, lines=dec(doc["fees_amount"]), allowances=sum((a for _, a in allowances), ZERO),
                    exclusive=exclusive, tax=tax, prepaid=sum((dec(c["amount"]) for c in after_tax_credits(doc)), ZERO),
                    payable=dec(doc["total_amount"]), taxes=len(doc["applied_taxes"]))
    for i, fee in enumerate(billed_fees(doc) or doc["fees"], 1):  # an invoice of zero keeps its zero lines (BR-16)
        _invoice_line(root, i, fee, cur, category)
    return _bytes(root)


def credit_note_ubl(cn: dict, invoice: dict) -> bytes:
    """A credit note (Lago's object, docs/invoice-json.md) on a finalized invoice as a UBL 2.1 `CreditNote`
    (type 381) that refers to the invoice (BG-3)."""
    what = f"credit note {cn['number']}"
    if is_draft(invoice):
        raise ExportError(f"{what} is on draft invoice {invoice['number']}: only a finalized invoice has credit notes")
    seller, buyer = _seller(invoice, what), _buyer(invoice, what)
    cur = cn["currency"]
    root = etree.Element(f"{{{CREDIT_NOTE_NS}}}CreditNote", nsmap={None: CREDIT_NOTE_NS, "cac": CAC, "cbc": CBC})
    _header(root, cn["number"], cn["issuing_date"])
    _cbc(root, "CreditNoteTypeCode", CREDIT_NOTE)
    _cbc(root, "Note", f"{cn['reason']}: {cn['description']}" if cn.get("description") else cn["reason"])
    _cbc(root, "DocumentCurrencyCode", cur)
    _cbc(root, "BuyerReference", invoice["customer"]["external_id"])
    ref = _cac(_cac(root, "BillingReference"), "InvoiceDocumentReference")
    _cbc(ref, "ID", cn["invoice_number"])
    _cbc(ref, "IssueDate", invoice["issuing_date"])
    _parties(root, seller, buyer)
    category = _category(cn["applied_taxes"])
    items = [(it["fee"], dec(it["amount"])) for it in cn["items"] if dec(it["amount"])]
    lines_total = sum((a for _, a in items), ZERO)
    adjustment = lines_total - dec(cn["sub_total_excluding_taxes_amount"])  # the invoice's coupons on those fees
    if adjustment:
        _allowance(root, "Coupons adjustment", adjustment, cur, category)
    # the VAT breakdown is the taxes on the credited amount; a total asked tax included may differ from
    # their sum by their rounding, which is the rounding amount (BT-114)
    exclusive, tax = dec(cn["sub_total_excluding_taxes_amount"]), sum((dec(t["amount"]) for t in cn["applied_taxes"]), ZERO)
    _tax_total(root, exclusive, tax, cur, category)
    _monetary_total(root, what, cur, lines=lines_total, allowances=adjustment, exclusive=exclusive, tax=tax,
                    prepaid=ZERO, payable=dec(cn["total_amount"]), taxes=len(cn["applied_taxes"]))
    for i, (fee, amount) in enumerate(items, 1):
        _credit_note_line(root, i, fee, amount, cur, category)
    return _bytes(root)


# ------------------------------------------------------------------ parties


def _need(value, what: str, problem: str):
    if not value:
        raise ExportError(f"cannot write {what} as UBL: {problem}")
    return value


def _seller(doc: dict, what: str) -> dict:
    e = doc.get("billing_entity") or {}
    code = e.get("code") or doc.get("billing_entity_code")
    _need(e.get("name"), what, f"entity {code} has no `name` clause (EN 16931 BR-06: the seller's name)")
    _need(e.get("address_lines"), what, f"entity {code} has no `address` clause (BR-08: the seller's postal address)")
    _need(e.get("country"), what, f"entity {code} has no `country` clause (BR-09: the seller's country)")
    _need(e.get("tax_identification_number"), what,
          f"entity {code} has no `vat id` clause (BR-CO-26, BR-S-02: the seller's VAT identifier)")
    return e


def _buyer(doc: dict, what: str) -> dict:
    c, contract = doc["customer"], doc["contract"]
    _need(c.get("name"), what, f'contract {contract} has no customer name (customer "{c["external_id"]}" name "...";'
                              " BR-07: the buyer's name)")
    _need(c.get("address_lines"), what, f"contract {contract} has no `bill to` clause (BR-10: the buyer's postal address)")
    _need(c.get("country"), what, f'contract {contract}: `bill to` has no `, country "CC"` (BR-11: the buyer\'s country)')
    return c


def _parties(root, seller: dict, buyer: dict) -> None:
    _party(_cac(root, "AccountingSupplierParty"), seller)
    _party(_cac(root, "AccountingCustomerParty"), buyer)


def _party(parent, p: dict) -> None:
    party = _cac(parent, "Party")
    _cbc(_cac(party, "PartyName"), "Name", p["name"])
    address = _cac(party, "PostalAddress")
    lines = p["address_lines"]
    _cbc(address, "StreetName", lines[0])
    if len(lines) > 1:
        _cbc(address, "AdditionalStreetName", lines[1])
    if len(lines) > 2:
        _cbc(_cac(address, "AddressLine"), "Line", ", ".join(lines[2:]))
    _cbc(_cac(address, "Country"), "IdentificationCode", p["country"])
    if p.get("tax_identification_number"):
        scheme = _cac(party, "PartyTaxScheme")
        _cbc(scheme, "CompanyID", p["tax_identification_number"])
        _cbc(_cac(scheme, "TaxScheme"), "ID", "VAT")
    _cbc(_cac(party, "PartyLegalEntity"), "RegistrationName", p["name"])


# ------------------------------------------------------------------ money


def _category(applied_taxes: list[dict]) -> tuple[str, Decimal]:
    """(UNTDID 5305 code, percent): S at the sum of the taxes' rates, Z when there is none."""
    rate = sum((dec(t["tax_rate"]) for t in applied_taxes), ZERO)
    return ("S" if rate > 0 else "Z"), rate


def _tax_category(parent, tag: str, category: tuple[str, Decimal]) -> None:
    el = _cac(parent, tag)
    _cbc(el, "ID", category[0])
    _cbc(el, "Percent", _num(category[1]))
    _cbc(_cac(el, "TaxScheme"), "ID", "VAT")


def _allowance(root, reason: str, amount: Decimal, cur: str, category) -> None:
    el = _cac(root, "AllowanceCharge")
    _cbc(el, "ChargeIndicator", "false")
    _cbc(el, "AllowanceChargeReasonCode", DISCOUNT_REASON)
    _cbc(el, "AllowanceChargeReason", reason)
    _money(el, "Amount", amount, cur)
    _tax_category(el, "TaxCategory", category)


def _tax_total(root, taxable: Decimal, tax: Decimal, cur: str, category) -> None:
    total = _cac(root, "TaxTotal")
    _money(total, "TaxAmount", tax, cur)
    sub = _cac(total, "TaxSubtotal")
    _money(sub, "TaxableAmount", taxable, cur)
    _money(sub, "TaxAmount", tax, cur)
    _tax_category(sub, "TaxCategory", category)


def _monetary_total(root, what: str, cur: str, *, lines: Decimal, allowances: Decimal, exclusive: Decimal,
                    tax: Decimal, prepaid: Decimal, payable: Decimal, taxes: int) -> None:
    """BG-22: payable = exclusive + tax - prepaid + rounding, the rounding at most a minor unit per tax."""
    including = exclusive + tax
    rounding = payable - (including - prepaid)
    if rounding.copy_abs() > max(taxes, 1) * Decimal(1).scaleb(-minor_unit(cur)):
        raise ExportError(f"cannot write {what} as UBL: its total {payable} is not its subtotal {exclusive} "
                          f"+ taxes {tax} - prepaid {prepaid}")
    t = _cac(root, "LegalMonetaryTotal")
    _money(t, "LineExtensionAmount", lines, cur)
    _money(t, "TaxExclusiveAmount", exclusive, cur)
    _money(t, "TaxInclusiveAmount", including, cur)
    if allowances:
        _money(t, "AllowanceTotalAmount", allowances, cur)
    if prepaid:
        _money(t, "PrepaidAmount", prepaid, cur)
    if rounding:
        _money(t, "PayableRoundingAmount", rounding, cur)
    _money(t, "PayableAmount", payable, cur)


# ------------------------------------------------------------------ lines


def unit_code(fee: dict) -> str:
    """HUR for GPU time (a reservation, or a charge on a metric named *gpu_hours, the examples' convention)."""
    item = fee["item"]
    gpu_time = item["type"] == "reservation" or (item.get("charge") or item["code"]).endswith("gpu_hours")
    return HOUR if gpu_time else ONE


def _quantity_price(fee: dict, amount: Decimal) -> tuple[Decimal, Decimal, str]:
    """(quantity, price, unit): the price is never negative (BR-27), so a negative line has a negative
    quantity; a line without units or unit price (a policy credit) is one of its amount."""
    units, price = fee.get("units"), fee.get("precise_unit_amount")
    if units is None or price is None or dec(units) == 0 or dec(price) == 0:
        return Decimal(1).copy_sign(amount), amount.copy_abs(), ONE
    return dec(units).copy_sign(amount), dec(price).copy_abs(), unit_code(fee)  # copy_*: exact, no context rounding


def _invoice_line(root, i: int, fee: dict, cur: str, category) -> None:
    amount = dec(fee["amount"])
    qty, price, unit = _quantity_price(fee, amount)
    line = _cac(root, "InvoiceLine")
    _cbc(line, "ID", str(i))
    _cbc(line, "Note", fee["reason"])
    _cbc(line, "InvoicedQuantity", _num(qty), unitCode=unit)
    _money(line, "LineExtensionAmount", amount, cur)
    _item(line, fee, category)
    _money(_cac(line, "Price"), "PriceAmount", price, cur)


def _credit_note_line(root, i: int, fee: dict, amount: Decimal, cur: str, category) -> None:
    line = _cac(root, "CreditNoteLine")
    _cbc(line, "ID", str(i))
    _cbc(line, "CreditedQuantity", _num(Decimal(1).copy_sign(amount)), unitCode=ONE)  # a credited negative line: -1
    _money(line, "LineExtensionAmount", amount, cur)
    _item(line, fee, category)
    _money(_cac(line, "Price"), "PriceAmount", amount.copy_abs(), cur)


def _item(line, fee: dict, category) -> None:
    item = _cac(line, "Item")
    _cbc(item, "Name", fee["item"]["name"])
    _tax_category(item, "ClassifiedTaxCategory", category)
    dims = fee.get("dimensions") or {}
    labels = {k: label for label, keys in DIMENSION_COLUMNS for k in keys}
    for key, value in dims.items():
        prop = _cac(item, "AdditionalItemProperty")
        _cbc(prop, "Name", labels.get(key, key))
        _cbc(prop, "Value", str(value))


# ------------------------------------------------------------------ xml


def _header(root, number: str, issuing_date: str) -> None:
    _cbc(root, "UBLVersionID", "2.1")
    _cbc(root, "CustomizationID", CUSTOMIZATION_ID)
    _cbc(root, "ID", number)
    _cbc(root, "IssueDate", issuing_date)


def _cac(parent, tag: str):
    return etree.SubElement(parent, f"{{{CAC}}}{tag}")


def _cbc(parent, tag: str, text: str, **attrs):
    el = etree.SubElement(parent, f"{{{CBC}}}{tag}", **attrs)
    el.text = text
    return el


def _num(d: Decimal) -> str:
    return format(d, "f")


def _money(parent, tag: str, amount: Decimal, cur: str) -> None:
    _cbc(parent, tag, _num(amount), currencyID=cur)


def _bytes(root) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
