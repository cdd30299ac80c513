"""A customer's subscription in the month under review (Enter on the customers screen).

Four tabs: Usage (the lines of the month's current invoice, and the
highlighted line's events per day), Invoices (every stored invoice and credit
note; Enter opens one), Credits (the contract's prepaid credits, their expiry
and what the stored invoices used; credit left on credit notes) and Terms (the
terms in effect, and the contract as written).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from textual import on, work
from textual.app import ComposeResult
from textual.widgets import DataTable, Sparkline, Static, TabbedContent, TabPane

from gpubill.tui.markup import literal
from gpubill.service.review import CustomerDetail, customer_detail
from gpubill.tui.widgets.filter_table import Column, FilterTable, Row
from gpubill.tui.widgets.frame import ReviewScreen

LINE_COLUMNS = (Column("line", "line"), Column("units", "units", True), Column("amount", "amount", True),
                Column("priced by", "clause"))
INVOICE_COLUMNS = (Column("number", "number"), Column("type", "type"), Column("period", "period"),
                   Column("status", "status"), Column("total", "total", True), Column("grace ends", "due"))
NOTE_KEY = "note:"  # row keys of credit notes in the invoices table (the others are invoice ids)


def day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def units_text(units: str) -> str:
    try:
        d = Decimal(units)
    except ArithmeticError:
        return units
    return f"{d:,.4f}".rstrip("0").rstrip(".") if d != d.to_integral_value() else f"{d:,.0f}"


def line_rows(d: CustomerDetail) -> list[Row]:
    return [Row(str(i), (ln.name, units_text(ln.units), f"{ln.amount:,.2f}", ln.clause or "—"),
                (ln.name, Decimal(ln.units) if ln.units else None, ln.amount, ln.clause))
            for i, ln in enumerate(d.lines)]


def invoice_rows(d: CustomerDetail) -> list[Row]:
    rows = [Row(i.id, (i.number or "(draft)", i.invoice_type, i.period_label,
                       i.status + (" (replacement)" if i.replaces else ""), f"{i.total:,.2f} {i.currency}",
                       day(i.due_ms) if i.status == "draft" else "—"),
                (i.number or "", i.invoice_type, i.period_label, i.status, i.total, i.due_ms))
            for i in d.invoices]
    rows += [Row(NOTE_KEY + n.id, (n.number, f"credit note ({n.kind})", day(n.created_ms)[:10],
                                   f"left {n.left:,.2f}" if n.left else "used", f"-{n.total:,.2f} {d.who.currency}", "—"),
                 (n.number, "credit note", "", "", -n.total, None))
             for n in d.notes]
    return rows


def credits_text(d: CustomerDetail, today: str) -> str:
    out = []
    for c in d.credits:
        state = "expired" if c.expires is not None and c.expires < today else (f"expires {c.expires}" if c.expires else "no expiry")
        scope = f", for {c.scope}" if c.scope else ""
        out.append(f"{c.kind} credit {c.amount:,.2f} {d.who.currency}{scope}: {state}; "
                   f"used on the stored invoices: {c.used:,.2f}")
    for n in d.notes:
        if n.left:
            out.append(f"credit note {n.number}: {n.left:,.2f} {d.who.currency} left for later invoices")
    return "\n".join(out) or "No prepaid credits and no credit left on credit notes."


def header_text(d: CustomerDetail) -> str:
    w, cur = d.who, d.current
    now = (f"{cur.status} {cur.number or ''} {cur.total:,.2f} {cur.currency}".replace("  ", " ")
           + (f", grace ends {day(cur.due_ms)}" if cur.status == "draft" else "")) if cur else \
        "no invoice stored for this month yet (gpubill invoices refresh)"
    return (f"[b]{literal(w.name)}[/b] · {literal(w.customer)} · {literal(w.subscription)}\n"
            f"{w.entity} · {w.currency} · plan {d.plan} · {d.period.label}: {now}")


class CustomerScreen(ReviewScreen):
    """See the module's docstring."""

    def __init__(self, subscription: str):
        super().__init__()
        self.subscription = subscription
        self.detail: CustomerDetail | None = None

    def crumbs(self) -> tuple[str, ...]:
        return ("Customers", self.subscription)

    def compose_body(self) -> ComposeResult:
        yield Static("", id="customer-header", classes="loads")
        with TabbedContent(id="customer-tabs"):
            with TabPane("Usage", id="tab-usage"):
                yield FilterTable(LINE_COLUMNS, id="lines")
                yield Static("", id="line-chart-title")
                yield Sparkline([], id="line-daily")
            with TabPane("Invoices", id="tab-invoices"):
                yield FilterTable(INVOICE_COLUMNS, id="invoices")
            with TabPane("Credits", id="tab-credits"):
                yield Static("", id="credits")
            with TabPane("Terms", id="tab-terms"):
                yield Static("", id="terms")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#customer-header").loading = True
        self.reload()

    def reload(self) -> None:
        self._read()

    @work(thread=True, exclusive=True, group="customer", exit_on_error=False)
    def _read(self) -> None:
        data = customer_detail(self.session, self.subscription)
        self.app.call_from_thread(self._show, data, self.session.now_ms())

    def _show(self, d: CustomerDetail, now_ms: int) -> None:
        self.detail = d
        self.query_one("#customer-header").loading = False
        self.query_one("#customer-header", Static).update(header_text(d))
        self.query_one("Breadcrumb").crumbs = ("Customers", d.who.name)
        self.query_one("#lines", FilterTable).set_rows(line_rows(d))
        self.query_one("#invoices", FilterTable).set_rows(invoice_rows(d))
        self.query_one("#credits", Static).update(credits_text(d, day(now_ms)[:10]))
        terms = "\n".join(d.terms) or "No commitment, reservation, credit, budget or policy: the plan's prices only."
        self.query_one("#terms", Static).update(
            literal(terms) + f"\n\n[b]{literal(d.source_at)}[/b]\n" + literal(d.source))
        self.show_status(now_ms)
        self._chart()

    @on(DataTable.RowHighlighted, "#lines DataTable")
    def _highlighted(self) -> None:
        self._chart()

    def _chart(self) -> None:
        d = self.detail
        if d is None:
            return
        key = self.query_one("#lines", FilterTable).cursor_key()
        code = d.lines[int(key)].event_code if key is not None else None
        daily = d.daily.get(code or "", d.daily[""])
        what = f"{code} events" if code else "all events"
        self.query_one("#line-chart-title", Static).update(
            f"{what} per day, {d.period.label}: {sum(daily):,} in all, busiest day {max(daily, default=0):,}")
        self.query_one("#line-daily", Sparkline).data = list(daily)

    @on(FilterTable.Chosen, "#lines")
    def _open_line(self, event: FilterTable.Chosen) -> None:
        if self.detail is not None and self.detail.current is not None:
            self.app.open_invoice(self.detail.current.id)

    @on(FilterTable.Chosen, "#invoices")
    def _open_invoice(self, event: FilterTable.Chosen) -> None:
        key = event.key
        if key.startswith(NOTE_KEY):
            note = next(n for n in self.detail.notes if n.id == key[len(NOTE_KEY):])
            key = note.invoice_id
        self.app.open_invoice(key)
