"""The invoice lifecycle over a real store file: drafts, revisions, finalization, numbers, void,
credit notes, late events. Service calls with a fixed clock (the grace periods are days)."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

import pytest

from gpubill.service import lifecycle as L
from gpubill.service.lifecycle import LifecycleError
from gpubill.store import Store

from .conftest import ADMIN, CONTRACTS, DEC_02, DEC_20, gpubill, late_event, ms


def _refresh(store, now=DEC_20, customer=None):
    return L.refresh(store, CONTRACTS, ADMIN, "2026-11", customer, now_ms=now)


def _draft(store, contract: str):
    return next(r for r in L.list_invoices(store, ADMIN, contract=contract) if r.invoice_type == "subscription")


def test_refresh_stores_drafts_once_and_a_changed_draft_as_a_new_revision(store):
    first = _refresh(store)
    drafts = [r for r in first.invoices if r.status == "draft"]
    assert drafts and all(r.revision == 1 and r.number is None for r in drafts)
    assert not _refresh(store).changed  # same events, same contracts: nothing new
    quill = _draft(store, "quill_ai")
    store.ingest([late_event(store, "sub_quill_api", "late-in-grace-1")])
    again = _refresh(store)
    assert quill.id in again.changed
    now = _draft(store, "quill_ai")
    assert now.revision == 2 and now.content_hash != quill.content_hash
    revs = L.revisions(store, ADMIN, now)
    assert [r["revision"] for r in revs] == [1, 2] and revs[0]["content_hash"] == quill.content_hash


def test_revisions_and_finalized_invoices_refuse_edits_in_sqlite_itself(store, store_path):
    _refresh(store)
    done = L.finalize_due(store, CONTRACTS, ADMIN, now_ms=DEC_20)[0]
    db = sqlite3.connect(store_path)
    with pytest.raises(sqlite3.DatabaseError, match="immutable"):
        db.execute("UPDATE invoice_revisions SET body = '{}'")
    with pytest.raises(sqlite3.DatabaseError, match="never changes"):
        db.execute("UPDATE invoices SET body = '{}' WHERE id = ?", (done.id,))
    with pytest.raises(sqlite3.DatabaseError, match="never deleted"):
        db.execute("DELETE FROM invoices WHERE id = ?", (done.id,))
    db.close()


def test_finalize_due_respects_grace_and_numbers_follow_lago(store):
    _refresh(store)
    assert L.finalize_due(store, CONTRACTS, ADMIN, now_ms=DEC_02) == []
    done = L.finalize_due(store, CONTRACTS, ADMIN, now_ms=DEC_20)
    assert done and all(r.status == "finalized" and r.content_hash for r in done)
    numbers = [r.number for r in L.list_invoices(store, ADMIN, status="finalized")]
    assert len(numbers) == len(set(numbers))
    eu = sorted(n for n in numbers if n.startswith("NWE-"))  # per_entity: P-YYYYMM-seq, one sequence
    assert [int(n.rsplit("-", 1)[1]) for n in eu] == list(range(1, len(eu) + 1))
    assert all(n.startswith("NWE-202612-") for n in eu)
    us = [n for n in numbers if n.startswith("NWG-")]  # per_customer: P-customer seq-invoice seq
    by_customer: dict = {}
    for n in us:
        _, cust, seq = n.split("-")
        by_customer.setdefault(cust, []).append(int(seq))
    assert all(sorted(s) == list(range(1, len(s) + 1)) for s in by_customer.values())


def test_a_finalized_invoice_never_changes(store, store_path):
    _refresh(store)
    quill = L.finalize(store, CONTRACTS, ADMIN, _draft(store, "quill_ai").id, now_ms=DEC_20)
    store.ingest([late_event(store, "sub_quill_api", f"late-after-final-{i}") for i in range(3)])
    _refresh(store)  # refresh, late events, re-rating: the finalized invoice stays as it was
    with Store(store_path) as other:  # a second process's view and refresh
        L.refresh(other, CONTRACTS, ADMIN, "2026-11", now_ms=DEC_20)
    after = L.get_invoice(store, ADMIN, quill.number)
    assert (after.content_hash, after.doc, after.number) == (quill.content_hash, quill.doc, quill.number)
    with pytest.raises(LifecycleError, match="already finalized"):
        L.finalize(store, CONTRACTS, ADMIN, quill.id, now_ms=DEC_20)


def test_late_events_with_next_invoice_policy_bill_the_difference_on_the_next_draft(store):
    _refresh(store)
    quill = L.finalize(store, CONTRACTS, ADMIN, _draft(store, "quill_ai").id, now_ms=DEC_20)
    store.ingest([late_event(store, "sub_quill_api", f"late-{i}") for i in range(5)])
    dec = L.refresh(store, CONTRACTS, ADMIN, "2026-12", "quill-ai", now_ms=ms(2027, 1, 2))
    nxt = next(r for r in dec.invoices if r.contract == "quill_ai" and r.invoice_type == "subscription")
    late = [f for f in nxt.doc["fees"] if f["item"]["kind"] == "late"]
    assert late and all(f["adjusts_invoice_number"] == quill.number for f in late)
    catalog, _ = L.load_catalog(CONTRACTS)
    recomputed = L.recomputed(store, catalog, [quill], "fast", L.carried(store, catalog, None, late=False))[quill.id]
    from gpubill.service.invoice_report import invoice_json
    delta = Decimal(invoice_json(recomputed)["fees_amount"]) - Decimal(quill.doc["fees_amount"])
    assert sum(Decimal(f["amount"]) for f in late) == delta != 0


def test_late_events_with_new_revision_policy_issue_a_credit_note_and_a_replacing_invoice(store):
    _refresh(store)
    meridian = L.finalize(store, CONTRACTS, ADMIN, _draft(store, "meridian_bank").id, now_ms=DEC_20)
    store.ingest([late_event(store, "sub_meridian_mlp", "late-m-1")])
    r = _refresh(store)
    assert len(r.settled) == 1 and meridian.number in r.settled[0]
    notes = L.list_credit_notes(store, ADMIN, invoice_id=meridian.id)
    assert [n.number for n in notes] == [f"{meridian.number}-CN001"]
    assert notes[0].total == Decimal(meridian.doc["total_amount"])
    new = next(x for x in L.list_invoices(store, ADMIN, contract="meridian_bank") if x.replaces == meridian.id)
    assert new.status == "finalized" and new.number != meridian.number
    assert not _refresh(store).settled  # settled once


def test_late_events_after_a_replacement_replace_the_replacing_invoice_in_turn(store):
    _refresh(store)
    meridian = L.finalize(store, CONTRACTS, ADMIN, _draft(store, "meridian_bank").id, now_ms=DEC_20)
    store.ingest([late_event(store, "sub_meridian_mlp", "late-m-1")])
    _refresh(store)
    first = next(x for x in L.list_invoices(store, ADMIN, contract="meridian_bank") if x.replaces == meridian.id)
    store.ingest([late_event(store, "sub_meridian_mlp", "late-m-2")])  # late again: the replacing invoice's turn
    r = _refresh(store)
    assert len(r.settled) == 1 and r.settled[0].startswith(f"{first.number}: credit note {first.number}-CN001")
    second = next(x for x in L.list_invoices(store, ADMIN, contract="meridian_bank") if x.replaces == first.id)
    def events(row):
        return sum(f["events_count"] for f in row.doc["fees"])
    assert second.status == "finalized" and events(second) == events(first) + 1  # the late event billed
    assert L.first_document(store._read(), second) == meridian.id  # all three are documents of one invoice
    L.void(store, ADMIN, second.id, "billed twice", now_ms=DEC_20)
    assert L.voided_invoices(store._read()) == {meridian.id}  # its latest document is voided: it gives back
    assert not _refresh(store).settled


def test_credit_notes_are_capped_numbered_and_consumed_by_the_next_invoice(store):
    _refresh(store)
    helix = L.finalize(store, CONTRACTS, ADMIN, _draft(store, "helix_labs").id, now_ms=DEC_20)
    total = Decimal(helix.doc["sub_total_including_taxes_amount"])
    cn = L.credit_note(store, ADMIN, helix.number, amount=Decimal("100.00"), reason="other",
                       description="goodwill", now_ms=DEC_20)
    assert cn.number == f"{helix.number}-CN001" and cn.total == Decimal("100.00")
    assert sum(Decimal(i["amount"]) for i in cn.doc["items"]) + Decimal(cn.doc["taxes_amount"]) == cn.total
    assert sum(Decimal(t["amount"]) for t in cn.doc["applied_taxes"]) == Decimal(cn.doc["taxes_amount"])
    with pytest.raises(LifecycleError, match="at most"):
        L.credit_note(store, ADMIN, helix.number, amount=total, reason="other", now_ms=DEC_20)
    cn2 = L.credit_note(store, ADMIN, helix.number, percent=Decimal(1), kind="refund", reason="other", now_ms=DEC_20)
    assert cn2.number.endswith("-CN002")
    dec = L.refresh(store, CONTRACTS, ADMIN, "2026-12", "helix-labs", now_ms=ms(2027, 1, 2))
    nxt = next(r for r in dec.invoices if r.contract == "helix_labs" and r.invoice_type == "subscription")
    used = [c for c in nxt.doc["credits"] if c["item"]["type"] == "credit_note"]
    assert [c["item"]["code"] for c in used] == [cn.number]  # the refund note carries no credit
    assert Decimal(used[0]["amount"]) == min(Decimal("100.00"), Decimal(nxt.doc["sub_total_including_taxes_amount"]))


def test_gpubill_invoice_prices_a_period_as_its_stored_draft_is(store, store_path):
    # the store carries into December's draft: Helix's credit note, Pixelforge's voided November (its coupon
    # back), Quill's late events (lines on December's draft)
    _refresh(store)
    helix = L.finalize(store, CONTRACTS, ADMIN, _draft(store, "helix_labs").id, now_ms=DEC_20)
    L.credit_note(store, ADMIN, helix.number, amount=Decimal("100.00"), reason="other", now_ms=DEC_20)
    pixel = L.finalize(store, CONTRACTS, ADMIN, _draft(store, "pixelforge_studios").id, now_ms=DEC_20)
    L.void(store, ADMIN, pixel.id, "issued twice", now_ms=DEC_20)
    quill = L.finalize(store, CONTRACTS, ADMIN, _draft(store, "quill_ai").id, now_ms=DEC_20)
    store.ingest([late_event(store, "sub_quill_api", f"late-{i}") for i in range(5)])
    dec = L.refresh(store, CONTRACTS, ADMIN, "2026-12", None, now_ms=ms(2027, 1, 2))
    stored = {r.contract: r.doc for r in dec.invoices if r.invoice_type == "subscription"}
    r = gpubill("invoice", "--store", store_path, "--contracts", "examples", "--period", "2026-12", "--format", "json")
    assert r.returncode == 0, r.stderr
    priced = {d["contract"]: d for d in json.loads(r.stdout)["invoices"]}
    assert set(priced) == set(stored)
    def priced_as(doc):  # the clauses name the files as each was given (a relative or an absolute path)
        return [[{k: v for k, v in line.items() if k != "clause"} for line in doc[part]] for part in ("fees", "credits")]
    for name in stored:
        assert (priced[name]["total_amount"], priced_as(priced[name])) == (
            stored[name]["total_amount"], priced_as(stored[name])), name
    credits = {c["item"]["type"] for name in ("helix_labs", "pixelforge_studios") for c in stored[name]["credits"]}
    assert {"credit_note", "coupon"} <= credits
    assert any(f["item"]["kind"] == "late" and f["adjusts_invoice_number"] == quill.number
               for f in stored["quill_ai"]["fees"])


def test_a_voided_invoice_is_regenerated_once_with_what_it_consumed_applied_again(store):
    _refresh(store)
    pixel = L.finalize(store, CONTRACTS, ADMIN, _draft(store, "pixelforge_studios").id, now_ms=DEC_20)
    with pytest.raises(LifecycleError, match="only a voided invoice"):
        L.regenerate(store, CONTRACTS, ADMIN, pixel.id, now_ms=DEC_20)
    L.void(store, ADMIN, pixel.id, "wrong billing address", now_ms=DEC_20)
    assert L.voided_invoices(store._read()) == {pixel.id}
    again = L.regenerate(store, CONTRACTS, ADMIN, pixel.number, now_ms=DEC_20)
    assert (again.status, again.replaces, again.doc["replaces_invoice_number"]) == ("finalized", pixel.id, pixel.number)
    assert again.number not in (None, pixel.number)
    # the same events and terms: the same invoice, its coupon (250 USD off each of six invoices) used again
    assert [(c["item"]["code"], c["amount"]) for c in again.doc["credits"]] == [("discount_1", "250.00")]
    assert (again.doc["fees"], again.doc["total_amount"]) == (pixel.doc["fees"], pixel.doc["total_amount"])
    assert L.voided_invoices(store._read()) == frozenset()  # the period stands again: nothing given back
    with pytest.raises(LifecycleError, match=f"regenerated before, as {again.number}"):
        L.regenerate(store, CONTRACTS, ADMIN, pixel.id, now_ms=DEC_20)


def test_void_keeps_the_number_and_needs_a_finalized_invoice_and_a_reason(store):
    _refresh(store)
    draft = _draft(store, "pixelforge_studios")
    with pytest.raises(LifecycleError, match="only a finalized"):
        L.void(store, ADMIN, draft.id, "mistake")
    done = L.finalize(store, CONTRACTS, ADMIN, draft.id, now_ms=DEC_20)
    with pytest.raises(LifecycleError, match="reason"):
        L.void(store, ADMIN, done.id, " ")
    v = L.void(store, ADMIN, done.id, "wrong customer")
    assert (v.status, v.number, v.content_hash) == ("voided", done.number, done.content_hash)


FINALIZER = """
import sys
from gpubill.service import lifecycle as L
from gpubill.store import Store
from gpubill.store.roles import Actor
path, now, ids = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
with Store(path) as s:
    a = Actor("p", "approver")
    for i in ids:
        try:
            L.finalize(s, [{contracts!r}], a, i, now_ms=now)
        except L.LifecycleError:
            pass  # the other process took it
    L.finalize_due(s, [{contracts!r}], a, now_ms=now)
"""


def test_two_processes_finalizing_at_once_take_unique_gapless_numbers(store, store_path):
    import subprocess
    import sys

    _refresh(store)
    drafts = [r.id for r in L.list_invoices(store, ADMIN, status="draft")]
    code = FINALIZER.format(contracts=CONTRACTS[0])
    procs = [subprocess.Popen([sys.executable, "-c", code, str(store_path), str(DEC_20), *ids])
             for ids in (drafts, drafts[::-1])]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    rows = L.list_invoices(store, ADMIN)
    assert all(r.status == "finalized" for r in rows)
    numbers = [r.number for r in rows]
    assert len(numbers) == len(set(numbers))
    seqs: dict = {}
    for n in numbers:
        prefix, group, seq = n.split("-")
        seqs.setdefault((prefix, group if prefix == "NWG" else ""), []).append(int(seq))
    assert all(sorted(v) == list(range(1, len(v) + 1)) for v in seqs.values()), seqs
