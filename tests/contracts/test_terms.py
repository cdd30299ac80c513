"""Contract terms through .bill source and a real store: commitment windows,
reservations, prepaid credits, failure and preemption policies, progressive
billing checked day by day.  Every expected figure is worked out by hand in
the comment above it (tests/contracts/bill/terms.bill)."""

from __future__ import annotations

from decimal import Decimal as D

from gpubill.service.invoicing import invoice_period

from .conftest import BILL, event, ingest, invoice, lines

TERMS = "terms"


def calls(sub: str, day: str, n: int) -> list[dict]:
    return [event(sub, "call", f"{day}T12:00:00Z") for _ in range(n)]


def gpu(sub: str, at: str, gpu_type: str, hours: int, **props) -> dict:
    return event(sub, "t_gpu_job", at, gpu_type=gpu_type, gpu_count=1, duration_seconds=hours * 3600, **props)


def test_a_quarter_commitment_is_settled_when_the_quarter_closes(store):
    # January 100 calls, February 150, March 50: 300 of fees in the quarter.
    ingest(store, calls("s_quarter", "2026-01-10", 100) + calls("s_quarter", "2026-02-10", 150)
           + calls("s_quarter", "2026-03-10", 50))
    # January and February do not close the quarter: no true-up.
    assert lines(invoice(store, TERMS, "2026-01", "t_quarter"), "true_up") == []
    assert lines(invoice(store, TERMS, "2026-02", "t_quarter"), "true_up") == []
    # March closes it: 500 - 300 = 200, taxed 10 %: 50 + 200 = 250, + 25 tax = 275.
    march = invoice(store, TERMS, "2026-03", "t_quarter")
    (true_up,) = lines(march, "true_up")
    assert true_up.amount == D("200")
    assert march.fees_amount == D("250")
    assert march.total_amount == D("275.00")
    # April opens a new quarter: nothing carried over.
    assert lines(invoice(store, TERMS, "2026-04", "t_quarter"), "true_up") == []


def test_a_reservation_is_billed_and_covers_usage_up_to_its_capacity(store):
    # 800 H100 GPU-hours in April (30 days): 720 reserved, 80 on demand.
    ingest(store, [gpu("s_reserved", "2026-04-05T00:00:00Z", "H100-SXM", 500),
                   gpu("s_reserved", "2026-04-20T00:00:00Z", "H100-SXM", 300),
                   gpu("s_reserved", "2026-04-21T00:00:00Z", "A100-80GB", 10)])
    inv = invoice(store, TERMS, "2026-04", "t_reserved")
    # reservation: 1 x 24 x 30 = 720 GPU-hours x 3.00 = 2 160.00
    (reserved,) = lines(inv, "reserved")
    assert (reserved.units, reserved.amount) == (D(720), D("2160.00"))
    # usage: 800 x 4.00 = 3 200.00 and 10 x 2.00 = 20.00; covered: 720 x 4.00 = -2 880.00
    (covered,) = lines(inv, "covered")
    assert (covered.units, covered.amount) == (D(-720), D("-2880.00"))
    # fees 2 160 + 3 200 + 20 - 2 880 = 2 500 (80 H100 hours at 4.00 + 20 + the reservation)
    assert inv.fees_amount == D("2500.00")


def test_an_unused_reservation_is_still_billed(store):
    ingest(store, [gpu("s_reserved", "2026-05-05T00:00:00Z", "A100-80GB", 1)])
    inv = invoice(store, TERMS, "2026-05", "t_reserved")
    # 31 days x 24 = 744 GPU-hours x 3.00 = 2 232.00, nothing covered; + 2.00 of A100
    assert [f.amount for f in lines(inv, "reserved")] == [D("2232.00")]
    assert lines(inv, "covered") == []
    assert inv.fees_amount == D("2234.00")


def test_prepaid_credits_pay_after_tax_by_priority_scope_and_expiry(store):
    # April: 20 calls = 20.00 + 2.00 tax = 22.00.  Credit 2 (priority 1, calls
    # only) pays 5.00; credit 1 (priority 2) pays the other 17.00.
    ingest(store, calls("s_wallets", "2026-04-10", 20) + calls("s_wallets", "2026-05-10", 20))
    april = invoice(store, TERMS, "2026-04", "t_wallets")
    assert [(a.code, a.amount) for a in april.credits] == [("credit_2", D("5.00")), ("credit_1", D("17.00"))]
    assert april.prepaid_granted_credit_amount == D("5.00")
    assert april.prepaid_purchased_credit_amount == D("17.00")
    assert april.total_amount == D("0.00")
    # May: credit 2 expired on April 30 (its 0 left is void anyway); credit 1
    # has 30 - 17 = 13.00 left, then credit 3 pays 22.00 - 13.00 = 9.00.
    may = invoice(store, TERMS, "2026-05", "t_wallets")
    assert [(a.code, a.amount) for a in may.credits] == [("credit_1", D("13.00")), ("credit_3", D("9.00"))]
    assert may.total_amount == D("0.00")


def test_policies_credit_the_jobs_that_failed_or_were_preempted(store):
    ingest(store, [gpu("s_policies", "2026-04-05T00:00:00Z", "H100-SXM", 10, end_reason="completed"),
                   gpu("s_policies", "2026-04-06T00:00:00Z", "H100-SXM", 4, end_reason="failed_infrastructure"),
                   gpu("s_policies", "2026-04-07T00:00:00Z", "H100-SXM", 6, end_reason="preempted"),
                   gpu("s_policies", "2026-04-08T00:00:00Z", "H100-SXM", 3, end_reason="failed_user")])
    inv = invoice(store, TERMS, "2026-04", "t_policies")
    # the line: 23 GPU-hours x 4.00 = 92.00, every job billed as used
    assert [f.amount for f in lines(inv, "usage") if f.amount] == [D("92.00")]
    credits = {f.code: f for f in lines(inv, "policy")}
    # infrastructure failure: 50 % of 4 h x 4.00 = 8.00; preemption: 25 % of 6 h x 4.00 = 6.00
    assert credits["failed_infrastructure_credit"].amount == D("-8.00")
    assert credits["preempted_credit"].amount == D("-6.00")
    assert "1 failed_infrastructure jobs" in credits["failed_infrastructure_credit"].description
    # the user's failed job is charged as used: no credit line for it
    assert set(credits) == {"failed_infrastructure_credit", "preempted_credit"}
    assert inv.fees_amount == D("78.00")


def progressive_run(store, period: str) -> list:
    paths = [str(BILL / f"{TERMS}.bill")]
    return list(invoice_period(store, paths, period, "t_progressive", progressive=True).invoices)


def test_progressive_invoices_follow_the_thresholds_day_by_day(store):
    # April: 120 calls on the 3rd, 250 on the 10th, 300 on the 20th.
    ingest(store, calls("s_progressive", "2026-04-03", 120) + calls("s_progressive", "2026-04-10", 250)
           + calls("s_progressive", "2026-04-20", 300))
    first, second, third, final = progressive_run(store, "2026-04")
    # end of the 3rd: 120 passes 100 -> bills 120
    assert (first.issuing_date.isoformat(), first.thresholds, first.fees_amount) == ("2026-04-03", (D(100),), D(120))
    # end of the 10th: 370 passes 300 (invoiced 120 < 300); 370 - 300 < 250 -> bills 370, credits 120
    assert (second.thresholds, second.fees_amount, second.progressive_billing_credit_amount) == ((D(300),), D(370), D(120))
    # end of the 20th: invoiced 370 >= 300, actual 300 + 370 mod 250 = 420 >= 250 -> R; bills 670, credits 370
    assert (third.thresholds, third.fees_amount, third.progressive_billing_credit_amount) == ((D(250),), D(670), D(370))
    # the final invoice: 670, credits the latest progressive invoice's 670
    assert final.invoice_type == "subscription"
    assert (final.fees_amount, final.progressive_billing_credit_amount, final.sub_total_excluding_taxes_amount) == (
        D(670), D(670), D(0))
    # the period billed exactly its usage once: 120 + 250 + 300 + 0
    assert sum(i.sub_total_excluding_taxes_amount for i in (first, second, third, final)) == D(670)


def test_fixed_thresholds_fire_once_in_the_subscription_lifetime(store):
    # April: 150 calls (passes 100). May: 100 calls: lifetime 250 passes nothing.
    ingest(store, calls("s_progressive", "2026-04-03", 150) + calls("s_progressive", "2026-05-03", 100))
    april = progressive_run(store, "2026-04")
    assert [i.invoice_type for i in april] == ["progressive_billing", "subscription"]
    may = progressive_run(store, "2026-05")
    assert [i.invoice_type for i in may] == ["subscription"]
    assert may[0].fees_amount == D(100)


def test_a_plan_change_mid_period_bills_each_plan_for_its_days(store):
    ingest(store, calls("s_hx", "2026-10-10", 10) + calls("s_hx", "2026-10-20", 10))
    report = invoice_period(store, [str(BILL / "plan_change.bill")], "2026-10", "hx")
    by_name = {i.billing.contract.name.name: i for i in report.invoices}
    old, new = by_name["hx_old"], by_name["hx_new"]
    # the old plan: fee 31.00 x 17/31 = 17.00; its 10 calls x 1.00 = 10.00
    assert [(f.kind, f.amount) for f in old.fees] == [("fee", D("17.00")), ("usage", D("10.00"))]
    # the new plan: fee 62.00 x 14/31 = 28.00; its 10 calls x 0.50 = 5.00
    assert [(f.kind, f.amount) for f in new.fees] == [("fee", D("28.00")), ("usage", D("5.00"))]


def test_a_month_or_a_range_invoices_the_billing_periods_that_end_in_it(store):
    paths = [str(BILL / f"{TERMS}.bill")]
    ingest(store, calls("s_quarterly", "2026-02-10", 5))
    # February closes no quarter: nothing to invoice, and the report says whose
    feb = invoice_period(store, paths, "2026-02", "t_quarterly")
    assert (feb.invoices, feb.no_period_ends) == ((), ("t_quarterly",))
    # March closes the first quarter: fee 90 + 5 calls
    (q1,) = invoice_period(store, paths, "2026-03", "t_quarterly").invoices
    assert (q1.billing.period.label, q1.fees_amount) == ("2026-01-01..2026-03-31", D(95))
    # a half year closes two quarters
    half = invoice_period(store, paths, "2026-01-01..2026-06-30", "t_quarterly").invoices
    assert [(i.billing.period.label, i.fees_amount) for i in half] == [
        ("2026-01-01..2026-03-31", D(95)), ("2026-04-01..2026-06-30", D(90))]
    # a date invoices the period that contains it
    (mid,) = invoice_period(store, paths, "2026-02-15", "t_quarterly").invoices
    assert mid.billing.period.label == "2026-01-01..2026-03-31"
