"""Invoices (key 3) and one invoice: every stored invoice, an invoice's totals and lines, Enter explains a line."""

from __future__ import annotations

import pytest

from gpubill.service import lifecycle
from gpubill.service.events import Store
from gpubill.tui.screens.explain import ExplainScreen
from gpubill.tui.screens.invoice import InvoiceScreen, short
from gpubill.tui.screens.invoices import InvoicesScreen
from gpubill.tui.widgets.filter_table import FilterTable

from .conftest import SIZE, settle

pytestmark = pytest.mark.anyio


def stored(path) -> list:
    with Store(path, readonly=True, create=False) as s:
        return lifecycle.list_invoices(s, lifecycle.SYSTEM)


async def test_key_3_lists_every_invoice_and_enter_opens_the_highlighted_one(make_app, demo_store):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        assert isinstance(app.screen, InvoicesScreen)
        table = app.screen.query_one("#invoices", FilterTable)
        assert {r.key for r in table.rows} == {r.id for r in stored(demo_store)}
        first = table.cursor_key()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, InvoiceScreen) and app.screen.row.id == first


async def test_an_invoice_shows_its_totals_and_one_row_per_line(make_app, demo_store):
    row = next(r for r in stored(demo_store) if r.number == "NWG-002-002")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_invoice(row.id)
        await settle(pilot)
        header = str(app.screen.query_one("#invoice-header").render())
        assert "NWG-002-002" in header and f"total {row.doc['total_amount']}" in header
        lines = app.screen.query_one("#lines", FilterTable)
        assert [r.cells[1] for r in lines.rows] == [f["item"]["name"] for f in row.doc["fees"]]
        assert [r.cells[4] for r in lines.rows] == [f["amount"] for f in row.doc["fees"]]
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ExplainScreen) and app.screen.index == 1
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, InvoiceScreen)


async def test_the_keys_of_an_invoice_follow_its_status(make_app, demo_store):
    rows = stored(demo_store)
    draft = next(r for r in rows if r.status == "draft")
    final = next(r for r in rows if r.status == "finalized")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for row, shown, hidden in ((draft, {"refresh", "finalize"}, {"void", "credit_note"}),
                                   (final, {"void", "credit_note"}, {"refresh", "finalize"})):
            app.open_invoice(row.id)
            await settle(pilot)
            screen = app.screen
            assert all(screen.check_action(a, ()) is True for a in shown)
            assert all(screen.check_action(a, ()) is False for a in hidden)
            await pilot.press("escape")
            await settle(pilot)


def test_an_invoice_at_160x50(make_app, snap_compare):
    async def invoice(pilot):
        await settle(pilot)
        pilot.app.open_invoice("NWG-002-002")
        await settle(pilot)

    assert snap_compare(make_app(as_user="ana"), terminal_size=(160, 50), run_before=invoice)


def test_a_price_below_a_cent_keeps_its_first_significant_digits():
    assert short("0.0000006") == "0.0000006"  # 0.60 per 1M tokens, exact
    assert short("0.00000313500000") == "~0.000003135"
    assert short("3.141592653") == "~3.141592"
    assert short("2.50") == "2.50"
    assert short(None) == "—"


def test_the_header_shows_names_and_reasons_as_written_not_as_markup(demo_store):
    import attrs
    from textual.content import Content

    from gpubill.tui.screens.invoice import header_text

    row = stored(demo_store)[0]
    row = attrs.evolve(row, status="voided", void_reason="[red]typo[/red]",
                       doc={**row.doc, "customer": {**row.doc["customer"], "name": "[b]Acme [EU]"}})
    shown = Content.from_markup(header_text(row, ())).plain
    assert "[b]Acme [EU]" in shown and "voided: [red]typo[/red]" in shown
