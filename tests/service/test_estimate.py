"""`gpubill estimate`: a planned job's cost equals the invoice with its events ingested minus the invoice before.

Real SQLite store files, the example contracts (and one written here for a
prepaid credit), the real CLI as a subprocess.  Each case estimates a job,
invoices the period as `gpubill invoice --progressive` does, ingests the
estimate's own events and invoices again: the estimate's before and after
must be those invoices, to the cent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpubill.service import lifecycle
from gpubill.service.access import Actor
from gpubill.service.estimate import Estimator, Job, Totals
from gpubill.service.events import Store
from gpubill.service.invoicing import invoice_period
from gpubill.service.rating import ServiceError, load_catalog

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = str(ROOT / "examples")
OCT_1 = 1790812800  # 2026-10-01T00:00Z
DAY = 86400
AT_MS = (OCT_1 + 19 * DAY + 12 * 3600) * 1000  # 2026-10-20T12:00Z


def jobs(sub: str, gpu: str, gpu_count: str, hours: int, days: range, **props) -> list[dict]:
    """One gpu_job event a day, each ``hours`` long."""
    return [{"transaction_id": f"base-{sub}-{gpu}-{d}", "external_subscription_id": sub, "code": "gpu_job",
             "timestamp": OCT_1 + d * DAY + 6 * 3600,
             "properties": {"gpu_type": gpu, "gpu_count": gpu_count, "duration_seconds": str(hours * 3600),
                            "end_reason": "completed", "avg_utilization": "0.6", **props}} for d in days]


def store_with(path: Path, events: list[dict]) -> Store:
    store = Store(str(path))
    if events:
        store.ingest(events)
    return store


def period_totals(store, contracts: str, key: str) -> Totals:
    report = invoice_period(store, [contracts], "2026-10-20", key, progressive=True)
    assert not report.unrated
    return Totals.of(report.invoices)


def estimate_and_ingest(store, contracts: str, key: str, job: Job):
    """The estimate, and the real period totals before and after its events are ingested."""
    e = Estimator(store, [contracts]).estimate(key, job, AT_MS)
    before = period_totals(store, contracts, key)
    store.ingest(list(e.events))
    after = period_totals(store, contracts, key)
    return e, before, after


def assert_exact(e, before: Totals, after: Totals) -> None:
    assert e.totals_before == before
    assert e.totals_after == after
    assert e.delta.total == after.total - before.total


def test_tiered_plan_climbs_the_next_tier(tmp_path):
    # helix_labs: scale_up's graduated H100-SXM schedule (0-1000 at 3.49, then 3.19); 900 GPU-h used so far
    store = store_with(tmp_path / "s.db", jobs("sub_helix_training", "H100-SXM", "8", 12, range(1, 10)) +
                       jobs("sub_helix_training", "H100-SXM", "4", 9, range(10, 11)))
    e, before, after = estimate_and_ingest(store, EXAMPLES, "helix_labs", Job("H100-SXM", Decimal(8), Decimal(72)))
    assert_exact(e, before, after)
    (line,) = [c for c in e.changes if c.code == "gpu_hours"]
    assert (line.units_before, line.units_after) == (Decimal(900), Decimal(1476))
    assert line.amount_delta == Decimal("100") * Decimal("3.49") + Decimal("476") * Decimal("3.19")
    assert line.clause.startswith("examples/plans/scale_up.bill:") or "scale_up.bill:" in line.clause


def test_reservation_partly_used_covers_the_job(tmp_path):
    # helix_labs reserves 64 H200 (prepaid): the job's H200 hours are covered, nothing more is due
    store = store_with(tmp_path / "s.db", jobs("sub_helix_training", "H200", "16", 10, range(1, 15)))
    e, before, after = estimate_and_ingest(store, EXAMPLES, "sub_helix_training", Job("H200", Decimal(8), Decimal(72)))
    assert_exact(e, before, after)
    ((gpu, unit, left_before, left_after),) = e.reservations_left
    assert (gpu, unit) == ("H200", "GPU-hour")
    assert left_before - left_after == 576 and left_after > 0
    assert e.delta.total == 0
    assert "reservation left" in e_summary(e)


def test_commitment_absorbs_part_of_the_job(tmp_path):
    # meridian_bank commits to 40 000 USD a month (true-up each period) with 5 % off gpu_hours
    store = store_with(tmp_path / "s.db", jobs("sub_meridian_mlp", "H100-SXM", "8", 20, range(1, 15)))
    e, before, after = estimate_and_ingest(store, EXAMPLES, "meridian-bank", Job("H100-SXM", Decimal(64), Decimal(72)))
    assert_exact(e, before, after)
    assert any(c.fee_type == "commitment" for c in e.changes)
    assert "commitment" in e_summary(e)


def test_coupon_grows_with_the_job(tmp_path):
    # pixelforge: 250 USD off each of its first six invoices, capped at the invoice; 100 GPU-h of spot so far
    store = store_with(tmp_path / "s.db", jobs("sub_pixelforge_spot", "H100-SXM", "1", 10, range(1, 11)))
    e, before, after = estimate_and_ingest(store, EXAMPLES, "pixelforge", Job("H100-SXM", Decimal(4), Decimal(48)))
    assert_exact(e, before, after)
    assert e.delta.coupons > 0


def test_a_dynamic_charge_keeps_its_events_prices(tmp_path):
    # pixelforge's spot plan passes spot-market jobs through at their own price (precise_total_amount_cents)
    market = [{"transaction_id": f"m{d}", "external_subscription_id": "sub_pixelforge_spot", "code": "spot_market_job",
               "timestamp": OCT_1 + d * DAY, "precise_total_amount_cents": "123456.5",
               "properties": {"gpu_count": "2", "duration_seconds": "3600", "region": "us-east", "avg_utilization": "0.5"}}
              for d in range(1, 6)]
    store = store_with(tmp_path / "s.db", market + jobs("sub_pixelforge_spot", "H100-SXM", "1", 10, range(1, 4)))
    e, before, after = estimate_and_ingest(store, EXAMPLES, "pixelforge", Job("H100-SXM", Decimal(2), Decimal(3)))
    assert_exact(e, before, after)
    assert [c.code for c in e.changes] == ["spot_gpu_hours"]


CREDIT_CONTRACT = """
contract estimate_credit {
  customer "estimate-credit" name "Estimate Credit Co."
  subscription "sub_estimate_credit"
  entity gpucloud_us
  plan on_demand
  starts 2026-09-01
  credit 3_000 USD granted, priority 1
  discount 10% forever
}
"""


@pytest.fixture
def credit_repo(tmp_path) -> str:
    repo = tmp_path / "repo"
    for part in ("entities", "metrics", "plans"):
        shutil.copytree(ROOT / "examples" / part, repo / part)
    (repo / "contracts").mkdir()
    (repo / "contracts" / "credit.bill").write_text(CREDIT_CONTRACT)
    return str(repo)


def test_prepaid_credit_pays_for_the_job(tmp_path, credit_repo):
    store = store_with(tmp_path / "s.db", jobs("sub_estimate_credit", "A100-80GB", "2", 10, range(1, 6)))
    e, before, after = estimate_and_ingest(store, credit_repo, "estimate_credit", Job("A100-80GB", Decimal(2), Decimal(24)))
    assert_exact(e, before, after)
    assert e.delta.prepaid_credits > 0 and e.delta.total == 0
    assert "prepaid credits cover" in e_summary(e)


def test_reservation_and_progressive_threshold_on_a_prorated_plan(tmp_path):
    # lumen: 16 H100-SXM reserved in arrears, progressive invoices at 20 000 EUR, a prorated charge on the plan
    # (every daily check depends on its cut); the job crosses the first threshold
    store = store_with(tmp_path / "s.db", jobs("sub_lumen_fra", "H100-SXM", "64", 20, range(10, 19)))
    e, before, after = estimate_and_ingest(store, EXAMPLES, "lumen_biotherapeutics",
                                           Job("H100-SXM", Decimal(256), Decimal(72)))
    assert_exact(e, before, after)
    assert e.currency == "EUR" and len(e.after) > len(e.before)
    assert "progressive billing threshold" in e_summary(e)


PEAK_CATALOG = """
metric peak_job_gpus {
  event gpu_job
  max gpu_count in GPUs
}
plan peak_plan {
  currency USD
  billing monthly calendar in arrears
  charge gpu_hours 3.00 per GPU-hour
  charge peak_job_gpus 10.00 per GPU
}
contract peak_co {
  customer "peak-co"
  subscription "sub_peak"
  entity gpucloud_us
  plan peak_plan
  starts 2026-09-01
}
"""


def test_a_charge_that_does_not_add_up_is_rated_again(tmp_path):
    # the largest gpu_count of the month: the job's 48 GPUs replace the 8 so far (no sum of usages)
    repo = tmp_path / "repo"
    for part in ("entities", "metrics", "plans"):
        shutil.copytree(ROOT / "examples" / part, repo / part)
    (repo / "contracts").mkdir()
    (repo / "contracts" / "peak.bill").write_text(PEAK_CATALOG)
    store = store_with(tmp_path / "s.db", jobs("sub_peak", "H100-SXM", "8", 10, range(1, 6)))
    e, before, after = estimate_and_ingest(store, str(repo), "peak_co", Job("H100-SXM", Decimal(48), Decimal(5)))
    assert_exact(e, before, after)
    (peak,) = [c for c in e.changes if c.code == "peak_job_gpus"]
    assert (peak.units_before, peak.units_after, peak.amount_delta) == (Decimal(8), Decimal(48), Decimal("400.00"))


@pytest.mark.parametrize("until", ["now", "month end"])
def test_every_example_contract_on_a_generated_month(tmp_path, until):
    # the demo generator's month (every event kind the example plans read: spot-market prices, utilization,
    # failures, preemptions, allocations) under every example contract that prices GPU jobs; the events
    # stop when the job starts ("now"), or run to the month's end (a past --at: daily checks after the job
    # see later events)
    from gpubill.service import demo_data
    from gpubill.service.rating import billed_subscriptions, load_catalog

    catalog, _ = load_catalog([EXAMPLES])
    billed = billed_subscriptions(catalog, "2026-10")
    data = demo_data.generate(catalog, [b.contract for b in billed], {b.contract.name.name: b.plan for b in billed},
                              min(b.period.from_ms for b in billed),
                              AT_MS - 1 if until == "now" else max(b.period.to_ms for b in billed), 3000, seed=7)
    store_with(tmp_path / "month.db", data.main).close()  # every event in the file itself: copies hold them all
    store = Store(str(tmp_path / "month.db"), readonly=True)
    est = Estimator(store, [EXAMPLES])
    job = Job("H100-SXM", Decimal(8), Decimal(30), region="us-east", availability_class="on_demand")
    checked = []
    for name in sorted(catalog.contracts):
        try:
            est.check(name, job, AT_MS)
        except ServiceError:
            continue
        e = est.estimate(name, job, AT_MS)
        assert e.totals_before == period_totals(store, EXAMPLES, name), name
        copy = tmp_path / f"{name}.db"
        shutil.copy(tmp_path / "month.db", copy)
        with_job = store_with(copy, list(e.events))
        assert e.totals_after == period_totals(with_job, EXAMPLES, name), name
        with_job.close()
        checked.append(name)
    assert len(checked) >= 5, checked


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(1, 128), quarter_hours=st.integers(1, 4 * 100))
def test_any_job_size_costs_what_its_events_invoice(tmp_path_factory, count, quarter_hours):
    work = tmp_path_factory.mktemp("size")
    store = store_with(work / "s.db", jobs("sub_helix_training", "H100-SXM", "3", 7, range(2, 9)))
    job = Job("H100-SXM", Decimal(count) / 2, Decimal(quarter_hours) / 4)
    e, before, after = estimate_and_ingest(store, EXAMPLES, "helix_labs", job)
    assert_exact(e, before, after)


def test_new_events_rebuild_the_baseline(tmp_path):
    store = store_with(tmp_path / "s.db", jobs("sub_sunbeam_payg", "H100-SXM", "8", 10, range(1, 5)))
    est = Estimator(store, [EXAMPLES])
    job = Job("H100-SXM", Decimal(8), Decimal(10))
    first = est.estimate("sunbeam_robotics", job, AT_MS)
    store.ingest(jobs("sub_sunbeam_payg", "H100-SXM", "8", 10, range(5, 9)))
    second = est.estimate("sunbeam_robotics", job, AT_MS)
    assert second.totals_before == period_totals(store, EXAMPLES, "sunbeam_robotics")
    assert second.totals_before.total > first.totals_before.total


def test_a_credit_note_in_the_store_is_in_the_estimate_as_in_the_draft(tmp_path):
    # September invoiced and finalized, then credited 100.00: October's draft (and estimate) uses that credit
    store = store_with(tmp_path / "s.db", jobs("sub_sunbeam_payg", "H100-SXM", "8", 10, range(-20, -15))
                       + jobs("sub_sunbeam_payg", "H100-SXM", "8", 10, range(1, 5)))
    est = Estimator(store, [EXAMPLES])
    job = Job("H100-SXM", Decimal(8), Decimal(10))
    first = est.estimate("sunbeam_robotics", job, AT_MS)
    admin = Actor("ana", "admin")
    sept = next(r for r in lifecycle.refresh(store, [EXAMPLES], admin, "2026-09", "sunbeam-robotics",
                                             now_ms=AT_MS).invoices if r.invoice_type == "subscription")
    sept = lifecycle.finalize(store, [EXAMPLES], admin, sept.id, now_ms=AT_MS)
    lifecycle.credit_note(store, admin, sept.number, amount=Decimal("100.00"), reason="other", now_ms=AT_MS)
    again = est.estimate("sunbeam_robotics", job, AT_MS)  # a new credit note: the baseline is built again
    catalog, _ = load_catalog([EXAMPLES])
    carry = lifecycle.carried(store, catalog, "sunbeam-robotics")
    drafted = invoice_period(store, [EXAMPLES], "2026-10-20", "sunbeam_robotics", progressive=True, carried=carry)
    assert again.totals_before == Totals.of(drafted.invoices)
    assert again.totals_before.total == first.totals_before.total - Decimal("100.00")
    assert again.delta == first.delta  # the job costs the same: the credit note pays for what was there


def test_unknown_gpu_type_names_the_valid_ones(tmp_path):
    est = Estimator(store_with(tmp_path / "s.db", []), [EXAMPLES])
    with pytest.raises(ServiceError) as err:
        est.estimate("sunbeam_robotics", Job("h100", Decimal(8), Decimal(1)), AT_MS)
    assert str(err.value) == ('--gpu: unknown gpu_type "h100" (valid: A100-40GB, A100-80GB, H100-SXM, H200) '
                              'did you mean "H100-SXM"?')
    with pytest.raises(ServiceError, match=r'--region: unknown region "eu-centrl" .*did you mean "eu-central"'):
        est.estimate("sunbeam_robotics", Job("H200", Decimal(1), Decimal(1), region="eu-centrl"), AT_MS)


@pytest.mark.parametrize("hours, count, text", [("0.0000001", "1", "at least one second"), ("-2", "1", "positive"),
                                                 ("1", "0", "GPU count must be a positive number")])
def test_a_job_without_gpu_time_is_refused(hours, count, text):
    with pytest.raises(ServiceError, match=text):
        Job("H200", Decimal(count), Decimal(hours))


def test_a_job_past_the_period_end_is_refused(tmp_path):
    est = Estimator(store_with(tmp_path / "s.db", []), [EXAMPLES])
    with pytest.raises(ServiceError, match=r"after the billing period 2026-10-01\.\.2026-10-31.*at most 280 h"):
        est.estimate("sunbeam_robotics", Job("H200", Decimal(1), Decimal(300)), AT_MS)


def e_summary(e) -> str:
    from gpubill.service.estimate import summary

    return summary(e)


def gpubill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpubill", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_json_is_the_estimate(tmp_path):
    db = tmp_path / "s.db"
    store = store_with(db, jobs("sub_helix_training", "H100-SXM", "8", 12, range(1, 10)))
    e = Estimator(store, [EXAMPLES]).estimate("helix-labs", Job("H100-SXM", Decimal(8), Decimal(72)), AT_MS)
    store.close()
    r = gpubill("estimate", "--store", str(db), "--contracts", EXAMPLES, "--contract", "helix-labs", "--gpu", "H100-SXM",
                "--count", "8", "--hours", "72", "--at", "2026-10-20T12:00:00Z", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["delta"]["total_amount"] == format(e.delta.total, "f")
    assert doc["before"]["total_amount"] == format(e.totals_before.total, "f")
    assert [ln["amount_delta"] for ln in doc["lines"]] == [format(c.amount_delta, "f") for c in e.changes]
    assert doc["summary"].startswith("8 × H100-SXM for 72 h (helix_labs, 2026-10-01..2026-10-31): ")
    table = gpubill("estimate", "--store", str(db), "--contracts", EXAMPLES, "--contract", "helix-labs", "--gpu",
                    "H100-SXM", "--count", "8", "--hours", "72", "--at", "2026-10-20T12:00:00Z")
    assert table.returncode == 0 and doc["summary"] in " ".join(table.stdout.split())


def test_cli_errors_are_one_line(tmp_path):
    db = tmp_path / "s.db"
    store_with(db, []).close()
    base = ("estimate", "--store", str(db), "--contracts", EXAMPLES, "--count", "8", "--hours", "72",
            "--at", "2026-10-20T12:00:00Z")
    for extra, code, text in ((("--contract", "sunbeam_robotics", "--gpu", "H100"), 2, 'did you mean "H100-SXM"?'),
                              (("--contract", "nobody", "--gpu", "H200"), 2, 'no contract, customer or subscription'),
                              (("--contract", "sunbeam_robotics", "--gpu", "H200", "--class", "spt"), 2,
                               'unknown availability_class "spt"')):
        r = gpubill(*base, *extra)
        assert r.returncode == code and r.stdout == ""
        assert r.stderr.count("\n") == 1 and text in r.stderr and "Traceback" not in r.stderr
