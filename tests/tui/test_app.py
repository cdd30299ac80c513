"""The shell of the reviewer TUI: it opens on the overview, the same keys work everywhere."""

from __future__ import annotations

import pytest

from gpubill.tui.screens.overview import OverviewScreen
from gpubill.tui.widgets.filter_table import FilterTable

from .conftest import SIZE, settle

pytestmark = pytest.mark.anyio


async def test_it_opens_on_the_overview_of_the_month_with_pending_drafts(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)
        table = app.screen.query_one("#entities", FilterTable)
        assert [r.key for r in table.shown] == ["gpucloud_eu/EUR", "gpucloud_us/USD"]
        assert app.session.period().label == "2026-11"
