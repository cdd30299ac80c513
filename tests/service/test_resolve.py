"""One subscription, one plan version: the version `gpubill rate` shows and
explains is the version that priced its lines.

The version in effect is decided once, on the first day of the period the
subscription is billed: the period's first day, or the contract's start date
when the contract starts inside the period (docs/language.md, Plan versions).
Each case below is a configuration where the version was once decided twice
on different days; real files, a real store, real subprocesses, both engines.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from gpubill.dsl.check import check_sources
from gpubill.engine.spec.compile import CompileError
from gpubill.engine.spec.subscription import resolve_subscription

CATALOG = """
entity us { name "GPU Cloud" currency USD timezone "UTC" }
metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in hours
  dimension gpu_type in "H100-SXM"
}
plan list version 1 effective 2025-01-01 to 2026-10-09 {
  currency USD
  billing monthly calendar
  charge gpu_hours 3.99 per hour
}
plan list version 2 effective 2026-10-10 {
  currency USD
  billing monthly calendar
  charge gpu_hours 3.49 per hour
}
plan tokyo version 1 effective 2025-01-01 to 2026-09-30 {
  currency USD
  billing monthly calendar
  timezone "Asia/Tokyo"
  charge gpu_hours 2.00 per hour
}
plan tokyo version 2 effective 2026-10-01 {
  currency USD
  billing monthly calendar
  timezone "Asia/Tokyo"
  charge gpu_hours 1.50 per hour
}
contract late_start {
  customer "late" subscription "sub_late" entity us plan list starts 2026-10-15
}
contract all_year {
  customer "year" subscription "sub_year" entity us plan list starts 2026-01-01
}
contract in_tokyo {
  customer "tokyo" subscription "sub_tokyo" entity us plan tokyo starts 2026-01-01
}
"""

def gpubill(*args, cwd):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GPUBILL_STORE", None)
    return subprocess.run([sys.executable, "-m", "gpubill", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


def event(tx, sub, code, ts, **props):
    return {"transaction_id": tx, "external_subscription_id": sub, "code": code, "timestamp": ts,
            "properties": {k: str(v) for k, v in props.items()}}


CHARGE_LINE = {  # (plan, version) -> the line of its `charge` clause
    (plan, version): n
    for n, text in enumerate(CATALOG.splitlines(), start=1)
    if text.startswith("plan ")
    for plan, version in [(text.split()[1], text.split()[3])]
}


def _charge_clause(plan: str, version: str) -> str:
    block = CHARGE_LINE[(plan, version)]
    lines = CATALOG.splitlines()
    n = next(i for i in range(block, len(lines)) if lines[i].strip().startswith("charge")) + 1
    return f"repo/catalog.bill:{n}:3"


@pytest.fixture(scope="module")
def billing(tmp_path_factory):
    root = tmp_path_factory.mktemp("resolve")
    (root / "repo").mkdir()
    (root / "repo" / "catalog.bill").write_text(CATALOG)
    one_hour = {"gpu_type": "H100-SXM", "gpu_count": 1, "duration_seconds": 3600}
    events = [
        event("l1", "sub_late", "gpu_job", "2026-10-20T10:00:00Z", **one_hour),
        event("y1", "sub_year", "gpu_job", "2026-10-20T10:00:00Z", **one_hour),
        event("k1", "sub_tokyo", "gpu_job", "2026-10-20T10:00:00Z", **one_hour),
    ]
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    r = gpubill("ingest", "events.jsonl", "--store", "b.db", cwd=root)
    assert r.returncode == 0, r.stderr
    return root


def _rate(root, period: str, customer: str, engine: str) -> dict:
    r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", period, "--customer", customer,
                "--format", "json", "--explain", "--engine", engine, cwd=root)
    assert r.returncode == 0, r.stderr
    (sub,) = json.loads(r.stdout)["subscriptions"]
    return sub


CASES = [
    # starts on Oct 15, inside the period, after version 2 took effect on Oct 10
    ("late", "2026-10", "list", "2", "3.49"),
    # a day inside the period names it; the period starts on Oct 1, in version 1
    ("year", "2026-10-20", "list", "1", "3.99"),
    # October starts at midnight in Tokyo (Sep 30, 15:00 UTC): version 2's first day
    ("tokyo", "2026-10", "tokyo", "2", "1.50"),
]


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("customer,period,plan,version,price", CASES)
def test_the_version_shown_and_explained_is_the_version_that_priced(billing, engine, customer, period, plan,
                                                                     version, price):
    sub = _rate(billing, period, customer, engine)
    assert (sub["plan"], sub["plan_version"]) == (plan, version)
    (line,) = sub["lines"]
    assert Decimal(line["unit_price"]) == Decimal(price)
    assert line["amount"] == price  # one GPU-hour
    assert line["explain"]["clause"] == _charge_clause(plan, version)


# ------------------------------------------------------- the rule, as values


def _resolve(src: str, contract: str, period: str):
    catalog, diags = check_sources({"t.bill": src})
    assert not [d for d in diags if d.is_error], diags
    return resolve_subscription(catalog, catalog.contracts[contract], period)


def test_the_deciding_day_is_the_first_day_the_subscription_is_billed():
    late = _resolve(CATALOG, "late_start", "2026-10")
    assert (late.plan.version.id, late.decided_on, late.period.label) == ("2", dt.date(2026, 10, 15), "2026-10")
    year = _resolve(CATALOG, "all_year", "2026-10-20")
    assert (year.plan.version.id, year.decided_on, year.period.label) == ("1", dt.date(2026, 10, 1), "2026-10-01..2026-10-31")
    tokyo = _resolve(CATALOG, "in_tokyo", "2026-10")
    assert (tokyo.plan.version.id, tokyo.timezone, tokyo.decided_on) == ("2", "Asia/Tokyo", dt.date(2026, 10, 1))


def test_a_pinned_version_bills_every_period():
    src = CATALOG + 'contract pinned { customer "p" subscription "sub_p" entity us plan list version 1 starts 2026-01-01 }\n'
    assert _resolve(src, "pinned", "2026-11").plan.version.id == "1"


def test_a_contract_starting_after_the_period_is_not_active():
    r = _resolve(CATALOG, "late_start", "2026-09")
    assert not r.active


def test_versions_that_send_the_decision_to_each_other_are_an_error():
    src = CATALOG + """
plan flip version 1 effective 2025-01-01 to 2026-01-31 { currency USD billing monthly calendar charge gpu_hours 1.00 per hour }
plan flip version 2 effective 2026-02-01 { currency USD billing quarterly calendar charge gpu_hours 2.00 per hour }
contract flipper { customer "f" subscription "sub_f" entity us plan flip starts 2025-01-01 }
"""
    # Feb 15 is in version 2, whose quarter starts on Jan 1, in version 1, whose month starts on Feb 1 ...
    with pytest.raises(CompileError, match="bill different periods"):
        _resolve(src, "flipper", "2026-02-15")
    assert _resolve(src, "flipper", "2026-02").plan.version.id == "2"  # a month names its own period
