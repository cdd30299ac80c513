"""`gpubill diff` backtests at the cost of one invoicing run, plus what a change reaches (issue 12).

Over a real temporary git repository (the examples at HEAD~1; HEAD changes
one on-demand price of on_demand_eu and adds a contract on a subscription no
base contract bills) and the real demo store (tests/diff/conftest.py): the
report equals the one that invoices both revisions in full; a contract the
change does not reach is invoiced once (a counting wrapper around the real
``invoice_of``); the events are read once; bench/diff.py runs end to end on
a tiny store.  Nothing here measures time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gpubill.service import invoicing
from gpubill.service.diff import _customers, _catalog, diff_revisions, reached_contracts
from gpubill.service.events import Store
from gpubill.service.invoicing import invoice_period
from gpubill.service.revisions import at_revision

PERIOD = "2026-11"  # the demo store's month (conftest.py)
BENCH = Path(__file__).resolve().parents[2] / "bench" / "diff.py"
PRICE = ("plans/on_demand_eu.bill", '"H100-SXM"  3.25', '"H100-SXM"  3.45')
REACHED = "lumen_biotherapeutics"  # the one contract on on_demand_eu
ADDED = """
contract late_signer {
  customer "late-signer"
  subscription "sub_late_signer"
  entity gpucloud_eu
  plan on_demand_eu
  starts 2026-11-01
}
"""


@pytest.fixture(scope="module")
def revisions(base_repo, commit, tmp_path_factory):
    """(base, head): HEAD~1 and HEAD of a copy of the examples repository, each unpacked by git."""
    work = tmp_path_factory.mktemp("backtest-once")
    repo = work / "billing"
    shutil.copytree(base_repo, repo)
    path, old, new = PRICE
    text = (repo / path).read_text()
    assert text.count(old) == 1
    (repo / path).write_text(text.replace(old, new))
    (repo / "contracts" / "late_signer.bill").write_text(ADDED)
    commit(repo, "on_demand_eu: H100 price; a new contract")
    (work / "base").mkdir()
    (work / "head").mkdir()
    return at_revision("HEAD~1", str(repo), str(work / "base")), at_revision("HEAD", str(repo), str(work / "head"))


@pytest.fixture(scope="module")
def db(store):
    s = Store(str(store), readonly=True)
    yield s
    s.close()



def test_the_change_reaches_the_contracts_whose_inputs_differ(revisions):
    base, head = revisions
    assert reached_contracts(_catalog(base), _catalog(head)) == {REACHED, "late_signer"}
    assert reached_contracts(_catalog(base), _catalog(base)) == set()


def test_the_report_equals_invoicing_both_revisions_in_full(revisions, db):
    base, head = revisions
    report = diff_revisions(db, base, head, [PERIOD])
    b = invoice_period(db, [base.contracts], PERIOD, progressive=True)
    h = invoice_period(db, [head.contracts], PERIOD, progressive=True)
    full = _customers(PERIOD, b.invoices, h.invoices, base, head)
    assert sorted(report.customers, key=lambda c: c.contract) == full
    changed = {c.contract for c in full if c.delta or c.lines}
    assert REACHED in changed and "late_signer" in changed
    assert len(full) > len(changed) + 3  # most contracts are not reached
    assert report.unrated == tuple([f"{base.name}: {u}" for u in b.unrated] + [f"{head.name}: {u}" for u in h.unrated])


def test_a_contract_the_change_does_not_reach_is_invoiced_once(revisions, db, monkeypatch):
    base, head = revisions
    invoiced = Counter()
    real = invoicing.invoice_of

    def counted(billing, *args, **kwargs):
        invoiced[billing.contract.name.name, billing.period.from_ms] += 1
        return real(billing, *args, **kwargs)

    monkeypatch.setattr(invoicing, "invoice_of", counted)
    diff_revisions(db, base, head, [PERIOD])
    by_contract = {name: n for (name, _), n in invoiced.items()}
    assert by_contract.pop(REACHED) == 2  # once with each revision
    assert by_contract.pop("late_signer") == 1  # head only
    assert len(by_contract) > 3 and set(by_contract.values()) == {1}, by_contract


def test_the_events_are_read_once_though_the_head_bills_another_subscription(revisions, db, counted):
    base, head = revisions
    both, alone = counted(db), counted(db)
    diff_revisions(both, base, head, [PERIOD])
    invoice_period(alone, [base.contracts], PERIOD)
    assert both.reads == alone.reads > 0


def test_the_bench_runs_on_a_tiny_store(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH), "--quick", "--dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    counts = re.search(r"diff: (\d+) invoices compared, (\d+) changed, (\d+) catalog change", r.stdout)
    assert counts, r.stdout
    compared, changed, changes = map(int, counts.groups())
    assert 0 < changed < compared and changes == 1
    for figure in ("warm diff_revisions (in process)", "cold `gpubill diff`", "cold `gpubill invoice base`",
                   "cold `gpubill invoice head`", "diff / two invoice runs"):
        assert figure in r.stdout


def test_a_customers_period_is_what_its_progressive_and_final_invoices_bill_together(revisions, db):
    base, head = revisions
    report = diff_revisions(db, base, head, [PERIOD])
    split = invoice_period(db, [base.contracts], PERIOD, progressive=True)  # the daily checks' invoices, then the final
    billed: Counter = Counter()
    for inv in split.invoices:
        billed[inv.billing.contract.name.name] += inv.sub_total_excluding_taxes_amount
    progressive = {i.billing.contract.name.name for i in split.invoices if i.invoice_type == "progressive_billing"}
    assert progressive  # the examples bill some contract progressively in the demo month
    assert {c.contract: c.before for c in report.customers if c.before is not None} == dict(billed)
