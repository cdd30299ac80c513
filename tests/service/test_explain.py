"""service/explain.py over the demo month in a real store: a line's events paged by keyset and routed as the
engine routes them, the line's price, tiers, rounding, credits and clause, the quarantine, a diff file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from gpubill.engine.pricing.money import EXACT
from gpubill.service import explain as X
from gpubill.service import lifecycle as L
from gpubill.service.access import audit_entries
from gpubill.store import Store
from gpubill.store.roles import Actor, Forbidden

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = [str(ROOT / "examples")]
ADMIN = Actor("ana", "admin", "tui")
VIEWER = Actor("vic", "viewer", "tui")
JAN_3_2027 = 1799000000000  # 2027-01-03 18:13 UTC: December's periods are closed, its drafts are stored


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("explain") / "demo"
    r = subprocess.run([sys.executable, "-m", "gpubill", "demo", "--contracts", "examples", "--dir", str(folder),
                        "--period", "2026-11", "--events", "6000", "--seed", "7"],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "NO_COLOR": "1"})
    assert r.returncode == 0, r.stderr
    return folder / "gpubill.db"


@pytest.fixture(scope="module")
def store(demo):
    with Store(demo, readonly=True, create=False) as s:
        yield s


def fee_index(row, name: str, kind: str = "usage", clause_line: int | None = None) -> int:
    return next(i for i, f in enumerate(row.doc["fees"]) if f["item"]["name"] == name and f["item"]["kind"] == kind
                and (clause_line is None or f["clause"].split(":")[-2] == str(clause_line)))


def all_events(store, sel, limit: int) -> list[list]:
    pages, after = [], None
    while True:
        page = X.events_page(store, sel, after, limit)
        pages.append(list(page.rows))
        if page.after is None:
            return pages
        after = page.after


def meridian_draft(store):
    return next(r for r in L.list_invoices(store, ADMIN) if r.contract == "meridian_bank" and r.status == "draft")


def test_a_usage_line_pages_exactly_its_events_by_keyset_oldest_first(store):
    row = meridian_draft(store)
    i = fee_index(row, "gpu_hours (H100-SXM)")
    e = X.explain_line(store, CONTRACTS, ADMIN, row, i)
    pages = all_events(store, e.events, limit=10)
    events = [ev for p in pages for ev in p]
    assert all(len(p) <= 10 for p in pages) and len(pages) > 2
    assert len(events) == row.doc["fees"][i]["events_count"]  # a draft: every event it counted, no more
    assert len({ev.id for ev in events}) == len(events)
    assert [(ev.timestamp_ms, ev.id) for ev in events] == sorted((ev.timestamp_ms, ev.id) for ev in events)
    assert {ev.properties["gpu_type"] for ev in events} == {"H100-SXM"}
    assert all(row.period_from_ms <= ev.timestamp_ms <= row.period_to_ms for ev in events)


def test_the_default_bucket_line_leaves_out_the_events_of_the_filters(store):
    row = next(r for r in L.list_invoices(store, ADMIN) if r.number == "NWG-002-002")
    i = next(i for i, f in enumerate(row.doc["fees"]) if f["item"]["name"] == "gpu_hours" and not f["dimensions"])
    e = X.explain_line(store, CONTRACTS, ADMIN, row, i)
    events = [ev for p in all_events(store, e.events, 200) for ev in p]
    assert len(events) == row.doc["fees"][i]["events_count"] > 0
    assert not {ev.properties.get("gpu_type") for ev in events} & {"H100-SXM", "H200"}  # priced by their filters


def test_a_price_window_line_holds_the_events_of_its_window_only(store):
    row = next(r for r in L.list_invoices(store, ADMIN) if r.number == "NWG-004-001")
    fees = row.doc["fees"]
    a, b = (i for i, f in enumerate(fees) if f["item"]["name"] == "spot_gpu_hours" and f["item"]["kind"] == "usage")
    ea, eb = (X.explain_line(store, CONTRACTS, ADMIN, row, i) for i in (a, b))
    assert eb.events.window is not None and ea.events.window is None
    ids_b = {ev.id for p in all_events(store, eb.events, 200) for ev in p}
    ids_a = {ev.id for p in all_events(store, ea.events, 200) for ev in p}
    assert len(ids_b) == fees[b]["events_count"]
    assert not ids_a & ids_b
    assert eb.rated_amount == Decimal(fees[b]["amount"])


def test_a_progressive_invoice_line_stops_at_its_check(store):
    row = next(r for r in L.list_invoices(store, ADMIN) if r.number == "NWG-001-001")
    i = fee_index(row, "gpu_hours (A100-80GB)")
    e = X.explain_line(store, CONTRACTS, ADMIN, row, i)
    events = [ev for p in all_events(store, e.events, 200) for ev in p]
    assert len(events) == row.doc["fees"][i]["events_count"]


def test_the_explanation_names_price_tiers_rounding_credits_and_the_clause(store):
    row = next(r for r in L.list_invoices(store, ADMIN) if r.number == "NWG-002-002")
    i = fee_index(row, "cluster_management")
    fee = row.doc["fees"][i]
    e = X.explain_line(store, CONTRACTS, ADMIN, row, i)
    assert len(e.tiers) == 2 and EXACT.add(*(t.amount for t in e.tiers)) == Decimal(fee["precise_amount"])
    assert e.rated_amount == Decimal(fee["amount"])
    assert e.rounding is not None and e.rounding.quantum == Decimal("0.01")
    assert [c["item"]["kind"] for c in e.credits] == ["policy"]
    path, line, col = fee["clause"].rsplit(":", 2)
    assert (e.clause.path, e.clause.line, e.clause.col) == (path, int(line), int(col))
    assert e.clause.text == (ROOT / path).read_text()


def test_a_policy_credit_line_holds_the_events_of_the_jobs_that_ended_so(store):
    row = next(r for r in L.list_invoices(store, ADMIN) if r.number == "NWG-004-001")
    for i, f in enumerate(row.doc["fees"]):
        if f["item"]["kind"] == "policy" and "spot_market" in f["item"]["name"]:
            e = X.explain_line(store, CONTRACTS, ADMIN, row, i)
            events = [ev for p in all_events(store, e.events, 200) for ev in p]
            reason = f["item"]["code"].removesuffix("_credit")
            assert {ev.properties["end_reason"] for ev in events} == {reason}
            assert len({ev.properties["job_id"] for ev in events}) == f["events_count"]  # the jobs credited


def test_a_fee_without_events_is_explained_by_its_clause_alone(store):
    row = meridian_draft(store)
    i = next(i for i, f in enumerate(row.doc["fees"]) if f["item"]["type"] == "commitment")
    e = X.explain_line(store, CONTRACTS, ADMIN, row, i)
    assert e.events is None and e.tiers == () and e.clause.text is not None


def test_a_line_number_past_the_invoice_is_one_clear_error(store):
    row = meridian_draft(store)
    with pytest.raises(X.ExplainError, match="has 11 lines"):
        X.explain_line(store, CONTRACTS, ADMIN, row, 99)


# -- quarantine ------------------------------------------------------------------------

@pytest.fixture
def writable(demo, tmp_path):
    p = tmp_path / "gpubill.db"
    shutil.copy(demo, p)
    with Store(p) as s:
        yield s


def test_quarantined_events_come_with_their_reasons(store):
    rows = X.rejected_page(store, VIEWER)
    assert rows and all(r.status == "open" and r.reasons for r in rows)
    assert any("timestamp:" in reason for r in rows for reason in r.reasons)


def test_discarding_is_audited_and_a_viewer_may_not(writable):
    rid = X.rejected_page(writable, ADMIN)[0].id
    with pytest.raises(Forbidden):
        X.discard(writable, VIEWER, rid)
    assert writable.get_rejected(rid).status == "open"
    assert "discarded" in X.discard(writable, ADMIN, rid, now_ms=1)
    assert writable.get_rejected(rid).status == "discarded"
    entries = audit_entries(writable, limit=1 << 20)
    assert [(e.action, e.object_id) for e in entries[-2:]] == [("access.refused", str(rid)),
                                                              ("quarantine.discarded", str(rid))]
    with pytest.raises(X.ExplainError, match="not open"):
        X.discard(writable, ADMIN, rid)


def test_resubmitting_an_event_still_invalid_changes_nothing(writable):
    rec = X.rejected_page(writable, ADMIN)[0]
    before = len(audit_entries(writable, limit=1 << 20))
    assert "still rejected" in X.resubmit(writable, ADMIN, rec.id)
    assert writable.get_rejected(rec.id).status == "open"
    assert len(audit_entries(writable, limit=1 << 20)) == before


def test_a_late_line_is_explained_by_the_events_stored_after_its_invoice_was_finalized(writable):
    L.refresh(writable, CONTRACTS, ADMIN, "2026-12", "cirrus-exchange", now_ms=JAN_3_2027)
    draft = next(r for r in L.list_invoices(writable, ADMIN, customer="cirrus-exchange") if r.status == "draft")
    late = [i for i, f in enumerate(draft.doc["fees"]) if f.get("adjusts_invoice_number") == "NWG-003-001"]
    finalized = L.get_invoice(writable, ADMIN, "NWG-003-001")
    assert late
    for i in late:
        e = X.explain_line(writable, CONTRACTS, ADMIN, draft, i)
        events = X.events_page(writable, e.events).rows
        assert len(events) == draft.doc["fees"][i]["events_count"]
        assert all(ev.id > finalized.watermark and finalized.period_from_ms <= ev.timestamp_ms
                   <= finalized.period_to_ms for ev in events)


def test_event_properties_read_as_the_engine_compares_them(writable):
    r = writable.ingest([{"transaction_id": "typed", "external_subscription_id": "sub_meridian_mlp", "code": "gpu_job",
                          "timestamp": "2026-11-20T10:00:00Z",
                          "properties": {"gpu_type": "H100-SXM", "gpu_count": 8, "duration_seconds": 3600.5,
                                         "preemptible": True, "note": None}}])
    assert r.ok
    row = meridian_draft(writable)
    e = X.explain_line(writable, CONTRACTS, ADMIN, row, fee_index(row, "gpu_hours (H100-SXM)"))
    typed = next(ev for p in all_events(writable, e.events, 200) for ev in p if ev.transaction_id == "typed")
    assert typed.properties == {"gpu_type": "H100-SXM", "gpu_count": "8", "duration_seconds": "3600.5",
                                "preemptible": "true"}


def test_late_events_under_a_new_revision_policy_wait_for_a_credit_note_and_a_replacing_invoice(writable):
    r = writable.ingest([{"transaction_id": "late-helix", "external_subscription_id": "sub_helix_training",
                          "code": "gpu_job", "timestamp": "2026-11-20T10:00:00Z",
                          "properties": {"gpu_type": "H200", "gpu_count": 8, "duration_seconds": 3600}}])
    assert r.ok
    effects = {e.invoice: e for e in X.late_events(writable, CONTRACTS, ADMIN)}
    assert effects["NWG-002-002"].target == "credit note and replacing invoice"
    assert effects["NWG-002-002"].amount is None


def test_late_events_say_which_invoice_they_change_and_how(store):
    effects = X.late_events(store, CONTRACTS, ADMIN)
    by_invoice = {e.invoice: e for e in effects}
    assert {"NWG-003-001", "NWG-004-001", "NWG-001-002"} <= set(by_invoice)
    assert by_invoice["NWG-003-001"].amount == Decimal("4.92")
