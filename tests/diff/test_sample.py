"""`gpubill sample`: a pseudonymized, seeded sample of a store's usage, through the real CLI.

A real store of three subscriptions; samples of it as new stores and JSONL;
the contracts pointed at the pseudonyms with the `--map-out` mapping, and
their invoices compared with the original's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

KEY = {"SAMPLE_KEY": "s3cret"}
SUBS = ("sub_a", "sub_b", "sub_c")

PLANS = """\
entity cloud {
  currency USD
}

metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in hours
}

plan list version 1 effective 2026-01-01 {
  currency USD
  billing monthly
  charge gpu_hours 3.00 per hour
}
"""


def contract(sub: str) -> str:
    return f"""
contract c_{sub} {{
  customer "cust_{sub}"
  subscription "{sub}"
  entity cloud
  plan list
  starts 2026-01-01
}}
"""


def gpubill(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpubill", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def ok(*args: str, env: dict | None = None) -> str:
    p = gpubill(*args, env=env)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("sample")
    lines = []
    for n, sub in enumerate(SUBS, start=1):
        for i in range(20):
            lines.append(json.dumps({
                "transaction_id": f"{sub}-{i}", "external_subscription_id": sub, "code": "gpu_job",
                "timestamp": f"2026-04-{i + 1:02d}T12:00:00Z",
                "properties": {"gpu_count": n, "duration_seconds": 3600}}))
    (d / "events.jsonl").write_text("\n".join(lines) + "\n")
    ok("ingest", str(d / "events.jsonl"), "--store", str(d / "real.db"))
    (d / "contracts").mkdir()
    (d / "contracts" / "all.bill").write_text(PLANS + "".join(contract(s) for s in SUBS))
    return d


def events(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def totals(store, contracts_dir) -> dict[str, str]:
    doc = json.loads(ok("invoice", "--store", str(store), "--contracts", str(contracts_dir),
                        "--period", "2026-04", "--format", "json"))
    invoices = doc["invoices"] if isinstance(doc, dict) else doc
    return {i["customer"]["external_id"]: i["sub_total_excluding_taxes_amount"] for i in invoices}


def test_the_key_is_required_and_never_a_flag(work):
    p = gpubill("sample", "--store", str(work / "real.db"), "--out", str(work / "nokey.jsonl"),
                "--key-env", "SAMPLE_KEY_UNSET")
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "SAMPLE_KEY_UNSET is not set" in p.stderr
    assert not (work / "nokey.jsonl").exists()


def test_pseudonyms_are_consistent_and_hide_the_ids(work):
    a, b = work / "a.jsonl", work / "b.jsonl"
    for out in (a, b):
        ok("sample", "--store", str(work / "real.db"), "--out", str(out), "--key-env", "SAMPLE_KEY", env=KEY)
    ea = events(a)
    assert ea == events(b)  # the same key and seed: the same sample
    assert len(ea) == 60
    subs = {e["external_subscription_id"] for e in ea}
    assert len(subs) == 3 and not subs & set(SUBS)
    assert all(e["transaction_id"].startswith("tra_") and "sub_" not in e["transaction_id"] for e in ea)
    other = work / "other.jsonl"
    ok("sample", "--store", str(work / "real.db"), "--out", str(other), "--key-env", "OTHER", env={"OTHER": "k2"})
    assert not subs & {e["external_subscription_id"] for e in events(other)}


def test_customers_and_fraction_are_honored(work):
    out = work / "two.jsonl"
    ok("sample", "--store", str(work / "real.db"), "--out", str(out), "--key-env", "SAMPLE_KEY",
       "--customers", "2", "--seed", "7", env=KEY)
    ev = events(out)
    assert len({e["external_subscription_id"] for e in ev}) == 2 and len(ev) == 40
    out = work / "half.jsonl"
    ok("sample", "--store", str(work / "real.db"), "--out", str(out), "--key-env", "SAMPLE_KEY",
       "--fraction", "0.5", env=KEY)
    assert 15 <= len(events(out)) <= 45


def test_a_full_sample_invoices_like_the_original(work):
    sample, mapping = work / "sample.db", work / "map.json"
    ok("sample", "--store", str(work / "real.db"), "--out", str(sample), "--key-env", "SAMPLE_KEY",
       "--period", "2026-04", "--map-out", str(mapping), env=KEY)
    subs = json.loads(mapping.read_text())["subscriptions"]
    assert set(subs) == set(SUBS)
    text = (work / "contracts" / "all.bill").read_text()
    for real, fake in subs.items():
        text = text.replace(f'subscription "{real}"', f'subscription "{fake}"')
    (work / "pseudo").mkdir()
    (work / "pseudo" / "all.bill").write_text(text)
    before = totals(work / "real.db", work / "contracts")
    assert before == {"cust_sub_a": "60.00", "cust_sub_b": "120.00", "cust_sub_c": "180.00"}
    assert totals(sample, work / "pseudo") == before
