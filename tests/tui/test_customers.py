"""Customers: every subscription, filtered with `/`, sorted with `s` or a click, opened with Enter."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gpubill.service import lifecycle
from gpubill.service.access import Actor
from gpubill.service.events import Store
from gpubill.service.review import customers
from gpubill.tui.screens.customer import CustomerScreen
from gpubill.tui.widgets.filter_table import FilterTable, Row

from .conftest import NOW, SIZE, settle

pytestmark = pytest.mark.anyio


async def open_customers(pilot):
    await settle(pilot)
    await pilot.press("2")
    await settle(pilot)
    return pilot.app.screen.query_one("#customers", FilterTable)


async def test_every_subscription_with_its_usage_cost_consumption_and_alerts(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = await open_customers(pilot)
        assert len(table.shown) == 8 and table.table.row_count == 8
        rows = {r.who.subscription: r for r in customers(app.session)}
        lumen = rows["sub_lumen_fra"]
        assert lumen.cost == Decimal("94426.88") and lumen.alerts == 2
        assert round(lumen.budget_pct) == 99  # 79350.38 of its 80 000 EUR monthly budget
        assert {t for t, _ in lumen.gpu_hours} == {"A100-40GB", "A100-80GB", "H100-SXM", "H200"}
        assert rows["sub_helix_training"].credit_notes_left == Decimal("172608.56")  # the replaced invoice's note
        assert rows["sub_meridian_mlp"].commitment_pct is not None  # 40 000 USD per month


async def test_slash_filters_the_table_and_esc_clears_the_filter(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = await open_customers(pilot)
        await pilot.press("slash", *"helix")
        assert [r.key for r in table.shown] == ["sub_helix_training"]
        assert table.caption() == "1 rows · filter 'helix' keeps 1 of 8"
        await pilot.press("enter", "escape")  # back to the table, then clear the filter
        assert len(table.shown) == 8 and not table.filter_open()
        await pilot.press("slash", *"!gpucloud_us")  # ! inverts
        assert [r.key for r in table.shown] == ["sub_lumen_fra"]


async def test_s_and_a_header_click_sort_and_the_cursor_keeps_its_row(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = await open_customers(pilot)
        costs = [r.values[1] for r in table.shown]
        await pilot.click(table.table, offset=(2, 0))  # the first header: customer
        assert [r.values[0] for r in table.shown] == sorted(r.values[0] for r in table.shown)
        await pilot.press("s")  # the sort moves to the next column: cost so far, largest first
        assert table.sort_column == 1 and table.descending
        assert [r.values[1] for r in table.shown] == sorted(costs, reverse=True)
        assert table.shown[0].key == "sub_helix_training"
        await pilot.press("down")
        key = table.cursor_key()
        await pilot.press("S")  # reversed: the same row stays highlighted
        assert table.cursor_key() == key and not table.descending


async def test_enter_opens_the_customer_and_esc_comes_back(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = await open_customers(pilot)
        await pilot.press("slash", *"lumen", "enter", "enter")
        await settle(pilot)
        assert isinstance(app.screen, CustomerScreen) and app.screen.subscription == "sub_lumen_fra"
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen.query_one("#customers", FilterTable) is table


async def test_the_table_says_when_it_shows_part_of_the_rows(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = await open_customers(pilot)
        table.cap = 3
        table.set_rows(table.rows)
        assert table.table.row_count == 3 and table.caption().startswith("3 of 8")


async def test_the_table_reads_again_when_an_invoice_changes(make_app, store_copy):
    app = make_app(store_copy)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_customers(pilot)
        cost = {r.key: r.values[1] for r in table.shown}
        assert cost["sub_cirrus_market"] == Decimal("1892.63")
        await pilot.press("1", "2")  # away and back: nothing changed, the same rows
        await settle(pilot)
        assert app.screen.data is customers(app.session)
        with Store(store_copy) as store:
            lifecycle.void(store, Actor("ana", "admin"), "NWG-003-001", "sent to the wrong address", now_ms=NOW)
        app.screen.reload()
        await settle(pilot)
        assert {r.key: r.values[1] for r in table.shown}["sub_cirrus_market"] is None  # no invoice for the month


async def test_a_name_that_looks_like_markup_is_shown_as_written(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = await open_customers(pilot)
        table.set_rows([Row("sub_x", ("[b]Acme[/b] [link=x]", *("",) * 10), ("x",) * 11)])
        await pilot.pause()
        assert "[b]Acme[/b] [link=x]" in table.table.render_line(1).text
