"""Invoice line items as CSV: one row per fee line, from the invoice document (docs/invoice-json.md).

`gpubill invoice --format csv` and `gpubill invoices export ID --format csv`
write the same rows: an invoice's totals are sums of its rows' amounts.
"""

from __future__ import annotations

import csv
import io

from gpubill.service.exports.common import dimension_columns

CSV_COLUMNS = ("number", "invoice_type", "customer", "contract", "period", "currency", "fee_type", "code", "charge",
               "description", "dimensions", "units", "unit_price", "precise_amount", "amount", "coupons", "taxes",
               "reason", "clause", "gpu_type", "region", "class")


def fee_rows(doc: dict):
    for f in doc["fees"]:
        item = f["item"]
        dims = ";".join(f"{k}={v}" for k, v in f["dimensions"].items())
        yield (doc["number"], doc["invoice_type"], doc["customer"]["external_id"], doc["contract"],
               doc["billing_period"]["label"], doc["currency"], item["type"], item["code"], item["charge"] or "",
               item["name"], dims, f["units"], f["precise_unit_amount"], f["precise_amount"], f["amount"],
               f["precise_coupons_amount"], f["taxes_precise_amount"], f["reason"], f["clause"] or "",
               *dimension_columns(f))


def write_csv(docs, file) -> None:
    """The header, then every fee row of each document."""
    w = csv.writer(file, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for doc in docs:
        w.writerows(fee_rows(doc))


def invoice_csv(doc: dict) -> str:
    out = io.StringIO()
    write_csv([doc], out)
    return out.getvalue()
