"""Invoice and credit-note PDFs: the number and the totals as in the JSON, DRAFT on a draft, the content hash,
the same bytes for the same document, a header repeated over page breaks, and pdftoppm renders them."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from decimal import Decimal

import pytest
from exportkit import credit_note, finalized, golden_docs
from pypdf import PdfReader

from gpubill.service.exports import export
from gpubill.service.exports import pdf as pdf_module
from gpubill.service.exports.pdf import credit_note_pdf, invoice_pdf

DOCS = dict(golden_docs())
TOTALS = ("fees_amount", "coupons_amount", "sub_total_excluding_taxes_amount", "taxes_amount",
          "sub_total_including_taxes_amount", "prepaid_credit_amount", "total_amount")


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _printed(amount: str) -> str:
    """How the PDF prints an amount of the JSON: the same digits, grouped by thousands."""
    return f"{Decimal(amount).copy_abs():,f}"


@pytest.mark.parametrize("name", ["quill_ai-0", "lumen_biotherapeutics-2", "helix_labs-0"])
def test_the_pdf_shows_the_number_the_parties_and_every_total_as_in_the_json(name):
    doc = finalized(DOCS[name], "NWG-001-003", payment_due_date="2026-12-31")
    text = _text(invoice_pdf(doc))
    assert "NWG-001-003" in text and "INVOICE" in text and "2026-12-31" in text
    assert doc["billing_entity"]["name"] in text and doc["customer"]["name"] in text
    assert doc["customer"]["address_lines"][0] in text
    for field in TOTALS:
        if Decimal(doc[field]):
            assert _printed(doc[field]) in text, field
    for tax in doc["applied_taxes"]:
        assert f"{tax['tax_name']} {tax['tax_rate']}%" in text


def test_the_euro_sign_prints_with_dejavu_and_with_the_core_font(monkeypatch, tmp_path):
    doc = finalized(DOCS["lumen_biotherapeutics-2"])
    assert f"€{_printed(doc['total_amount'])}" in _text(invoice_pdf(doc))
    monkeypatch.setattr(pdf_module, "DEJAVU", tmp_path)  # no TTF there: core Helvetica (cp1252)
    assert f"€{_printed(doc['total_amount'])}" in _text(invoice_pdf(doc))


def test_a_draft_says_so_and_a_finalized_invoice_prints_its_content_hash():
    draft = _text(export(DOCS["quill_ai-0"], "pdf"))
    assert "DRAFT INVOICE" in draft and "NWG-DRAFT" in draft
    final = _text(invoice_pdf(finalized(DOCS["quill_ai-0"])))
    assert "DRAFT" not in final and "0f" * 32 in final


def test_policy_and_covered_lines_are_explained_under_the_line():
    doc = finalized(DOCS["helix_labs-0"])
    text = _text(invoice_pdf(doc)).replace("\n", " ")
    for fee in doc["fees"]:
        if fee["item"]["kind"] in ("policy", "covered") and Decimal(fee["amount"]):
            assert fee["reason"] in text


def test_the_same_document_gives_the_same_bytes():
    doc = finalized(DOCS["meridian_bank-2"])
    assert invoice_pdf(doc) == invoice_pdf(doc)


def test_a_long_invoice_breaks_pages_and_repeats_the_table_header():
    doc = finalized(DOCS["helix_labs-0"])
    doc = {**doc, "fees": doc["fees"] * 8}  # the totals stay the document's: only the layout is under test
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(invoice_pdf(doc))).pages]
    assert len(pages) >= 3
    assert all("Description" in p and "Unit price" in p for p in pages[:-1])
    assert all("NWG-001-003 (continued)" in p for p in pages[1:])
    assert f"Page {len(pages)} of {len(pages)}" in pages[-1]


def test_the_credit_note_pdf_shows_its_number_the_invoice_and_its_total():
    invoice = finalized(DOCS["lumen_biotherapeutics-2"], "NWE-202611-007")
    cn = credit_note(invoice, [(2, "1234.56")])
    text = _text(credit_note_pdf(cn, invoice))
    assert "CREDIT NOTE" in text and cn["number"] in text and "NWE-202611-007" in text
    assert f"€{_printed(cn['total_amount'])}" in text and cn["description"] in text
    listed = _text(invoice_pdf(invoice, credit_notes=[cn]))
    assert cn["number"] in listed and cn["total_amount"] in listed


def test_pdftoppm_renders_the_first_page(tmp_path):
    if shutil.which("pdftoppm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pdftoppm is missing on CI: .ci/run installs poppler-utils")
        pytest.skip("pdftoppm (poppler-utils) is not installed here; CI installs it")
    path = tmp_path / "invoice.pdf"
    path.write_bytes(invoice_pdf(finalized(DOCS["pixelforge_studios-0"])))
    r = subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (png,) = tmp_path.glob("page*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_a_credit_note_whose_total_differs_from_its_rounded_taxes_shows_the_rounding():
    invoice = finalized(DOCS["helix_labs-0"])
    items = [(i, f["amount"]) for i, f in enumerate(invoice["fees"]) if Decimal(f["amount"])]
    exact = credit_note(invoice, items)
    cn = credit_note(invoice, items, total=str(Decimal(exact["total_amount"]) - Decimal("0.01")))
    lines = _text(credit_note_pdf(cn, invoice)).splitlines()
    assert "Rounding -$0.01" in lines and f"Total credit ${_printed(cn['total_amount'])}" in lines
    assert not any(line.startswith("Rounding") for line in _text(credit_note_pdf(exact, invoice)).splitlines())


def test_a_name_beyond_cp1252_gets_the_unicode_font_and_prints(tmp_path):
    """Plain cp1252 text prints in the core fonts (fast); a name the core fonts lack switches to DejaVu."""
    if not all((pdf_module.DEJAVU / f).exists() for f in pdf_module.FONT_FILES.values()):
        pytest.skip("DejaVu Sans is not installed here")
    doc = golden_docs()[0][1]
    plain = pdf_module.invoice_pdf(doc)
    named = {**doc, "customer": {**doc["customer"], "name": "Łódź Ωmega 株式会社"}}
    wide = pdf_module.invoice_pdf(named)
    assert b"DejaVu" not in plain and b"DejaVu" in wide
    out = tmp_path / "w.pdf"
    out.write_bytes(wide)
    assert "Łódź Ωmega" in PdfReader(out).pages[0].extract_text()
