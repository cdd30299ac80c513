"""`gpubill rate` and `gpubill demo` end to end: real files, real store, real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CATALOG = """
entity us { name "GPU Cloud" currency USD timezone "UTC" }
metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in hours
  per event duration_seconds up to 1 second, minimum 60 seconds
  dimension gpu_type in "A100-40GB", "H100-SXM"
}
metric output_tokens {
  event inference
  sum output_tokens
}
metric deploys {
  event deploy
  count
}
plan on_demand {
  currency USD
  billing monthly calendar
  charge gpu_hours per hour by gpu_type {
    "A100-40GB" 1.89
    "H100-SXM" 3.49
  }
  charge output_tokens package 6.00 per 1M tokens
  charge deploys 25.00 per event { in advance }
}
contract acme {
  customer "acme-corp" name "Acme"
  subscription "sub_acme"
  entity us
  plan on_demand
  starts 2026-01-01
  override gpu_hours where gpu_type = "H100-SXM" 3.00 per hour
}
contract globex {
  customer "globex" subscription "sub_globex" entity us plan on_demand starts 2026-01-01
}
"""


def gpubill(*args, cwd, stdin=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GPUBILL_STORE", None)
    return subprocess.run([sys.executable, "-m", "gpubill", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, env=env, timeout=300)


def event(tx, sub, code, ts, **props):
    return {"transaction_id": tx, "external_subscription_id": sub, "code": code, "timestamp": ts,
            "properties": {k: str(v) for k, v in props.items()}}


@pytest.fixture()
def billing(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "catalog.bill").write_text(CATALOG)
    events = [
        # 8 H100s for a day at the overridden 3.00: 192 GPU-hours -> 576.00
        event("t1", "sub_acme", "gpu_job", "2026-10-03T10:00:00Z", gpu_type="H100-SXM", gpu_count=8, duration_seconds=86400),
        # a 10 s job on one A100 is billed the 60 s minimum: 1/60 h x 1.89 = 0.0315
        event("t2", "sub_acme", "gpu_job", "2026-10-04T10:00:00Z", gpu_type="A100-40GB", gpu_count=1, duration_seconds=10),
        # 1.5M output tokens -> 2 packages x 6.00
        event("t3", "sub_acme", "inference", "2026-10-05T10:00:00Z", output_tokens=1_500_000),
        # outside the period: not rated in October
        event("t4", "sub_acme", "gpu_job", "2026-11-01T00:00:00Z", gpu_type="H100-SXM", gpu_count=1, duration_seconds=3600),
        # a deploy is paid in advance: one fee, named by its transaction id
        event("d1", "sub_acme", "deploy", "2026-10-06T10:00:00Z"),
        # globex pays the list price for H100
        event("g1", "sub_globex", "gpu_job", "2026-10-31T23:59:59.999Z", gpu_type="H100-SXM", gpu_count=1, duration_seconds=3600),
    ]
    lines = "\n".join(json.dumps(e) for e in events) + "\n"
    dup = json.dumps(events[0]) + "\n"  # a re-send changes nothing
    (tmp_path / "events.jsonl").write_text(lines + dup)
    r = gpubill("ingest", "events.jsonl", "--store", "b.db", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path


def amounts(doc):
    out = {}
    for sub in doc["subscriptions"]:
        for ln in sub["lines"]:
            key = (sub["external_subscription_id"], ln["charge"], json.dumps(ln["filter"], sort_keys=True))
            out[key] = (ln["units"], ln["amount"])
    return out


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_rate_json_gives_the_contract_prices(billing, engine):
    r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", "2026-10", "--format", "json",
                "--engine", engine, cwd=billing)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    got = amounts(doc)
    assert got[("sub_acme", "gpu_hours", '{"gpu_type": ["H100-SXM"]}')] == ("192", "576.00")
    units, amount = got[("sub_acme", "gpu_hours", '{"gpu_type": ["A100-40GB"]}')]
    assert Decimal(units) * 60 == 1 and amount == "0.03"
    assert got[("sub_acme", "output_tokens", "null")] == ("1500000", "12.00")
    assert got[("sub_globex", "gpu_hours", '{"gpu_type": ["H100-SXM"]}')] == ("1", "3.49")
    fees = doc["subscriptions"][0]["in_advance_fees"]
    assert [(f["transaction_id"], f["amount"]) for f in fees] == [("d1", "25.00")]
    totals = {s["external_subscription_id"]: s["total"] for s in doc["subscriptions"]}
    assert totals == {"sub_acme": "613.03", "sub_globex": "3.49"}


def test_both_engines_print_the_same_document(billing):
    docs = []
    for engine in ("fast", "reference"):
        r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", "2026-10-01..2026-10-31",
                    "--format", "json", "--explain", "--engine", engine, cwd=billing)
        assert r.returncode == 0, r.stderr
        docs.append(r.stdout)
    assert docs[0] == docs[1]


def test_customer_filter_and_explain_points_at_the_override(billing):
    r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", "2026-10", "--customer", "acme",
                "--format", "json", "--explain", cwd=billing)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [s["contract"] for s in doc["subscriptions"]] == ["acme"]
    h100 = next(ln for ln in doc["subscriptions"][0]["lines"] if ln["filter"] == {"gpu_type": ["H100-SXM"]})
    line = CATALOG.splitlines().index('  override gpu_hours where gpu_type = "H100-SXM" 3.00 per hour') + 1
    assert h100["explain"]["clause"] == f"repo/catalog.bill:{line}:3"  # the contract's override
    assert h100["explain"]["events"] == {"count": 1, "transaction_ids": ["t1"]}
    a100 = next(ln for ln in doc["subscriptions"][0]["lines"] if ln["filter"] == {"gpu_type": ["A100-40GB"]})
    row = CATALOG.splitlines().index('    "A100-40GB" 1.89') + 1
    assert a100["explain"]["clause"] == f"repo/catalog.bill:{row}:5"  # the plan's table row
    tokens = next(ln for ln in doc["subscriptions"][0]["lines"] if ln["charge"] == "output_tokens")
    assert tokens["explain"]["events"]["transaction_ids"] == ["t3"]  # t4 is in November: not listed


def test_table_output(billing):
    r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", "2026-10", cwd=billing)
    assert r.returncode == 0, r.stderr
    assert "576.00" in r.stdout and "613.03" in r.stdout


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--period", "2026-13"], 2, "--period"),
        (["--period", "2026-10", "--customer", "nobody"], 1, 'no contract of customer "nobody"'),
        (["--period", "2026-10", "--store", "missing.db"], 3, "no such store"),
        (["--period", "2026-10-05..2026-10-01"], 2, "--period: the period ends before it starts"),
        (["--period", "2026-10", "--contracts", "nowhere"], 3, "nowhere: no such file or directory"),
    ],
)
def test_errors_are_one_line(billing, args, code, message):
    base = ["rate", "--contracts", "repo"]
    if "--store" not in args:
        base += ["--store", "b.db"]
    r = gpubill(*base, *args, cwd=billing)
    assert r.returncode == code
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_contracts_with_errors_are_refused_with_diagnostics(billing):
    (billing / "repo" / "broken.bill").write_text("plan broken { currency USD billing monthly charge nope 1 per hour }\n")
    r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", "2026-10", cwd=billing)
    assert r.returncode == 1
    assert "unknown-metric" in r.stderr and "broken.bill:1:" in r.stderr


def test_demo_runs_on_the_examples(tmp_path):
    r = gpubill("demo", "--contracts", str(ROOT / "examples"), "--events", "3000", "--period", "2026-10", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Usage charges per customer, 2026-10" in r.stdout
    assert "malformed in quarantine" in r.stdout
    assert (tmp_path / "gpubill-demo" / "gpubill.db").exists()
    # the quarantine holds the malformed events, with reasons
    q = gpubill("events", "rejected", "--store", "gpubill-demo/gpubill.db", "--format", "json", cwd=tmp_path)
    assert q.returncode == 0, q.stderr
    rejected = [json.loads(line) for line in q.stdout.splitlines() if line.strip()]  # JSON lines
    assert len(rejected) >= 6 and all(r["reasons"] for r in rejected)


def test_a_sum_beyond_int64_is_rated_exactly_by_both_engines(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "catalog.bill").write_text(CATALOG)
    huge = [event(f"h{i}", "sub_acme", "inference", "2026-10-05T10:00:00Z", output_tokens=9_000_000_000_000_000_000)
            for i in range(2)]
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(e) for e in huge) + "\n")
    r = gpubill("ingest", "e.jsonl", "--store", "b.db", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    docs = []
    for engine in ("fast", "reference"):
        r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", "2026-10", "--engine", engine,
                    "--format", "json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr  # the fast engine's exact path: no int64 limit on a sum
        docs.append(json.loads(r.stdout))
        line = docs[-1]["subscriptions"][0]["lines"]
        assert any(ln["units"] == "18000000000000000000" for ln in line)
    assert docs[0] == docs[1]
