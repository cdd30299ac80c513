"""Explain a line: why one invoice line costs what it costs.

The units and the price, the tiers the engine walked, the rounding step (the
precise amount, the plan's rule, the amount), the line rated again from the
events as they stand now (a difference is said), the policy credits on the same
line, and the contract source with the clause that priced it highlighted.
Enter (or ``e``) opens the events behind the line (screens/events.py).
"""

from __future__ import annotations

from decimal import Decimal

from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from gpubill.service import lifecycle
from gpubill.service.explain import LineExplanation, explain_line, rounding_rule
from gpubill.tui.widgets.frame import ReviewScreen

CONTEXT_LINES = 12  # source lines shown on each side of the clause
LEXER = "terraform"  # HCL's lexer: blocks, strings, numbers and # comments, as .bill has them


def summary(e: LineExplanation) -> Text:
    f = e.fee
    out = Text()
    out.append(f"{f['item']['name']}", style="bold")
    out.append(f"  ({f['item']['type']}, {f['item']['kind']})\n")
    out.append(f"{f['reason']}\n")
    out.append(f"units {f['units']} × unit price {f['precise_unit_amount'] or '—'}\n")
    rule = f" by {rounding_rule(e.rounding)}" if e.rounding else ""
    out.append(f"precise amount {f['precise_amount']} → rounded{rule} → ")
    out.append(f"{f['amount']} {e.invoice.currency}\n", style="bold")
    if e.rated_amount is not None:
        same = e.rated_amount == Decimal(f["amount"])
        out.append(f"rated again from the events now: {e.rated_amount} "
                   + ("(the same)" if same else "(differs: events arrived or changed since)") + "\n",
                   style="" if same else "bold")
    out.append(f"events counted: {f['events_count']}")
    return out


def tiers_table(e: LineExplanation) -> Table | None:
    if not e.tiers:
        return None
    t = Table("tier", "units", "per unit", "flat", "amount", title="tiers walked", title_justify="left",
              expand=False)
    for tier in e.tiers:
        t.add_row(str(tier.number), f"{tier.units:f}", f"{tier.per_unit:f}", f"{tier.flat:f}", f"{tier.amount:f}")
    return t


def credits_text(e: LineExplanation) -> Text | None:
    if not e.credits:
        return None
    out = Text("policy credits on this line\n", style="bold")
    for c in e.credits:
        out.append(f"  {c['item']['name']}: {c['amount']}  ({c['reason']})  {c['clause'] or ''}\n")
    return out


def source(e: LineExplanation, dark: bool):
    c = e.clause
    if c is None:
        return Text("no clause priced this line")
    title = Text(f"priced by {c.path}:{c.line}:{c.col}", style="bold")
    if c.text is None:
        return Group(title, Text(f"{c.path} is not among the contracts this session loaded"))
    lo, hi = max(1, c.line - CONTEXT_LINES), c.line + CONTEXT_LINES
    return Group(title, Syntax(c.text, LEXER, line_numbers=True, highlight_lines={c.line}, line_range=(lo, hi),
                               theme="ansi_dark" if dark else "ansi_light"))


class ExplainScreen(ReviewScreen):
    """See the module's docstring."""

    DEFAULT_CSS = """
    #explain { height: 1fr; padding: 0 1; }
    #explain > Static { height: auto; margin: 0 0 1 0; }
    """

    BINDINGS = [Binding("e,enter", "events", "events", tooltip="the events behind this line")]

    def __init__(self, invoice_id: str, index: int):
        super().__init__()
        self.invoice_id, self.index = invoice_id, index
        self.explanation: LineExplanation | None = None

    def crumbs(self) -> tuple[str, ...]:
        e = self.explanation
        if e is None:
            return ("Invoices", self.invoice_id, f"line {self.index + 1}")
        return ("Invoices", e.invoice.number or "draft", e.name)

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="explain", classes="loads"):
            yield Static("", id="explain-summary")
            yield Static("", id="explain-tiers")
            yield Static("", id="explain-credits")
            yield Static("", id="explain-source")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#explain").loading = True
        self._read()

    @work(thread=True, exclusive=True, group="explain", exit_on_error=False)
    def _read(self) -> None:
        s = self.session
        store = s.reader()
        row = lifecycle.get_invoice(store, s.actor, self.invoice_id)
        loaded = s.loaded()
        e = explain_line(store, s.contracts, s.actor, row, self.index, loaded=loaded)
        self.app.call_from_thread(self._show, e)

    def _show(self, e: LineExplanation) -> None:
        self.explanation = e
        self.query_one("#explain").loading = False
        self.query_one("#explain-summary", Static).update(summary(e))
        for wid, part in (("#explain-tiers", tiers_table(e)), ("#explain-credits", credits_text(e))):
            w = self.query_one(wid, Static)
            w.display = part is not None
            w.update(part or "")
        self.query_one("#explain-source", Static).update(source(e, self.app.current_theme.dark))
        self.query_one("Breadcrumb").crumbs = self.crumbs()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "events":
            return self.explanation is not None and self.explanation.events is not None
        return True

    def action_events(self) -> None:
        e = self.explanation
        self.app.open_screen("events", e.events, f"{e.invoice.number or 'draft'} · {e.name}")
