"""Invoice properties over generated usage (hypothesis), from a real store.

The catalog is ``bill/properties.bill``: three contracts on two plans with
every term an invoice applies (fees in advance and in arrears, graduated,
grouped and pay-in-advance charges, a spending minimum, a commitment,
coupons of every kind, two taxes, prepaid credits, failure and preemption
policies, progressive billing), and a fourth contract with the third's terms
but no progressive billing.  Usage is drawn over April and May 2025; May is
invoiced, so the contracts whose terms carry across invoices have April's
invoices computed first.  Held, for every draw:

* each invoice's lines add up to its fees, and its totals follow Lago's
  order exactly; the per-fee coupon (and progressive) shares add up to the
  invoice's coupons (and progressive credit); the tax is the rounded sum of
  the unrounded per-fee taxes;
* the same events ingested in any order and split over several ingest calls
  give a byte-identical invoice document;
* both engines give the same document;
* a period's progressive invoices and its final invoice bill, before tax,
  what one invoice without progressive billing bills, and the same unrounded
  taxes.
"""

from __future__ import annotations

from decimal import Decimal as D

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpubill.service.events import Store
from gpubill.service.invoice_report import report_json
from gpubill.service.invoicing import invoice_period

from .conftest import BILL, event, ingest

CATALOG = [str(BILL / "properties.bill")]
PERIOD = "2025-05"
SUBSCRIPTIONS = ("sub_props_a", "sub_props_b", "sub_props_c")
PROGRESSIVE, PLAIN = "sub_props_c", "sub_props_c_plain"
CENT = D("0.01")

PROPERTY = settings(max_examples=15, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def timestamps(draw) -> str:
    month = draw(st.sampled_from([4, 5]))
    day = draw(st.integers(1, 30))
    return f"2025-{month:02d}-{day:02d}T{draw(st.integers(0, 23)):02d}:{draw(st.sampled_from([0, 17, 59])):02d}:00Z"


gpu_job = st.fixed_dictionaries({
    "code": st.just("gpu_job"),
    "gpu_type": st.sampled_from(["A100", "H100"]),
    "gpu_count": st.sampled_from([8, 1, 2]),
    "duration_seconds": st.sampled_from([36000, 60, 1800, 5400]),
    "end_reason": st.sampled_from(["failed_infrastructure", "completed", "failed_user", "preempted"]),
})
call = st.fixed_dictionaries({
    "code": st.just("call"),
    "model": st.sampled_from(["m1", "m2"]),
    "output_tokens": st.sampled_from([250_000, 0, 1500]),
})


@st.composite
def usage(draw) -> list[dict]:
    """Events of the three contracts over April and May; the progressive
    contract's events are sent to its plain twin too."""
    out = []
    for _ in range(draw(st.integers(3, 30))):
        sub = draw(st.sampled_from(SUBSCRIPTIONS))
        props = dict(draw(st.one_of(gpu_job, call)))
        code, at = props.pop("code"), draw(timestamps())
        out.append(event(sub, code, at, **props))
        if sub == PROGRESSIVE:
            out.append(event(PLAIN, code, at, **props))
    return out


def invoices_json(store, engine: str = "fast") -> bytes:
    report = invoice_period(store, CATALOG, PERIOD, engine=engine, progressive=True)
    assert report.unrated == ()
    return orjson.dumps(report_json(report))


def _store(tmp_path, name: str) -> Store:
    return Store(tmp_path / f"{name}.db", create=True)


# ------------------------------------------------------------------ lines and totals

def cents(inv: dict, name: str) -> int:
    return inv[f"{name}_cents"]


def check_totals(inv: dict) -> None:
    fees = inv["fees"]
    assert sum(f["amount_cents"] for f in fees) == cents(inv, "fees_amount")
    assert cents(inv, "sub_total_excluding_taxes_amount") == (
        cents(inv, "fees_amount") - cents(inv, "progressive_billing_credit_amount") - cents(inv, "coupons_amount"))
    assert cents(inv, "sub_total_including_taxes_amount") == (
        cents(inv, "sub_total_excluding_taxes_amount") + cents(inv, "taxes_amount"))
    assert cents(inv, "total_amount") == (
        cents(inv, "sub_total_including_taxes_amount") - cents(inv, "credit_notes_amount")
        - cents(inv, "prepaid_credit_amount"))
    assert sum(D(f["precise_coupons_amount"]) for f in fees) == D(inv["coupons_amount"])
    assert sum(D(f["precise_progressive_credit_amount"]) for f in fees) == D(inv["progressive_billing_credit_amount"])
    by_kind: dict = {}
    for c in inv["credits"]:
        by_kind[c["item"]["type"]] = by_kind.get(c["item"]["type"], 0) + c["amount_cents"]
    assert by_kind.get("coupon", 0) == cents(inv, "coupons_amount")
    assert by_kind.get("wallet", 0) == cents(inv, "prepaid_credit_amount")
    precise_tax = sum((D(f["taxes_precise_amount"]) for f in fees), D(0))
    assert sum((D(t["precise_amount"]) for t in inv["applied_taxes"]), D(0)) == precise_tax
    assert D(inv["taxes_amount"]) == precise_tax.quantize(CENT, rounding="ROUND_HALF_UP")


@PROPERTY
@given(events=usage())
def test_lines_add_up_to_the_totals_in_lagos_order(tmp_path_factory, events):
    tmp = tmp_path_factory.mktemp("totals")
    with _store(tmp, "s") as store:
        ingest(store, events)
        doc = orjson.loads(invoices_json(store))
    assert {i["contract"] for i in doc["invoices"]} == {"props_a", "props_b", "props_c", "props_c_plain"}
    for inv in doc["invoices"]:
        check_totals(inv)


# ------------------------------------------------------------------ any split, any order

@PROPERTY
@given(events=usage(), data=st.data())
def test_any_split_and_order_of_ingestion_gives_the_same_invoices(tmp_path_factory, events, data):
    tmp = tmp_path_factory.mktemp("split")
    shuffled = data.draw(st.permutations(events))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=3)))
    parts = [shuffled[a:b] for a, b in zip([0] + cuts, cuts + [len(events)])]
    with _store(tmp, "whole") as whole, _store(tmp, "split") as split:
        ingest(whole, events)
        for part in parts:
            if part:
                ingest(split, part, chunk=data.draw(st.integers(1, 5)))
        assert invoices_json(split) == invoices_json(whole)


# ------------------------------------------------------------------ two engines

@PROPERTY
@given(events=usage())
def test_both_engines_give_the_same_invoices(tmp_path_factory, events):
    tmp = tmp_path_factory.mktemp("engines")
    with _store(tmp, "s") as store:
        ingest(store, events)
        assert invoices_json(store, "reference") == invoices_json(store, "fast")


# ------------------------------------------------------------------ progressive billing

def billed(inv: dict) -> list:
    """What each line bills: its type, charge, dimensions, units and amount."""
    return [(f["item"]["type"], f["item"]["charge"], f["item"]["kind"], f["dimensions"], f["units"], f["amount"])
            for f in inv["fees"]]


@PROPERTY
@given(events=usage())
def test_progressive_invoices_and_the_final_one_bill_what_one_invoice_would(tmp_path_factory, events):
    tmp = tmp_path_factory.mktemp("progressive")
    with _store(tmp, "s") as store:
        ingest(store, events)
        doc = orjson.loads(invoices_json(store))
    progressive = [i for i in doc["invoices"] if i["external_subscription_id"] == PROGRESSIVE]
    (plain,) = [i for i in doc["invoices"] if i["external_subscription_id"] == PLAIN]
    assert progressive[-1]["invoice_type"] == "subscription"
    assert billed(progressive[-1]) == billed(plain)
    assert sum(cents(i, "sub_total_excluding_taxes_amount") for i in progressive) == (
        cents(plain, "sub_total_excluding_taxes_amount"))
    assert sum(D(f["taxes_precise_amount"]) for i in progressive for f in i["fees"]) == (
        sum(D(f["taxes_precise_amount"]) for f in plain["fees"]))
