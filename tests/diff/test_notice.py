"""Notice periods: a price rise takes effect at least its notice after it is introduced.

The rule (gpubill.dsl.checks.notice) over catalogs of real `.bill` sources; the
diff-time entry point (gpubill.service.notice.notice_violations); and, through
the real `gpubill invoice`, that a new version raising the price leaves a
contract pinned to its version unchanged; through the real `gpubill diff` over
a real git repository, that it leaves a contract under a commitment unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from gpubill.dsl.check import check_sources
from gpubill.service.notice import notice_violations

BASE = """\
entity cloud {
  currency USD
}

metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in hours
  dimension gpu_type
}

plan list version 1 effective 2026-01-01 {
  currency USD
  billing monthly
  charge gpu_hours 3.00 per hour {
    where gpu_type = "H100-SXM" 4.00 per hour
    during 2026-06-01 .. 2026-06-02 1.00 per hour
  }
}

contract acme {
  customer "acme"
  subscription "sub_acme"
  entity cloud
  plan list
  starts 2026-01-01
}

contract pinned {
  customer "pinned"
  subscription "sub_pinned"
  entity cloud
  plan list version 1
  starts 2026-01-01
}
"""

INTRODUCED = dt.date(2026, 12, 3)


def version2(effective: str, body: str, plan_notice: str = "") -> str:
    return BASE + f"""
plan list version 2 effective {effective} {{
  currency USD
  billing monthly{plan_notice}
{body}
}}
"""


RAISE = '  charge gpu_hours 3.50 per hour {\n    where gpu_type = "H100-SXM" 4.00 per hour\n  }'
RAISE_FILTER = '  charge gpu_hours 3.00 per hour {\n    where gpu_type = "H100-SXM" 4.50 per hour\n  }'
CUT = '  charge gpu_hours 2.50 per hour {\n    where gpu_type = "H100-SXM" 4.00 per hour\n  }'
SPOT = ('  charge gpu_hours 3.00 per hour {\n    where gpu_type = "H100-SXM" 4.00 per hour\n'
        '    during 2026-12-10 .. 2026-12-11 9.00 per hour\n  }')


def catalog(text: str):
    cat, diags = check_sources({"plans.bill": text})
    assert not [d for d in diags if d.is_error], [(d.rule, d.message) for d in diags]
    return cat


def violations(head: str, base: str = BASE) -> list[str]:
    return notice_violations(catalog(base), catalog(head), INTRODUCED)


def test_a_rise_sooner_than_30_days_is_flagged_at_the_versions_effective_date():
    head = version2("2026-12-20", RAISE)
    (v,) = violations(head)
    line = head.splitlines().index("plan list version 2 effective 2026-12-20 {") + 1
    assert v.startswith(f"plans.bill:{line}:31: plan list version 2 raises the price of gpu_hours "
                        "with less than 30 days' notice: it takes effect 2026-12-20, introduced 2026-12-03")
    assert v.endswith("(take effect on 2027-01-02 or later)")


def test_a_rise_30_days_ahead_is_allowed():
    assert violations(version2("2027-01-02", RAISE)) == []


def test_a_filters_price_counts_as_an_on_demand_price():
    assert len(violations(version2("2026-12-20", RAISE_FILTER))) == 1


def test_a_cut_and_a_spot_window_are_exempt():
    assert violations(version2("2026-12-20", CUT)) == []
    assert violations(version2("2026-12-20", SPOT)) == []


def test_the_plans_notice_replaces_the_default():
    head = version2("2027-01-10", RAISE, "\n  notice 45 days")
    (v,) = violations(head)
    assert "45 days' notice" in v and "(take effect on 2027-01-17 or later)" in v
    assert violations(version2("2027-01-17", RAISE, "\n  notice 45 days")) == []


def test_a_contracts_longer_notice_applies_to_its_plan():
    head = version2("2027-01-10", RAISE).replace('  plan list\n', '  plan list\n  notice 60 days\n')
    (v,) = violations(head)
    assert "60 days' notice" in v and "(take effect on 2027-02-01 or later)" in v


COMMITTED = """
contract committed {
  customer "committed"
  subscription "sub_committed"
  entity cloud
  plan list
  starts 2026-01-01
  commit 10 USD per month
  notice 90 days
}
"""


def test_a_committed_contracts_notice_is_not_owed_a_version_that_does_not_reach_it():
    assert violations(version2("2027-01-02", RAISE) + COMMITTED, base=BASE + COMMITTED) == []


def test_a_version_already_in_the_base_is_not_flagged_again():
    head = version2("2026-12-20", RAISE)
    assert violations(head, base=head) == []


# ---------------------------------------------------------------- a price raised in place


UNVERSIONED = BASE.replace("plan list version 1 effective 2026-01-01 {", "plan list {").replace(
    "  plan list version 1\n", "  plan list\n")


def test_a_price_raised_inside_a_version_in_effect_is_a_retroactive_rise():
    head = BASE.replace("charge gpu_hours 3.00 per hour", "charge gpu_hours 3.20 per hour")
    (v,) = violations(head)
    line = head.splitlines().index("  charge gpu_hours 3.20 per hour {") + 1
    assert v == (f"plans.bill:{line}:3: plan list version 1 raises the price of gpu_hours in place, a retroactive "
                 "rise: it is in effect already, introduced 2026-12-03 (keep this price and add a new version with "
                 "the new one, effective 2027-01-02 or later)")


def test_a_price_raised_inside_a_version_not_yet_in_effect_is_judged_by_its_date():
    base = version2("2026-12-20", CUT)
    (v,) = violations(base.replace("2.50 per hour", "2.90 per hour"), base=base)
    assert "version 2 raises the price of gpu_hours in place, a retroactive rise: it takes effect 2026-12-20" in v
    later = version2("2027-01-02", CUT)
    assert violations(later.replace("2.50 per hour", "2.90 per hour"), base=later) == []


def test_a_price_raised_in_an_unversioned_plan_is_a_retroactive_rise():
    (v,) = violations(UNVERSIONED.replace('"H100-SXM" 4.00', '"H100-SXM" 4.10'), base=UNVERSIONED)
    assert v.split(": ", 1)[1].startswith("plan list raises the price of gpu_hours in place, a retroactive rise")


def test_a_cut_or_a_spot_price_changed_in_place_is_no_rise():
    assert violations(BASE.replace("3.00 per hour", "2.80 per hour")) == []
    assert violations(BASE.replace("1.00 per hour", "9.00 per hour")) == []


def test_a_notice_that_is_not_whole_days_is_an_error():
    _, diags = check_sources({"plans.bill": version2("2027-06-01", RAISE, "\n  notice 5 GPU")})
    assert [d.rule for d in diags if d.is_error] == ["unit-mismatch"]


def test_fmt_keeps_the_notice_clause(tmp_path):
    path = tmp_path / "plans.bill"
    path.write_text(version2("2027-06-01", RAISE, "\n  notice 45 days"))
    p = subprocess.run([sys.executable, "-m", "gpubill", "fmt", str(path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "  notice 45 days\n" in path.read_text()


# ---------------------------------------------------------------- invoices


def gpubill(*args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "gpubill", *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("store")
    events = d / "events.jsonl"
    events.write_text("".join(
        json.dumps({"transaction_id": f"t-{sub}", "external_subscription_id": sub, "code": "gpu_job",
                    "timestamp": "2026-04-10T12:00:00Z",
                    "properties": {"gpu_type": "A100", "gpu_count": 1, "duration_seconds": 36000}}) + "\n"
        for sub in ("sub_acme", "sub_pinned", "sub_committed")))
    db = d / "gpubill.db"
    gpubill("ingest", str(events), "--store", str(db))
    return db


def totals(store, text: str, tmp_path) -> dict[str, str]:
    (tmp_path / "plans.bill").write_text(text)
    doc = json.loads(gpubill("invoice", "--store", str(store), "--contracts", str(tmp_path),
                             "--period", "2026-04", "--format", "json"))
    invoices = doc["invoices"] if isinstance(doc, dict) else doc
    return {i["customer"]["external_id"]: i["sub_total_excluding_taxes_amount"] for i in invoices}


def test_a_rise_leaves_a_pinned_contracts_invoice_unchanged(store, tmp_path_factory):
    before = totals(store, BASE, tmp_path_factory.mktemp("before"))
    after = totals(store, version2("2026-03-01", RAISE), tmp_path_factory.mktemp("after"))
    assert before == {"acme": "30.00", "pinned": "30.00"}  # 10 GPU-hours x 3.00
    assert after == {"acme": "35.00", "pinned": "30.00"}


def git(*args: str, cwd, when: str = "2026-02-15T12:00:00Z") -> None:
    env = {**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    subprocess.run(["git", "-c", "user.name=gpubill-tests", "-c", "user.email=tests@gpubill.invalid", *args],
                   cwd=cwd, env=env, capture_output=True, text=True, check=True)


def test_diff_reports_no_change_for_a_committed_contract(store, tmp_path):
    """A version raising the price from March 1st, committed on February 15th (too soon: it is flagged too):
    the uncommitted contract's April invoice moves, the committed and the pinned ones do not."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "plans.bill").write_text(BASE + COMMITTED)
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "base", cwd=repo)
    (repo / "plans.bill").write_text(version2("2026-03-01", RAISE) + COMMITTED)
    git("commit", "-q", "-am", "raise from March", cwd=repo)
    p = subprocess.run([sys.executable, "-m", "gpubill", "diff", "--base", "HEAD~1", "--head", "HEAD",
                        "--store", str(store), "--period", "2026-04", "--format", "json"],
                       cwd=repo, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    moved = {c["contract"]: (c["before"], c["after"]) for c in report["customers"]}
    assert moved["acme"] == ("30.00", "35.00")
    assert moved["committed"] == moved["pinned"] == ("30.00", "30.00")
    (added,) = [ch for ch in report["changes"] if ch["what"] == "added"]
    assert added["customers"] == ["acme"]  # the new version reaches neither the committed nor the pinned contract
    (notice,) = report["notices"]
    assert "30 days' notice" in notice  # the committed contract's 90 days are not owed


def test_diff_flags_a_price_raised_in_place_at_its_clause(store, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "plans.bill").write_text(BASE)
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "base", cwd=repo)
    (repo / "plans.bill").write_text(BASE.replace("charge gpu_hours 3.00 per hour", "charge gpu_hours 3.20 per hour"))
    git("commit", "-q", "-am", "raise in place", cwd=repo, when="2026-05-02T12:00:00Z")
    p = subprocess.run([sys.executable, "-m", "gpubill", "diff", "--base", "HEAD~1", "--head", "HEAD",
                        "--store", str(store), "--period", "2026-04"], cwd=repo, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    line = BASE.splitlines().index("  charge gpu_hours 3.00 per hour {") + 1
    assert (f"plans.bill:{line}:3: plan list version 1 raises the price of gpu_hours in place, a retroactive rise: "
            "it is in effect already, introduced 2026-05-02 (keep this price and add a new version with the new "
            "one, effective 2026-06-01 or later)") in p.stdout
