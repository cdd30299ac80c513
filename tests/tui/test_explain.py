"""Explain a line: price, tiers, rounding, credits and the clause's source highlighted; its events page by page."""

from __future__ import annotations

import pytest
from rich.syntax import Syntax
from textual.geometry import Region
from textual.widgets import DataTable

from gpubill.service import lifecycle
from gpubill.service.events import Store
from gpubill.service.explain import PAGE
from gpubill.tui.screens.events import EventScreen, EventsScreen
from gpubill.tui.screens.explain import ExplainScreen, source

from .conftest import SIZE, settle

pytestmark = pytest.mark.anyio


def invoice(path, number: str):
    with Store(path, readonly=True, create=False) as s:
        return lifecycle.get_invoice(s, lifecycle.SYSTEM, number)


def text_of(screen, selector: str) -> str:
    """What a widget shows, as plain text (its lines as rendered)."""
    w = screen.query_one(selector)
    return "\n".join(strip.text for strip in w.render_lines(Region(0, 0, w.size.width, w.size.height)))


async def test_a_tiered_line_shows_its_tiers_rounding_credits_and_the_clause_highlighted(make_app, demo_store):
    row = invoice(demo_store, "NWG-002-002")
    i = next(i for i, f in enumerate(row.doc["fees"]) if f["item"]["name"] == "cluster_management")
    fee = row.doc["fees"][i]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_screen("explain", row.id, i)
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ExplainScreen)
        summary = text_of(screen, "#explain-summary")
        assert f"precise amount {fee['precise_amount']} → rounded by half_up to 0.01 → {fee['amount']}" in \
            summary.replace("\n", "")
        assert "(the same)" in summary
        assert screen.query_one("#explain-tiers").display and screen.query_one("#explain-credits").display
        assert "failed_infrastructure" in text_of(screen, "#explain-credits")
        assert f"priced by {fee['clause']}" in text_of(screen, "#explain-source")
        syntax = next(p for p in source(screen.explanation, True).renderables if isinstance(p, Syntax))
        line = int(fee["clause"].split(":")[-2])
        assert syntax.highlight_lines == {line} and "cluster_management" in syntax.code.splitlines()[line - 1]


async def test_the_events_of_a_line_come_a_page_at_a_time(make_app, demo_store):
    row = invoice(demo_store, "NWG-004-001")
    i = next(i for i, f in enumerate(row.doc["fees"]) if f["item"]["name"] == "spot_gpu_hours")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_screen("explain", row.id, i)
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, EventsScreen)
        table = screen.query_one("#events", DataTable)
        first_page = [table.get_row_at(k)[1] for k in range(table.row_count)]
        assert table.row_count == PAGE and screen.check_action("page", (-1,)) is False
        await pilot.press("n")
        await settle(pilot)
        second_page = [table.get_row_at(k)[1] for k in range(table.row_count)]
        assert table.row_count == PAGE and not set(first_page) & set(second_page)
        assert text_of(screen, "#events-caption").strip().startswith(f"page 2 · events {PAGE + 1}–{2 * PAGE}")
        seen = len(first_page) + len(second_page)
        while screen.check_action("page", (1,)):
            await pilot.press("n")
            await settle(pilot)
            seen += table.row_count
        assert seen == row.doc["fees"][i]["events_count"] + 4  # 4 arrived after it was finalized
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, EventScreen) and app.screen.row.transaction_id == table.get_row_at(1)[1]
        assert app.screen.row.properties["gpu_type"] in text_of(app.screen, "#event-text")
        await pilot.press("escape")
        assert app.screen is screen
        last = screen.page_no
        await pilot.press("p")
        await settle(pilot)
        assert screen.page_no == last - 1 and table.row_count == PAGE  # every page before the last is full


async def test_a_line_without_events_has_no_events_key(make_app, demo_store):
    row = invoice(demo_store, "NWG-002-002")
    i = next(i for i, f in enumerate(row.doc["fees"]) if f["item"]["type"] == "subscription")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_screen("explain", row.id, i)
        await settle(pilot)
        assert app.screen.check_action("events", ()) is False
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ExplainScreen)


def test_a_line_explained_at_80x24(make_app, snap_compare):
    async def explain(pilot):
        await settle(pilot)
        pilot.app.open_screen("explain", "NWG-002-002", 5)  # cluster_management: two tiers, a policy credit
        await settle(pilot)

    assert snap_compare(make_app(as_user="ana"), terminal_size=(80, 24), run_before=explain)


async def test_an_event_shows_its_transaction_id_and_properties_as_they_are_not_as_markup(make_app):
    from gpubill.service.explain import EventRow

    row = EventRow(7, 1_790_000_000_000, "[b]txn[/b] [link=x]", {"note": "[red]hot[/red]", "tags": ["a", "b"]})
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.push_screen(EventScreen(row))
        await settle(pilot)
        shown = text_of(app.screen, "#event-text")
    assert "[b]txn[/b] [link=x]" in shown and '"[red]hot[/red]"' in shown and '"a",' in shown
