"""One invoice: its totals in Lago's order, its lines, and the review actions.

Enter on a line explains it (screens/explain.py). The actions go through
gpubill/service/lifecycle.py as the session's actor, each behind a confirmation
(screens/confirm.py), each written to the audit log by the lifecycle:
``r`` refresh a draft, ``f`` finalize a draft (the confirmation shows the number it
will take and its total), ``c`` credit note on a finalized invoice (amount or %,
reason required), ``v`` void a finalized invoice (reason required), ``g``
regenerate a voided one (its period invoiced again), ``n`` void the credit
left on its newest credit note (reason required). A key for
another status is hidden; a key the actor's role may not use is shown dimmed in
the footer, and the line under the totals says why.
"""

from __future__ import annotations

from decimal import Decimal

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from gpubill.tui.markup import literal
from gpubill.service import lifecycle
from gpubill.service.explain import refresh_draft, refused
from gpubill.tui.screens.confirm import ConfirmScreen, CreditNoteRequest, CreditNoteScreen, ReasonScreen, SaysWhyNot
from gpubill.tui.widgets.filter_table import Column, FilterTable, Row
from gpubill.tui.widgets.frame import ReviewScreen

COLUMNS = (Column("#", "n", True), Column("line", "line"), Column("units", "units", True),
           Column("unit price", "price", True), Column("amount", "amount", True), Column("clause", "clause"))
TOTALS = (("fees", "fees_amount"), ("progressive credit", "progressive_billing_credit_amount"),
          ("coupons", "coupons_amount"), ("subtotal", "sub_total_excluding_taxes_amount"), ("taxes", "taxes_amount"),
          ("credit notes", "credit_notes_amount"), ("prepaid credits", "prepaid_credit_amount"), ("total", "total_amount"))
# action -> (the permission it needs, the status it applies to)
ACTIONS = {"refresh": ("refresh", "draft"), "finalize": ("finalize", "draft"),
           "credit_note": ("credit_note", "finalized"), "void": ("void", "finalized"),
           "regenerate": ("finalize", "voided"), "void_note": ("credit_note", "finalized")}


def short(value: str | None, places: int = 6, significant: int = 4) -> str:
    """A decimal string cut to ``places`` decimals for a table cell, or below 1 to its first
    ``significant`` digits (a token's price: 0.0000006) ("~" when cut; the document keeps all)."""
    if value is None:
        return "—"
    whole, _, frac = value.partition(".")
    if whole.lstrip("-") == "0":
        places = max(places, len(frac) - len(frac.lstrip("0")) + significant)
    return value if len(frac) <= places else f"~{whole}.{frac[:places]}"


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def line_rows(doc: dict) -> list[Row]:
    rows = []
    for i, f in enumerate(doc["fees"]):
        cells = (str(i + 1), f["item"]["name"], short(f["units"]), short(f["precise_unit_amount"]), f["amount"],
                 f["clause"] or "")
        rows.append(Row(str(i), cells, (i, f["item"]["name"], _dec(f["units"]), _dec(f["precise_unit_amount"]),
                                        Decimal(f["amount"]), f["clause"] or "")))
    return rows


def header_text(row, notes) -> str:
    doc = row.doc
    number = f"[b]{row.number}[/b] · {row.status}" if row.number else "[b]draft[/b] (numbered when finalized)"
    title = (f"{number} · {literal(doc['customer']['name'] or row.customer)} · contract {literal(row.contract)}"
             f" · {row.period_label}"
             f" · {row.invoice_type} · {row.currency}")
    totals = "  ".join(f"{label} [b]{doc[key]}[/b]" for label, key in TOTALS if doc.get(key) not in (None, "0.00")
                       or key == "total_amount")
    extra = f"\nvoided: {literal(row.void_reason or '')}" if row.status == "voided" else ""
    if notes:
        extra += "\ncredit notes: " + ", ".join(f"{n.number} ({n.kind} {n.total} {n.currency})" for n in notes)
    return f"{title}\n{totals}{extra}"


class InvoiceScreen(SaysWhyNot, ReviewScreen):
    """See the module's docstring."""

    DEFAULT_CSS = """
    #invoice-header { height: auto; padding: 0 1; background: $boost; }
    #invoice-why { height: auto; padding: 0 1; color: $warning; }
    """

    BINDINGS = [
        Binding("r", "refresh", "refresh", tooltip="recompute the draft from the events now"),
        Binding("f", "finalize", "finalize", tooltip="number and freeze the draft"),
        Binding("c", "credit_note", "credit note", tooltip="credit part of a finalized invoice"),
        Binding("v", "void", "void", tooltip="void a finalized invoice (it keeps its number)"),
        Binding("g", "regenerate", "regenerate", tooltip="invoice a voided invoice's period again"),
        Binding("n", "void_note", "void note credit", tooltip="void the credit left on its newest credit note"),
    ]

    def __init__(self, invoice_id: str):
        super().__init__()
        self.invoice_id = invoice_id
        self.row = None
        self.note_left = None  # (its newest credit note with credit left, that credit), or None

    def crumbs(self) -> tuple[str, ...]:
        label = (self.row.number or f"draft {self.row.customer} {self.row.period_label}") if self.row else self.invoice_id
        return ("Invoices", label)

    def compose_body(self) -> ComposeResult:
        yield Static("", id="invoice-header")
        yield Static("", id="invoice-why")
        yield FilterTable(COLUMNS, id="lines", classes="loads")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#lines").loading = True
        self.reload()

    def reload(self) -> None:
        self._read()

    @work(thread=True, exclusive=True, group="invoice", exit_on_error=False)
    def _read(self) -> None:
        s = self.session
        store = s.reader()
        row = lifecycle.get_invoice(store, s.actor, self.invoice_id)
        notes = lifecycle.list_credit_notes(store, s.actor, invoice_id=row.id)
        lefts = [(n, lifecycle.credit_left(store, n)) for n in notes]
        self.app.call_from_thread(self._show, row, notes, next(((n, x) for n, x in reversed(lefts) if x > 0), None))

    def _show(self, row, notes, note_left) -> None:
        self.row, self.note_left = row, note_left
        table = self.query_one("#lines", FilterTable)
        table.loading = False
        table.set_rows(line_rows(row.doc))
        self.query_one("#invoice-header", Static).update(header_text(row, notes))
        why_text = self.why_text()
        why = self.query_one("#invoice-why", Static)
        why.update(why_text)
        why.display = bool(why_text)
        self.query_one("Breadcrumb").crumbs = self.crumbs()
        self.refresh_bindings()

    @on(FilterTable.Chosen, "#lines")
    def _explain(self, event: FilterTable.Chosen) -> None:
        self.app.open_screen("explain", self.invoice_id, int(event.key))

    # -- which actions work now -------------------------------------------------
    def why_not(self, action: str) -> str | None:
        """Why this actor's role may not take ``action``; None when it may."""
        return refused(self.session.actor, ACTIONS[action][0])

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action not in ACTIONS:
            return True
        if self.row is None or self.row.status != ACTIONS[action][1]:
            return False  # another status: the key is not shown
        if action == "void_note" and self.note_left is None:
            return False  # no credit note with credit left
        return None if self.why_not(action) else True  # the role: shown dimmed, why under the totals

    def why_text(self) -> str:
        return "\n".join(f"{self.app.get_key_display(b)} {b.description}: {self.why_not(b.action)}"
                         for b in self.BINDINGS if self.check_action(b.action, ()) is None)

    # -- the actions: confirm on the UI thread, write in a worker -----------------
    def _total(self) -> str:
        return f"{self.row.doc['total_amount']} {self.row.currency}"

    def action_refresh(self) -> None:
        self.app.push_screen(ConfirmScreen(
            f"Refresh the draft of {literal(self.row.customer)}, {self.row.period_label}?",
            [f"Total now: {self._total()}.", "It is recomputed from the events as they stand; a new revision is "
             "stored only if it changed."]), lambda ok: ok and self._write("refresh"))

    @work(thread=True, exclusive=True, group="invoice-action", exit_on_error=False)
    def action_finalize(self) -> None:
        s = self.session
        with s.writer() as store:
            number = lifecycle.peek_number(store, s.contracts, self.row.id, s.actor, now_ms=s.now_ms())
        self.app.call_from_thread(self.app.push_screen, ConfirmScreen(
            f"Finalize the draft of {literal(self.row.customer)}, {self.row.period_label}?",
            [f"It takes the number [b]{number}[/b].", f"Total: [b]{self._total()}[/b] (refreshed once more first).",
             "A finalized invoice never changes: corrections are credit notes."], "finalize (y)"),
            lambda ok: ok and self._write("finalize"))

    def action_credit_note(self) -> None:
        self.app.push_screen(CreditNoteScreen(f"Credit note on {self.row.number}", [
            f"Total {self._total()}, tax included; at most what earlier credit notes left of it.",
            "Or credit lines by their # before tax (3=100, 5=20): at most what each has left, plus its taxes."], "next"),
            self._confirm_credit)

    def _confirm_credit(self, req: CreditNoteRequest | None) -> None:
        if req is None:
            return
        self.app.push_screen(ConfirmScreen(f"Issue a credit note on {self.row.number}?", [
            f"Credit {req.what(self._total())}{'' if req.items else ' (tax included)'}, reason {literal(req.reason)}.",
            f"Description: {req.description or '—'}"], "issue (y)"), lambda ok: ok and self._write("credit_note", req))

    def action_void(self) -> None:
        back = lifecycle.given_back_text(self.row)
        self.app.push_screen(ReasonScreen(f"Void {self.row.number}?", [
            f"Total {self._total()}. It keeps its number and content and no longer counts.",
            *([f"It {back}."] if back else [])], "void"),
            lambda reason: reason and self._write("void", reason))

    def action_regenerate(self) -> None:
        self.app.push_screen(ConfirmScreen(f"Regenerate {self.row.number}?", [
            f"Its period ({self.row.period_label}) is invoiced again from the events as they are now, its coupons, "
            "credits and credit notes applied again.", "The new invoice is finalized at once with the next number."],
            "regenerate (y)"), lambda ok: ok and self._write("regenerate"))

    def action_void_note(self) -> None:
        note, left = self.note_left
        self.app.push_screen(ReasonScreen(f"Void the credit left on {note.number}?", [
            f"{left} {note.currency} left of its {note.total}: invoices finalized from now on get none of it.",
            "What earlier invoices used of it stays; the note itself stays."], "void"),
            lambda reason: reason and self._write("void_note", reason))

    @work(thread=True, exclusive=True, group="invoice-action", exit_on_error=False)
    def _write(self, action: str, arg=None) -> None:
        s, row = self.session, self.row
        try:
            with s.writer() as store:
                done = self._do(store, action, arg)
        except (lifecycle.LifecycleError, lifecycle.Forbidden) as e:
            self.app.call_from_thread(self.notify, str(e), title=f"{action} refused", severity="error")
            return
        self.app.call_from_thread(self.notify, done, title=row.number or row.id)
        self.app.call_from_thread(self.reload)

    def _do(self, store, action: str, arg) -> str:
        s, row, now = self.session, self.row, self.session.now_ms()
        if action == "refresh":
            fresh = refresh_draft(store, s.contracts, s.actor, row, now_ms=now)
            return f"refreshed: revision {fresh.revision}, total {fresh.doc['total_amount']} {fresh.currency}"
        if action == "finalize":
            fresh = lifecycle.finalize(store, s.contracts, s.actor, row.id, now_ms=now)
            return f"finalized as {fresh.number}, total {fresh.doc['total_amount']} {fresh.currency}"
        if action == "credit_note":
            cn = lifecycle.credit_note(store, s.actor, row.id, amount=arg.amount, percent=arg.percent,
                                       items=list(arg.items) or None, reason=arg.reason, description=arg.description,
                                       now_ms=now)
            return f"credit note {cn.number}: {cn.total} {cn.currency}"
        if action == "void_note":
            note, left = lifecycle.void_credit_note(store, s.actor, self.note_left[0].id, arg, now_ms=now)
            return f"voided {left} {note.currency} of credit note {note.number}"
        if action == "regenerate":
            new = lifecycle.regenerate(store, s.contracts, s.actor, row.id, now_ms=now)
            return f"regenerated as {new.number}, total {new.doc['total_amount']} {new.currency}"
        lifecycle.void(store, s.actor, row.id, arg, now_ms=now)
        return f"voided {row.number}"
