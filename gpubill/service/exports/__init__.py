"""One invoice document (an element of ``report_json(report)["invoices"]``, docs/invoice-json.md) as bytes.

    export(doc, fmt)                    fmt: json | csv | pdf | ubl
    invoice_pdf(doc, credit_notes=())   credit_note_pdf(cn, invoice)
    invoice_ubl(doc)                    credit_note_ubl(cn, invoice)   (UBL 2.1, EN 16931)
    invoice_csv(doc)
    stored_invoice(row)                 a stored invoice's document as exported (its id and content hash added)
    invoice_file(doc, fmt, credit_notes=())   credit_note_file(cn, invoice, fmt)   what `invoices export` writes

A draft exports as JSON, CSV and a PDF marked DRAFT; UBL is refused
(ExportError, a ValueError) for a draft and for an invoice whose .bill files
lack the seller's or buyer's legal identity. The PDF and UBL writers (fpdf2,
lxml) load on first use.
"""

from __future__ import annotations

import orjson

from gpubill.service.exports.common import ExportError
from gpubill.service.exports.csv_lines import invoice_csv

FORMATS = ("json", "csv", "pdf", "ubl")
_LAZY = {"invoice_pdf": "pdf", "credit_note_pdf": "pdf", "invoice_ubl": "ubl", "credit_note_ubl": "ubl"}

NOTE_FORMATS = ("json", "pdf", "ubl")  # a credit note's items are in its JSON: no CSV of its own

__all__ = ["FORMATS", "NOTE_FORMATS", "ExportError", "export", "invoice_csv", "stored_invoice", "invoice_file",
           "credit_note_file", *_LAZY]


def export(doc: dict, fmt: str) -> bytes:
    """The document in one of FORMATS (JSON: as stored, indented by 2)."""
    if fmt == "json":
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    if fmt == "csv":
        return invoice_csv(doc).encode()
    if fmt == "pdf":
        from gpubill.service.exports.pdf import invoice_pdf
        return invoice_pdf(doc)
    if fmt == "ubl":
        from gpubill.service.exports.ubl import invoice_ubl
        return invoice_ubl(doc)
    raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")


def stored_invoice(row) -> dict:
    """A stored invoice's document as it is exported: with its id (``lago_id``) and content hash."""
    return {**row.doc, "lago_id": row.id, "content_hash": row.content_hash}


def invoice_file(doc: dict, fmt: str, credit_notes=()) -> bytes:
    """An invoice in ``fmt``; its PDF also lists the credit notes issued on it (their documents)."""
    if fmt == "pdf":
        from gpubill.service.exports.pdf import invoice_pdf
        return invoice_pdf(doc, credit_notes=credit_notes)
    return export(doc, fmt)


def credit_note_file(cn: dict, invoice: dict, fmt: str) -> bytes:
    """A credit note (its document, and its invoice's) in one of NOTE_FORMATS."""
    if fmt == "json":
        return orjson.dumps(cn, option=orjson.OPT_INDENT_2)
    if fmt == "pdf":
        from gpubill.service.exports.pdf import credit_note_pdf
        return credit_note_pdf(cn, invoice)
    if fmt == "ubl":
        from gpubill.service.exports.ubl import credit_note_ubl
        return credit_note_ubl(cn, invoice)
    raise ExportError(f"a credit note exports as {', '.join(NOTE_FORMATS)} (its items are in the json), not {fmt!r}")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
