"""Diff (key 5): a price change side by side, from a `gpubill diff --format json` file or two revisions.

The file is the one given to `gpubill tui --diff FILE` (``app.diff_path``), or
typed in the box at the top (``o`` goes there; Enter opens the file, Esc leaves
the box); `gpubill tui --diff-base REV [--diff-head REV]` (``app.diff_revisions``)
backtests the contracts directory at two git revisions on the store's events of
the month under review instead, as `gpubill diff` does.  The totals per
currency, then the customers by impact (largest change first: before, after,
delta, %); Enter shows a customer's changed lines with the clause each was
priced by, before and after.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static

from gpubill.service.diff import CustomerDelta, DiffReport, backtest, percent_change
from gpubill.service.diff_render import read_report
from gpubill.service.rating import ServiceError
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


def totals_text(d: DiffReport) -> str:
    parts = [f"{cur}: {money(b)} → {money(a)} ({a - b:+f}{'' if pct is None else f', {pct:+f} %'})"
             for cur, (b, a) in d.totals().items() for pct in (percent_change(b, a),)]
    changed = sum(1 for c in d.customers if c.delta or c.lines)
    head = f"{d.base} → {d.head} · {', '.join(d.periods)} · {changed} of {len(d.customers)} invoices changed"
    return "\n".join([head, *parts, *notes(d)])


def notes(d: DiffReport) -> list[str]:
    """The catalog changes, the finalized invoices that need credit notes, what was not invoiced, the notices."""
    return ([f"{ch.kind} {ch.name} {ch.what} at {', '.join(ch.clauses) or '-'}; reaches "
             f"{', '.join(ch.customers) or 'no contract'}" for ch in d.changes]
            + [f"finalized {n} {cu}: stored {stored:f}, with the change {head:f}" for n, cu, stored, head in d.finalized]
            + [f"not invoiced: {u}" for u in d.unrated] + [f"notice: {n}" for n in d.notices])


def by_impact(d: DiffReport) -> list[CustomerDelta]:
    return sorted(d.customers, key=lambda c: (-abs(c.delta), c.customer))


def customer_rows(customers: list[CustomerDelta]) -> list[Row]:
    return [Row(str(i), (c.customer, c.contract, c.period, c.currency, money(c.before), money(c.after), signed(c.delta),
                         signed(c.pct)),
                (c.customer, c.contract, c.period, c.currency, c.before, c.after, abs(c.delta), c.pct))
            for i, c in enumerate(customers)]


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
        self.customers: list[CustomerDelta] = []
        path, revisions = self.app.diff_path, self.app.diff_revisions
        if path:
            self.query_one("#diff-path", Input).value = str(path)
            self.open(str(path))
        elif revisions:
            self.query_one("#diff-customers").loading = True
            self._backtest(*revisions)

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
            result = read_report(path)
        except ServiceError as e:
            self.app.call_from_thread(self._failed, str(e))
            return
        self.app.call_from_thread(self._show, result)

    @work(thread=True, exclusive=True, group="diff", exit_on_error=False)
    def _backtest(self, base: str, head: str | None) -> None:
        s = self.session
        try:
            result = backtest(s.reader(), s.contracts[0], base, head, [s.period().label])
        except ServiceError as e:
            self.app.call_from_thread(self._failed, str(e))
            return
        self.app.call_from_thread(self._show, result)

    def _failed(self, message: str) -> None:
        self.query_one("#diff-customers").loading = False
        self.query_one("#diff-totals", Static).update(message)
        self.notify(message, title="could not open the diff", severity="error")

    def _show(self, result: DiffReport) -> None:
        self.customers = by_impact(result)
        table = self.query_one("#diff-customers", FilterTable)
        table.loading = False
        table.set_rows(customer_rows(self.customers))
        self.query_one("#diff-totals", Static).update(totals_text(result))
        table.table.focus()

    @on(FilterTable.Chosen, "#diff-customers")
    def _open(self, event: FilterTable.Chosen) -> None:
        self.app.open_screen("diff-customer", self.customers[int(event.key)])


class DiffCustomerScreen(ReviewScreen):
    """One customer's changed lines in a diff."""

    def __init__(self, customer: CustomerDelta):
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
