"""export(doc, fmt): JSON as stored, CSV one row per fee (its amounts add up to the invoice's fees), errors."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import orjson
import pytest
from exportkit import finalized, golden_docs

from gpubill.service.exports import FORMATS, ExportError, export, invoice_csv

DOCS = dict(golden_docs())


def test_json_is_the_document_as_stored_indented():
    doc = finalized(DOCS["quill_ai-0"])
    out = export(doc, "json")
    assert orjson.loads(out) == doc and out.startswith(b'{\n  "invoice_type"')


def test_csv_has_one_row_per_fee_with_gpu_type_region_and_class():
    doc = finalized(DOCS["pixelforge_studios-0"])
    rows = list(csv.DictReader(io.StringIO(invoice_csv(doc))))
    assert len(rows) == len(doc["fees"])
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal(doc["fees_amount"])
    assert {r["region"] for r in rows} >= {"eu-central", "us-east", "us-west"}
    assert all(r["number"] == "NWG-001-003" for r in rows)
    assert export(doc, "csv") == invoice_csv(doc).encode()


def test_every_format_writes_a_finalized_invoice():
    doc = finalized(DOCS["cirrus_exchange-0"])
    assert {fmt: bool(export(doc, fmt)) for fmt in FORMATS} == dict.fromkeys(FORMATS, True)


def test_an_unknown_format_is_one_clear_error():
    with pytest.raises(ExportError, match="unknown export format 'xlsx': use one of json, csv, pdf, ubl"):
        export(DOCS["quill_ai-0"], "xlsx")
