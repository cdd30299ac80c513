"""What every export reads the same way from an invoice document (docs/invoice-json.md)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

#: The columns a GPU invoice shows, each read from the first fee dimension it finds.
DIMENSION_COLUMNS = (("GPU type", ("gpu_type",)), ("Region", ("region",)), ("Class", ("availability_class", "class")))
#: What stands in for a due date when the document has none (EN 16931 BR-CO-25 wants one or the other).
PAYMENT_TERMS = "Due on receipt"
DRAFT = "draft"


class ExportError(ValueError):
    """An invoice that cannot be written in the asked format; the message is one line for the user."""


def dec(text) -> Decimal:
    return Decimal(str(text))


def is_draft(doc: dict) -> bool:
    return doc.get("status", DRAFT) == DRAFT


def dimension_columns(fee: dict) -> tuple[str, ...]:
    """The fee's GPU type, region and class ("" where it has none)."""
    dims = fee.get("dimensions") or {}
    return tuple(next((str(dims[k]) for k in keys if k in dims), "") for _, keys in DIMENSION_COLUMNS)


def billed_fees(doc: dict) -> list[dict]:
    """The fee lines that carry money (a line rounding to 0.00 is left out of printed and e-invoices)."""
    return [f for f in doc["fees"] if dec(f["amount"]) != 0]


def _local_date(iso_instant: str) -> dt.date:
    """The calendar day an instant that is a local midnight starts, whatever the (unknown) offset within
    -12 h .. +12 h: the nearest UTC midnight."""
    t = dt.datetime.fromisoformat(iso_instant.replace("Z", "+00:00"))
    return (t + dt.timedelta(hours=12)).date()


def period_dates(doc: dict) -> tuple[dt.date, dt.date]:
    """The billing period as first and last calendar day (`to` is the last millisecond of the period)."""
    p = doc["billing_period"]
    end = dt.datetime.fromisoformat(p["to"].replace("Z", "+00:00")) + dt.timedelta(milliseconds=1)
    return _local_date(p["from"]), _local_date(end.isoformat()) - dt.timedelta(days=1)


def before_tax_credits(doc: dict) -> list[dict]:
    """Coupons and the progressive-billing credit: they lower the taxable amount."""
    return [c for c in doc["credits"] if c["before_taxes"]]


def after_tax_credits(doc: dict) -> list[dict]:
    """Prepaid credits (wallets) and credit notes: they lower what is due, not the tax."""
    return [c for c in doc["credits"] if not c["before_taxes"]]
