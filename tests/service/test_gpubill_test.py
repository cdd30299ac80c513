"""`gpubill test` end to end: real .bill files, the real CLI in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CATALOG = """
entity us { name "GPU Cloud" currency USD timezone "UTC" tax "Sales tax" 10% }
metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in GPU-hours
  dimension gpu_type
}
plan on_demand {
  currency USD
  billing monthly
  charge gpu_hours per GPU-hour by gpu_type {
    "A100-80GB" 2.00
    "H100-SXM" 3.00
  }
}
contract acme {
  customer "acme"
  subscription "sub_acme"
  entity us
  plan on_demand
  starts 2026-01-01
}
"""

TESTS = """
test "h100 day" {
  contract acme
  period 2026-10
  usage gpu_job gpu_type="H100-SXM" gpu_count=1 duration_seconds=36000 at 2026-10-03T10:00:00Z
  usage gpu_job gpu_type="A100-80GB" gpu_count=1 duration_seconds=3600 at 2026-10-04T10:00:00Z
  # 10 x 3.00 = 30.00; 1 x 2.00 = 2.00
  expect charge gpu_hours where gpu_type = "H100-SXM" = 30.00 USD
  expect units gpu_hours = 11
  expect events gpu_hours = 2
  # (30.00 + 2.00) x 1.10 = 35.20
  expect total = 35.20 USD
}

test "a100 hour" {
  contract acme
  period 2026-10
  usage gpu_job gpu_type="A100-80GB" gpu_count=2 duration_seconds=1800 at 2026-10-04T10:00:00Z
  expect charge gpu_hours = 2.00 USD
}
"""

WRONG = """
test "a wrong total" {
  contract acme
  period 2026-10
  usage gpu_job gpu_type="H100-SXM" gpu_count=1 duration_seconds=3600 at 2026-10-03T10:00:00Z
  expect charge gpu_hours = 3.00 USD
  expect total = 3.00 USD
}
"""


def _gpubill(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "gpubill", "test", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _repo(tmp_path, *texts) -> Path:
    (tmp_path / "catalog.bill").write_text(CATALOG)
    for i, text in enumerate(texts):
        (tmp_path / f"t{i}.bill").write_text(text)
    return tmp_path


def test_the_examples_pass():
    r = _gpubill("examples")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAILED" not in r.stdout
    assert re.search(r"^\d+ passed in \d+\.\d\ds$", r.stdout.splitlines()[-1]), r.stdout


def test_passing_tests_one_line_each(tmp_path):
    r = _gpubill(str(_repo(tmp_path, TESTS)))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f'PASSED {tmp_path}/t0.bill:2  "h100 day"'
    assert lines[1] == f'PASSED {tmp_path}/t0.bill:15  "a100 hour"'
    assert lines[2].startswith("2 passed in ")


def test_a_failing_expect_shows_expected_actual_and_lines(tmp_path):
    r = _gpubill(str(_repo(tmp_path, TESTS, WRONG)))
    assert r.returncode == 1
    out = r.stdout
    assert f'FAILED {tmp_path}/t1.bill:2  "a wrong total"' in out
    # the charge expectation holds; only the total is shown: 3.00 + 10 % tax = 3.30
    assert "expect charge" not in out
    assert f"{tmp_path}/t1.bill:7: expect total" in out
    assert "expected: 3.00 USD" in out
    assert "actual:   3.30 USD" in out
    assert re.search(r"gpu_hours \(H100-SXM\)\s+units 1\s+amount 3\.00\s+\[charge/usage\]", out), out
    assert out.splitlines()[-1].startswith("2 passed, 1 failed in ")


def test_k_selects_by_substring_of_the_name(tmp_path):
    r = _gpubill(str(_repo(tmp_path, TESTS, WRONG)), "-k", "a100")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0].endswith('"a100 hour"')
    assert r.stdout.splitlines()[1].startswith("1 passed in ")


def test_no_selected_test_is_a_failure(tmp_path):
    r = _gpubill(str(_repo(tmp_path, TESTS)), "-k", "nothing like this")
    assert r.returncode == 1
    assert r.stdout.startswith("no tests ran in ")


def test_an_unknown_contract_is_a_check_error(tmp_path):
    bad = TESTS.replace("contract acme", "contract acme_corp", 1)
    r = _gpubill(str(_repo(tmp_path, bad)))
    assert r.returncode == 1
    assert f"{tmp_path}/t0.bill:3:" in r.stderr
    assert "acme_corp" in r.stderr
    assert "PASSED" not in r.stdout and "FAILED" not in r.stdout


def test_the_default_path_is_examples():
    r = _gpubill("-k", "a day on 8 H100s")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith('PASSED examples/tests/on_demand.bill:')


def test_a_missing_path_is_an_io_error(tmp_path):
    r = _gpubill(str(tmp_path / "nope"))
    assert r.returncode == 3
    assert r.stderr.count("\n") == 1 and "no such file or directory" in r.stderr


def test_a_period_before_the_contract_is_a_failure_that_says_so(tmp_path):
    early = TESTS.replace("period 2026-10", "period 2025-10", 1).replace("at 2026-10-0", "at 2025-10-0")
    r = _gpubill(str(_repo(tmp_path, early)), "-k", "h100 day")
    assert r.returncode == 1
    assert f'FAILED {tmp_path}/t0.bill:2  "h100 day"' in r.stdout
    assert 'could not be invoiced: contract "acme" is not active in the test\'s period 2025-10' in r.stdout


def test_a_period_that_is_not_one_billing_period_is_a_failure_that_says_so(tmp_path):
    # the plan bills quarterly: October is not one of its periods, and the test says so
    repo = _repo(tmp_path, TESTS)
    (repo / "catalog.bill").write_text(CATALOG.replace("  billing monthly\n", "  billing quarterly\n"))
    r = _gpubill(str(repo), "-k", "h100 day")
    assert r.returncode == 1
    assert ("the test's period 2026-10 is not one billing period of contract \"acme\" (0 of its periods end in it)"
            in r.stdout)
    # the quarter, named as the range of its days, is one
    (repo / "t0.bill").write_text(TESTS.replace("period 2026-10", "period 2026-10-01 .. 2026-12-31", 1))
    r = _gpubill(str(repo), "-k", "h100 day")
    assert r.returncode == 0, r.stdout


def test_in_memory_events_give_a_jobs_segments_its_end_reason_as_the_store_does():
    from gpubill.service.testing import EventsInMemory

    seg = {"code": "gpu_job", "external_subscription_id": "s", "timestamp_ms": 1000,
           "properties": {"job_id": "j", "duration_seconds": "300"}}
    final = {**seg, "timestamp_ms": 2000,
             "properties": {"job_id": "j", "duration_seconds": "60", "end_reason": "failed_infrastructure"}}
    events = EventsInMemory([seg, final])
    reasons = [e["properties"].get("end_reason") for e in events.events_as_dicts()]
    assert reasons == ["failed_infrastructure", "failed_infrastructure"]
    assert seg["properties"].get("end_reason") is None  # the caller's events are not changed
