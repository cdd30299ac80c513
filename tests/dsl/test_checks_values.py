"""Literals, currencies and tier schedules."""

import pytest
from helpers import assert_diag, assert_ok, check, contract

PLAN = """\
plan p version 1 effective 2026-01-01 {
  currency USD
  billing monthly
  charge gpu_hours 3.49 per hour
}
"""


def test_unknown_currency_timezone_numbering_unit():
    d = assert_diag(PLAN.replace("currency USD", "currency USX"), "unknown-currency", 2, 12)
    assert d.hints == ('did you mean "USD"?',)
    d = assert_diag(PLAN.replace("billing monthly", 'billing monthly\n  timezone "Europe/Berln"'), "unknown-timezone", 4, 12)
    assert d.hints == ('did you mean "Europe/Berlin"?',)
    assert_diag('entity e {\n  currency EUR\n  invoice prefix "E" numbering per_custmer\n}\n', "unknown-numbering", 3, 32)
    d = assert_diag(PLAN.replace("per hour", "per hoar"), "unknown-unit", 4, 29)
    assert d.hints == ('did you mean "hour"?',)
    assert_diag(PLAN.replace("3.49 per hour", "package 2 per 1M tokns"), "unknown-unit", 4, 34)
    assert_diag(contract("commit 10 XYZ"), "unknown-currency", 7, 10)


def test_invalid_and_naive_dates():
    assert_diag(contract("ends 2026-02-30"), "invalid-date", 7, 8)
    d = assert_diag(contract("ends 2026-12-31T12:00"), "naive-datetime", 7, 8)
    assert "add Z or an offset" in d.hints[0]
    assert_ok(contract("ends 2026-12-31T12:00+02:00"))
    assert_diag('test "t" {\n  contract acme\n  period 2026-13\n}\n', "invalid-date", 3, 3)


def test_negative_money_and_percent_range():
    assert_diag(PLAN.replace("3.49", "-3.49"), "negative-amount", 4, 20)
    assert_diag(contract("discount 120% once"), "percent-range", 7, 12)
    assert_diag(contract("on preemption credit -5%"), "percent-range", 7, 24)
    assert_diag('entity e {\n  currency EUR\n  tax "VAT" 190%\n}\n', "percent-range", 3, 13)
    assert_ok(contract("budget 1000 USD, alert at 50%, 100%, 150%"))


def test_positive_and_whole_numbers():
    assert_diag(PLAN.replace("gpu_hours 3.49 per hour", "output_tokens package 2 per 0 tokens"), "not-positive", 4, 38)
    assert_diag(contract("discount 5% recurring 0 periods"), "not-positive", 7, 25)
    assert_diag(contract("discount 5% recurring 1.5 periods"), "not-whole", 7, 25)
    assert_diag(contract('reserve 0 "H100-SXM" on gpu_hours at 2 per hour'), "not-positive", 7, 11)
    assert_diag("""\
        metric m {
          event e
          sum duration_seconds
          per event duration_seconds up to 0 seconds
        }
    """, "not-positive", 4, 36)
    assert_diag('test "t" {\n  contract acme\n  period 2026-10\n  usage gpu_job times 0\n}\n', "not-positive", 4, 23)
    assert_diag('test "t" {\n  contract acme\n  period 2026-10\n  usage gpu_job times 2.5\n}\n', "not-whole", 4, 23)
    assert_diag(contract("budget 0 USD"), "not-positive", 7, 10)


def test_currency_mismatches():
    d = assert_diag(PLAN.replace("3.49 per hour", "3.49 EUR per hour"), "currency-mismatch", 4, 20)
    assert d.notes[0][1].line == 2
    assert_diag(contract("commit 1000 EUR per year"), "currency-mismatch", 7, 10)
    assert_diag(contract("credit 50 GBP granted"), "currency-mismatch", 7, 10)
    assert_diag(contract("budget 50 EUR"), "currency-mismatch", 7, 10)
    assert_diag(contract("progressive billing at 10 USD, 20 EUR"), "currency-mismatch", 7, 34)
    assert_diag(contract("discount 5 CHF once"), "currency-mismatch", 7, 12)
    d = assert_diag("""\
        entity eu {
          currency EUR
        }
        contract c {
          customer "c"
          subscription "s"
          entity eu
          plan on_demand
          starts 2026-02-01
        }
    """, "currency-mismatch", 8, 3)
    assert "EUR" in d.message and "USD" in d.message
    assert_diag('test "t" {\n  contract acme\n  period 2026-10\n  expect total = 5 EUR\n}\n', "currency-mismatch", 4, 18)


TIERS = """\
plan p version 1 effective 2026-01-01 {
  currency USD
  billing monthly
  charge gpu_hours MODEL per hour {
    TIERS
  }
}
"""


def tiers(model: str, body: str) -> str:
    return TIERS.replace("MODEL", model).replace("TIERS", body)


@pytest.mark.parametrize("model", ["graduated", "volume"])
def test_valid_tiers(model):
    assert_ok(tiers(model, "0 to 1000 at 3.49\n    1001 to 5000 at 3.19 flat 10\n    5001 and above at 2.99"))
    assert_ok(tiers(model, "1 to 10 at 3\n    11 and above at 2"))


def test_graduated_allows_adjacent_decimal_tiers():
    assert_ok(tiers("graduated", "0 to 0.1 at 10\n    0.1 to 1 at 5\n    1 and above at 1"))
    assert_diag(tiers("volume", "0 to 0.1 at 10\n    0.1 and above at 5"), "tier-overlap", 6, 5)
    assert_diag(TIERS.replace("MODEL per hour", "graduated percentage").replace(
        "TIERS", "0 to 10 at 1%\n    10 and above at 2%"), "tier-overlap", 6, 5)


@pytest.mark.parametrize(
    "body, rule, line, col",
    [
        ("0 to 1000 at 3\n    900 and above at 2", "tier-overlap", 6, 5),
        ("0 to 1000 at 3\n    2000 and above at 2", "tier-gap", 6, 5),
        ("5 to 1000 at 3\n    1001 and above at 2", "tier-first", 5, 5),
        ("0 and above at 3\n    1001 and above at 2", "tier-open-middle", 5, 5),
        ("0 to 1000 at 3\n    1001 to 2000 at 2", "tier-last-bounded", 6, 13),
        ("0 to 1000 at 3\n    1001 to 1001 at 2\n    1002 and above at 1", "tier-empty", 6, 13),
        ("0 to 1000 at 3\n    1001 and above at -2", "negative-amount", 6, 23),
    ],
)
def test_bad_tiers(body, rule, line, col):
    assert_diag(tiers("graduated", body), rule, line, col)


def test_empty_schedule_and_mixed_bounds():
    assert_diag(tiers("graduated", ""), "no-tiers", 4, 20)
    diags = assert_ok(tiers("graduated", "0 to 10 at 3\n    10 to 20 at 2\n    21 and above at 1"), warnings=True)
    assert [(d.rule, d.span.line) for d in diags] == [("tier-mixed-bounds", 7)]


def test_tiers_in_an_override_are_checked_too():
    assert_diag(contract("override gpu_hours graduated per hour { 0 to 10 at 3  5 and above at 2 }"),
                "tier-overlap", 7, 57)


def test_every_rule_has_one_diagnostic_per_mistake():
    diags = check(tiers("graduated", "0 to 1000 at 3\n    900 and above at 2"))
    assert [d.rule for d in diags] == ["tier-overlap"]
