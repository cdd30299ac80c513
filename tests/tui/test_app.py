"""The shell of the reviewer TUI: it opens on the overview, the same keys work everywhere."""

from __future__ import annotations

import pytest

from gpubill.tui.screens.customer import CustomerScreen
from gpubill.tui.screens.overview import OverviewScreen
from gpubill.tui.widgets.filter_table import Column, FilterTable

from .conftest import SIZE, gpubill, settle

pytestmark = pytest.mark.anyio


async def test_it_opens_on_the_overview_of_the_month_with_pending_drafts(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)
        table = app.screen.query_one("#entities", FilterTable)
        assert [r.key for r in table.shown] == ["gpucloud_eu/EUR", "gpucloud_us/USD"]
        assert app.session.period().label == "2026-11"


async def test_question_mark_lists_every_key_and_any_of_its_keys_closes_it(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        shown = str(app.screen.query_one(".help-body Static").render())
        for key, what in (("/", "filter"), (":", "palette"), ("q", "quit"), ("esc", "back"), ("1", "Overview"),
                          ("5", "Diff"), ("[", "month -"), ("^t", "light/dark"), ("enter", "open the highlighted row"),
                          ("s", "sort")):
            assert f"  {key:<12} {what}" in shown, (key, what)  # "[" shown as a key, not read as markup
        await pilot.press("escape")
        assert isinstance(app.screen, OverviewScreen)


async def test_the_palette_jumps_to_a_customer(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("colon", *"customer pixelforge")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, CustomerScreen) and app.screen.subscription == "sub_pixelforge_spot"


async def test_number_keys_switch_screens_and_esc_on_a_top_screen_stays(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for key, mode in (("2", "customers"), ("3", "invoices"), ("4", "quarantine"), ("1", "overview")):
            await pilot.press(key)
            await settle(pilot)
            assert app.current_mode == mode and len(app.screen_stack) == 1
        await pilot.press("escape")
        assert isinstance(app.screen, OverviewScreen)
        assert app.check_action("back", ()) is False  # so the footer leaves it out
        await pilot.press("5")
        await settle(pilot)
        assert app.current_mode == "diff"


async def test_brackets_step_the_month_and_ctrl_t_switches_light_and_dark(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert app.screen.data.period.label == "2026-12"
        assert all(r.drafts == 0 for r in app.screen.data.rows)
        await pilot.press("left_square_bracket", "left_square_bracket")
        await settle(pilot)
        assert app.screen.data.period.label == "2026-10"
        dark = app.theme
        await pilot.press("ctrl+t")
        assert app.theme != dark and not app.current_theme.dark


async def test_a_click_on_a_row_then_enter_drills_in(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        table = app.screen.query_one("#customers", FilterTable)
        await pilot.click(table.table, offset=(5, 3))  # the third row
        await pilot.click(table.table, offset=(5, 3))  # a second click on the highlighted row selects it
        await settle(pilot)
        assert isinstance(app.screen, CustomerScreen) and app.screen.subscription == table.shown[2].key


def test_gpubill_tui_refuses_a_missing_store_and_an_unknown_user_in_one_line(demo_store, tmp_path):
    r = gpubill("tui", "--store", tmp_path / "none.db", "--contracts", "examples")
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "no such store" in r.stderr
    r = gpubill("tui", "--store", demo_store, "--contracts", "examples", "--period", "November")
    assert r.returncode == 2 and "YYYY-MM" in r.stderr
    r = gpubill("tui", "--store", demo_store, "--contracts", tmp_path / "no-such-dir")
    assert r.returncode == 3 and r.stderr == f"gpubill: error: {tmp_path / 'no-such-dir'}: no such file or directory\n"
    r = gpubill("tui", "--store", demo_store, "--contracts", "examples", "--diff-head", "HEAD")
    assert r.returncode == 2 and "--diff-head needs --diff-base" in r.stderr


async def test_a_table_still_mounting_answers_whether_its_filter_is_open(make_app):
    # The footer asks (check_action "back") while a screen's tables mount: it crashed with NoMatches.
    async with make_app().run_test(size=SIZE):
        table = FilterTable([Column("customer", "customer")])  # made, not mounted yet
        assert table.filter_open() is False and table.close_filter() is False
