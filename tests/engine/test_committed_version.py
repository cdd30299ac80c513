"""A contract under a commitment keeps the plan version in effect on its start day.

A `commit` or `reserve` term locks the prices of the version in effect on the
contract's start day for its whole term, even past that version's `to` date;
a contract without one follows the versions, and a pinned one keeps its pin
(docs/language.md, Notice periods). Resolution over real `.bill` sources, and
the amounts of real `gpubill invoice` runs over a real store.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from gpubill.dsl.check import check_sources
from gpubill.engine.spec.subscription import resolve_subscription, version_on

PLANS = """\
entity cloud {
  currency USD
}

metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in hours
  dimension gpu_type
}

plan list version 1 effective 2026-01-01 V1_TO{
  currency USD
  billing monthly
  charge gpu_hours 3.00 per hour
}

plan list version 2 effective 2026-03-01 {
  currency USD
  billing monthly
  charge gpu_hours 3.50 per hour
}
"""


def contract(name: str, terms: str = "", plan: str = "list", starts: str = "2026-01-01") -> str:
    return f"""
contract {name} {{
  customer "{name}"
  subscription "sub_{name}"
  entity cloud
  plan {plan}
  starts {starts}{terms}
}}
"""


COMMIT = "\n  commit 10 USD per month"
RESERVE = '\n  reserve 1 "H100-SXM" on gpu_hours at 0.01 per hour, in arrears'
CONTRACTS = (contract("follows") + contract("pinned", plan="list version 1") + contract("committed", COMMIT)
             + contract("reserved", RESERVE) + contract("late", COMMIT, starts="2026-03-15"))


def catalog(v1_to: str = ""):
    cat, diags = check_sources({"plans.bill": PLANS.replace("V1_TO", v1_to) + CONTRACTS})
    assert not [d for d in diags if d.is_error], [(d.rule, d.message) for d in diags]
    return cat


def version_in(cat, name: str, period: str = "2026-04") -> str:
    return resolve_subscription(cat, cat.contracts[name], period).plan.version.id


def test_a_committed_contract_keeps_the_version_of_its_start_day():
    cat = catalog()
    assert version_in(cat, "committed") == "1"
    assert version_on(cat, cat.contracts["committed"], dt.date(2026, 12, 1)).version.id == "1"


def test_a_reservation_is_a_commitment():
    assert version_in(catalog(), "reserved") == "1"


def test_without_a_commitment_the_contract_follows_the_versions_and_a_pin_holds():
    cat = catalog()
    assert version_in(cat, "follows") == "2"
    assert version_in(cat, "pinned") == "1"


def test_a_commitment_starting_after_a_new_version_keeps_that_one():
    assert version_in(catalog(), "late") == "2"


def test_the_commitment_keeps_its_version_past_the_versions_to_date():
    cat = catalog("to 2026-02-28 ")
    assert version_in(cat, "committed") == "1"
    assert version_in(cat, "follows") == "2"


# ---------------------------------------------------------------- invoices


def gpubill(*args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "gpubill", *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def invoiced(tmp_path_factory) -> dict[str, str]:
    """April 2026's subtotals: 10 GPU-hours on A100 for each contract (no reserved GPU used)."""
    d = tmp_path_factory.mktemp("committed")
    (d / "events.jsonl").write_text("".join(
        json.dumps({"transaction_id": f"t-{name}", "external_subscription_id": f"sub_{name}", "code": "gpu_job",
                    "timestamp": "2026-04-10T12:00:00Z",
                    "properties": {"gpu_type": "A100", "gpu_count": 1, "duration_seconds": 36000}}) + "\n"
        for name in ("follows", "pinned", "committed", "reserved")))
    gpubill("ingest", str(d / "events.jsonl"), "--store", str(d / "gpubill.db"))
    (d / "repo").mkdir()
    (d / "repo" / "plans.bill").write_text(PLANS.replace("V1_TO", "") + CONTRACTS)
    doc = json.loads(gpubill("invoice", "--store", str(d / "gpubill.db"), "--contracts", str(d / "repo"),
                             "--period", "2026-04", "--format", "json"))
    invoices = doc["invoices"] if isinstance(doc, dict) else doc
    return {i["customer"]["external_id"]: i["sub_total_excluding_taxes_amount"] for i in invoices}


def test_the_committed_contract_is_invoiced_at_its_start_days_price(invoiced):
    assert invoiced["committed"] == "30.00"  # 10 GPU-hours x 3.00 (version 1), over its 10 USD commitment


def test_the_uncommitted_contract_pays_the_new_price_and_the_pinned_one_its_pin(invoiced):
    assert invoiced["follows"] == "35.00"  # 10 x 3.50 (version 2)
    assert invoiced["pinned"] == "30.00"


def test_the_reserved_contract_keeps_its_price(invoiced):
    # 10 x 3.00 on-demand, plus the reservation: 1 GPU x 24 h x 30 days x 0.01 = 7.20
    assert invoiced["reserved"] == "37.20"
