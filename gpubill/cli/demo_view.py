"""The demo's invoices on a terminal: one row per invoice, credit notes, late events, alerts, files, next commands."""

from __future__ import annotations

import sys
from decimal import Decimal


def print_billing(result, contracts: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    run = result.billing
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    t = Table(title=f"Invoices for {result.period}: billing run as of {run.run_day}, late events settled as of "
                    f"{run.late_day}", title_justify="left")
    for col, just in (("number", "left"), ("status", "left"), ("customer", "left"), ("type", "left"),
                      ("subtotal", "right"), ("credits", "right"), ("taxes", "right"), ("total", "right")):
        t.add_column(col, justify=just)
    for r in run.invoices:
        d = r.doc
        credits = sum((Decimal(c["amount"]) for c in d["credits"]), Decimal(0))
        t.add_row(escape(r.number or d.get("number", "")), r.status + (" (replacement)" if r.replaces else ""),
                  escape(d["customer"].get("name") or r.customer), r.invoice_type.replace("_billing", ""),
                  d["fees_amount"], f"-{credits}" if credits else "0", d["taxes_amount"],
                  f"{d['total_amount']} {r.currency}")
    console.print(t)
    for n in run.credit_notes:
        console.print(escape(f"credit note {n.number}: {n.kind} {n.total} {n.currency} — {n.doc.get('description')}"))
    for line in run.settled:
        console.print(escape(f"late events: {line}"))
    for line in run.pending_late:
        console.print(escape(f"late events: {line}"))
    for a in run.alerts:
        console.print(escape(f"alert: {_alert_text(a)}"))
    for line in run.unrated:
        console.print(escape(f"not invoiced: {line}"))
    for line in run.export_errors:
        console.print(escape(f"not exported: {line}"))
    folder = result.store_path.rsplit("/", 1)[0] + "/invoices"
    console.print(f"{len(run.exported)} files in {folder}/ (PDF to read, UBL .xml for an ERP, JSON)")
    first = next((r for r in run.invoices if r.status == "finalized" and r.invoice_type == "subscription"), None)
    store = result.store_path
    console.print("[dim]Explore:[/dim]\n"
                  f"  gpubill invoices list --store {store}\n"
                  + (f"  gpubill invoices show {first.number} --store {store}\n" if first else "")
                  + f"  gpubill audit log --store {store}; gpubill audit verify --store {store}\n"
                  f"  gpubill alerts --store {store}\n"
                  f"  pdftoppm -png -r 60 {folder}/{first.number if first else 'NUMBER'}.pdf /tmp/invoice  "
                  "# then open /tmp/invoice-1.png")


def _alert_text(a) -> str:
    fields = ("customer", "kind", "threshold", "amount", "limit_amount", "currency")
    return ", ".join(f"{k} {getattr(a, k)}" for k in fields if getattr(a, k, None) is not None)
