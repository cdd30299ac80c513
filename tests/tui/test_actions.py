"""Review actions on an invoice: each behind a confirmation, through the lifecycle as the session's actor,
in the store and the audit log afterwards; cancelled, nothing changes; a viewer's keys are dimmed and do nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from textual.notifications import Notify
from textual.widgets import Input, Select

from gpubill.service import lifecycle
from gpubill.service.access import Actor, add_user, audit_entries
from gpubill.service.events import Store
from gpubill.tui.screens.confirm import ConfirmScreen, CreditNoteScreen, ReasonScreen

from .conftest import NOW, SIZE, settle

pytestmark = pytest.mark.anyio
ADMIN = Actor("ana", "admin", "cli")


def read(path):
    """(invoices by number or id, audit entries) of the store at ``path``."""
    with Store(path, readonly=True, create=False) as s:
        rows = lifecycle.list_invoices(s, lifecycle.SYSTEM)
        return {r.number or r.id: r for r in rows}, audit_entries(s, limit=1 << 20)


def draft_id(path) -> str:
    return next(r.id for r in read(path)[0].values() if r.status == "draft" and r.contract == "meridian_bank")


@pytest.fixture
def with_users(store_copy):
    """The store copy with users: ana (admin) and vic (viewer)."""
    with Store(store_copy) as s:
        add_user(s, ADMIN, "ana", "admin")
        add_user(s, ADMIN, "vic", "viewer")
    return store_copy


async def open_invoice(app, pilot, invoice_id: str):
    await settle(pilot)
    app.open_invoice(invoice_id)
    await settle(pilot)
    return app.screen


async def test_finalize_shows_the_number_it_takes_and_the_total_and_finalizes_only_when_confirmed(make_app, store_copy):
    inv = draft_id(store_copy)
    before = read(store_copy)
    app = make_app(store_copy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_invoice(app, pilot, inv)
        total = screen.row.doc["total_amount"]
        await pilot.press("f")
        await settle(pilot)
        await pilot.press("n")  # cancelled: nothing changes
        await settle(pilot)
        assert app.screen is screen and read(store_copy) == before
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        question = "\n".join(app.screen.lines)
        assert "NWG-006-001" in question and total in question
        await pilot.press("y")
        await settle(pilot)
    rows, log = read(store_copy)
    row = rows["NWG-006-001"]
    assert row.id == inv and row.status == "finalized" and row.finalized_ms == NOW
    assert (log[-1].action, log[-1].object_id, log[-1].actor) == ("invoice.finalized", inv, "tui:local")


async def test_void_needs_a_reason_and_is_audited_with_it(make_app, store_copy):
    app = make_app(store_copy)
    async with app.run_test(size=SIZE) as pilot:
        await open_invoice(app, pilot, "NWG-005-001")
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, ReasonScreen)
        # Quill's November used 228.00 of its 1 000 USD once coupon: voiding gives it back
        assert "It gives back to the next invoices: coupon discount_2 228.00 USD." in app.screen.lines
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ReasonScreen)  # no reason: still asking
        await pilot.press(*"billed twice", "enter")
        await settle(pilot)
    rows, log = read(store_copy)
    assert rows["NWG-005-001"].status == "voided" and rows["NWG-005-001"].void_reason == "billed twice"
    assert (log[-1].action, log[-1].reason) == ("invoice.voided", "billed twice")


async def test_a_voided_invoice_is_regenerated_after_its_confirmation(make_app, store_copy):
    app = make_app(store_copy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_invoice(app, pilot, "NWG-005-001")
        assert screen.check_action("regenerate", ()) is False  # finalized: the key is not shown
        await pilot.press("v", *"billed twice", "enter")
        await settle(pilot)
        assert screen.row.status == "voided" and screen.check_action("regenerate", ()) is True
        await pilot.press("g")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen) and "Regenerate NWG-005-001?" in app.screen.title_text
        await pilot.press("y")
        await settle(pilot)
    rows, log = read(store_copy)
    voided = rows["NWG-005-001"]
    (again,) = [r for r in rows.values() if r.replaces == voided.id]
    assert (voided.status, again.status, again.doc["replaces_invoice_number"]) == ("voided", "finalized", "NWG-005-001")
    assert (log[-1].action, log[-1].object_id, log[-1].actor) == ("invoice.finalized", again.id, "tui:local")


async def test_the_credit_left_on_a_credit_note_is_voided_after_a_reason(make_app, store_copy):
    app = make_app(store_copy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_invoice(app, pilot, "NWG-002-001")  # replaced: its credit note's credit is all left
        assert screen.check_action("void_note", ()) is True
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, ReasonScreen)
        assert app.screen.title_text == "Void the credit left on NWG-002-001-CN001?"
        assert app.screen.lines[0].startswith("172608.56 USD left of its 172608.56")
        await pilot.press(*"goodwill withdrawn", "enter")
        await settle(pilot)
        assert screen.check_action("void_note", ()) is False  # nothing left to void: the key is gone
    with Store(store_copy, readonly=True, create=False) as s:
        (note,) = lifecycle.list_credit_notes(s, lifecycle.SYSTEM, customer="helix-labs")
        assert note.voided_ms == NOW and lifecycle.credit_left(s, note) == 0
    _, log = read(store_copy)
    assert (log[-1].action, log[-1].reason, log[-1].actor) == ("credit_note.voided", "goodwill withdrawn", "tui:local")


async def test_a_credit_note_of_a_percent_after_its_confirmation(make_app, store_copy):
    app = make_app(store_copy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_invoice(app, pilot, "NWG-003-001")
        total = Decimal(screen.row.doc["total_amount"])
        await pilot.press("c")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, CreditNoteScreen)
        form.query_one("#value", Input).value = "10%"
        await pilot.press("enter")
        await settle(pilot)
        assert "reason is required" in str(form.query_one(".modal-error").render())
        form.query_one("#reason", Select).value = "order_change"
        form.query_one("#description", Input).value = "two nodes were down"
        form.query_one("#value", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen) and "Credit 10 % of 1892.63 USD (tax included)" in "\n".join(app.screen.lines)
        await pilot.press("y")
        await settle(pilot)
        assert "credit notes: NWG-003-001-CN001 (credit 189.26 USD)" in str(screen.query_one("#invoice-header").render())
    with Store(store_copy, readonly=True, create=False) as s:
        notes = lifecycle.list_credit_notes(s, lifecycle.SYSTEM, invoice_id=read(store_copy)[0]["NWG-003-001"].id)
    assert [(n.total, n.doc["reason"], n.doc["description"]) for n in notes] == [
        (Decimal("189.26"), "order_change", "two nodes were down")]
    assert total == Decimal("1892.63")
    assert read(store_copy)[1][-1].action == "credit_note.created"


async def test_a_credit_note_by_lines_before_tax(make_app, store_copy):
    app = make_app(store_copy)
    async with app.run_test(size=SIZE) as pilot:
        await open_invoice(app, pilot, "NWG-003-001")
        await pilot.press("c")
        await settle(pilot)
        form = app.screen
        form.query_one("#value", Input).value = "1=oops"
        form.query_one("#reason", Select).value = "order_change"
        form.query_one("#value", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert "N=AMOUNT" in str(form.query_one(".modal-error").render())
        form.query_one("#value", Input).value = "1=100"
        form.query_one("#value", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert "Credit line 1 100 before tax, plus their taxes, of 1892.63 USD, reason order_change." in app.screen.lines
        await pilot.press("y")
        await settle(pilot)
    with Store(store_copy, readonly=True, create=False) as s:
        (note,) = lifecycle.list_credit_notes(s, lifecycle.SYSTEM, invoice_id=read(store_copy)[0]["NWG-003-001"].id)
    assert [(i["fee_index"], i["amount"]) for i in note.doc["items"]] == [(0, "100.00")]
    assert note.total == Decimal("100.00") + Decimal(note.doc["taxes_amount"])


async def test_refresh_stores_a_new_revision_when_events_arrived(make_app, store_copy):
    inv = draft_id(store_copy)
    revision = read(store_copy)[0][inv].revision
    with Store(store_copy) as s:
        r = s.ingest([{"transaction_id": "late-h100", "external_subscription_id": "sub_meridian_mlp", "code": "gpu_job",
                       "timestamp": "2026-11-20T10:00:00Z",
                       "properties": {"gpu_type": "H100-SXM", "gpu_count": 8, "duration_seconds": 3600}}])
        assert r.ok
    app = make_app(store_copy)
    async with app.run_test(size=SIZE) as pilot:
        await open_invoice(app, pilot, inv)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert app.screen.row.revision == revision + 1  # the screen shows the draft as it is now
    rows, log = read(store_copy)
    assert rows[inv].revision == revision + 1
    assert (log[-1].action, log[-1].object_id) == ("invoice.refreshed", inv)


async def test_a_viewer_sees_the_keys_dimmed_with_why_and_cannot_change_anything(make_app, with_users):
    inv = draft_id(with_users)
    before = read(with_users)
    app = make_app(with_users, as_user="vic")
    messages: list = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        screen = await open_invoice(app, pilot, inv)
        assert screen.check_action("finalize", ()) is None and screen.check_action("refresh", ()) is None
        why = str(screen.query_one("#invoice-why").render())
        assert "may not finalize an invoice: that needs the approver role" in why
        assert "may not refresh a draft invoice: that needs the reviewer role" in why
        await pilot.press("f", "r")
        await settle(pilot)
        assert app.screen is screen  # no confirmation opened
        assert [m.notification.message for m in messages if isinstance(m, Notify)][-2:] == [
            "tui:vic (viewer) may not finalize an invoice: that needs the approver role",
            "tui:vic (viewer) may not refresh a draft invoice: that needs the reviewer role"]
    assert read(with_users) == before
