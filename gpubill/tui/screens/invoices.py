"""Invoices (key 3): every stored invoice of every customer, newest period first; Enter opens one."""

from __future__ import annotations

from decimal import Decimal

from textual import on, work
from textual.app import ComposeResult

from gpubill.service.review import InvoiceEntry, invoice_index
from gpubill.tui.widgets.filter_table import Column, FilterTable, Row
from gpubill.tui.widgets.frame import ReviewScreen

COLUMNS = (Column("number", "number"), Column("status", "status"), Column("customer", "customer"),
           Column("period", "period"), Column("total", "total", True), Column("currency", "currency"))


def rows_of(entries: list[InvoiceEntry]) -> list[Row]:
    return [Row(e.id, (e.number or "draft", e.status, e.customer, e.period_label, e.total, e.currency),
                (e.number or "", e.status, e.customer, e.period_label, Decimal(e.total), e.currency),
                f"{e.number or 'draft'} {e.id} {e.status} {e.customer} {e.period_label} {e.currency}")
            for e in entries]


class InvoicesScreen(ReviewScreen):
    """See the module's docstring."""

    CRUMBS = ("Invoices",)

    def compose_body(self) -> ComposeResult:
        yield FilterTable(COLUMNS, id="invoices", classes="loads")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#invoices").loading = True
        self.reload()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.reload()  # back from an invoice: its status or total may have changed

    def reload(self) -> None:
        self._read()

    @work(thread=True, exclusive=True, group="invoices", exit_on_error=False)
    def _read(self) -> None:
        entries = invoice_index(self.session)
        self.app.call_from_thread(self._show, entries)

    def _show(self, entries: list[InvoiceEntry]) -> None:
        table = self.query_one("#invoices", FilterTable)
        table.loading = False
        table.set_rows(rows_of(entries))

    @on(FilterTable.Chosen, "#invoices")
    def _open(self, event: FilterTable.Chosen) -> None:
        self.app.open_invoice(event.key)
