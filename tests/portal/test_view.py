"""The portal's data (gpubill.service.portal.view) on a real demo store: amounts equal `gpubill invoice` to the
cent, one customer's data only, kept values that follow new events, estimates equal the estimator's."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from gpubill.service.alerts import spend
from gpubill.service.estimate import Estimator, Job
from gpubill.service.events import open_event_store
from gpubill.service.invoicing import invoice_catalog
from gpubill.service.portal import kept
from gpubill.service.portal.view import Portal, UnknownCustomer
from gpubill.service.rating import ServiceError, load_catalog
from gpubill.store import Store

from .conftest import PERIOD, ROOT, gpubill, usage_amount

CONTRACTS = [str(ROOT / "examples")]


def ms(*args) -> int:
    return int(dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp() * 1000)


NOW = ms(2026, 12, 6, 9, 30)  # the day after the demo's billing run (as tests/tui): November's drafts are pending


@pytest.fixture(scope="module")
def portal(demo_store):
    p = Portal(demo_store, CONTRACTS, now_ms=lambda: NOW)
    yield p
    p.close()


@pytest.fixture
def store_copy(demo_store, tmp_path) -> Path:
    p = tmp_path / "gpubill.db"
    shutil.copy(demo_store, p)
    return p


def cli_invoice(store: Path, customer: str, period: str = PERIOD) -> list[dict]:
    r = gpubill("invoice", "--store", store, "--contracts", "examples", "--period", period, "--customer", customer,
                "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["invoices"]


# ---------------------------------------------------------------- amounts to the cent


@pytest.mark.parametrize("customer", ["meridian-bank", "lumen-bio", "helix-labs"])
def test_usage_and_total_equal_gpubill_invoice(portal, demo_store, customer):
    docs = cli_invoice(demo_store, customer)
    u = portal.usage(customer, PERIOD)
    assert [s.subscription for s in u.subscriptions] == [d["external_subscription_id"] for d in docs]
    for s, d in zip(u.subscriptions, docs):
        assert s.usage_amount == usage_amount(d)
        assert s.total == Decimal(d["total_amount"])
        assert [(f.name, f.amount) for f in s.lines] == [(f["item"]["name"], Decimal(f["amount"])) for f in d["fees"]]
        assert s.period_label == d["billing_period"]["label"]


def test_gpu_types_and_days_add_up(portal):
    (s,) = portal.usage("meridian-bank", PERIOD).subscriptions
    with_type = [f for f in s.lines if f.fee_type == "charge" and "gpu_type" in f.dimensions]
    assert with_type and sum(g.amount or 0 for g in s.by_gpu_type) == sum(f.amount for f in with_type)
    hours = {g.gpu_type: g.gpu_hours for g in s.by_gpu_type}
    assert set(s.daily.series) == {g for g, h in hours.items() if h}
    for gpu, per_day in s.daily.series.items():
        assert len(per_day) == len(s.daily.days) == 30
        assert sum(per_day) == pytest.approx(hours[gpu])
    assert sum(s.daily.totals) == pytest.approx(sum(hours.values()))
    assert sum(r.gpu_hours for r in s.by_region) == pytest.approx(sum(hours.values()))
    assert sum(s.daily.events) == s.events >= sum(g.events for g in s.by_gpu_type) > 0
    assert s.daily.days[0] == "2026-11-01" and s.daily.days[-1] == "2026-11-30"


def test_current_period_is_the_live_draft(portal, demo_store):
    (doc,) = cli_invoice(demo_store, "lumen-bio", "2026-12-06")
    u = portal.usage("lumen-bio")
    assert u.period == "2026-12-06" and u.subscriptions[0].total == Decimal(doc["total_amount"])
    live = portal.invoice("lumen-bio", "current")
    assert live.status == "live" and live.totals["total_amount"] == Decimal(doc["total_amount"])
    assert live.downloads == ("pdf", "csv", "json")
    with pytest.raises(ServiceError):
        portal.export("lumen-bio", "current", "ubl")  # a draft is never UBL


# ---------------------------------------------------------------- one customer only


def test_another_customers_invoice_is_none(portal):
    helix = portal.invoices("helix-labs").invoices
    assert helix and all(portal.invoice("helix-labs", i.id) is not None for i in helix)
    for i in helix:
        for ref in filter(None, (i.id, i.number)):
            assert portal.invoice("meridian-bank", ref) is None
            assert portal.export("meridian-bank", ref, "pdf") is None
    mine = {i.id for i in portal.invoices("meridian-bank").invoices}
    assert mine and not mine & {i.id for i in helix}
    assert portal.invoice("meridian-bank", "no-such-invoice") is None


def test_unknown_customer(portal):
    assert portal.customer("nobody") is None
    assert portal.invoice("nobody", "current") is None and portal.export("nobody", "current", "pdf") is None
    for call in (portal.usage, portal.standing, portal.invoices, portal.alerts):
        with pytest.raises(UnknownCustomer):
            call("nobody")


def test_customer_and_alerts(portal):
    c = portal.customer("lumen-bio")
    assert c.name == "Lumen Biotherapeutics GmbH"
    assert [(s.subscription, s.currency, s.entity_code) for s in c.subscriptions] == [
        ("sub_lumen_fra", "EUR", "gpucloud_eu")]
    alerts = portal.alerts("lumen-bio")
    assert alerts and {a.subscription for a in alerts} == {"sub_lumen_fra"}
    assert [a.fired_ms for a in alerts] == sorted((a.fired_ms for a in alerts), reverse=True)
    assert portal.alerts("helix-labs") == ()


def test_stored_invoice_exports(portal):
    final = next(i for i in portal.invoices("helix-labs").invoices if i.status == "finalized")
    v = portal.invoice("helix-labs", final.number)
    assert v.id == final.id and v.downloads == ("pdf", "ubl", "csv", "json")
    data, name, media = portal.export("helix-labs", final.number, "pdf")
    assert data.startswith(b"%PDF") and name == f"{final.number}.pdf" and media == "application/pdf"
    data, name, _ = portal.export("helix-labs", final.id, "json")
    assert json.loads(data)["total_amount"] == format(final.total, "f") and name.endswith(".json")
    assert b"<Invoice" in portal.export("helix-labs", final.number, "ubl")[0]


def test_credit_note_exports_to_its_customer_only(portal):
    (note,) = portal.invoices("helix-labs").credit_notes
    data, name, media = portal.export("helix-labs", note.number, "pdf")
    assert data.startswith(b"%PDF") and name == f"{note.number}.pdf"
    assert json.loads(portal.export("helix-labs", note.id, "json")[0])["number"] == note.number
    assert portal.export("meridian-bank", note.number, "pdf") is None
    with pytest.raises(ServiceError):
        portal.export("helix-labs", note.number, "csv")


def test_pages_from_many_threads_answer_as_one(demo_store):
    customers = ["meridian-bank", "lumen-bio", "helix-labs", "quill-ai", "cirrus-exchange", "pixelforge"]
    one = Portal(demo_store, CONTRACTS, now_ms=lambda: NOW)
    many = Portal(demo_store, CONTRACTS, now_ms=lambda: NOW)
    try:
        want = [(one.usage(c, PERIOD), one.standing(c)) for c in customers]
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda c: (many.usage(c, PERIOD), many.standing(c)), customers * 3))
        assert got == want * 3
    finally:
        one.close()
        many.close()


# ---------------------------------------------------------------- standing


def test_standing_budget_is_the_live_drafts_spend(portal, demo_store):
    catalog, _ = load_catalog(CONTRACTS)
    with open_event_store(demo_store, readonly=True, create=False) as store:
        (inv,) = invoice_catalog(store, catalog, "2026-12-06", "lumen-bio").invoices
    (s,) = portal.standing("lumen-bio").subscriptions
    assert s.budget.spend == spend(inv) and s.budget.amount == Decimal(80000)
    assert s.budget.thresholds == ("50%", "80%", "100%") and s.budget.fired  # the demo fired December's alerts
    (r,) = s.reservations
    assert r.gpu_type == "H100-SXM" and r.reserved == Decimal(16 * 24 * 31) and 0 <= r.used <= r.reserved
    (c,) = s.commitments
    assert c.amount == Decimal(300000) and c.counted >= inv.fees_amount


# ---------------------------------------------------------------- kept values follow the store


def gpu_event(txn: str, at_ms: int, hours: int = 5) -> dict:
    return {"transaction_id": txn, "external_subscription_id": "sub_meridian_mlp", "code": "gpu_job",
            "timestamp": at_ms // 1000,
            "properties": {"gpu_type": "H100-SXM", "gpu_count": "8", "duration_seconds": str(hours * 3600),
                           "region": "us-east", "end_reason": "completed", "avg_utilization": "0.9"}}


def test_a_new_event_shows_once_recomputed(store_copy):
    clock = [NOW]
    p = Portal(store_copy, CONTRACTS, now_ms=lambda: clock[0])
    try:
        before = p.usage("meridian-bank", PERIOD)
        assert p.usage("meridian-bank", PERIOD) is before  # kept: nothing changed
        with Store(store_copy) as s:
            s.ingest([{**gpu_event("other", ms(2026, 11, 20)), "external_subscription_id": "sub_helix_training"}])
        assert p.usage("meridian-bank", PERIOD) is before  # another customer's event changes nothing here
        with Store(store_copy) as s:
            s.ingest([gpu_event("portal-1", ms(2026, 11, 20))])
        assert p.usage("meridian-bank", PERIOD) is before  # changed: recomputed in the background meanwhile
        clock[0] += kept.STALE_MS  # the kept value is now that old: the request waits for the recomputation
        after = p.usage("meridian-bank", PERIOD)
        (b,), (a,) = before.subscriptions, after.subscriptions
        assert a.events == b.events + 1
        (doc,) = cli_invoice(store_copy, "meridian-bank")
        assert a.usage_amount == usage_amount(doc) > b.usage_amount
        h100 = {g.gpu_type: g for g in a.by_gpu_type}["H100-SXM"]
        assert h100.gpu_hours == pytest.approx({g.gpu_type: g for g in b.by_gpu_type}["H100-SXM"].gpu_hours + 40)
        assert p.usage("meridian-bank", PERIOD) is after
    finally:
        p.close()


def test_a_recomputed_value_is_answered_without_waiting(store_copy):
    p = Portal(store_copy, CONTRACTS, now_ms=lambda: NOW)
    try:
        before = p.standing("lumen-bio")
        with Store(store_copy) as s:
            event = gpu_event("dec-1", ms(2026, 12, 5))  # A100s: outside the H100 reservation, so it costs
            event["properties"]["gpu_type"] = "A100-80GB"
            s.ingest([{**event, "external_subscription_id": "sub_lumen_fra"}])
        assert p.standing("lumen-bio") is before
        p.kept.settle()
        after = p.standing("lumen-bio")
        assert after is not before and after.subscriptions[0].budget.spend > before.subscriptions[0].budget.spend
    finally:
        p.close()


def test_the_least_recently_asked_for_value_is_the_one_let_go(demo_store):
    p = Portal(demo_store, CONTRACTS, now_ms=lambda: NOW)
    p.kept.most = 2
    try:
        meridian, lumen = p.usage("meridian-bank", PERIOD), p.usage("lumen-bio", PERIOD)
        assert p.usage("meridian-bank", PERIOD) is meridian  # asked for again: now the most recent
        p.usage("helix-labs", PERIOD)  # a third: lumen-bio's, the least recent, goes
        assert p.usage("meridian-bank", PERIOD) is meridian
        again = p.usage("lumen-bio", PERIOD)
        assert again is not lumen and again == lumen  # computed again, the same
    finally:
        p.close()


def test_the_pages_follow_the_stored_invoices(store_copy):
    p = Portal(store_copy, CONTRACTS, now_ms=lambda: NOW)
    try:
        usage, standing = p.usage("lumen-bio", PERIOD), p.standing("lumen-bio")
        assert p.usage("lumen-bio", PERIOD) is usage  # nothing changed: kept
        draft = next(i for i in p.invoices("lumen-bio").invoices if i.status == "draft")
        r = gpubill("invoices", "finalize", draft.id, "--store", store_copy, "--contracts", "examples", "--yes")
        assert r.returncode == 0, r.stderr
        p.standing("lumen-bio"), p.usage("lumen-bio", PERIOD)
        p.kept.settle()
        assert p.standing("lumen-bio") is not standing  # recomputed: a stored invoice changed
        again = p.usage("lumen-bio", PERIOD)
        assert again is not usage and again == usage  # priced again with what the store carries: the same
        assert p.invoice("lumen-bio", draft.id).status == "finalized"
    finally:
        p.close()


def test_a_credit_note_is_on_the_live_draft_as_on_the_stored_one(store_copy):
    # Cirrus's November invoice (finalized by the demo) gets a credit note; December's live draft applies it
    december = ms(2026, 12, 20)
    p = Portal(store_copy, CONTRACTS, now_ms=lambda: december)
    try:
        before = p.invoice("cirrus-exchange", "current")
        final = next(i for i in p.invoices("cirrus-exchange").invoices if i.status == "finalized")
        r = gpubill("credit-note", final.number, "--amount", "100.00", "--reason", "other", "--yes",
                    "--store", store_copy)
        assert r.returncode == 0, r.stderr
        p.invoice("cirrus-exchange", "current")
        p.kept.settle()
        after = p.invoice("cirrus-exchange", "current")
        notes = "credit_notes_amount"
        assert after.totals[notes] == before.totals[notes] + Decimal("100.00")
        (doc,) = [d for d in cli_invoice(store_copy, "cirrus-exchange", "2026-12") if d["invoice_type"] == "subscription"]
        assert {k: Decimal(doc[k]) for k in (notes, "total_amount")} == {
            k: after.totals[k] for k in (notes, "total_amount")}
        r = gpubill("credit-note", "void", f"{final.number}-CN001", "--reason", "withdrawn", "--yes",
                    "--store", store_copy)
        assert r.returncode == 0, r.stderr
        p.invoice("cirrus-exchange", "current")
        p.kept.settle()
        assert p.invoice("cirrus-exchange", "current").totals == before.totals  # its credit voided: as before
    finally:
        p.close()


def test_contracts_compiled_again_when_a_file_changes(tmp_path, store_copy):
    contracts = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", contracts)
    p = Portal(store_copy, [str(contracts)], now_ms=lambda: NOW)
    try:
        assert p.customer("sunbeam-robotics").name == "Sunbeam Robotics"
        p.reload_contracts()
        assert p.customer("sunbeam-robotics").name == "Sunbeam Robotics"
        f = contracts / "contracts" / "sunbeam_robotics.bill"
        f.write_text(f.read_text().replace('name "Sunbeam Robotics"', 'name "Sunbeam Robotics Inc."'))
        os.utime(f, ns=(os.stat(f).st_mtime_ns + 10**9,) * 2)
        p.reload_contracts()
        assert p.customer("sunbeam-robotics").name == "Sunbeam Robotics Inc."
    finally:
        p.close()


# ---------------------------------------------------------------- estimate


FORM = {"gpu_type": "H100-SXM", "count": "8", "hours": "10", "region": "us-east", "class": "on_demand"}


def test_estimate_equals_the_estimator(portal, demo_store):
    got = portal.estimate("meridian-bank", FORM)
    with open_event_store(demo_store, readonly=True, create=False) as store:
        want = Estimator(store, CONTRACTS).estimate(
            "sub_meridian_mlp", Job("H100-SXM", Decimal(8), Decimal(10), "us-east", "on_demand"), at_ms=NOW)
    assert got.lines == want.changes and got.lines
    assert got.delta == want.delta and got.after == want.totals_after
    assert got.job == "8 × H100-SXM for 10 h" and got.subscription == "sub_meridian_mlp"


@pytest.mark.parametrize("form, words", [
    ({**FORM, "gpu_type": "H100"}, 'gpu_type: unknown gpu_type "H100"'),
    ({**FORM, "count": "eight"}, "count: expected a number"),
    ({**FORM, "hours": "-1"}, "hours must be a positive number"),
    ({**FORM, "gpu_type": ""}, "gpu_type: choose a GPU type"),
    ({**FORM, "subscription": "sub_helix_training"}, "subscription: not one of yours"),
])
def test_estimate_refuses_bad_input_in_one_line(portal, form, words):
    with pytest.raises(ServiceError) as e:
        portal.estimate("meridian-bank", form)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_the_current_period_is_the_one_containing_now_where_the_contract_bills(demo_store):
    """At 23:30 UTC on 30 November it is already December in Berlin and still November in New York."""
    p = Portal(demo_store, CONTRACTS, now_ms=lambda: ms(2026, 11, 30, 23, 30))
    try:
        (berlin,) = p.usage("lumen-bio").subscriptions  # Europe/Berlin (its entity)
        (new_york,) = p.usage("meridian-bank").subscriptions  # America/New_York
        assert berlin.period_label == "2026-12-01..2026-12-31"
        assert new_york.period_label == "2026-11-01..2026-11-30"
        assert p.standing("lumen-bio").subscriptions[0].period_label == "2026-12-01..2026-12-31"
    finally:
        p.close()


def test_a_stored_invoices_line_down_to_its_events(portal):
    """Every usage line of a stored invoice: its events, paged, are as many as the line says it counts."""
    (row,) = [r for r in portal.invoices("meridian-bank").invoices if r.status == "draft"]
    view = portal.invoice("meridian-bank", row.id)
    usage = [i for i, f in enumerate(view.lines) if f.fee_type == "charge" and f.kind == "usage"]
    assert usage
    for i in usage:
        counted, after, seen = view.doc["fees"][i]["events_count"], None, []
        while True:
            page = portal.line("meridian-bank", row.id, i, after)
            assert page.line == view.lines[i] and page.has_events
            seen += [e.transaction_id for e in page.events]
            after = page.next_after
            if after is None:
                break
        assert len(seen) == len(set(seen)) == counted, view.lines[i].name
    other = next(i for i, f in enumerate(view.lines) if f.fee_type == "commitment")  # the true-up: no events
    fee = portal.line("meridian-bank", row.id, other)
    assert fee.line.fee_type == "commitment" and not fee.has_events and fee.events == ()


def test_a_line_of_another_customer_or_past_the_last_is_none(portal):
    (mine,) = [r for r in portal.invoices("meridian-bank").invoices if r.status == "draft"]
    theirs = portal.invoices("helix-labs").invoices[0]
    assert portal.line("meridian-bank", theirs.id, 0) is None
    assert portal.line("meridian-bank", mine.id, len(portal.invoice("meridian-bank", mine.id).lines)) is None
    assert portal.line("meridian-bank", "current", 0) is None  # the live draft is not stored: no line to explain
    with pytest.raises(ServiceError, match="after: expected TIMESTAMP-ID"):
        portal.line("meridian-bank", mine.id, 1, "garbage")


def test_warming_a_customer_prepares_its_estimates_and_they_answer_the_same(demo_store):
    """``warm`` builds the estimator's baseline of each linked customer's current period; an estimate then equals
    one from a portal that was never warmed."""
    warmed, cold = (Portal(demo_store, CONTRACTS, now_ms=lambda: NOW) for _ in range(2))
    try:
        warmed.warm(["meridian-bank", "no-such-customer"])
        built = warmed._compiled().estimator._baselines
        assert {name for name, _ in built} == {"meridian_bank"}
        assert warmed.estimate("meridian-bank", FORM) == cold.estimate("meridian-bank", FORM)
        assert {name for name, _ in warmed._compiled().estimator._baselines} == {"meridian_bank"}  # no new one
    finally:
        warmed.close()
        cold.close()
