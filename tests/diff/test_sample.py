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


def _customers(doc: dict) -> dict[str, tuple]:
    return {c["contract"]: (c["before"], c["after"], c["delta"]) for c in doc["customers"]}


def test_diff_on_a_sample_with_its_map_gives_the_full_stores_deltas(repo, store, tmp_path):
    """Four of the demo's eight subscriptions (seed 4: sunbeam, meridian and two more), their
    contracts pointed at the pseudonyms by --map; a price change and a commitment change."""
    sample, mapping = tmp_path / "sample.db", tmp_path / "map.json"
    ok("sample", "--store", str(store), "--out", str(sample), "--key-env", "SAMPLE_KEY", "--period", "2026-11",
       "--customers", "4", "--seed", "4", "--map-out", str(mapping), env=KEY)
    plan, meridian = repo / "plans/on_demand.bill", repo / "contracts/meridian_bank.bill"
    plan.write_text(plan.read_text().replace('"H100-SXM"  3.49', '"H100-SXM"  3.69', 1))
    meridian.write_text(meridian.read_text().replace("commit 40_000 USD", "commit 45_000 USD", 1))
    work_tree = {p: p.read_text() for p in repo.rglob("*.bill")}

    def diff(db, *more):
        done = subprocess.run([sys.executable, "-m", "gpubill", "diff", "--base", "HEAD", "--store", str(db),
                               "--period", "2026-11", "--format", "json", *more], cwd=repo, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    full, sampled = diff(store), diff(sample, "--map", str(mapping))
    kept = {"sunbeam_robotics", "meridian_bank", "cirrus_exchange", "lumen_biotherapeutics"}
    assert set(_customers(sampled)) == kept
    assert _customers(sampled) == {k: v for k, v in _customers(full).items() if k in kept}
    assert {k for k, (_, _, delta) in _customers(sampled).items() if delta != "0.00"} == {"sunbeam_robotics",
                                                                                          "meridian_bank"}
    assert sampled["unrated"] == ["not in the sample (their subscriptions are not in --map): helix_labs, "
                                  "northbridge_university, pixelforge_studios, quill_ai"]
    assert {p: p.read_text() for p in repo.rglob("*.bill")} == work_tree   # the work tree untouched


def test_a_map_that_is_not_a_sample_map_is_one_line(repo, store, tmp_path):
    bad = tmp_path / "map.json"
    bad.write_text('{"customers": {}}')
    done = subprocess.run([sys.executable, "-m", "gpubill", "diff", "--base", "HEAD", "--store", str(store),
                           "--map", str(bad)], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f'gpubill: error: --map {bad}: no "subscriptions" object of ids '
                                        "(a `gpubill sample --map-out` file)"]
