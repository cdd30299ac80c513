"""The reviewer TUI: ``ReviewApp`` over a ``ReviewSession`` (gpubill/service/review.py).

The same keys on every screen (``?`` lists them all): Enter drills into the
highlighted row, Esc goes back (or closes an open filter), ``/`` filters the
table, ``:`` or ctrl+p opens the command palette (customers, invoices,
screens), ``1``-``5`` jump to the top screens, ``[`` ``]`` step the month
under review, ctrl+t switches light and dark, ``q`` quits. The footer shows
the keys that work now. Each top screen is a mode with its own stack of
screens (k9s's drill-down); every screen class is registered once, in
``SCREENS_BY_NAME``.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Callable
from functools import partial

from textual.app import App
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.screen import Screen

from gpubill.service.review import ReviewSession, invoice_index, subscribers
from gpubill.tui.screens.customer import CustomerScreen
from gpubill.tui.screens.customers import CustomersScreen
from gpubill.tui.screens.diff import DiffCustomerScreen, DiffScreen
from gpubill.tui.screens.events import EventsScreen
from gpubill.tui.screens.explain import ExplainScreen
from gpubill.tui.screens.invoice import InvoiceScreen
from gpubill.tui.screens.invoices import InvoicesScreen
from gpubill.tui.screens.overview import OverviewScreen
from gpubill.tui.screens.quarantine import QuarantineScreen
from gpubill.tui.widgets.help import HelpScreen

# Every screen, by name: top screens take no argument; the others take what they show.
SCREENS_BY_NAME: dict[str, type[Screen]] = {
    "overview": OverviewScreen,
    "customers": CustomersScreen,
    "customer": CustomerScreen,  # a subscription id
    "invoices": InvoicesScreen,
    "invoice": InvoiceScreen,  # an invoice id
    "explain": ExplainScreen,  # an invoice id, a line's index
    "events": EventsScreen,  # an EventSelection, a title
    "quarantine": QuarantineScreen,
    "diff": DiffScreen,
    "diff-customer": DiffCustomerScreen,  # a diff's CustomerDelta
}
# The top screens, in the order of their number keys, with their titles.
TOP_SCREENS = (("overview", "Overview"), ("customers", "Customers"), ("invoices", "Invoices"),
               ("quarantine", "Quarantine & alerts"), ("diff", "Diff"))
THEMES = ("textual-dark", "textual-light")
# Keys that tables and screens handle themselves, for `?`.
TABLE_KEYS = [("enter", "open the highlighted row"), ("↑ ↓ pgup pgdn", "move"), ("s / S", "sort by the next column / reverse"),
              ("click header", "sort by that column"), ("tab", "next panel")]


class ScreenCommands(Provider):
    """The top screens, and switching light and dark."""

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for n, (name, title) in enumerate(TOP_SCREENS, 1):
            score = matcher.match(f"screen {title}")
            if score > 0:
                yield Hit(score, matcher.highlight(f"screen {title}"), partial(self.app.switch_mode, name), help=f"key {n}")


class Jumps(Provider):
    """Jump targets loaded when the palette opens (in a thread); ``targets`` makes them from the session.
    A target is scored only when it holds every letter typed: the fuzzy match costs 20 µs a target, and a
    store has 10 000 customers."""

    async def startup(self) -> None:
        self.items = [(text, frozenset(text.lower()), callback, help_)
                      for text, callback, help_ in await asyncio.to_thread(self.targets)]

    @abstractmethod
    def targets(self) -> list[tuple[str, Callable, str]]:
        """(text, what choosing it does, help) for every target."""

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        letters = frozenset(query.lower()) - {" "}
        for text, has, callback, help_ in self.items:
            if letters <= has and (score := matcher.match(text)) > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_)


class CustomerCommands(Jumps):
    """Jump to a customer's subscription by name, customer id or subscription id."""

    def targets(self) -> list[tuple[str, Callable, str]]:
        return [(f"customer {s.name} · {s.subscription}", partial(self.app.open_customer, s.subscription),
                 f"{s.customer} · {s.entity} · {s.currency}") for s in subscribers(self.app.session)]


class InvoiceCommands(Jumps):
    """Jump to an invoice by number or id, customer or period."""

    def targets(self) -> list[tuple[str, Callable, str]]:
        return [(f"invoice {inv.number or inv.id} · {inv.customer} · {inv.period_label}",
                 partial(self.app.open_invoice, inv.id), f"{inv.status} · {inv.total} {inv.currency}")
                for inv in invoice_index(self.app.session)]


class ReviewApp(App):
    """See the module's docstring."""

    CSS_PATH = "app.tcss"
    TITLE = "gpubill"
    COMMANDS = App.COMMANDS | {ScreenCommands, CustomerCommands, InvoiceCommands}
    BINDINGS = [
        Binding("escape", "back", "back", id="back"),
        Binding("slash", "filter", "filter", id="filter"),
        Binding("colon", "command_palette", "palette", id="palette"),
        Binding("question_mark", "help", "keys", id="help"),
        Binding("q", "quit", "quit", id="quit"),
        Binding("left_square_bracket", "period(-1)", "month -", show=False, id="month-back"),
        Binding("right_square_bracket", "period(1)", "month +", show=False, id="month-next"),
        Binding("ctrl+t", "toggle_theme", "light/dark", show=False, id="theme"),
        *(Binding(str(n), f"switch_mode('{name}')", title, show=False, id=f"screen-{name}")
          for n, (name, title) in enumerate(TOP_SCREENS, 1)),
    ]

    def __init__(self, session: ReviewSession, diff_path: str | None = None,
                 diff_revisions: tuple[str, str | None] | None = None):
        super().__init__()
        self.session = session
        self.diff_path = diff_path  # a `gpubill diff --format json` file the Diff screen opens (--diff)
        self.diff_revisions = diff_revisions  # or (base, head or None: the work tree) it backtests (--diff-base)
        for name, _ in TOP_SCREENS:
            self.add_mode(name, SCREENS_BY_NAME[name])

    def on_mount(self) -> None:
        self.switch_mode("overview")

    def on_unmount(self) -> None:
        self.session.close()

    # -- navigation -----------------------------------------------------------
    def open_screen(self, name: str, *args) -> None:
        """Push the screen registered as ``name``."""
        self.push_screen(SCREENS_BY_NAME[name](*args))

    def open_customer(self, subscription: str) -> None:
        self.open_screen("customer", subscription)

    def open_invoice(self, invoice_id: str) -> None:
        self.open_screen("invoice", invoice_id)

    # -- actions --------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "back":
            return len(self.screen_stack) > 1 or self._filter_open()
        if action == "filter":
            return isinstance(self.screen, Screen) and _filter_table(self.screen) is not None
        return True

    def _filter_open(self) -> bool:
        table = _filter_table(self.screen)
        return table is not None and table.filter_open()

    async def action_back(self) -> None:
        table = _filter_table(self.screen)
        if table is not None and table.close_filter():
            return
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def action_filter(self) -> None:
        table = _filter_table(self.screen)
        if table is not None:
            table.open_filter()

    def action_help(self) -> None:
        here = [(b.binding.key_display or self.get_key_display(b.binding), b.binding.description or b.binding.action)
                for b in self.active_bindings.values() if b.node is not self]
        everywhere = [(self.get_key_display(b), b.description) for b in self.BINDINGS]
        self.push_screen(HelpScreen([("Everywhere", everywhere), ("Tables", TABLE_KEYS), ("This screen", here)]))

    def action_toggle_theme(self) -> None:
        self.theme = THEMES[1] if self.theme == THEMES[0] else THEMES[0]

    def action_period(self, step: int) -> None:
        period = self.session.known_period()
        if period is None:
            return
        self.session.set_period(period.step(step))
        reload = getattr(self.screen, "reload", None)
        if reload is not None:
            reload()


def _filter_table(screen):
    finder = getattr(screen, "filter_table", None)
    return finder() if finder is not None else None
