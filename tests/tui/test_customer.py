"""A customer's subscription: its lines and chart, invoices and credit notes, credits, the terms in effect."""

from __future__ import annotations

import pytest
from textual.widgets import Sparkline, TabbedContent

from gpubill.tui.screens.customer import CustomerScreen
from gpubill.tui.widgets.filter_table import FilterTable

from .conftest import SIZE, settle

pytestmark = pytest.mark.anyio


async def open_customer(pilot, subscription: str) -> CustomerScreen:
    await settle(pilot)
    pilot.app.open_customer(subscription)
    await settle(pilot)
    return pilot.app.screen


def text(screen, selector: str) -> str:
    return str(screen.query_one(selector).render())


async def test_usage_lines_of_the_current_draft_and_the_highlighted_lines_events_per_day(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_customer(pilot, "sub_lumen_fra")
        d = screen.detail
        assert d.current.status == "draft" and str(d.current.total) == "69288.48"
        assert "grace ends 2026-12-05" in text(screen, "#customer-header")
        lines = screen.query_one("#lines", FilterTable)
        assert [r.cells[0] for r in lines.shown][:2] == ["on_demand_eu plan fee", "reserved 16 x H100-SXM"]
        assert sum(screen.query_one("#line-daily", Sparkline).data) == sum(d.daily[""])  # a fee: all events
        await pilot.press("down", "down")  # gpu_hours (A100-40GB): its gpu_job events
        assert screen.query_one("#line-daily", Sparkline).data == list(d.daily["gpu_job"])
        assert "gpu_job events per day" in text(screen, "#line-chart-title")


async def test_invoices_credit_notes_credits_and_terms(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_customer(pilot, "sub_helix_training")
        invoices = screen.query_one("#invoices", FilterTable)
        assert [r.cells[0] for r in invoices.shown] == ["NWG-002-002", "NWG-002-001", "NWG-002-001-CN001"]
        assert invoices.shown[0].cells[3] == "finalized (replacement)"
        credits = text(screen, "#credits")
        assert "granted credit 50,000.00 USD: expired" in credits and "paid credit 250,000.00 USD: no expiry" in credits
        assert "NWG-002-001-CN001: 172,608.56 USD left" in credits
        terms = text(screen, "#terms")
        assert "commitment: commit 2_400_000 USD per term, true-up at term end" in terms
        assert "late events: late events grace 2 days, then new revision" in terms
        assert "examples/contracts/helix_labs.bill:8" in terms and "contract helix_labs {" in terms


async def test_tabs_switch_with_the_mouse_and_enter_opens_an_invoice(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_customer(pilot, "sub_helix_training")
        await pilot.click("#customer-tabs Tab#--content-tab-tab-invoices")
        await settle(pilot)
        assert screen.query_one(TabbedContent).active == "tab-invoices"
        screen.query_one("#invoices DataTable").focus()
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is not screen  # the invoice screen (or, before it exists, a page that says so)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen


async def test_a_subscription_no_contract_bills_says_so_in_one_line(make_app):
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_customer(pilot, "sub_nobody")
        assert any("no contract bills subscription 'sub_nobody'" in n.message for n in app._notifications)
