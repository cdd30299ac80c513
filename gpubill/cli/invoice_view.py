"""A stored invoice drawn on a terminal: header, lines, totals, credit notes, revisions."""

from __future__ import annotations

from gpubill import text


def show_invoice(row, notes, revisions=None, file=None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    doc, cur = row.doc, row.currency
    console = Console(file=file, highlight=False)
    who = (doc.get("customer") or {}).get("name") or row.customer
    title = (f"{row.number or doc.get('number')} · {row.status} · {text.escape(who)} · {row.period_label} · "
             f"{row.invoice_type} · {cur}")
    t = Table(title=escape(title), title_justify="left")
    for col, just in (("#", "right"), ("line", "left"), ("gpu / region / class", "left"), ("units", "right"),
                      ("unit price", "right"), ("amount", "right"), ("why", "left")):
        t.add_column(col, justify=just)
    for n, f in enumerate(doc["fees"], 1):  # the line's number: `credit-note --item N=AMOUNT`, the portal's lines/N
        dims = " / ".join(str(v) for v in (f.get("dimensions") or {}).values())
        t.add_row(str(n), escape(text.escape(f["item"]["name"])), escape(dims), f.get("units") or "",
                  f.get("precise_unit_amount") or "", f["amount"], escape(f.get("reason") or ""))
    for label, amount in _totals(doc):
        t.add_row("", label, "", "", "", amount, "")
    console.print(t)
    facts = [f"id {row.id}", f"revision {row.revision}"]
    if row.status != "draft":
        facts += [f"issued {row.issuing_date}", f"sha256 {row.content_hash}"]
    if row.void_reason:
        facts.append(f"voided: {row.void_reason}")
    if row.replaces:
        facts.append(f"replaces {doc.get('replaces_invoice_number') or row.replaces}")
    console.print(escape("  " + " · ".join(facts)))
    for n in notes:
        console.print(escape(f"  credit note {n.number}: {n.kind} {n.total} {cur} ({n.doc.get('reason')}: "
                             f"{text.escape(n.doc.get('description') or '')})"))
    for r in revisions or ():
        console.print(escape(f"  revision {r['revision']} by {r['actor']}: sha256 {r['content_hash'][:16]}… "
                             f"contracts {r['contracts_digest'][:12]}… events ≤ {r['watermark']}"))


def _totals(doc: dict) -> list[tuple[str, str]]:
    rows = [("fees", doc["fees_amount"])]
    rows += [(f"− {c['item']['name']}", c["amount"]) for c in doc["credits"] if c["before_taxes"]]
    rows.append(("subtotal excl. taxes", doc["sub_total_excluding_taxes_amount"]))
    rows += [(f"{t['tax_name']} {t['tax_rate']}%", t["amount"]) for t in doc["applied_taxes"]]
    rows += [(f"− {c['item']['name']}", c["amount"]) for c in doc["credits"] if not c["before_taxes"]]
    rows.append(("total due", doc["total_amount"]))
    return rows
