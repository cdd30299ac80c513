"""Budgets and job limits over a real store file: each threshold fires once per period, in order."""

from __future__ import annotations

from decimal import Decimal

from gpubill.contracts import budget as rules
from gpubill.dsl import ast
from gpubill.service.access import verify_audit
from gpubill.service.alerts import check, list_alerts
from gpubill.store import alerts as records
from gpubill.store import audit

from .helpers import SUB, job


def fired(store) -> list[tuple]:
    return [(a.kind, a.threshold, Decimal(a.amount)) for a in list_alerts(store)]


def test_thresholds_fire_at_50_80_100_once_each_as_events_arrive(store, contracts):
    steps = [([job(0, 10)], []),  # 279.20: 27.92 %
             ([job(1, 10)], [("budget", "50%", Decimal("558.40"))]),
             ([job(2, 10)], [("budget", "80%", Decimal("837.60"))]),
             ([job(3, 5)], []),  # 977.20
             ([job(4, 1)], [("budget", "100%", Decimal("1005.12"))])]
    seen = []
    for events, now in steps:
        store.ingest(events)
        report = check(store, [str(contracts)])
        assert len(report.fired) == len(now)
        seen += now
        assert fired(store) == seen
    assert check(store, [str(contracts)]).fired == ()  # a second check fires nothing
    a = list_alerts(store)[0]
    assert a.body["percent"] == "55.84" and a.body["budget"] == "1000" and a.body["period"]["label"].startswith("2026-10")
    assert a.limit_amount == "500"


def test_one_step_past_two_thresholds_fires_both_lowest_first_with_audit_entries(store, contracts):
    store.ingest([job(0, 10), job(1, 10), job(2, 10)])  # 837.60
    report = check(store, [str(contracts)])
    assert [a.threshold for a in list_alerts(store)] == ["50%", "80%"]
    assert report.fired == tuple(a.id for a in list_alerts(store))
    entries = [e for e in audit.entries(store._read(), action=records.FIRED)]
    assert [(e.object_id, e.payload["threshold"]) for e in entries] == [(str(i), t) for i, t in
                                                                        zip(report.fired, ("50%", "80%"))]
    assert all(e.actor == "system:alerts" for e in entries)
    assert verify_audit(store).ok


def test_a_job_over_the_limit_fires_once_naming_its_transaction(store, contracts):
    store.ingest([job(0, 10), job(1, 12)])  # 279.20 (under 300), 335.04 (over)
    check(store, [str(contracts)])
    jobs = [a for a in list_alerts(store) if a.kind == rules.JOB_LIMIT]
    assert [(a.threshold, a.amount, a.limit_amount, a.body["transaction_id"]) for a in jobs] == [
        ("job-1", "335.04", "300", "job-1")]
    store.ingest([job(1, 12)])  # the same event again: a duplicate, nothing new
    check(store, [str(contracts)])
    assert len([a for a in list_alerts(store) if a.kind == rules.JOB_LIMIT]) == 1


def test_a_jobs_cost_is_its_own_not_the_periods(store, contracts):
    """Five small jobs are each under the limit although together they pass it."""
    store.ingest([job(i, 2) for i in range(5)])  # 55.84 each, 279.20 together
    store.ingest([job(9, 12, gpus=8)])
    check(store, [str(contracts)])
    assert [a.threshold for a in list_alerts(store) if a.kind == rules.JOB_LIMIT] == ["job-9"]


def test_events_of_other_subscriptions_fire_nothing(store, contracts):
    store.ingest([job(i, 10, sub="sub_other") for i in range(5)])
    assert check(store, [str(contracts)]).fired == ()
    assert list_alerts(store) == []


def test_list_filters_by_customer_and_period(store, contracts):
    store.ingest([job(0, 10), job(1, 10)])
    check(store, [str(contracts)])
    assert len(list_alerts(store, customer="budget-co")) == 1
    assert len(list_alerts(store, customer=SUB, period="2026-10")) == 1
    assert list_alerts(store, customer="someone-else") == []
    assert list_alerts(store, period="2026-11") == []


# ---------------------------------------------------------------- the pure rules

def _budget(alerts=()):
    return ast.Budget(ast.Amount(Decimal(1000), "USD"), None, tuple(ast.Percent(Decimal(p)) for p in alerts))


def test_a_budget_without_alert_at_fires_at_100_percent():
    assert rules.budget_crossings(_budget(), Decimal("999.99")) == []
    [x] = rules.budget_crossings(_budget(), Decimal("1000"))
    assert (x.threshold, x.limit, x.percent) == ("100%", Decimal(1000), Decimal("100.00"))


def test_thresholds_already_fired_are_left_out_and_the_share_is_floored():
    xs = rules.budget_crossings(_budget((50, 80, 120)), Decimal("1234.567"), frozenset({"50%"}))
    assert [(x.threshold, x.percent) for x in xs] == [("80%", Decimal("123.45")), ("120%", Decimal("123.45"))]


def test_a_job_at_exactly_the_limit_does_not_exceed_it():
    limit = ast.JobLimit(ast.Amount(Decimal(300), "USD"))
    assert rules.job_crossing(limit, "t", Decimal(300)) is None
    assert rules.job_crossing(limit, "t", Decimal("300.01")).threshold == "t"


def test_a_commitment_true_up_is_not_spend(store, contracts):
    """A true-up bills at the period's end what usage has not reached of the commitment: a budget
    counting it would be at the commitment on the first day."""
    (contracts / "committed.bill").write_text(
        'contract committed {\n  customer "commit-co"\n  subscription "sub_commit"\n  entity gpucloud_us\n  plan on_demand\n'
        '  starts 2026-01-01\n  commit 900 USD per month, true-up each period\n'
        '  budget 1_000 USD, alert at 50%, 100%\n}\n')
    # under a commitment it keeps on_demand's version in effect on its start day (1, not the later 2)
    store.ingest([job(0, 10, sub="sub_commit")])  # 319.20 of usage, 580.80 of true-up
    check(store, [str(contracts)])
    assert [a for a in list_alerts(store) if a.contract == "committed"] == []
    store.ingest([job(1, 10, sub="sub_commit")])  # 638.40
    check(store, [str(contracts)])
    assert [(a.threshold, a.amount) for a in list_alerts(store) if a.contract == "committed"] == [("50%", "638.40")]


def test_an_event_outside_the_contracts_term_does_not_hide_the_ones_after_it(store, contracts):
    before_start = {**job(0, 10), "transaction_id": "early", "timestamp": 1765800000}  # 2025-12-15
    store.ingest([before_start, job(1, 10), job(2, 10)])
    check(store, [str(contracts)])
    assert [a.threshold for a in list_alerts(store)] == ["50%"]
