"""A plan version's `to` date is the last day it is in effect (docs/language.md, Plan versions).

A period whose deciding day is after a version's `to` is never priced by that
version: by the next version when one has taken effect, else the subscription
cannot be resolved (a CompileError that says why). `gpubill check` (and so
`gpubill rate`) already refuses a contract whose term reaches such a day.
Real files, a real store, a real subprocess for the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gpubill.dsl.check import check_sources
from gpubill.engine.spec.compile import CompileError
from gpubill.engine.spec.subscription import resolve_subscription

CATALOG = """
entity us { name "GPU Cloud" currency USD timezone "UTC" }
metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in hours
}
plan list version 1 effective 2025-01-01 to 2026-06-30 {
  currency USD
  billing monthly calendar
  charge gpu_hours 3.99 per hour
}
plan list version 2 effective 2026-08-01 {
  currency USD
  billing monthly calendar
  charge gpu_hours 3.49 per hour
}
plan promo version 1 effective 2025-01-01 to 2026-03-31 {
  currency USD
  billing monthly calendar
  charge gpu_hours 1.00 per hour
}
contract open {
  customer "open" subscription "sub_open" entity us plan list starts 2026-01-01
}
contract pinned {
  customer "pinned" subscription "sub_pinned" entity us plan list version 1 starts 2026-01-01
}
contract ended {
  customer "ended" subscription "sub_ended" entity us plan promo starts 2026-01-01 ends 2026-03-31
}
"""


def _resolve(name: str, period: str):
    catalog, diags = check_sources({"catalog.bill": CATALOG})
    assert [(d.rule, d.span.line) for d in diags] == [("plan-not-effective", CONTRACT_OPEN_LINE)]  # July: no version
    return resolve_subscription(catalog, catalog.contracts[name], period)


CONTRACT_OPEN_LINE = CATALOG.splitlines().index("contract open {") + 2
CONTRACT_OPEN_PLAN_COL = CATALOG.splitlines()[CONTRACT_OPEN_LINE - 1].index("plan list") + 1


def test_the_last_day_of_a_version_is_priced_by_it():
    assert _resolve("open", "2026-06").plan.version.id == "1"
    assert _resolve("open", "2026-06-30..2026-06-30").plan.version.id == "1"


def test_a_period_after_the_to_date_is_not_priced_by_the_ended_version():
    with pytest.raises(CompileError, match=r'no version of plan "list" is in effect on 2026-07-01: version 1 is '
                                           r"in effect only to 2026-06-30"):
        _resolve("open", "2026-07")
    assert _resolve("open", "2026-08").plan.version.id == "2"


def test_a_pinned_version_bills_the_whole_term():
    assert _resolve("pinned", "2026-07").plan.version.id == "1"


def test_a_contract_that_ended_with_its_version_is_simply_not_active_later():
    r = _resolve("ended", "2026-05")
    assert (r.plan.version.id, r.active) == ("1", False)


def gpubill(*args, cwd):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GPUBILL_STORE", None)
    return subprocess.run([sys.executable, "-m", "gpubill", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


def test_rate_refuses_a_contract_its_plan_stops_covering(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "catalog.bill").write_text(CATALOG)
    ev = {"transaction_id": "t1", "external_subscription_id": "sub_open", "code": "gpu_job",
          "timestamp": "2026-07-10T00:00:00Z", "properties": {"gpu_count": "1", "duration_seconds": "3600"}}
    (tmp_path / "events.jsonl").write_text(json.dumps(ev) + "\n")
    assert gpubill("ingest", "events.jsonl", "--store", "b.db", cwd=tmp_path).returncode == 0
    r = gpubill("rate", "--store", "b.db", "--contracts", "repo", "--period", "2026-07", "--customer", "open",
                cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert (f"repo/catalog.bill:{CONTRACT_OPEN_LINE}:{CONTRACT_OPEN_PLAN_COL}: error[plan-not-effective]: plan \"list\" has no version in "
            "effect from 2026-07-01, but the contract runs with no end") in r.stderr
    assert "Traceback" not in r.stderr


COMMITTED = CATALOG + """
contract committed {
  customer "committed" subscription "sub_committed" entity us plan list starts 2026-01-01
  commit 100 USD per month, true-up each period
}
"""


def test_a_committed_contract_keeps_its_start_day_version_past_its_to_date_and_check_agrees():
    catalog, diags = check_sources({"catalog.bill": COMMITTED})
    assert [d.rule for d in diags if d.span.line > len(CATALOG.splitlines())] == []  # none about `committed`
    assert resolve_subscription(catalog, catalog.contracts["committed"], "2026-07").plan.version.id == "1"


def test_a_committed_contract_starting_where_no_version_is_in_effect_is_still_refused():
    gap = COMMITTED.replace("starts 2026-01-01\n  commit", "starts 2026-07-01\n  commit")
    _, diags = check_sources({"catalog.bill": gap})
    committed_line = gap.splitlines().index("contract committed {") + 2
    assert ("plan-not-effective", committed_line) in [(d.rule, d.span.line) for d in diags]
