"""The invoice lifecycle over HTTP against a real `gpubill serve` on 127.0.0.1: every route under its
role (refused calls are 403 and logged), and the official lago-python-client, unchanged, on the calls
Lago has (invoices find/find_all/refresh/finalize/void, credit_notes create/find/find_all, customers
current_usage)."""

import datetime as dt
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.credit_note import CreditNote, Item, Items
from serverkit import Server, client

from gpubill.service.access import Actor, create_key
from gpubill.service.events import Store

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("viewer", "writer", "reviewer", "approver", "admin")


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    """`gpubill demo`'s month: November drafts and finalized invoices (numbers), no users."""
    folder = tmp_path_factory.mktemp("lifecycle-api") / "demo"
    r = subprocess.run([sys.executable, "-m", "gpubill", "demo", "--contracts", "examples", "--dir", folder,
                        "--period", "2026-11", "--events", "2000", "--seed", "7"], capture_output=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr.decode()
    return folder / "gpubill.db"


@pytest.fixture(scope="module")
def served(demo_db, tmp_path_factory):
    """A server over a copy of the demo store with one key per role; (server, {role: key})."""
    db = tmp_path_factory.mktemp("served") / "s.db"
    shutil.copy(demo_db, db)
    with Store(str(db)) as s:
        keys = {role: create_key(s, Actor("test", "admin"), role, role) for role in ROLES}
    srv = Server(str(db), "--contracts", str(ROOT / "examples")).start()
    yield srv, keys
    srv.stop()


def lago(srv, key) -> Client:
    return Client(api_key=key, api_url=srv.url + "/")


def invoices(srv, keys, **query) -> list[dict]:
    with client(srv, keys["viewer"]) as c:
        r = c.get("/api/v1/invoices", params={"per_page": 100, **query})
    assert r.status_code == 200, r.text
    return r.json()["invoices"]


def refused(srv, keys, role: str) -> list[dict]:
    with client(srv, keys["viewer"]) as c:
        r = c.get("/api/v1/audit_logs", params={"action": "access.refused", "per_page": 1000})
    return [e for e in r.json()["audit_logs"] if e["actor"] == f"api:{role}"]


# (method, path, body, permission). An allowed call names an invoice that does not exist (or sends
# an invalid body), so it passes the role check and changes nothing.
CALLS = [
    ("GET", "/api/v1/invoices", None, "read"),
    ("GET", "/api/v1/invoices/nope", None, "read"),
    ("PUT", "/api/v1/invoices/nope/refresh", None, "refresh"),
    ("PUT", "/api/v1/invoices/nope/finalize", None, "finalize"),
    ("POST", "/api/v1/invoices/nope/void", None, "void"),
    ("POST", "/api/v1/credit_notes", {"credit_note": {"invoice_id": "nope", "credit_amount_cents": 1}}, "credit_note"),
    ("GET", "/api/v1/credit_notes", None, "read"),
    ("GET", "/api/v1/credit_notes/nope", None, "read"),
    ("PUT", "/api/v1/credit_notes/nope/void", None, "credit_note"),
    ("GET", "/api/v1/customers/nope/current_usage?external_subscription_id=nope", None, "read"),
    ("GET", "/api/v1/audit_logs", None, "read"),
    ("POST", "/api/v1/events", {"oops": 1}, "ingest"),
]
# Who may: the roles of issue 10 (finalize, void and credit notes need approver), written out.
MAY = {"read": set(ROLES), "ingest": {"writer", "admin"}, "refresh": {"reviewer", "approver", "admin"},
       "finalize": {"approver", "admin"}, "void": {"approver", "admin"}, "credit_note": {"approver", "admin"}}
NEEDS = {"refresh": ("refresh a draft invoice", "reviewer"), "finalize": ("finalize an invoice", "approver"),
         "void": ("void an invoice", "approver"), "credit_note": ("issue a credit note", "approver")}


@pytest.mark.parametrize("role", ROLES)
def test_every_route_under_every_role(served, role):
    srv, keys = served
    before = len(refused(srv, keys, role))
    expect_refused = []
    with client(srv, keys[role]) as c:
        for method, path, body, permission in CALLS:
            r = c.request(method, path, json=body)
            if role in MAY[permission]:
                assert r.status_code != 403, (method, path, r.text)
                continue
            expect_refused.append(f"{method} {path}")
            assert r.status_code == 403, (method, path, r.text)
            if permission == "ingest":  # Lago's own answer for a key that may not post events
                assert r.json()["code"] == "write_action_not_allowed_for_event"
            else:
                verb, least = NEEDS[permission]
                assert r.json() == {"status": 403, "error": "Forbidden", "code": "action_not_allowed",
                                    "error_details": {"permission": [permission], "reason": [
                                        f"api:{role} ({role}) may not {verb}: that needs the {least} role"]}}
    logged = refused(srv, keys, role)[before:]
    assert [e["object_id"] for e in logged] == [p.split("?")[0] for p in expect_refused]
    assert all(e["source"] == "api" and e["payload"]["role"] == role for e in logged)


def test_no_key_is_401(served):
    srv, _ = served
    with client(srv, None) as c:
        assert c.get("/api/v1/invoices").status_code == 401
        assert c.put("/api/v1/invoices/x/finalize").status_code == 401


def test_the_lago_client_lists_and_finds_invoices(served):
    srv, keys = served
    c = lago(srv, keys["viewer"])
    everything = invoices(srv, keys)
    helix = [i for i in everything if i["customer"]["external_id"] == "helix-labs"]
    page = c.invoices.find_all({"external_customer_id": "helix-labs"})
    assert [i.lago_id for i in page["invoices"]] == [i["lago_id"] for i in helix]
    assert page["meta"]["total_count"] == len(helix)
    done = next(i for i in everything if i["status"] == "finalized")
    by_id, by_number = c.invoices.find(done["lago_id"]), c.invoices.find(done["number"])
    assert by_id.lago_id == by_number.lago_id == done["lago_id"]
    assert (by_id.number, by_id.status, by_id.total_amount_cents) == (done["number"], "finalized",
                                                                       done["total_amount_cents"])
    drafts = c.invoices.find_all({"status": "draft", "per_page": 1})
    assert len(drafts["invoices"]) == 1 and drafts["invoices"][0].status == "draft"
    assert drafts["meta"]["total_count"] == sum(i["status"] == "draft" for i in everything)
    day = done["issuing_date"]
    assert {i.lago_id for i in c.invoices.find_all({"issuing_date_from": day, "issuing_date_to": day})["invoices"]} \
        == {i["lago_id"] for i in everything if i["issuing_date"] == day}
    with pytest.raises(LagoApiError) as e:
        c.invoices.find("no-such-invoice")
    assert e.value.status_code == 404


def test_refresh_finalize_credit_note_and_void_with_the_lago_client(served):
    srv, keys = served
    draft = next(i for i in invoices(srv, keys, status="draft") if i["invoice_type"] == "subscription")
    refreshed = lago(srv, keys["reviewer"]).invoices.refresh(draft["lago_id"])
    assert (refreshed.lago_id, refreshed.status) == (draft["lago_id"], "draft")

    approver = lago(srv, keys["approver"])
    final = approver.invoices.finalize(draft["lago_id"])
    assert final.status == "finalized" and final.number and "DRAFT" not in final.number
    with pytest.raises(LagoApiError) as e:  # a finalized invoice never changes
        approver.invoices.finalize(draft["lago_id"])
    assert e.value.status_code == 405
    again = lago(srv, keys["reviewer"]).invoices.refresh(final.number)  # Lago: refresh leaves it as it is
    assert (again.status, again.number, again.total_amount_cents) == ("finalized", final.number,
                                                                      final.total_amount_cents)

    note = approver.credit_notes.create(CreditNote(invoice_id=final.lago_id, credit_amount_cents=1000,
                                                   reason="order_change", description="goodwill"))
    assert (note.number, note.total_amount_cents, note.credit_amount_cents) == (f"{final.number}-CN001", 1000, 1000)
    assert (note.credit_status, note.balance_amount_cents, note.reason) == ("available", 1000, "order_change")
    viewer = lago(srv, keys["viewer"])
    assert viewer.credit_notes.find(note.lago_id).number == note.number
    assert note.lago_id in [n.lago_id for n in viewer.credit_notes.find_all({"invoice_id": final.lago_id})["credit_notes"]]
    with pytest.raises(LagoApiError) as e:  # more than the invoice is worth
        approver.credit_notes.create(CreditNote(invoice_id=final.lago_id, refund_amount_cents=10**12))
    assert e.value.status_code == 422
    with pytest.raises(LagoApiError) as e:  # voiding a note's credit left is the approver's
        lago(srv, keys["reviewer"]).credit_notes.void(note.lago_id)
    assert e.value.status_code == 403
    gone = approver.credit_notes.void(note.lago_id)  # Lago: the credit left is voided, the note stays
    assert (gone.number, gone.credit_status, gone.balance_amount_cents, gone.total_amount_cents) == (
        note.number, "voided", 0, 1000)
    with pytest.raises(LagoApiError) as e:  # nothing left to void
        approver.credit_notes.void(note.lago_id)
    assert e.value.status_code == 405 and "no_voidable_amount" in str(e.value.response)

    voided = approver.invoices.void(final.lago_id)
    assert (voided.status, voided.number) == ("voided", final.number)
    with pytest.raises(LagoApiError) as e:  # a draft is not voidable
        approver.invoices.void(next(i for i in invoices(srv, keys, status="draft"))["lago_id"])
    assert e.value.status_code == 405

    with client(srv, keys["viewer"]) as c:
        log = c.get("/api/v1/audit_logs", params={"object_id": final.lago_id}).json()["audit_logs"]
    assert [(e["action"], e["actor"]) for e in log if e["action"] != "invoice.drafted"][-2:] == [
        ("invoice.finalized", "api:approver"), ("invoice.voided", "api:approver")]
    r = subprocess.run([sys.executable, "-m", "gpubill", "audit", "verify", "--store", srv.store], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()


def test_credit_notes_by_items_in_lagos_shape(served):
    srv, keys = served
    done = next(i for i in invoices(srv, keys, status="finalized"))
    with client(srv, keys["viewer"]) as c:
        fees = c.get(f"/api/v1/invoices/{done['lago_id']}").json()["invoice"]["fees"]
    assert len({f["lago_id"] for f in fees}) == len(fees)  # every fee has its own id
    fee = next(f for f in fees if f["amount_cents"] >= 1000)
    taxable = Decimal(fee["amount"]) - Decimal(fee["precise_coupons_amount"]) - Decimal(
        fee["precise_progressive_credit_amount"])
    tax = (Decimal("10.00") * Decimal(fee["taxes_precise_amount"]) / taxable).quantize(Decimal("0.01"), "ROUND_HALF_UP")
    due = int((Decimal("10.00") + tax) * 100)  # 10.00 of the fee before tax, with the fee's taxes
    items = Items(__root__=[Item(fee_id=fee["lago_id"], amount_cents=1000)])
    note = lago(srv, keys["approver"]).credit_notes.create(CreditNote(
        invoice_id=done["lago_id"], credit_amount_cents=due, reason="other", items=items))
    (item,) = note.items.__root__
    assert (item.amount_cents, item.fee.lago_id) == (1000, fee["lago_id"])
    assert (note.total_amount_cents, note.credit_amount_cents) == (due, due)
    with client(srv, keys["approver"]) as c:
        def post(**note):
            return c.post("/api/v1/credit_notes", json={"credit_note": {"invoice_id": done["lago_id"], **note}})
        wrong = [
            {"credit_amount_cents": due + 2, "items": [{"fee_id": fee["lago_id"], "amount_cents": 1000}]},  # not the sum
            {"credit_amount_cents": due, "items": [{"fee_id": "fee_nope", "amount_cents": 1000}]},
            {"credit_amount_cents": due, "items": [{"fee_id": fee["lago_id"], "amount_cents": -5}]},
            {"credit_amount_cents": due, "items": [{"fee_id": fee["lago_id"], "amount_cents": fee["amount_cents"]}]},
            {"credit_amount_cents": due, "items": []},
        ]
        for body in wrong:
            r = post(**body)
            assert r.status_code == 422 and list(r.json()["error_details"]) == ["items"], (body, r.text)
        r = post(credit_amount_cents=5, offset_amount_cents=5)
        assert r.status_code == 422 and list(r.json()["error_details"]) == ["amount_cents"]
        assert c.post("/api/v1/credit_notes", content=b"{").status_code == 400


def test_a_removed_tail_is_found_through_a_finalized_invoices_audit_hash(demo_db, tmp_path):
    """The demo finalized invoices; the attacker drops every entry from the last finalization on."""
    import sqlite3

    db = tmp_path / "s.db"
    shutil.copy(demo_db, db)
    con = sqlite3.connect(db)
    seq, number = con.execute("SELECT a.seq, i.number FROM audit_log a JOIN invoices i ON i.audit_hash = a.hash "
                              "ORDER BY a.seq DESC LIMIT 1").fetchone()
    con.execute("DROP TRIGGER audit_log_no_delete")
    con.execute("DELETE FROM audit_log WHERE seq >= ?", (seq,))
    con.execute("DELETE FROM audit_checkpoints")
    con.commit()
    con.close()
    r = subprocess.run([sys.executable, "-m", "gpubill", "audit", "verify", "--store", db], capture_output=True)
    assert (r.returncode, r.stderr.decode()) == (1, f"gpubill: audit log broken at entry {seq}: invoice {number} was "
                                                    "finalized by an entry that is no longer in the log "
                                                    "(entries were removed)\n")


def test_current_usage_with_the_lago_client(served):
    """The period containing now (the server's clock): the events stored so far, priced as the draft would be."""
    srv, keys = served
    c = lago(srv, keys["viewer"])
    before = c.customers.current_usage("quill-ai", "sub_quill_api")
    with client(srv, keys["writer"]) as w:
        r = w.post("/api/v1/events", json={"event": {
            "transaction_id": "usage-now-1", "external_subscription_id": "sub_quill_api", "code": "llm_request",
            "timestamp": int(time.time()) - 60,
            "properties": {"model_name": "llama-3.1-405b", "region": "us-east", "input_tokens": 2_000_000,
                           "output_tokens": 10, "cached_tokens": 0}}})
        assert r.status_code == 200, r.text
    after = c.customers.current_usage("quill-ai", "sub_quill_api")
    assert after.from_datetime <= dt.datetime.now(dt.timezone.utc).isoformat() <= after.to_datetime
    assert (after.currency, after.lago_invoice_id) == ("USD", None)
    charges = {u.charge.lago_id: u for u in after.charges_usage}
    tokens = charges["llm_input_tokens"]
    assert tokens.billable_metric.aggregation_type == "sum_agg" and tokens.charge.charge_model == "package"
    was = {u.charge.lago_id: u for u in before.charges_usage}.get("llm_input_tokens")
    assert Decimal(tokens.units) - (Decimal(was.units) if was else 0) == 2_000_000
    assert after.amount_cents > before.amount_cents
    assert after.total_amount_cents == after.amount_cents + after.taxes_amount_cents
    assert after.amount_cents == sum(u.amount_cents for u in after.charges_usage)
    with pytest.raises(LagoApiError) as e:
        c.customers.current_usage("helix-labs", "sub_quill_api")
    assert e.value.status_code == 404


def test_without_contracts_the_pricing_calls_say_so(demo_db, tmp_path, monkeypatch):
    monkeypatch.delenv("GPUBILL_CONTRACTS", raising=False)
    db = tmp_path / "s.db"
    shutil.copy(demo_db, db)
    with Store(str(db)) as s:
        key = create_key(s, Actor("test", "admin"), "a", "admin")
    srv = Server(str(db)).start()
    try:
        with client(srv, key) as c:
            draft = next(i for i in c.get("/api/v1/invoices").json()["invoices"] if i["status"] == "draft")
            for method, path in (("PUT", f"/api/v1/invoices/{draft['lago_id']}/finalize"),
                                 ("PUT", f"/api/v1/invoices/{draft['lago_id']}/refresh"),
                                 ("GET", "/api/v1/customers/quill-ai/current_usage?external_subscription_id=sub_quill_api")):
                r = c.request(method, path)
                assert (r.status_code, r.json()["code"]) == (503, "contracts_not_loaded"), path
            assert c.get(f"/api/v1/invoices/{draft['lago_id']}").json()["invoice"]["status"] == "draft"
    finally:
        srv.stop()


def test_audit_logs_pages_by_seq(served):
    srv, keys = served
    with client(srv, keys["viewer"]) as c:
        first = c.get("/api/v1/audit_logs", params={"per_page": 3}).json()
        assert [e["seq"] for e in first["audit_logs"]] == [1, 2, 3] and first["meta"]["next_after"] == 3
        nxt = c.get("/api/v1/audit_logs", params={"after": 3, "per_page": 2}).json()
        assert [e["seq"] for e in nxt["audit_logs"]] == [4, 5]
        assert c.get("/api/v1/audit_logs", params={"after": 0, "per_page": 1}).json()["audit_logs"][0]["seq"] == 1
        r = c.get("/api/v1/audit_logs", params={"after": "-1"})
        assert r.status_code == 400 and r.json()["error_details"] == {"after": ["invalid_value"]}
