"""The frame of every screen: the breadcrumb on top, the footer with the keys that work now below.

A screen subclasses ``ReviewScreen``, sets ``CRUMBS`` (or ``crumbs()``) and
``compose_body``; ``session`` is the app's ``ReviewSession``. A screen with a
``FilterTable`` gets `/` (filter) for free: the app sends it to the focused
table, or to the screen's first one.
"""

from __future__ import annotations

import datetime as dt

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from gpubill.tui.widgets.breadcrumb import Breadcrumb
from gpubill.tui.widgets.filter_table import FilterTable


class ReviewScreen(Screen):
    """See the module's docstring."""

    CRUMBS: tuple[str, ...] = ()
    AUTO_FOCUS = "DataTable"  # the table, never the hidden filter box

    def compose(self) -> ComposeResult:
        yield Breadcrumb(classes="breadcrumb")
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def crumbs(self) -> tuple[str, ...]:
        return self.CRUMBS

    def on_mount(self) -> None:
        self.query_one(Breadcrumb).crumbs = self.crumbs()
        self.show_status()

    def on_screen_resume(self) -> None:
        self.show_status()

    @property
    def session(self):
        return self.app.session

    def show_status(self, as_of_ms: int | None = None) -> None:
        """Actor, month under review and (when given) when the data was read."""
        s = self.session
        period = s.known_period()
        parts = [f"{s.actor.name} ({s.actor.role})", period.label if period is not None else ""]
        if as_of_ms is not None:
            parts.append("as of " + dt.datetime.fromtimestamp(as_of_ms / 1000, dt.timezone.utc).strftime("%H:%M:%S UTC"))
        self.query_one(Breadcrumb).status = " · ".join(p for p in parts if p)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A query that failed: one line in a toast, and the screen stops loading."""
        if event.state == WorkerState.ERROR:
            self.loading_done()
            self.notify(str(event.worker.error), title="could not read the store", severity="error")

    def loading_done(self) -> None:
        for w in self.query(".loads"):
            w.loading = False

    def filter_table(self) -> FilterTable | None:
        """The table `/` filters: the one holding focus, else the first on the screen."""
        focused = self.focused
        around = next((w for w in focused.ancestors_with_self if isinstance(w, FilterTable)), None) if focused else None
        return around or next(iter(self.query(FilterTable)), None)

