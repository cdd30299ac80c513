"""Overview (key 1): the month under review per entity and currency, refreshed every few seconds.

Billed so far, drafts pending and their earliest grace deadline, invoices
finalized, alerts fired, late events, and the quarantine's open count; the
highlighted row's events per day as a chart. A worker reads it all again every
``REFRESH_S`` seconds (the data is never more than that old plus one read);
Enter opens the customers screen, filtered to the entity's.
"""

from __future__ import annotations

import datetime as dt

from textual import on, work
from textual.app import ComposeResult
from textual.widgets import DataTable, Sparkline, Static

from gpubill.service.review import Overview, overview
from gpubill.tui.widgets.filter_table import Column, FilterTable, Row
from gpubill.tui.widgets.frame import ReviewScreen

REFRESH_S = 3.0
COLUMNS = (Column("entity", "entity"), Column("currency", "currency"), Column("billed so far", "billed", True),
           Column("drafts", "drafts", True), Column("next grace deadline", "deadline"),
           Column("finalized", "finalized", True), Column("alerts", "alerts", True), Column("late events", "late", True))


def when(ms: int | None) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M") if ms is not None else "—"


def rows_of(data: Overview) -> list[Row]:
    return [Row(f"{r.entity}/{r.currency}",
                (r.entity, r.currency, f"{r.billed:,.2f}", str(r.drafts), when(r.next_deadline_ms), str(r.finalized),
                 str(r.alerts), str(r.late)),
                (r.entity, r.currency, r.billed, r.drafts, r.next_deadline_ms, r.finalized, r.alerts, r.late))
            for r in data.rows]


class OverviewScreen(ReviewScreen):
    """See the module's docstring."""

    CRUMBS = ("Overview",)
    refresh_s = REFRESH_S

    def compose_body(self) -> ComposeResult:
        yield FilterTable(COLUMNS, id="entities", classes="loads")
        yield Static("", id="quarantine-line")
        yield Static("", id="chart-title")
        yield Sparkline([], id="daily")

    def on_mount(self) -> None:
        super().on_mount()
        self.data: Overview | None = None
        self.query_one("#entities").loading = True
        self.reload()
        self.timer = self.set_interval(self.refresh_s, self.reload)

    def on_screen_suspend(self) -> None:
        self.timer.pause()  # another screen is on top: nothing to keep fresh

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.data is not None:  # back on top: read now, then every few seconds again
            self.reload()
            self.timer.resume()

    def reload(self) -> None:
        self._read()

    @work(thread=True, exclusive=True, group="overview", exit_on_error=False)
    def _read(self) -> None:
        data = overview(self.session)
        self.app.call_from_thread(self._show, data)

    def _show(self, data: Overview) -> None:
        same = self.data is not None and data.rows is self.data.rows  # the store has not changed
        self.data = data
        table = self.query_one("#entities", FilterTable)
        table.loading = False
        if not same:
            table.set_rows(rows_of(data))
            self._chart()
        self.query_one("#quarantine-line", Static).update(
            f"rejected events waiting in quarantine: {data.rejected}" if data.rejected else "quarantine: empty")
        self.show_status(data.as_of_ms)

    @on(FilterTable.Chosen, "#entities")
    async def _open(self, event: FilterTable.Chosen) -> None:
        """The customers, filtered to the entity's."""
        await self.app.switch_mode("customers")
        self.app.screen.query_one("#customers", FilterTable).open_filter(event.key.split("/")[0])

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._chart()

    def _chart(self) -> None:
        table = self.query_one("#entities", FilterTable)
        key = table.cursor_key()
        row = next((r for r in self.data.rows if f"{r.entity}/{r.currency}" == key), None) if self.data else None
        if row is None:
            return
        self.query_one("#chart-title", Static).update(
            f"events per day, {row.entity} {row.currency}, {self.data.period.label}: {sum(row.daily):,} in all, "
            f"busiest day {max(row.daily, default=0):,}")
        self.query_one("#daily", Sparkline).data = list(row.daily)
