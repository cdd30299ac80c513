"""A voided invoice gives back what it consumed (Lago's void recredits the
coupons, the prepaid credits and the credit notes the invoice used; its usage
leaves the lifetime usage): the invoices after it apply them again.

The chain of a contract's invoices is recomputed from its start on each
invoice; ``Carried.voided`` names the invoices whose latest document is
voided, and the lifecycle fills it from the store (``voided_invoices``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from gpubill.service import lifecycle as L
from gpubill.service.invoicing import Carried, invoice_id, invoice_period
from gpubill.service.review import credit_notes_left
from gpubill.store.roles import Actor

from .conftest import BILL, event, ingest

COUPONS = [str(BILL / "coupons.bill")]
TERMS = [str(BILL / "terms.bill")]
ADMIN = Actor("ana", "admin")


def ms(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


def _invoice(store, paths, period: str, contract: str, voided=()):
    report = invoice_period(store, paths, period, contract, carried=Carried(voided=frozenset(voided)))
    (inv,) = [i for i in report.invoices if i.invoice_type == "subscription"]
    return inv


def _credits(inv) -> list[tuple[str, D]]:
    return [(c.code, c.amount) for c in inv.credits]


def test_a_voided_invoice_gives_its_coupon_back_to_the_invoices_after_it(store):
    # 30.00 once over 20.00 a month: January takes 20.00, February the 10.00 left, March nothing.
    jan = _invoice(store, COUPONS, "2025-01", "coupon_once_fixed")
    assert _credits(jan) == [("discount_1", D("20.00"))]
    assert _credits(_invoice(store, COUPONS, "2025-02", "coupon_once_fixed")) == [("discount_1", D("10.00"))]
    # January voided: February takes 20.00 again, March the 10.00 left.
    voided = [invoice_id(jan)]
    assert _credits(_invoice(store, COUPONS, "2025-02", "coupon_once_fixed", voided)) == [("discount_1", D("20.00"))]
    assert _credits(_invoice(store, COUPONS, "2025-03", "coupon_once_fixed", voided)) == [("discount_1", D("10.00"))]


def test_a_recurring_coupon_counts_only_the_invoices_that_stand(store):
    # 10 % on the first two invoices: January and February; February voided, March gets it.
    feb = _invoice(store, COUPONS, "2025-02", "coupon_recurring")
    assert _credits(feb) == [("discount_1", D("2.00"))]
    assert _credits(_invoice(store, COUPONS, "2025-03", "coupon_recurring")) == []
    assert _credits(_invoice(store, COUPONS, "2025-03", "coupon_recurring", [invoice_id(feb)])) == [
        ("discount_1", D("2.00"))]


def _progressive(store, period: str, voided=()) -> list:
    carried = Carried(voided=frozenset(voided))
    return list(invoice_period(store, TERMS, period, "t_progressive", progressive=True, carried=carried).invoices)


def _progressive_calls(day: str, n: int) -> list[dict]:
    return [event("s_progressive", "call", f"{day}T12:00:00Z") for _ in range(n)]


def test_a_voided_progressive_invoice_is_not_credited_by_the_ones_after_it(store):
    # April (tests/contracts/test_terms.py): progressive invoices of 120, 370 (crediting 120), 670 (crediting
    # 370), and the final invoice crediting 670.
    ingest(store, _progressive_calls("2026-04-03", 120) + _progressive_calls("2026-04-10", 250)
           + _progressive_calls("2026-04-20", 300))
    first, second, third, final = _progressive(store, "2026-04")
    # the second voided: the third credits the first's 120 (the 370 was never due), the final the third's 670
    _, _, third_now, final_now = _progressive(store, "2026-04", [invoice_id(second)])
    assert (third_now.fees_amount, third_now.progressive_billing_credit_amount) == (D(670), D(120))
    assert final_now.progressive_billing_credit_amount == D(670)
    # the third voided: the final credits the second's 370 and bills the other 300
    *_, final_now = _progressive(store, "2026-04", [invoice_id(third)])
    assert (final_now.progressive_billing_credit_amount, final_now.sub_total_excluding_taxes_amount) == (
        D(370), D(300))
    # what stands bills the period's 670 once either way
    assert first.sub_total_excluding_taxes_amount + third_now.sub_total_excluding_taxes_amount == D(670)


def test_a_voided_invoice_leaves_the_lifetime_usage_but_what_its_progressive_invoices_billed(store):
    # April: 150 calls pass the 100 threshold (a progressive invoice of 150); May: 120 more, 270 in the lifetime,
    # pass nothing (the next threshold is 300).
    ingest(store, _progressive_calls("2026-04-03", 150) + _progressive_calls("2026-05-03", 120))
    progressive, final = _progressive(store, "2026-04")
    assert [i.invoice_type for i in _progressive(store, "2026-05")] == ["subscription"]
    # April's final invoice voided: its progressive invoice still billed the 150
    assert [i.invoice_type for i in _progressive(store, "2026-05", [invoice_id(final)])] == ["subscription"]
    # both voided: April billed nothing, and May's 120 pass the 100 threshold
    both = [invoice_id(progressive), invoice_id(final)]
    assert [i.invoice_type for i in _progressive(store, "2026-05", both)] == ["progressive_billing", "subscription"]


def _calls(day: str, n: int) -> list[dict]:
    return [event("s_wallets", "call", f"{day}T12:00:00Z") for _ in range(n)]


def _stored(refreshed, contract: str = "t_wallets"):
    (row,) = [r for r in refreshed.invoices if r.contract == contract and r.invoice_type == "subscription"]
    return row


def _doc_credits(row) -> list[tuple[str, str]]:
    return [(c["item"]["code"], c["amount"]) for c in row.doc["credits"]]


def test_voiding_a_stored_invoice_gives_its_prepaid_credits_to_the_next_draft(store):
    # April: 22.00 (tax included) paid by credit_2 (5.00, expires April 30) and credit_1 (17.00 of 30.00).
    ingest(store, _calls("2026-04-10", 20) + _calls("2026-05-10", 20))
    april = _stored(L.refresh(store, TERMS, ADMIN, "2026-04", "c_wallets", now_ms=ms("2026-05-20")))
    april = L.finalize(store, TERMS, ADMIN, april.id, now_ms=ms("2026-05-20"))
    assert _doc_credits(april) == [("credit_2", "5.00"), ("credit_1", "17.00")]
    may = L.refresh(store, TERMS, ADMIN, "2026-05", "c_wallets", now_ms=ms("2026-06-02"))
    assert _doc_credits(_stored(may)) == [("credit_1", "13.00"), ("credit_3", "9.00")]
    L.void(store, ADMIN, april.id, "billed to the wrong customer", now_ms=ms("2026-06-02"))
    # credit_1 has its 30.00 again and pays all of May; credit_2's 5.00 came back expired (April 30).
    may = L.refresh(store, TERMS, ADMIN, "2026-05", "c_wallets", now_ms=ms("2026-06-03"))
    assert _doc_credits(_stored(may)) == [("credit_1", "22.00")]


def test_voiding_a_stored_invoice_gives_back_the_credit_note_credit_it_used(store):
    ingest(store, _calls("2026-04-10", 20) + _calls("2026-05-10", 20) + _calls("2026-06-10", 20))
    april = _stored(L.refresh(store, TERMS, ADMIN, "2026-04", "c_wallets", now_ms=ms("2026-05-20")))
    april = L.finalize(store, TERMS, ADMIN, april.id, now_ms=ms("2026-05-20"))
    note = L.credit_note(store, ADMIN, april.number, amount=D("10.00"), reason="other", now_ms=ms("2026-05-21"))
    may = _stored(L.refresh(store, TERMS, ADMIN, "2026-05", "c_wallets", now_ms=ms("2026-06-02")))
    may = L.finalize(store, TERMS, ADMIN, may.id, now_ms=ms("2026-06-02"))
    assert (note.number, "10.00") in _doc_credits(may)
    assert L.credit_left(store, note) == 0 and credit_notes_left(store._read())[("c_wallets", "USD")] == 0
    L.void(store, ADMIN, may.id, "duplicate", now_ms=ms("2026-06-03"))
    assert L.credit_left(store, note) == D("10.00")
    assert credit_notes_left(store._read())[("c_wallets", "USD")] == D("10.00")
    june = _stored(L.refresh(store, TERMS, ADMIN, "2026-06", "c_wallets", now_ms=ms("2026-07-02")))
    assert (note.number, "10.00") in _doc_credits(june)


def test_voiding_a_credit_notes_credit_leaves_what_earlier_invoices_used_and_gives_the_rest_to_none(store):
    ingest(store, _calls("2026-04-10", 20) + _calls("2026-05-10", 10) + _calls("2026-06-10", 20))
    april = _stored(L.refresh(store, TERMS, ADMIN, "2026-04", "c_wallets", now_ms=ms("2026-05-20")))
    april = L.finalize(store, TERMS, ADMIN, april.id, now_ms=ms("2026-05-20"))
    note = L.credit_note(store, ADMIN, april.number, amount=D("20.00"), reason="other", now_ms=ms("2026-05-21"))
    refund = L.credit_note(store, ADMIN, april.number, amount=D("1.00"), kind="refund", reason="other",
                           now_ms=ms("2026-05-21"))
    may = _stored(L.refresh(store, TERMS, ADMIN, "2026-05", "c_wallets", now_ms=ms("2026-06-02")))
    may = L.finalize(store, TERMS, ADMIN, may.id, now_ms=ms("2026-06-02"))
    assert (note.number, "11.00") in _doc_credits(may)  # May's 11.00 (tax included) from the note's 20.00
    assert L.credit_left(store, note) == D("9.00")
    voided, left = L.void_credit_note(store, ADMIN, note.number, "goodwill withdrawn", now_ms=ms("2026-06-03"))
    assert (voided.voided_ms, left, L.credit_left(store, voided)) == (ms("2026-06-03"), D("9.00"), 0)
    assert credit_notes_left(store._read()).get(("c_wallets", "USD"), 0) == 0
    # June gets none of it; May, finalized before, keeps what it used
    june = _stored(L.refresh(store, TERMS, ADMIN, "2026-06", "c_wallets", now_ms=ms("2026-07-02")))
    assert all(code != note.number for code, _ in _doc_credits(june))
    assert (note.number, "11.00") in _doc_credits(L.get_invoice(store, ADMIN, may.id))
    with pytest.raises(L.LifecycleError, match="voided before"):
        L.void_credit_note(store, ADMIN, note.number, "again")
    with pytest.raises(L.LifecycleError, match="carries no credit"):
        L.void_credit_note(store, ADMIN, refund.number, "a refund")
    with pytest.raises(L.LifecycleError, match="reason"):
        L.void_credit_note(store, ADMIN, refund.number, " ")


def test_a_credit_note_by_items_credits_each_fee_at_most_what_it_has_left(store):
    # April: one fee, 20 calls at 1.00, taxed 10 %: 22.00
    ingest(store, _calls("2026-04-10", 20))
    april = _stored(L.refresh(store, TERMS, ADMIN, "2026-04", "c_wallets", now_ms=ms("2026-05-20")))
    april = L.finalize(store, TERMS, ADMIN, april.id, now_ms=ms("2026-05-20"))
    amounts = [f["amount"] for f in april.doc["fees"]]
    k, n = amounts.index("20.00"), len(amounts)
    assert sorted(amounts) == ["0.00"] * (n - 1) + ["20.00"]  # the plan's other lines cost nothing

    def note(amount: str, items=None):
        return L.credit_note(store, ADMIN, april.number, amount=D(amount), items=items, reason="other",
                             now_ms=ms("2026-05-21"))

    first = note("5.50", [(k, D("5.00"))])  # 5.00 before tax + 0.50 of tax
    assert ([i["amount"] for i in first.doc["items"]], first.doc["taxes_amount"]) == (["5.00"], "0.50")
    with pytest.raises(L.LifecycleError, match="at most 15.00 USD before tax"):
        note("16.50", [(k, D("15.01"))])
    with pytest.raises(L.LifecycleError, match="add up to 11.00 USD with their taxes, not 11.02"):
        note("11.02", [(k, D("10.00"))])
    with pytest.raises(L.LifecycleError, match=f"has no line {n + 1}"):
        note("1.10", [(n, D("1.00"))])
    with pytest.raises(L.LifecycleError, match="above 0"):
        note("1.10", [((k + 1) % n, D("1.00"))])  # a fee of 0.00 has nothing to credit
    second = note("11.01", [(k, D("10.00"))])  # within a cent: the note is what was asked, its tax 1.01
    assert (second.total, second.doc["taxes_amount"]) == (D("11.01"), "1.01")
    # what is left: 22.00 - 16.51 = 5.49 of the invoice, 5.00 of the fee before tax (5.50 with tax)
    third = note("5.49")
    assert [i["amount"] for i in third.doc["items"]] == ["4.99"]
    assert [i["fee_index"] for i in third.doc["items"]] == [k]
    assert L.fee_rooms(april, [first, second, third])[k].left == D("0.01")
