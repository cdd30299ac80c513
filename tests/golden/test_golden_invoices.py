"""Golden invoices: every example contract's invoice for a realistic month.

The month is the demo's (`gpubill demo --period 2026-11 --events 20000
--seed 2026`: seeded, so the same events every run), invoiced with the real
CLI (`gpubill invoice --format json --progressive`) from the repository root,
one file per contract in ``invoices-2026-11/``.  A difference fails with
the unified diff to review; when the change is intended, regenerate with

    GPUBILL_UPDATE_GOLDEN=1 python -m pytest tests/golden

and review `git diff tests/golden` like any other change to what customers
are billed.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "invoices-2026-11"
PERIOD = "2026-11"
CONTRACTS = sorted(p.stem for p in (ROOT / "examples" / "contracts").glob("*.bill"))
UPDATE = os.environ.get("GPUBILL_UPDATE_GOLDEN") == "1"


def gpubill(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpubill", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("golden") / "demo"
    r = gpubill("demo", "--contracts", "examples", "--dir", str(folder), "--period", PERIOD,
                "--events", "20000", "--seed", "2026", "--no-invoices")
    assert r.returncode == 0, r.stderr
    return folder / "gpubill.db"


@pytest.fixture(scope="module")
def invoices(store) -> dict:
    r = gpubill("invoice", "--store", str(store), "--contracts", "examples", "--period", PERIOD,
                "--format", "json", "--progressive")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    by_contract: dict = {}
    for inv in doc["invoices"]:
        by_contract.setdefault(inv["contract"], []).append(inv)
    return by_contract


def test_every_example_contract_has_a_golden_invoice(invoices):
    assert sorted(invoices) == CONTRACTS


@pytest.mark.parametrize("contract", CONTRACTS)
def test_golden_invoice(invoices, contract):
    path = GOLDEN / f"{contract}.json"
    got = json.dumps(invoices.get(contract, []), indent=2, sort_keys=False) + "\n"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(got)
    want = path.read_text() if path.exists() else ""
    if got != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), str(path), "now", n=2))
        pytest.fail(f"the invoice of {contract} changed (GPUBILL_UPDATE_GOLDEN=1 to accept):\n{diff[:20000]}")


def test_the_same_store_and_files_give_a_byte_identical_document(store):
    args = ("invoice", "--store", str(store), "--contracts", "examples", "--period", PERIOD, "--format", "json")
    first, second = gpubill(*args), gpubill(*args)
    assert first.returncode == 0 and first.stdout == second.stdout
