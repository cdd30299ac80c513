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
    for number, status, who, kind, rows in _grouped(run.invoices):
        total = {k: sum((Decimal(r.doc[k]) for r in rows), Decimal(0))
                 for k in ("fees_amount", "taxes_amount", "total_amount")}
        credits = sum((Decimal(c["amount"]) for r in rows for c in r.doc["credits"]), Decimal(0))
        t.add_row(escape(number), status, escape(who), kind, str(total["fees_amount"]),
                  f"-{credits}" if credits else "0", str(total["taxes_amount"]),
                  f"{total['total_amount']} {rows[0].currency}")
    console.print(t)
    notes = [f"{n.number}: {n.kind} {n.total} {n.currency} — {n.doc.get('description')}" for n in run.credit_notes]
    for label, lines in (("credit note", notes), ("late events", run.settled + run.pending_late),
                         ("alert", [_alert_text(a) for a in run.alerts]), ("not invoiced", run.unrated),
                         ("not exported", run.export_errors)):
        for line in lines:
            console.print(escape(f"{label}: {line}"))
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
                  "# then open /tmp/invoice-1.png\n"
                  f"  gpubill portal open --store {store} --contracts {contracts} --customer "
                  f"{first.customer if first else 'CUSTOMER'}  # that customer's portal: open the URL it prints")


def _grouped(rows) -> list[tuple]:
    """One row per invoice; a customer's progressive invoices of the month as one row (how many, first..last)."""
    out, progressive = [], {}
    for r in rows:
        who = r.doc["customer"].get("name") or r.customer
        if r.invoice_type == "progressive_billing":
            progressive.setdefault(who, []).append(r)
            continue
        out.append((r.number or r.doc.get("number", ""), r.status + (" (replacement)" if r.replaces else ""), who,
                    "subscription", [r]))
    for who, rs in progressive.items():
        numbers = f"{rs[0].number}" if len(rs) == 1 else f"{rs[0].number} … {rs[-1].number}"
        out.append((numbers, "finalized", who, f"progressive × {len(rs)}", rs))
    return out


def _alert_text(a) -> str:
    """One alert; its billing period as the contract's timezone has it (a UTC month would name the
    month before for a period that starts at local midnight east of UTC)."""
    return (f"{a.customer} reached {a.threshold} of its {a.kind.replace('_', ' ')} in the period "
            f"{a.body['period']['label']}: {a.amount} of {a.limit_amount} {a.currency}")
