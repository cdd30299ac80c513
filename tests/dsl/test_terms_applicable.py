"""Contract terms no invoice could apply are located `check` diagnostics (issue 9).

Each test plants one such term in otherwise valid `.bill` text (with the
helpers' prelude: plan on_demand, billed monthly, USD) and asserts the rule,
its line:col and its hint; the examples' contracts stay clean.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import gpubill
from gpubill.dsl.check import check_paths
from helpers import PRELUDE, assert_diag, assert_ok, check, contract

EXAMPLES = Path(gpubill.__file__).parent.parent / "examples"

APPLICABLE_RULES = {"reserve-gpu-type-unseen", "reserve-unit", "reserve-not-charged", "commit-without-fees",
                    "commit-without-end", "commit-window"}

# A metric whose gpu_type takes any value, priced by a table that lists one type.
CLUSTERS = """\
metric cluster_hours {
  event gpu_job
  sum gpu_count * duration_seconds in GPU-hours
  dimension gpu_type
}

plan clusters {
  currency USD
  billing BILLING
  CHARGE
}

contract c {
  customer "c"
  subscription "s"
  entity gpucloud
  plan clusters
  starts 2026-02-01
  ends 2027-01-31
  LINE
}
"""

TABLE = 'charge cluster_hours per GPU-hour by gpu_type { "H100-SXM" 3.49 }'


def clusters(line: str, charge: str = TABLE, billing: str = "monthly") -> str:
    """The clause is on line 20, column 3."""
    return CLUSTERS.replace("LINE", line).replace("CHARGE", charge).replace("BILLING", billing)


# ---------------------------------------------------------------- reservations


def test_a_reservation_of_a_gpu_type_no_charge_prices_is_an_error_with_did_you_mean():
    d = assert_diag(clusters('reserve 8 "H100-SMX" on cluster_hours at 3.20 per GPU-hour'), "reserve-gpu-type-unseen", 20, 13)
    assert d.hints[0] == 'did you mean "H100-SXM"?'
    assert d.hints[1] == 'plan "clusters" prices cluster_hours for: "H100-SXM"'


def test_a_declared_gpu_type_the_plan_table_forgets_cannot_be_reserved():
    # gpu_hours declares A100-80GB; this plan's table prices only H100-SXM.
    src = """\
    plan h100_only {
      currency USD
      billing monthly
      charge gpu_hours per GPU-hour by gpu_type { "H100-SXM" 3.49 }
    }

    contract c {
      customer "c"
      subscription "s"
      entity gpucloud
      plan h100_only
      starts 2026-02-01
      reserve 8 "A100-80GB" on gpu_hours at 1.90 per GPU-hour
    }
    """
    d = assert_diag(src, "reserve-gpu-type-unseen", 13, 13)
    assert "on-demand price" in d.hints[-1]


@pytest.mark.parametrize(
    "charge, line",
    [
        ("charge cluster_hours 2.21 per GPU-hour", ""),  # a default price prices every type
        ('charge cluster_hours per GPU-hour by gpu_type { "H100-SXM" 3.49 } { where gpu_type = "H200" 4.25 per GPU-hour }', ""),
        ('charge cluster_hours per GPU-hour by gpu_type { "H100-SXM" 3.49 } { where region = "us-east" 2.00 per GPU-hour }', ""),
        (TABLE, 'override cluster_hours where gpu_type = "H200" 4.10 per GPU-hour'),
        (TABLE, 'override cluster_hours per GPU-hour by gpu_type { "H200" 4.10 }'),
        (TABLE, "override cluster_hours 2.90 per GPU-hour"),
    ],
)
def test_a_gpu_type_priced_by_a_default_a_filter_or_an_override_may_be_reserved(charge, line):
    src = clusters('reserve 8 "H200" on cluster_hours at 3.20 per GPU-hour\n  ' + line, charge)
    assert not {d.rule for d in check(src)} & APPLICABLE_RULES


VERSIONS = """\
plan tiered version 1 effective 2026-01-01 to 2026-06-30 {
  currency USD
  billing monthly
  V1
}

plan tiered version 2 effective 2026-07-01 {
  currency USD
  billing monthly
  charge gpu_hours per GPU-hour by gpu_type { "A100-80GB" 2.21  "H100-SXM" 3.49 }
}

contract c {
  customer "c"
  subscription "s"
  entity gpucloud
  plan tiered
  starts 2026-02-01
  reserve 8 "A100-80GB" on gpu_hours at 1.90 per GPU-hour
}
"""


def test_a_reservation_is_checked_against_every_version_billing_the_term():
    # The latest version charges gpu_hours; version 1, which bills February to June, does not.
    d = assert_diag(VERSIONS.replace("V1", "charge jobs 0.10 per event"), "reserve-not-charged", 19, 28)
    assert "version 1" in d.message
    assert d.hints[0].startswith("add a charge on gpu_hours to that version")
    # Version 1 charges gpu_hours but prices no A100.
    v1 = 'charge gpu_hours per GPU-hour by gpu_type { "H100-SXM" 3.49 }'
    d = assert_diag(VERSIONS.replace("V1", v1), "reserve-gpu-type-unseen", 19, 13)
    assert 'plan "tiered" version 1' in d.message


def test_an_override_table_that_forgets_the_gpu_type_does_not_price_it():
    line = 'reserve 8 "H200" on cluster_hours at 3.20 per GPU-hour\n  override cluster_hours per GPU-hour by gpu_type { "B200" 5.10 }'
    d = assert_diag(clusters(line), "reserve-gpu-type-unseen", 20, 13)
    assert d.hints[0] == 'plan "clusters" prices cluster_hours for: "H100-SXM"'


def test_a_version_that_ended_before_the_contract_starts_does_not_bill_it():
    src = VERSIONS.replace("V1", "charge jobs 0.10 per event").replace("starts 2026-02-01", "starts 2026-08-01")
    assert_ok(src, warnings=True)


def test_a_reservation_is_priced_per_unit_of_gpu_time():
    src = """\
    metric gpu_tokens {
      event inference
      sum output_tokens
      dimension gpu_type
    }

    plan tokens_by_gpu {
      currency USD
      billing monthly
      charge gpu_tokens package 2.00 per 1M tokens
    }

    contract c {
      customer "c"
      subscription "s"
      entity gpucloud
      plan tokens_by_gpu
      starts 2026-02-01
      reserve 8 "H100-SXM" on gpu_tokens at 0.000002 per token
    }
    """
    d = assert_diag(src, "reserve-unit", 19, 54)
    assert "GPU time" in d.hints[0]


@pytest.mark.parametrize("unit", ["GPU-hour", "hour", "minute", "GPU-second"])
def test_a_reservation_in_any_unit_of_time_is_applicable(unit):
    assert_ok(contract(f'reserve 2 "H100-SXM" on gpu_hours at 2.50 per {unit}'))


def test_a_reservation_in_tokens_on_gpu_time_is_a_unit_mismatch():
    d = assert_diag(contract('reserve 2 "H100-SXM" on gpu_hours at 2.50 per token'), "unit-mismatch", 7, 49)
    assert d.hints


# ---------------------------------------------------------------- currencies and charges


@pytest.mark.parametrize(
    "line, col",
    [
        ("credit 5_000 EUR", 10),
        ("discount 1_000 EUR once", 12),
        ("commit 100_000 EUR per year", 10),
        ("budget 5_000 EUR monthly", 10),
        ('reserve 2 "H100-SXM" on gpu_hours at 2.50 EUR per GPU-hour', 40),
        ("progressive billing at 10_000 EUR", 26),
    ],
)
def test_a_term_in_another_currency_than_the_plan_is_an_error(line, col):
    d = assert_diag(contract(line), "currency-mismatch", 7, col)
    assert d.hints == ("write the amount in USD",)


@pytest.mark.parametrize("line, col", [("credit 5_000 USD for gpu_hour", 24), ("discount 5% forever for gpu_hour", 27)])
def test_a_credit_or_discount_for_no_charge_of_the_plan_is_an_error(line, col):
    d = assert_diag(contract(line), "unknown-charge", 7, col)
    assert d.hints == ('did you mean "gpu_hours"?',)


# ---------------------------------------------------------------- commitments


def test_a_commitment_on_a_plan_without_fees_is_an_error():
    src = """\
    plan empty {
      currency USD
      billing monthly
    }

    contract c {
      customer "c"
      subscription "s"
      entity gpucloud
      plan empty
      starts 2026-02-01
      commit 10_000 USD per month
    }
    """
    d = assert_diag(src, "commit-without-fees", 12, 3)
    assert d.hints == ("add a `fee` or a charge to the plan, or drop the commitment",)
    assert_ok(src.replace("billing monthly", "billing monthly\n  fee 2_500"))


@pytest.mark.parametrize("line", ["commit 500_000 USD per term", "commit 40_000 USD per month, true-up at term end"])
def test_a_commitment_settled_at_term_end_needs_the_contract_to_end(line):
    d = assert_diag(contract(line), "commit-without-end", 7, 3)
    assert d.hints[0].startswith("add `ends DATE` to the contract")
    assert_ok(contract(f"ends 2027-01-31\n  {line}"))


@pytest.mark.parametrize(
    "line, billing",
    [
        ("commit 10_000 USD per month", "quarterly"),
        ("commit 30_000 USD per quarter", "yearly"),
        ("commit 100_000 USD per year, true-up each period", "monthly"),
        ("commit 500_000 USD per term, true-up each period", "monthly"),
    ],
)
def test_a_commitment_window_the_billing_periods_cannot_settle_is_an_error(line, billing):
    d = assert_diag(clusters(line, "charge cluster_hours 2.21 per GPU-hour", billing), "commit-window", 20, 3)
    assert d.hints[0].startswith("commit per period")


@pytest.mark.parametrize(
    "line, billing",
    [
        ("commit 30_000 USD per quarter", "monthly"),
        ("commit 30_000 USD per quarter", "quarterly"),
        ("commit 10_000 USD per month, true-up each period", "monthly"),
        ("commit 30_000 USD, true-up each period", "quarterly"),
        ("commit 100_000 USD per year, true-up at term end", "monthly"),
        ("commit 10_000 USD per month, true-up at term end", "weekly"),
        ("commit 500_000 USD per term, true-up at term end", "yearly"),
    ],
)
def test_commitment_windows_the_billing_periods_settle(line, billing):
    src = clusters(line, "charge cluster_hours 2.21 per GPU-hour", billing)
    assert not [d for d in check(src) if d.is_error]


# ---------------------------------------------------------------- the examples


def test_the_examples_contracts_are_all_applicable():
    _, _, diags = check_paths([str(EXAMPLES)])
    assert not diags, "\n".join(f"{d.span}: {d.rule} {d.message}" for d in diags)


def test_gpubill_check_shows_the_clause_with_caret_and_hint(tmp_path):
    (tmp_path / "prelude.bill").write_text(PRELUDE)
    (tmp_path / "c.bill").write_text(contract("commit 500_000 USD per term"))
    r = subprocess.run([sys.executable, "-m", "gpubill", "check", str(tmp_path)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)
    assert r.returncode == 1
    lines = r.stdout.splitlines() + r.stderr.splitlines()
    head = next(i for i, x in enumerate(lines) if "error[commit-without-end]" in x)
    assert lines[head].endswith("c.bill:7:3: error[commit-without-end]: a commitment per term is never settled: "
                                "the contract is open-ended")
    assert lines[head + 2] == "7 |   commit 500_000 USD per term"
    assert lines[head + 3].startswith("  |   ^^^")
    assert "= hint: add `ends DATE` to the contract" in lines[head + 4]
