"""The events behind an invoice line, one page at a time.

A page is ``PAGE`` events read from the store by keyset over (timestamp, id)
(gpubill/service/explain.py ``events_page``); the table holds that page only,
never all of a line's events. ``n`` reads the next page, ``p`` goes back one
(the start of each page read is kept, so going back reads it again). Enter shows
the highlighted event whole (``EventScreen``; Esc closes it).
"""

from __future__ import annotations

import datetime as dt

import orjson
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.content import Content
from textual.widgets import DataTable, Static

from gpubill.service.explain import PAGE, EventRow, EventSelection, EventsPage, events_page
from gpubill.tui.widgets.frame import ReviewScreen

COLUMNS = ("time (UTC)", "transaction id", "properties")


def when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def properties_text(props: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(props.items()))


class EventScreen(ModalScreen):
    """One event whole: its id in the store, transaction id, time and every property."""

    DEFAULT_CSS = """
    EventScreen { align: center middle; }
    EventScreen > VerticalScroll { width: 84; max-width: 100%; height: auto; max-height: 90%; padding: 0 1;
                                   background: $surface; border: round $primary; }
    """
    BINDINGS = [Binding("escape,enter", "dismiss", "close")]

    def __init__(self, row: EventRow):
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        r = self.row
        props = orjson.dumps(r.properties, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
        with VerticalScroll():
            yield Static(Content.from_markup("[b]$txn[/b]\nevent $id · $when UTC\n\n$props", txn=r.transaction_id,
                                             id=str(r.id), when=when(r.timestamp_ms), props=props), id="event-text")

    def action_dismiss(self) -> None:
        self.dismiss()


class EventsScreen(ReviewScreen):
    """See the module's docstring."""

    DEFAULT_CSS = """
    #events { height: 1fr; }
    #events-caption { height: 1; padding: 0 1; color: $text-muted; }
    """

    BINDINGS = [Binding("n", "page(1)", "next page"), Binding("p", "page(-1)", "previous page")]

    def __init__(self, selection: EventSelection, title: str):
        super().__init__()
        self.selection, self.title_text = selection, title
        self.starts: list = [None]  # the keyset each page read so far starts after
        self.page_no = 0
        self.page: EventsPage | None = None

    def crumbs(self) -> tuple[str, ...]:
        return ("Invoices", self.title_text, "events")

    def compose_body(self) -> ComposeResult:
        yield DataTable(cursor_type="row", zebra_stripes=True, id="events", classes="loads")
        yield Static("", id="events-caption")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#events", DataTable).add_columns(*COLUMNS)
        self._load()

    def _load(self) -> None:
        self.query_one("#events").loading = True
        self._read(self.starts[self.page_no])

    @work(thread=True, exclusive=True, group="events", exit_on_error=False)
    def _read(self, after) -> None:
        page = events_page(self.session.reader(), self.selection, after)
        self.app.call_from_thread(self._show, page)

    def _show(self, page: EventsPage) -> None:
        self.page = page
        table = self.query_one("#events", DataTable)
        table.loading = False
        table.clear()
        table.add_rows([(when(r.timestamp_ms), r.transaction_id, properties_text(r.properties)) for r in page.rows])
        first = self.page_no * PAGE
        shown = f"events {first + 1}–{first + len(page.rows)}" if page.rows else "no events"
        more = "more: n" if page.after is not None else "the last page"
        self.query_one("#events-caption", Static).update(f"page {self.page_no + 1} · {shown} · {more}")
        self.refresh_bindings()

    @on(DataTable.RowSelected, "#events")
    def _open(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(EventScreen(self.page.rows[event.cursor_row]))

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "page":
            if self.page is None:
                return None
            return (self.page.after is not None) if parameters[0] > 0 else self.page_no > 0
        return True

    def action_page(self, step: int) -> None:
        if step > 0:
            del self.starts[self.page_no + 1:]
            self.starts.append(self.page.after)
        self.page_no += step
        self._load()
