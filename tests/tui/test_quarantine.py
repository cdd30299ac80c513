"""Quarantine & alerts (key 4): rejected events with their reasons, discarded or resubmitted after a confirmation
(audited; a viewer may not), late events and the invoices they change, alerts with their thresholds."""

from __future__ import annotations

import pytest
from textual.notifications import Notify

from gpubill.service.access import audit_entries
from gpubill.service.events import Store
from gpubill.tui.screens.confirm import ConfirmScreen
from gpubill.tui.screens.quarantine import QuarantineScreen
from gpubill.tui.widgets.filter_table import FilterTable

from .conftest import SIZE, settle
from .test_actions import with_users  # noqa: F401 (a fixture)

pytestmark = pytest.mark.anyio


def quarantine(path) -> dict:
    with Store(path, readonly=True, create=False) as s:
        return {r.id: r.status for r in s.list_rejected(status=None, limit=1000)}


async def open_quarantine(app, pilot) -> QuarantineScreen:
    await settle(pilot)
    await pilot.press("4")
    await settle(pilot)
    assert isinstance(app.screen, QuarantineScreen)
    return app.screen


async def test_it_lists_rejected_events_late_events_and_alerts(make_app, demo_store):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_quarantine(app, pilot)
        rejected = screen.query_one("#rejected", FilterTable)
        assert {int(r.key) for r in rejected.rows} == set(quarantine(demo_store))
        assert any("timestamp: date-time without a UTC offset" in r.cells[3] for r in rejected.rows)
        late = {r.cells[0]: r.cells for r in screen.query_one("#late", FilterTable).rows}
        assert late["NWG-003-001"][2:] == ("next draft (period from 2026-12-01)", "+4.92")
        alerts = [r.cells for r in screen.query_one("#alerts", FilterTable).rows]
        assert ("lumen-bio", "budget", "80%", "79350.38", "64000", "EUR") in [a[:6] for a in alerts]


async def test_resubmit_and_discard_each_after_a_confirmation_in_the_store_and_the_audit_log(make_app, store_copy):
    before = quarantine(store_copy)
    app = make_app(store_copy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_quarantine(app, pilot)
        rid = int(screen.query_one("#rejected", FilterTable).cursor_key())
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen) and "reasons:" in app.screen.lines[0]
        await pilot.press("y")  # still invalid as it was: it stays waiting
        await settle(pilot)
        assert quarantine(store_copy) == before
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("n")  # cancelled: nothing changes
        await settle(pilot)
        assert quarantine(store_copy) == before
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert str(rid) not in {r.key for r in screen.query_one("#rejected", FilterTable).rows}
    assert quarantine(store_copy) == {**before, rid: "discarded"}
    with Store(store_copy, readonly=True, create=False) as s:
        last = audit_entries(s, limit=1 << 20)[-1]
    assert (last.action, last.object_id, last.actor) == ("quarantine.discarded", str(rid), "tui:local")


async def test_a_viewer_may_not_resubmit_or_discard(make_app, with_users):  # noqa: F811 (the fixture)
    before = quarantine(with_users)
    app = make_app(with_users, as_user="vic")
    messages: list = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        screen = await open_quarantine(app, pilot)
        assert screen.check_action("discard", ()) is None and screen.check_action("resubmit", ()) is None
        assert "may not ingest events: that needs the admin role" in str(screen.query_one("#rejected-title").render())
        await pilot.press("d")
        await settle(pilot)
        assert app.screen is screen
        assert [m.notification.message for m in messages if isinstance(m, Notify)][-1] == \
            "tui:vic (viewer) may not ingest events: that needs the admin role"
    assert quarantine(with_users) == before
