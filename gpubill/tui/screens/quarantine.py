"""Quarantine & alerts (key 4): rejected events and why, late events and what they will do, alerts fired.

Rejected events (the open ones, oldest first, ``PAGE`` at most: the title says
when there are more) can be resubmitted as they were (``r``) or discarded
(``d``), each after a confirmation showing the payload and its reasons; both
need the ``ingest`` permission (dimmed in the footer otherwise, the title says
why) and are written to the audit log. Late events: each finalized invoice that
events arrived for after it was finalized, and what the contract's policy does
with them (the difference billed on the next draft, or a credit note and a
replacing invoice). Alerts: every threshold that fired, with its amount and limit.
Tab moves between the three tables.
"""

from __future__ import annotations

import datetime as dt

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from gpubill.service.alerts import list_alerts
from gpubill.service.explain import PAGE, ExplainError, discard, late_events, refused, rejected_page, resubmit
from gpubill.tui.screens.confirm import ConfirmScreen, SaysWhyNot
from gpubill.tui.widgets.filter_table import Column, FilterTable, Row
from gpubill.tui.widgets.frame import ReviewScreen

REJECTED = (Column("id", "id", True), Column("received (UTC)", "received"), Column("source", "source"),
            Column("why it was rejected", "reasons"))
LATE = (Column("invoice", "invoice"), Column("contract", "contract"), Column("goes to", "target"),
        Column("amount", "amount", True))
ALERTS = (Column("customer", "customer"), Column("kind", "kind"), Column("threshold", "threshold"),
          Column("amount", "amount", True), Column("limit", "limit", True), Column("currency", "currency"),
          Column("period", "period"), Column("fired (UTC)", "fired"))
PAYLOAD_CHARS = 600  # of a rejected event's payload shown in the confirmation


def when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


class QuarantineScreen(SaysWhyNot, ReviewScreen):
    """See the module's docstring."""

    DEFAULT_CSS = """
    QuarantineScreen .section-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    QuarantineScreen .filter-table { height: 1fr; }
    """

    CRUMBS = ("Quarantine & alerts",)
    BINDINGS = [Binding("r", "resubmit", "resubmit", tooltip="ingest the highlighted rejected event again"),
                Binding("d", "discard", "discard", tooltip="drop the highlighted rejected event for good")]

    def compose_body(self) -> ComposeResult:
        yield Static("rejected events", id="rejected-title", classes="section-title")
        yield FilterTable(REJECTED, id="rejected", classes="loads")
        yield Static("late events", id="late-title", classes="section-title")
        yield FilterTable(LATE, id="late", classes="loads")
        yield Static("alerts", id="alerts-title", classes="section-title")
        yield FilterTable(ALERTS, id="alerts", classes="loads")

    def on_mount(self) -> None:
        super().on_mount()
        self.rejected: dict = {}
        for w in self.query(".loads"):
            w.loading = True
        self.reload()

    def reload(self) -> None:
        self._read_rejected()
        self._read_late()

    @work(thread=True, exclusive=True, group="quarantine", exit_on_error=False)
    def _read_rejected(self) -> None:
        s = self.session
        store = s.reader()
        rows = rejected_page(store, s.actor, limit=PAGE + 1)
        alerts = list_alerts(store)
        self.app.call_from_thread(self._show, rows, alerts)

    @work(thread=True, exclusive=True, group="late-events", exit_on_error=False)
    def _read_late(self) -> None:
        s = self.session
        effects = late_events(s.reader(), s.contracts, s.actor, catalog=s.catalog())
        self.app.call_from_thread(self._show_late, effects)

    def _show(self, rows: list, alerts: list) -> None:
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        self.rejected = {str(r.id): r for r in rows}
        table = self.query_one("#rejected", FilterTable)
        table.loading = False
        table.set_rows([Row(str(r.id), (str(r.id), when(r.received_ms), r.source, "; ".join(r.reasons)),
                            (r.id, r.received_ms, r.source, "; ".join(r.reasons))) for r in rows])
        count = f"{PAGE} of >{PAGE}" if more else str(len(rows))
        why = refused(self.session.actor, "ingest")
        self.query_one("#rejected-title", Static).update(
            f"rejected events waiting: {count}" + (f" · r/d: {why}" if why and rows else ""))
        alerts_table = self.query_one("#alerts", FilterTable)
        alerts_table.loading = False
        alerts_table.set_rows([Row(str(a.id), (a.customer, a.kind, a.threshold, a.amount, a.limit_amount, a.currency,
                                               a.body["period"]["label"], when(a.fired_ms)),
                                   (a.customer, a.kind, a.threshold, None, None, a.currency, a.period_from_ms,
                                    a.fired_ms)) for a in alerts])
        self.query_one("#alerts-title", Static).update(f"alerts fired: {len(alerts)}")
        self.refresh_bindings()

    def _show_late(self, effects: list) -> None:
        table = self.query_one("#late", FilterTable)
        table.loading = False
        table.set_rows([Row(f"{e.invoice}/{e.target}", (e.invoice, e.contract, e.target,
                                                        "—" if e.amount is None else f"{e.amount:+f}"),
                            (e.invoice, e.contract, e.target, e.amount), f"{e.invoice} {e.contract} {e.text}")
                        for e in effects])
        self.query_one("#late-title", Static).update(
            f"late events: {len(effects)} finalized invoices affected" if effects else "late events: none")

    # -- resubmit, discard ----------------------------------------------------------
    def _chosen(self):
        return self.rejected.get(self.query_one("#rejected", FilterTable).cursor_key())

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("resubmit", "discard"):
            if not getattr(self, "rejected", None):
                return False
            return None if self.why_not(action) else True
        return True

    def why_not(self, action: str) -> str | None:
        return refused(self.session.actor, "ingest")

    def _ask(self, verb: str, consequence: str) -> None:
        r = self._chosen()
        if r is None:
            return
        lines = [f"reasons: {'; '.join(r.reasons)}", f"payload: {r.payload[:PAYLOAD_CHARS]}", consequence]
        self.app.push_screen(ConfirmScreen(f"{verb.capitalize()} rejected event {r.id}?", lines, f"{verb} (y)"),
                             lambda ok: ok and self._write(verb, r.id))

    def action_resubmit(self) -> None:
        self._ask("resubmit", "It is validated again as it is; if still invalid, nothing changes.")

    def action_discard(self) -> None:
        self._ask("discard", "It leaves the quarantine for good (kept in the store, marked discarded).")

    @work(thread=True, exclusive=True, group="quarantine-action", exit_on_error=False)
    def _write(self, verb: str, rid: int) -> None:
        s = self.session
        act = resubmit if verb == "resubmit" else discard
        try:
            with s.writer() as store:
                done = act(store, s.actor, rid, now_ms=s.now_ms())
        except ExplainError as e:
            self.app.call_from_thread(self.notify, str(e), title=f"{verb} refused", severity="error")
            return
        self.app.call_from_thread(self.notify, done, title="quarantine")
        self.app.call_from_thread(self._read_rejected)  # late events and alerts do not move with the quarantine
