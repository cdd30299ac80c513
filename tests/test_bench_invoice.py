"""bench/invoice.py on a tiny data set, so the bench cannot rot.

The contracts it invoices are the example contracts with every term kept,
each with its own name, customer and subscription; `--quick` runs the whole
bench (store, `gpubill rate` and `gpubill invoice` as new processes) and
every contract whose billing period closes in the month is invoiced.  Nothing here measures time.
"""

from __future__ import annotations

import difflib
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpubill.service.rating import load_catalog

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("invoice")
    finally:
        sys.path.remove(str(BENCH))


def test_contract_copies_keep_every_term_under_their_own_names(bench, tmp_path):
    bench.build_repo(tmp_path / "repo", 20)
    catalog, _ = load_catalog([str(tmp_path / "repo")])
    contracts = list(catalog.contracts.values())
    assert len(contracts) == 20
    assert len({c.customer.id.value for c in contracts}) == 20
    assert len({c.subscription.value for c in contracts}) == 20
    templates = bench.templates(bench.ROOT / "examples")
    for i, (plan, text) in enumerate(templates):
        copy = (tmp_path / "repo" / "contracts" / f"c{i:05d}.bill").read_text()
        changed = [ln for ln in difflib.ndiff(text.splitlines(), copy.splitlines()) if ln[:1] in "+-"]
        assert len(changed) == 6, changed  # contract, customer and subscription lines; nothing else
        assert catalog.contracts[copy.split()[1]].plan.name.name == plan


def test_quick_run_rates_and_invoices_every_contract(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / "invoice.py"), "--quick", "--dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    counts = re.search(r"rate: (\d+) subscriptions rated; invoice: (\d+) invoices .* (\d+) not invoiced", r.stdout)
    assert counts, r.stdout
    rated, invoiced, failed = map(int, counts.groups())
    assert rated == 24 and 0 < invoiced <= 24 and failed == 0  # a quarterly contract may not close in the month
    for figure in ("cold `gpubill rate` (baseline)", "cold `gpubill invoice`", "peak resident, `gpubill invoice`",
                   "invoice / rate: time"):
        assert figure in r.stdout
