"""The overview: the month under review per entity and currency, and it refreshes itself."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gpubill.service.events import Store
from gpubill.tui.screens.overview import OverviewScreen
from gpubill.tui.widgets.filter_table import FilterTable

from .conftest import SIZE, settle

pytestmark = pytest.mark.anyio


def entity_row(app, key):
    return next(r for r in app.screen.data.rows if f"{r.entity}/{r.currency}" == key)


async def test_each_entity_and_currency_shows_what_was_billed_drafted_finalized_and_fired(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        eu, us = entity_row(app, "gpucloud_eu/EUR"), entity_row(app, "gpucloud_us/USD")
        # The demo's November: Lumen's draft (69288.48) and its progressive invoice (25138.40).
        assert (eu.drafts, eu.finalized, eu.billed, eu.alerts) == (1, 1, Decimal("94426.88"), 2)
        assert us.drafts == 2 and us.finalized == 6 and us.late > 0  # late events after finalization
        assert len(eu.daily) == 30 and sum(eu.daily) > 0
        assert app.screen.data.rejected == 6
        table = app.screen.query_one("#entities", FilterTable)
        assert table.table.get_row_at(0)[2].plain == "94,426.88"
        assert "quarantine: 6" in str(app.screen.query_one("#quarantine-line").render()).replace("waiting in ", "")


async def test_the_overview_sees_events_stored_after_it_opened(make_app, store_copy, monkeypatch):
    monkeypatch.setattr(OverviewScreen, "refresh_s", 0.2)
    app = make_app(store_copy)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = entity_row(app, "gpucloud_eu/EUR").daily
        with Store(store_copy) as store:
            store.ingest([{"transaction_id": f"tui-new-{i}", "external_subscription_id": "sub_lumen_fra",
                           "code": "gpu_job", "timestamp": "2026-11-10T12:00:00Z",
                           "properties": {"gpu_type": "H200", "gpu_count": "1", "duration_seconds": "60"}}
                          for i in range(7)])
        for _ in range(50):  # the refresh timer reads again on its own; no key is pressed
            await pilot.pause(0.1)
            if entity_row(app, "gpucloud_eu/EUR").daily != before:
                break
        after = entity_row(app, "gpucloud_eu/EUR").daily
        assert after[9] == before[9] + 7 and sum(after) == sum(before) + 7


async def test_enter_on_an_entity_opens_its_customers(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # gpucloud_eu
        await settle(pilot)
        assert app.current_mode == "customers"
        table = app.screen.query_one("#customers", FilterTable)
        assert [r.key for r in table.shown] == ["sub_lumen_fra"] and table.needle == "gpucloud_eu"
        await pilot.press("escape")  # the filter goes, every customer is back
        assert len(table.shown) == 8
