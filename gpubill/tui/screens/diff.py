"""Diff (key 5): a price change side by side, from a `gpubill diff --format json` file.

The file is the one given to `gpubill tui --diff FILE` (``app.diff_path``), or
typed in the box at the top (``o`` goes there; Enter opens the file, Esc leaves the box). The totals per currency, then the customers by
impact (largest change first: before, after, delta, %); Enter shows a
customer's changed lines with the clause each was priced by, before and after.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static

from gpubill.service.explain import DiffCustomer, DiffResult, ExplainError, load_diff
from gpubill.tui.widgets.filter_table import Column, FilterTable, Row
from gpubill.tui.widgets.frame import ReviewScreen

CUSTOMERS = (Column("customer", "customer"), Column("contract", "contract"), Column("period", "period"),
             Column("currency", "currency"), Column("before", "before", True), Column("after", "after", True),
             Column("delta", "delta", True), Column("%", "pct", True))
LINES = (Column("line", "line"), Column("before", "before", True), Column("after", "after", True),
         Column("delta", "delta", True), Column("%", "pct", True), Column("clause before", "clause_before"),
         Column("clause after", "clause_after"))


def money(d) -> str:
    return "—" if d is None else f"{d:f}"


def signed(d) -> Text:
    """A change, signed and in bold (none: plain)."""
    if d is None:
        return Text("—", justify="right")
    return Text(f"{d:+f}", style="bold" if d else "", justify="right")


def totals_text(d: DiffResult) -> str:
    parts = [f"{cur}: {money(b)} → {money(a)} ({delta:+f}{'' if pct is None else f', {pct:+f} %'})"
             for cur, (b, a, delta, pct) in sorted(d.totals.items())]
    changed = sum(1 for c in d.customers if c.delta or c.lines)
    head = f"{d.base} → {d.head} · {', '.join(d.periods)} · {changed} of {len(d.customers)} invoices changed"
    return "\n".join([head, *parts, *d.notes])


def customer_rows(d: DiffResult) -> list[Row]:
    return [Row(str(i), (c.customer, c.contract, c.period, c.currency, money(c.before), money(c.after), signed(c.delta),
                         signed(c.pct)),
                (c.customer, c.contract, c.period, c.currency, c.before, c.after, abs(c.delta), c.pct))
            for i, c in enumerate(d.customers)]


class DiffScreen(ReviewScreen):
    """See the module's docstring."""

    DEFAULT_CSS = """
    #diff-path { height: 3; }
    #diff-totals, #diff-customer-title { height: auto; max-height: 35%; overflow-y: auto; padding: 0 1; }
    """

    CRUMBS = ("Diff",)
    BINDINGS = [Binding("o", "open_file", "open a diff file", tooltip="type the path of a gpubill diff JSON file")]

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder="a gpubill diff --format json file; enter opens it", id="diff-path")
        yield Static("", id="diff-totals")
        yield FilterTable(CUSTOMERS, id="diff-customers")

    def on_mount(self) -> None:
        super().on_mount()
        self.result: DiffResult | None = None
        path = self.app.diff_path
        if path:
            self.query_one("#diff-path", Input).value = str(path)
            self.open(str(path))

    def action_open_file(self) -> None:
        self.query_one("#diff-path", Input).focus()

    def on_key(self, event) -> None:
        box = self.query_one("#diff-path", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            self.query_one("#diff-customers", FilterTable).table.focus()

    def open(self, path: str) -> None:
        self.query_one("#diff-customers").loading = True
        self._read(path)

    @on(Input.Submitted, "#diff-path")
    def _path(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.open(event.value.strip())

    @work(thread=True, exclusive=True, group="diff", exit_on_error=False)
    def _read(self, path: str) -> None:
        try:
            result = load_diff(path)
        except ExplainError as e:
            self.app.call_from_thread(self._failed, str(e))
            return
        self.app.call_from_thread(self._show, result)

    def _failed(self, message: str) -> None:
        self.query_one("#diff-customers").loading = False
        self.query_one("#diff-totals", Static).update(message)
        self.notify(message, title="could not open the diff", severity="error")

    def _show(self, result: DiffResult) -> None:
        self.result = result
        table = self.query_one("#diff-customers", FilterTable)
        table.loading = False
        table.set_rows(customer_rows(result))
        self.query_one("#diff-totals", Static).update(totals_text(result))
        table.table.focus()

    @on(FilterTable.Chosen, "#diff-customers")
    def _open(self, event: FilterTable.Chosen) -> None:
        self.app.open_screen("diff-customer", self.result.customers[int(event.key)])


class DiffCustomerScreen(ReviewScreen):
    """One customer's changed lines in a diff."""

    def __init__(self, customer: DiffCustomer):
        super().__init__()
        self.customer = customer

    def crumbs(self) -> tuple[str, ...]:
        return ("Diff", self.customer.customer)

    def compose_body(self) -> ComposeResult:
        c = self.customer
        yield Static(Text(f"{c.customer} · contract {c.contract} · {c.period} · {c.currency}: {money(c.before)} → "
                          f"{money(c.after)} ({c.delta:+f})"), id="diff-customer-title")
        yield FilterTable(LINES, id="diff-lines")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#diff-lines", FilterTable).set_rows([
            Row(str(i), (ln.name, money(ln.before), money(ln.after), signed(ln.delta), signed(ln.pct),
                         ln.clause_before or "—", ln.clause_after or "—"),
                (ln.name, ln.before, ln.after, abs(ln.delta), ln.pct, ln.clause_before, ln.clause_after))
            for i, ln in enumerate(self.customer.lines)])
