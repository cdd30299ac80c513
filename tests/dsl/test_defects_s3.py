"""Checker defects found in issue 8: a version's `to` date, one subscription billed by two
contracts at once, and `usage ... times N` without a bound.

Inline sources through the checker (helpers), and `gpubill check` as a real subprocess on real
files for what a user sees.
"""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import assert_diag, assert_ok, check

from gpubill.dsl.limits import MAX_USAGE_TIMES

# ---------------------------------------------------------------- a version's `to` is its last day


def _versions(to: str, next_from: str) -> str:
    return (f"plan q version 1 effective 2026-01-01 to {to} {{\n  currency USD\n  billing monthly\n}}\n"
            f"plan q version 2 effective {next_from} {{\n  currency USD\n  billing monthly\n}}\n")


def test_a_version_is_in_effect_on_its_to_date():
    assert_ok(_versions("2026-06-30", "2026-07-01"))
    assert_diag(_versions("2026-07-01", "2026-07-01"), "version-overlap", 5, 8)  # July 1st in both


def test_a_one_day_version_is_in_order():
    assert_ok("plan q version 1 effective 2026-01-01 to 2026-01-01 {\n  currency USD\n  billing monthly\n}\n")
    assert_diag("plan q version 1 effective 2026-01-02 to 2026-01-01 {\n  currency USD\n  billing monthly\n}\n",
                "date-order", 1, 42)


def test_a_contract_pinning_a_version_may_start_on_its_last_day():
    src = _versions("2026-06-30", "2026-07-01") + (
        'contract k {\n  customer "k"\n  subscription "sub_k"\n  entity gpucloud\n  plan q version 1\n  START\n}\n')
    assert_ok(src.replace("START", "starts 2026-06-30"))
    assert_diag(src.replace("START", "starts 2026-07-01"), "plan-not-effective", 14, 10)


def _on_q(terms: str) -> str:
    return f'contract k {{\n  customer "k"\n  subscription "sub_k"\n  entity gpucloud\n  plan q\n{terms}}}\n'


def test_a_contract_must_find_a_version_on_every_day_of_its_term():
    gap = _versions("2026-06-30", "2026-08-01")
    d = assert_diag(gap + _on_q("  starts 2026-02-01\n"), "plan-not-effective", 13, 3)
    assert d.message == 'plan "q" has no version in effect from 2026-07-01, but the contract runs with no end'
    assert d.hints == ("add a version effective 2026-07-01, or end the contract before 2026-07-01",)
    assert [(what, span.line) for what, span in d.notes] == [("version 1, in effect to 2026-06-30", 1)]
    assert_ok(gap + _on_q("  starts 2026-02-01\n  ends 2026-06-30\n"))
    assert_ok(gap + _on_q("  starts 2026-08-01\n"))
    assert_ok(_versions("2026-06-30", "2026-07-01") + _on_q("  starts 2026-02-01\n"))


def test_a_last_version_with_a_to_date_ends_the_contracts_on_it():
    last = "plan q version 1 effective 2026-01-01 to 2026-06-30 {\n  currency USD\n  billing monthly\n}\n"
    d = assert_diag(last + _on_q("  starts 2026-02-01\n  ends 2026-12-31\n"), "plan-not-effective", 9, 3)
    assert d.message == 'plan "q" has no version in effect from 2026-07-01, but the contract runs until 2026-12-31'
    d = assert_diag(last + _on_q("  starts 2026-08-01\n"), "plan-not-effective", 9, 3)
    assert d.message.startswith('plan "q" has no version in effect from 2026-08-01')
    assert_ok(last + _on_q("  starts 2026-02-01\n  ends 2026-06-30\n"))


# ---------------------------------------------------------------- one subscription, two contracts

def _contract(name: str, sub: str, terms: str) -> str:
    return f'contract {name} {{\n  customer "{name}"\n  subscription "{sub}"\n  entity gpucloud\n  plan on_demand\n{terms}}}\n'


def test_two_contracts_billing_one_subscription_at_once_are_an_error():
    src = _contract("old", "sub_x", "  starts 2026-02-01\n") + _contract("renewal", "sub_x", "  starts 2027-02-01\n")
    d = assert_diag(src, "subscription-overlap", 10, 16)  # the renewal's subscription id
    assert d.message == ('contracts "old" and "renewal" both bill subscription "sub_x" on 2027-02-01: '
                         "its events would be billed twice")
    assert d.hints == ('end contract "old" before 2027-02-01, or give this contract its own subscription id',)
    assert [(what, span.line, span.col) for what, span in d.notes] == [
        ('contract "old" bills it from 2026-02-01 (no end)', 3, 16)]


def test_the_contract_that_starts_later_is_shown_wherever_it_is_written():
    src = _contract("renewal", "sub_x", "  starts 2027-02-01\n") + _contract("old", "sub_x",
                                                                             "  starts 2026-02-01\n  ends 2027-02-01\n")
    d = assert_diag(src, "subscription-overlap", 3, 16)
    assert d.notes[0][0] == 'contract "old" bills it from 2026-02-01 to 2027-02-01'


def test_back_to_back_terms_and_other_subscriptions_are_fine():
    assert_ok(_contract("old", "sub_x", "  starts 2026-02-01\n  ends 2027-01-31\n")
              + _contract("renewal", "sub_x", "  starts 2027-02-01\n")
              + _contract("other", "sub_y", "  starts 2026-02-01\n"))


def gpubill_check(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "GPUBILL_STORE"}
    return subprocess.run([sys.executable, "-m", "gpubill", "check", *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=60)


CATALOG = """\
entity us { name "GPU Cloud" currency USD timezone "UTC" }
metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in hours
}
plan p {
  currency USD
  billing monthly calendar
  charge gpu_hours 2.00 per hour
}
"""


def test_check_points_at_the_second_contract_in_its_own_file(tmp_path):
    (tmp_path / "catalog.bill").write_text(CATALOG)
    (tmp_path / "a.bill").write_text('contract a { customer "a" subscription "sub_a" entity us plan p starts 2026-01-01 }\n')
    (tmp_path / "b.bill").write_text(
        'contract b {\n  customer "b"\n  subscription "sub_a"\n  entity us\n  plan p\n  starts 2026-06-01\n}\n')
    r = gpubill_check(".", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [
        'b.bill:3:16: error[subscription-overlap]: contracts "a" and "b" both bill subscription "sub_a" on '
        "2026-06-01: its events would be billed twice",
        "  |",
        '3 |   subscription "sub_a"',
        "  |                ^^^^^^^",
        '  = hint: end contract "a" before 2026-06-01, or give this contract its own subscription id',
        '  = note: contract "a" bills it from 2026-01-01 (no end) at a.bill:1:40',
        "1 error(s), 0 warning(s)",
    ]


# ---------------------------------------------------------------- usage ... times N


TEST_BLOCK = """\
test "volume" {
  contract acme
  period 2026-10
  usage gpu_job gpu_type="H100-SXM" gpu_count=1 duration_seconds=60 times N
  expect total = 0 USD
}
"""


def test_times_is_bounded():
    assert_ok(TEST_BLOCK.replace("N", f"{MAX_USAGE_TIMES:_}"))
    d = assert_diag(TEST_BLOCK.replace("N", "1_000_000_000_000_000_000"), "times-too-large", 4, 75)
    assert d.message == "`times 1_000_000_000_000_000_000` is more than 1_000_000 events"
    assert_diag(TEST_BLOCK.replace("N", "1T"), "times-too-large", 4, 75)
    assert [d.rule for d in check(TEST_BLOCK.replace("N", f"{MAX_USAGE_TIMES + 1}"))] == ["times-too-large"]
