"""The demo's billing run: the month's stored events become invoices, as a billing team would see them.

A simulated clock walks the days after the month closes (the month is in
the past or the present, so "as of" dates may lie ahead of today: the demo
says so):

1. the close + 4 days: every billing period that ended is refreshed into a
   draft; progressive invoices are issued; drafts past their grace (the
   entity's or contract's ``invoice grace``, never before the ``late events
   grace``) are finalized and numbered;
2. the late events arrive (stored after the first rating);
3. the close + 5 days: the drafts are refreshed (a new revision where the
   late events changed them); a finalized invoice whose contract says
   ``late events ... then new revision`` gets a credit note and a replacing
   invoice; one that says ``then next invoice`` has its difference waiting
   for its next draft;
4. the budget alerts are evaluated;
5. every invoice and credit note is exported (PDF; UBL where finalized;
   JSON) into the demo folder.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import attrs

from gpubill.service import alerts, exports, lifecycle
from gpubill.service.exports import ExportError
from gpubill.store.roles import Actor

BILLING_TEAM = Actor("demo", "admin", "cli")  # the demo's store has no users: the local operator
RUN_DAYS, LATE_DAYS = 4, 5


@attrs.frozen
class BillingRun:
    run_day: dt.date
    late_day: dt.date
    invoices: tuple  # store.ledger.InvoiceRow, as they stand after the run
    credit_notes: tuple
    settled: tuple[str, ...]
    pending_late: tuple[str, ...]  # next-invoice adjustments waiting for the next draft
    alerts: tuple
    exported: tuple[str, ...]
    export_errors: tuple[str, ...]
    unrated: tuple[str, ...]


def month_end_ms(period: str) -> int:
    y, m = (int(x) for x in period.split("-"))
    first = dt.date(y + (m == 12), m % 12 + 1, 1)
    return int(dt.datetime(first.year, first.month, first.day, tzinfo=dt.timezone.utc).timestamp() * 1000)


def first_run(store, contracts: str, period: str) -> tuple[int, tuple]:
    """Step 1: drafts, progressive invoices, and the finalization of what is past its grace."""
    at = month_end_ms(period) + RUN_DAYS * 86_400_000
    r = lifecycle.refresh(store, [contracts], BILLING_TEAM, period, now_ms=at)
    lifecycle.finalize_due(store, [contracts], BILLING_TEAM, now_ms=at)
    return at, r.unrated


def second_run(store, contracts: str, period: str, folder: str, first_at: int, unrated: tuple) -> BillingRun:
    """Steps 3-5, once the late events are stored."""
    at = month_end_ms(period) + LATE_DAYS * 86_400_000
    r = lifecycle.refresh(store, [contracts], BILLING_TEAM, period, now_ms=at)
    pending = r.late_adjustments
    fired = alerts.check(store, [contracts], now_ms=at)
    rows = tuple(lifecycle.list_invoices(store, BILLING_TEAM))
    notes = tuple(lifecycle.list_credit_notes(store, BILLING_TEAM))
    written, errors = export_all(store, rows, notes, Path(folder) / "invoices")
    return BillingRun(_day(first_at), _day(at), rows, notes, r.settled, _pending_text(pending),
                      tuple(alerts.list_alerts(store)) if fired is not None else (), tuple(written), tuple(errors),
                      tuple(unrated) + tuple(r.unrated))


def _day(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).date()


def _pending_text(pending: dict) -> tuple[str, ...]:
    out = []
    for (contract, _), lines in sorted(pending.items()):
        total = sum(f.amount for f in lines)
        out.append(f"{contract}: {total:+} from late events of invoice {lines[0].adjusts}, billed on its next invoice")
    return tuple(out)


def export_all(store, rows, notes, folder: Path) -> tuple[list[str], list[str]]:
    """Each invoice as PDF and JSON (and UBL when finalized), each credit note as PDF and UBL."""
    folder.mkdir(parents=True, exist_ok=True)
    written, errors = [], []
    for row in rows:
        name = row.number or f"{row.contract}-{row.period_label}-draft"
        doc = {**row.doc, "lago_id": row.id, "content_hash": row.content_hash}
        mine = [n.doc for n in notes if n.invoice_id == row.id]
        formats = {"pdf": lambda d=doc, m=mine: exports.invoice_pdf(d, credit_notes=m),
                   "json": lambda d=doc: exports.export(d, "json")}
        if row.status != "draft":
            formats["xml"] = lambda d=doc: exports.invoice_ubl(d)
        _write(folder, name, formats, written, errors)
    by_id = {r.id: r for r in rows}
    for n in notes:
        inv = by_id[n.invoice_id].doc
        _write(folder, n.number, {"pdf": lambda c=n.doc, i=inv: exports.credit_note_pdf(c, i),
                                  "xml": lambda c=n.doc, i=inv: exports.credit_note_ubl(c, i)}, written, errors)
    return written, errors


def _write(folder: Path, name: str, formats: dict, written: list, errors: list) -> None:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    for ext, make in formats.items():
        path = folder / f"{safe}.{ext}"
        try:
            path.write_bytes(make())
        except ExportError as e:
            errors.append(f"{name}.{ext}: {e}")
            continue
        written.append(str(path))
