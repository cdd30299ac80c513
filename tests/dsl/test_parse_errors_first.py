"""A block that does not parse is missing from the catalog, so the checks may
report what follows from its absence: the parse error, the cause, comes first."""

from __future__ import annotations

from gpubill.dsl.check import check_paths

PLANS = """plan list version 1 effective 2026-01-01 to 2026-06-30 {
  currency USD
  billing monthly calendar
  charge gpu_hours 3.99 per hour
}
plan list version 2 effective 2026-07-01 {
  currency USD
  billing monthly calendar
  charge gpu_hours 3.49. per hour
}
"""
CONTRACTS = """entity us { name "GPU Cloud" currency USD timezone "UTC" }
metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in hours
}
contract acme {
  customer "acme" subscription "sub_acme" entity us plan list starts 2026-01-01
}
"""


def test_the_syntax_error_comes_before_what_the_checks_say_of_the_missing_block(tmp_path):
    (tmp_path / "a_contracts.bill").write_text(CONTRACTS)  # sorts before the plans' file
    (tmp_path / "z_plans.bill").write_text(PLANS)
    _, _, diags = check_paths([str(tmp_path)])
    rules = [d.rule for d in diags]
    assert rules[0] == "syntax" and "plan-not-effective" in rules[1:]
