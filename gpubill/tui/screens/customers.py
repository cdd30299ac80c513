"""Customers (key 2): every subscription of the contracts in the month under review.

GPU-hours by GPU type, events, cost so far (the month's stored invoices),
commitment and budget consumption, credit left on credit notes, alerts. `/`
filters on names and ids, `s` sorts (or click a header); Enter opens the
customer. Built for 10 000 subscriptions: one read for all of them, and the
table holds at most 100 rows at a time ("100 of 10000").
"""

from __future__ import annotations

from decimal import Decimal

from textual import on, work
from textual.app import ComposeResult

from gpubill.service.review import CustomerRow, customers
from gpubill.tui.widgets.filter_table import Column, FilterTable, Row
from gpubill.tui.widgets.frame import ReviewScreen

# What a reviewer looks at first comes first: at 80 columns the money fits, the rest scrolls in.
COLUMNS = (Column("customer", "customer"), Column("cost so far", "cost", True), Column("cur", "currency"),
           Column("budget", "budget", True), Column("commit", "commitment", True), Column("alerts", "alerts", True),
           Column("credit notes", "credit_notes", True), Column("GPU-hours by type", "gpu_hours", True),
           Column("events", "events", True), Column("entity", "entity"), Column("subscription", "subscription"))
GPU_TYPES_SHOWN = 2  # the largest; the cell says how many more


def money(d: Decimal | None) -> str:
    return "—" if d is None else f"{d:,.2f}"


def pct(d: Decimal | None) -> str:
    return "—" if d is None else f"{d:.0f}%"


def hours_text(r: CustomerRow) -> str:
    if not r.gpu_hours:
        return "—"
    shown = " · ".join(f"{t} {h:,.0f}" for t, h in r.gpu_hours[:GPU_TYPES_SHOWN])
    more = len(r.gpu_hours) - GPU_TYPES_SHOWN
    return shown + (f" +{more}" if more > 0 else "")


def row_of(r: CustomerRow) -> Row:
    w = r.who
    cells = (w.name, money(r.cost), w.currency, pct(r.budget_pct), pct(r.commitment_pct),
             str(r.alerts) if r.alerts else "—", money(r.credit_notes_left) if r.credit_notes_left else "—",
             hours_text(r), f"{r.events:,}", w.entity, w.subscription)
    values = (w.name.lower(), r.cost, w.currency, r.budget_pct, r.commitment_pct, r.alerts, r.credit_notes_left,
              r.gpu_hours_total, r.events, w.entity, w.subscription)
    return Row(w.subscription, cells, values, f"{w.name} {w.customer} {w.subscription} {w.contract} {w.entity}".lower())


class CustomersScreen(ReviewScreen):
    """See the module's docstring."""

    CRUMBS = ("Customers",)

    def compose_body(self) -> ComposeResult:
        yield FilterTable(COLUMNS, id="customers", classes="loads")

    def on_mount(self) -> None:
        super().on_mount()
        self.data: list[CustomerRow] | None = None
        self.query_one("#customers").loading = True

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.reload()

    def reload(self) -> None:
        self._read()

    @work(thread=True, exclusive=True, group="customers", exit_on_error=False)
    def _read(self) -> None:
        data = customers(self.session)
        if data is self.data:  # the store has not changed: the table already shows it
            self.app.call_from_thread(self._shown, self.session.now_ms())
            return
        rows = [row_of(r) for r in data]
        self.app.call_from_thread(self._show, data, rows, self.session.now_ms())

    def _show(self, data: list[CustomerRow], rows: list[Row], now_ms: int) -> None:
        self.data = data
        self.query_one("#customers", FilterTable).set_rows(rows)
        self._shown(now_ms)

    def _shown(self, now_ms: int) -> None:
        self.query_one("#customers", FilterTable).loading = False
        self.show_status(now_ms)

    @on(FilterTable.Chosen, "#customers")
    def _open(self, event: FilterTable.Chosen) -> None:
        self.app.open_customer(event.key)
