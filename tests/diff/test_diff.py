"""`gpubill diff` over a real temporary git repository and a real demo store.

Each change is made in the work tree of a copy of the examples repository and
compared with its HEAD; the text report is checked against
tests/diff/golden/NAME.txt and the PR comment (--format markdown) against
NAME.md (GPUBILL_UPDATE_GOLDEN=1 regenerates them).  The run's time is
SOURCE_DATE_EPOCH (RUN_TIME): the work tree's changes are introduced then, and
the comment's valid-at says so.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from gpubill.service.diff import diff_revisions, latest_complete_month
from gpubill.service.events import Store
from gpubill.service.invoicing import invoice_period
from gpubill.service.revisions import at_revision, temporary_dir, work_tree

PERIOD = "2026-11"  # the demo store's month (conftest.py)
RUN_TIME = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def diff(cli, store, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(RUN_TIME.timestamp())))

    def run(repo, *more):
        return cli("diff", "--base", "HEAD", "--store", str(store), "--period", PERIOD, *more, cwd=repo)
    return run


@pytest.fixture
def report(diff, golden):
    """report(repo, name): the text report of the work tree against HEAD and its PR comment,
    checked against golden/NAME.txt and golden/NAME.md."""
    def run(repo, name):
        for fmt, suffix in (("markdown", "md"), ("text", "txt")):
            r = diff(repo, "--format", fmt)
            assert r.returncode == 0, r.stderr
            assert r.stderr == ""
            golden(f"{name}.{suffix}", r.stdout)
        return r.stdout
    return run


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_unchanged_work_tree_changes_nothing(repo, diff):
    r = diff(repo, "--detailed-exitcode")
    assert r.returncode == 0, r.stderr
    assert "0 of" in r.stdout and "changes:" not in r.stdout


def test_price_change(repo, report, diff):
    edit(repo / "plans/on_demand.bill", '"H100-SXM"  3.49', '"H100-SXM"  3.69')
    out = report(repo, "price_change")
    assert "~ version on_demand@2 changed at plans/on_demand.bill:" in out
    assert "reaches sunbeam_robotics\n" in out   # meridian_bank pins version 1
    assert diff(repo, "--detailed-exitcode").returncode == 2


def test_new_tier(repo, report):
    edit(repo / "plans/scale_up.bill", "    0 to 2_000 at 2.21", "    0 to 100 at 2.50\n    101 to 2_000 at 2.21")
    out = report(repo, "new_tier")
    assert "~ plan scale_up changed at plans/scale_up.bill:15:3" in out


def test_new_contract(repo, report):
    text = (repo / "contracts/sunbeam_robotics.bill").read_text()
    text = text.replace("sunbeam_robotics", "sunbeam_labs").replace('"sunbeam-robotics"', '"sunbeam-labs"')
    (repo / "contracts/sunbeam_labs.bill").write_text(text.replace("sub_sunbeam_payg", "sub_sunbeam_labs"))
    out = report(repo, "new_contract")
    assert "+ contract sunbeam_labs added at contracts/sunbeam_labs.bill:6:1; reaches sunbeam_labs" in out


def test_removed_plan(repo, report):
    for path in ("plans/spot.bill", "tests/spot.bill", "tests/pixelforge_studios.bill", "contracts/pixelforge_studios.bill"):
        (repo / path).unlink()
    out = report(repo, "removed_plan")
    assert "- plan spot removed at plans/spot.bill:" in out
    assert "- contract pixelforge_studios removed" in out


def test_renamed_charge(repo, report):
    edit(repo / "plans/scale_up.bill", "charge peak_gpus as burst_capacity", "charge peak_gpus as peak_capacity")
    tests = repo / "tests/scale_up.bill"
    tests.write_text(tests.read_text().replace("burst_capacity", "peak_capacity"))
    out = report(repo, "renamed_charge")
    assert "    - burst_capacity" in out and "    + peak_capacity" in out


def test_changed_commitment(repo, report):
    edit(repo / "contracts/meridian_bank.bill", "commit 40_000 USD per month", "commit 45_000 USD per month")
    out = report(repo, "changed_commitment")
    assert "~ contract meridian_bank changed at contracts/meridian_bank.bill:20:3; reaches meridian_bank" in out


def test_json_report(repo, diff):
    edit(repo / "plans/on_demand.bill", '"H100-SXM"  3.49', '"H100-SXM"  3.69')
    r = diff(repo, "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "gpubill-diff/1" and doc["periods"] == [PERIOD]
    first = doc["customers"][0]
    assert first["contract"] == "sunbeam_robotics" and first["delta"].startswith("8")
    assert [ln["name"] for ln in first["lines"]] == ["gpu_hours (H100-SXM)"]
    assert doc["changes"][0]["kind"] == "version"


def test_syntax_error_at_head(repo, diff, golden):
    edit(repo / "plans/on_demand.bill", '"H100-SXM"  3.49', '"H100-SXM"  3.49.')
    r = diff(repo)
    assert r.returncode == 1 and r.stdout == ""
    golden("syntax_error.txt", r.stderr)
    comment = diff(repo, "--format", "markdown")   # replaces the last run's numbers in the PR
    assert comment.returncode == 1 and comment.stderr == r.stderr
    golden("syntax_error.md", comment.stdout)


def test_bad_revision(repo, cli, store):
    r = cli("diff", "--base", "no-such-branch", "--store", str(store), cwd=repo)
    assert r.returncode == 3
    assert r.stderr.splitlines() == [f"gpubill: error: no revision 'no-such-branch' in {repo}"]


def test_no_period_in_store(repo, diff):
    r = diff(repo, "--period", "2025-01")
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["gpubill: error: the store holds no events in 2025-01: nothing to compare"]


def test_no_bill_files(repo, cli, store, commit):
    (repo / "docs").mkdir()
    (repo / "docs/README.md").write_text("no contracts here\n")
    commit(repo, "docs")
    r = cli("diff", "--base", "HEAD", "--contracts", "docs", "--store", str(store), cwd=repo)
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["gpubill: error: no .bill files in docs at HEAD"]


def test_not_a_git_repository(tmp_path, cli, store):
    (tmp_path / "a.bill").write_text("")
    r = cli("diff", "--base", "HEAD", "--store", str(store), cwd=tmp_path)
    assert r.returncode == 3
    assert r.stderr.splitlines() == ["gpubill: error: . is not in a git repository"]


NOTICE_VERSION = '''
plan on_demand version 3 effective 2026-12-10 {
  currency USD
  billing monthly calendar in arrears
  charge gpu_hours per GPU-hour by gpu_type {
    "A100-40GB" 1.89
    "A100-80GB" 2.21
    "H100-SXM"  3.99
    "H200"      4.25
  }
  charge inference_gpu_hours per GPU-hour by gpu_type {
    "A100-40GB" 1.89
    "A100-80GB" 2.21
    "H100-SXM"  3.49
    "H200"      4.25
  }
}
'''


def test_notice_period_violation_between_two_revisions(repo, diff, commit, golden):
    """--head REV: the violation is judged from the head commit's date, not the run's."""
    with (repo / "plans/on_demand.bill").open("a") as f:
        f.write(NOTICE_VERSION)
    commit(repo, "raise H100 on-demand in ten days", when="2026-11-30T12:00:00Z")
    r = diff(repo, "--base", "HEAD~1", "--head", "HEAD")
    assert r.returncode == 0, r.stderr
    golden("notice_violation.txt", r.stdout)
    assert "introduced 2026-11-30" in r.stdout and "+ version on_demand@3 added" in r.stdout
    comment = diff(repo, "--base", "HEAD~1", "--head", "HEAD", "--format", "markdown")
    golden("notice_violation.md", comment.stdout)


@pytest.fixture
def finalized(repo, cli, store, tmp_path):
    """(a copy of the store with sunbeam-robotics' invoice of the period finalized, that invoice as listed)."""
    db = tmp_path / "finalized.db"
    db.write_bytes(store.read_bytes())
    where = ("--store", str(db), "--contracts", ".")
    assert cli("invoices", "refresh", *where, "--period", PERIOD, "--customer", "sunbeam-robotics", cwd=repo).returncode == 0
    [draft] = json.loads(cli("invoices", "list", "--store", str(db), "--format", "json", cwd=repo).stdout)
    assert cli("invoices", "finalize", draft["lago_id"], "--yes", *where, cwd=repo).returncode == 0
    return db, draft


def test_finalized_invoice_needs_a_credit_note(repo, cli, finalized):
    db, draft = finalized
    edit(repo / "plans/on_demand.bill", '"H100-SXM"  3.49', '"H100-SXM"  3.69')
    r = cli("diff", "--base", "HEAD", "--store", str(db), "--period", PERIOD, cwd=repo)
    assert r.returncode == 0, r.stderr
    listed = r.stdout.split("finalized invoices that would change (they need credit notes, never edits):\n")[1]
    assert listed.splitlines()[0] == f"  NWG-001-001 sunbeam-robotics: total stored {draft['total_amount']}, at head 10578.85"


def test_a_finalized_invoice_the_change_does_not_reach_is_not_listed_though_late_events_moved_it(
        repo, cli, finalized):
    db, _ = finalized
    with Store(str(db)) as s:  # a late copy of one of its events: the stored invoice no longer matches the events
        ev = s.events_as_dicts(subscriptions=["sub_sunbeam_payg"])[0]
        s.ingest([{"transaction_id": "late-1", "external_subscription_id": "sub_sunbeam_payg", "code": ev["code"],
                   "timestamp": ev["timestamp_ms"] // 1000, "properties": ev["properties"]}])
    edit(repo / "plans/inference_api.bill", "package 0.60 per 1M", "package 0.70 per 1M")  # sunbeam is not on it
    r = cli("diff", "--base", "HEAD", "--store", str(db), "--period", PERIOD, cwd=repo)
    assert r.returncode == 0, r.stderr
    assert "finalized invoices that would change" not in r.stdout


def test_default_period_is_the_latest_complete_month(repo, cli, store):
    """The demo's events run from November into the first hours of December."""
    db = Store(str(store), readonly=True)
    try:
        assert latest_complete_month(db, now=dt.datetime(2026, 12, 3, tzinfo=dt.timezone.utc)) == "2026-11"
        assert latest_complete_month(db, now=dt.datetime(2027, 3, 1, tzinfo=dt.timezone.utc)) == "2026-12"
        today = latest_complete_month(db)
    finally:
        db.close()
    r = cli("diff", "--base", "HEAD", "--store", str(store), cwd=repo)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"gpubill diff: HEAD -> work tree · {today}\n")



def test_the_events_are_read_once_for_both_revisions(repo, store, counted):
    edit(repo / "plans/on_demand.bill", '"H100-SXM"  3.49', '"H100-SXM"  3.69')
    db = Store(str(store), readonly=True)
    try:
        with temporary_dir() as into:
            base, head = at_revision("HEAD", str(repo), into), work_tree(str(repo))
            both, alone = counted(db), counted(db)
            report = diff_revisions(both, base, head, [PERIOD])
            invoice_period(alone, [head.contracts], PERIOD)
    finally:
        db.close()
    assert report.customers[0].delta > 0
    assert both.reads == alone.reads > 0


def test_a_gate_exceeded_exits_4_naming_the_customer(repo, diff):
    edit(repo / "plans/on_demand.bill", '"H100-SXM"  3.49', '"H100-SXM"  3.69')
    r = diff(repo, "--max-customer-increase", "0.5")
    assert r.returncode == 4
    assert r.stdout.startswith("gpubill diff: HEAD -> work tree")
    assert r.stderr.splitlines() == [
        "gpubill: gate: customer sunbeam-robotics (contract sunbeam_robotics, 2026-11): increase 0.85 % "
        "(9634.66 -> 9716.51 USD) exceeds --max-customer-increase 0.5 %"]
    (repo / "gpubill-diff.toml").write_text('[gates]\nmax_customer_increase = "1%"\n')
    assert diff(repo).returncode == 0


def test_a_malformed_source_date_epoch_is_one_line(repo, diff, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    r = diff(repo, "--format", "markdown")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.splitlines() == ["gpubill: error: SOURCE_DATE_EPOCH='yesterday' is not a number of seconds since 1970"]


def test_a_progressively_billed_customer_shows_its_final_invoices_lines_and_its_whole_periods_totals(repo, store):
    """meridian_bank is billed progressively in the demo month: its lines are its final invoice's (the
    whole period, once each), its totals every invoice of the period together."""
    edit(repo / "contracts/meridian_bank.bill", "3.10 per GPU-hour", "3.30 per GPU-hour")
    db = Store(str(store), readonly=True)
    try:
        with temporary_dir() as into:
            base, head = at_revision("HEAD", str(repo), into), work_tree(str(repo))
            report = diff_revisions(db, base, head, [PERIOD])
            split = invoice_period(db, [head.contracts], PERIOD, progressive=True)
    finally:
        db.close()
    [meridian] = [c for c in report.customers if c.contract == "meridian_bank"]
    invoices = [i for i in split.invoices if i.billing.contract.name.name == "meridian_bank"]
    assert len(invoices) > 1  # progressive invoices, then the final one
    assert meridian.after == sum(i.sub_total_excluding_taxes_amount for i in invoices)
    assert meridian.lines and {ln.key[1] for ln in meridian.lines} == {"subscription"}
    names = [ln.name for ln in meridian.lines]
    assert len(names) == len(set(names))  # each line once: the progressive invoices' cuts are not compared
