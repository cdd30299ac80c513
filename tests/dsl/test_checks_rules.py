"""Units and expressions, Lago's model constraints, dates, commercial terms, test blocks."""

import pytest
from helpers import assert_diag, assert_ok, check, contract

PLAN = """\
plan p version 1 effective 2026-01-01 {
  currency USD
  billing monthly
  CHARGE
}
"""


def plan(charge: str) -> str:
    return PLAN.replace("CHARGE", charge)


def metric(body: str) -> str:
    return "metric m {\n  event e\n  " + body + "\n}\n"


# ---------------------------------------------------------------- units and expressions


def test_price_unit_must_fit_the_metric():
    d = assert_diag(plan("charge gpu_hours 3.49 per token"), "unit-mismatch", 4, 29)
    assert d.hints == ("price it per hour",)
    assert_diag(plan("charge output_tokens 2 per hour"), "unit-mismatch", 4, 30)
    assert_diag(plan("charge jobs 2 per GB"), "unit-mismatch", 4, 21)
    assert_ok(plan("charge gpu_hours 3.49 per GPU-hour"))
    assert_ok(plan("charge gpu_hours 0.06 per minute"))
    assert_ok(plan("charge jobs 0.01 per event"))


def test_package_and_reserve_units_fit_the_metric():
    assert_diag(plan("charge output_tokens package 2 per 1000 seconds"), "unit-mismatch", 4, 38)
    assert_diag(plan("charge output_tokens package 2 per 0.5 tokens"), "not-whole", 4, 38)
    assert_diag(contract('reserve 8 "H100-SXM" on gpu_hours at 2.50 per token'), "unit-mismatch", 7, 49)


def test_in_unit_must_fit_the_expression():
    d = assert_diag(metric("sum input_tokens in hours"), "unit-mismatch", 3, 23)
    assert "tokens" in d.message
    d = assert_diag(metric("sum my_counter in hours"), "unit-mismatch", 3, 21)
    assert "plain number" in d.hints[0]
    assert_ok(metric("sum gpu_count * duration_seconds in GPU-hours"))
    assert_ok(metric("sum input_tokens + output_tokens in Mtokens"))


def test_expressions():
    assert_diag(metric("sum duration_seconds + input_tokens"), "unit-mismatch", 3, 7)
    assert_ok(metric("sum duration_seconds + 60"))
    assert_diag(metric("sum gpu_count * gpu_type"), "non-numeric-property", 3, 19)
    assert_diag(metric("sum duration_seconds / 0"), "division-by-zero", 3, 26)
    d = assert_diag(metric("sum duration_seconds / gpu_count"), "divide-by-property", 3, 26)
    assert d.hints[0] == "divide only by constants, e.g. / 3600"
    assert_ok(metric("sum duration_seconds / (2 * 1800)"))


def test_per_event_rounding():
    assert_diag(metric("sum gpu_count\n  per event duration_seconds up to 1 second"), "unused-per-event", 4, 13)
    assert_diag(metric("sum duration_seconds\n  per event duration_seconds up to 1 token"), "unit-mismatch", 4, 36)
    assert_diag(
        metric("sum duration_seconds\n  per event duration_seconds minimum 2 hours, maximum 60 seconds"),
        "minimum-above-maximum", 4, 38,
    )


def test_inexact_conversion_between_prices_of_one_charge():
    # The charge counts per minute; a filter's price per second is 60x that: exact.
    assert_ok(plan('charge gpu_hours 0.06 per minute { where region = "eu" 0.001 per second }'))
    # The charge counts per second; a price per hour would be /3600: not a finite decimal.
    assert_diag(plan('charge gpu_hours 0.001 per second { where region = "eu" 3.6 per hour }'),
                "inexact-unit", 4, 67)


def test_grace_periods_are_times():
    assert_diag(contract("invoice grace 5 tokens"), "unit-mismatch", 7, 17)
    assert_diag(contract("late events grace 2 GB"), "unit-mismatch", 7, 21)


# ---------------------------------------------------------------- Lago's constraints


def test_pay_in_advance():
    assert_ok(plan("charge jobs 1 per event { in advance }"))
    assert_diag(metric("max gpu_count") + plan("charge m 1 per GPU { in advance }"), "advance-not-allowed", 8, 24)
    assert_diag(plan("charge jobs volume { 0 and above at 1 } { in advance }"), "advance-not-allowed", 4, 15)
    assert_diag(plan("charge jobs 1 per event { in advance minimum spend 10 }"), "minimum-spend-in-advance", 4, 54)


def test_prorated():
    assert_ok(plan("charge active_gpus 100 per event { prorated }"))
    assert_diag(plan("charge jobs 1 per event { prorated }"), "prorated-not-allowed", 4, 29)
    assert_diag(metric("weighted sum gpu_count\n  recurring") + plan("charge m 1 per GPU { prorated }"),
                "prorated-not-allowed", 9, 24)
    assert_diag(plan("charge active_gpus package 10 per 5 events { prorated }"), "prorated-not-allowed", 4, 22)
    assert_diag(plan("charge active_gpus graduated { 0 and above at 1 } { prorated  in advance }"),
                "prorated-not-allowed", 4, 22)
    assert_ok(plan("charge active_gpus graduated { 0 and above at 1 } { prorated }"))


def test_models_and_aggregations():
    assert_diag(plan("charge jobs dynamic"), "model-not-allowed", 4, 15)
    assert_ok(plan("charge output_tokens dynamic"))
    assert_diag(metric("latest gpu_count") + plan("charge m percentage 2%"), "model-not-allowed", 8, 12)
    assert_diag(metric("max gpu_count\n  recurring"), "recurring-not-allowed", 4, 3)


# ---------------------------------------------------------------- dates


def test_date_order():
    assert_diag(contract("ends 2026-01-15"), "date-order", 7, 8)
    assert_ok(contract("ends 2026-02-01"))
    assert_diag(plan("charge gpu_hours 3.49 per hour { during 2026-10-08 .. 2026-10-01 1.20 per hour }"),
                "date-order", 4, 57)
    assert_diag("plan q version 1 effective 2026-05-01 to 2026-04-01 {\n  currency USD\n  billing monthly\n}\n",
                "date-order", 1, 42)
    assert_diag(contract("credit 5 USD granted, expires 2026-01-31"), "date-order", 7, 33)


def test_windows():
    assert_diag(plan(
        "charge gpu_hours 3.49 per hour {\n"
        "    during 2026-10-01 .. 2026-10-08 1.20 per hour\n"
        "    during 2026-10-05 .. 2026-10-09 1.30 per hour\n  }"), "window-overlap", 6, 12)
    assert_ok(plan(
        "charge gpu_hours 3.49 per hour {\n"
        "    during 2026-10-01 .. 2026-10-08 1.20 per hour\n"
        "    during 2026-10-08 .. 2026-10-09T12:00Z 1.30 per hour\n  }"))
    diags = check("""\
        plan q version 1 effective 2026-01-01 to 2026-06-01 {
          currency USD
          billing monthly
          charge gpu_hours 3.49 per hour { during 2026-10-01 .. 2026-10-08 1.20 per hour }
        }
    """)
    assert [(d.rule, d.severity, d.span.line, d.span.col) for d in diags] == [
        ("window-outside-version", "warning", 4, 43)
    ]
    assert_diag(plan('charge gpu_hours 3.49 per hour { during 2026-10-01 .. 2026-10-08 per hour by region { "eu" 1 } }'),
                "window-table", 4, 68)


def test_plan_versions():
    v2 = "plan on_demand version 2 effective DATE {\n  currency USD\n  billing monthly\n}\n"
    assert_ok(v2.replace("DATE", "2026-06-01"))
    d = assert_diag(v2.replace("DATE", "2026-01-01"), "version-overlap", 1, 16)
    assert d.notes[0][0] == "version 1"
    assert_diag(
        "plan q version 1 effective 2026-01-01 to 2026-07-01 {\n  currency USD\n  billing monthly\n}\n"
        "plan q version 2 effective 2026-06-01 {\n  currency USD\n  billing monthly\n}\n",
        "version-overlap", 5, 8)
    assert_diag("plan on_demand {\n  currency USD\n  billing monthly\n}\n", "version-overlap", 1, 6)


def test_contract_starts_when_its_plan_is_in_effect():
    assert_diag(contract("").replace("2026-02-01", "2025-12-01"), "plan-not-effective", 6, 10)
    pinned = contract("").replace("plan on_demand", "plan on_demand version 2")
    v2 = "plan on_demand version 2 effective 2026-06-01 {\n  currency USD\n  billing monthly\n}\n"
    assert_diag(v2 + pinned, "plan-not-effective", 10, 10)
    assert_ok(v2 + pinned.replace("2026-02-01", "2026-06-01"))
    assert_ok(v2 + contract(""))  # unpinned: version 1 prices it until June


# ---------------------------------------------------------------- terms


def test_thresholds_budgets_and_policies():
    assert_diag(contract("progressive billing at 10_000 USD, 5_000 USD"), "threshold-order", 7, 38)
    assert_diag(contract("progressive billing at 10 USD, every 5 USD, every 6 USD"), "threshold-every", 7, 53)
    assert_diag(contract("budget 1000 USD, alert at 80%, 50%"), "alert-order", 7, 34)
    assert_diag(contract("budget 1000 USD, alert at 0%"), "percent-range", 7, 29)
    assert_diag(contract("idle hybrid"), "idle-minimum", 7, 3)
    assert_diag(contract("idle allocation minimum 20%"), "idle-minimum", 7, 27)
    assert_diag(contract("on user failure no charge\n  on user failure charge actual usage"), "duplicate-clause", 8, 3)
    diags = assert_ok(contract("on user failure no charge"), warnings=True)
    assert [(d.rule, d.severity) for d in diags] == [("user-failure-no-charge", "warning")]


# ---------------------------------------------------------------- tests


def test_test_blocks():
    t = 'test "t" {\n  contract acme\n  period 2026-10\n  LINE\n}\n'
    assert_diag(t.replace("LINE", "expect charge = 5"), "expect-target", 4, 3)
    assert_diag(t.replace("LINE", "expect total gpu_hours = 5"), "expect-target", 4, 16)
    assert_diag(t.replace("LINE", 'usage gpu_job gpu_count="8"'), "property-type", 4, 27)
    assert_diag(t.replace("LINE", "usage gpu_job gpu_type=8"), "property-type", 4, 26)
    assert_diag(t.replace("LINE", 'usage gpu_job availability_class="ondemand"'), "unknown-value", 4, 36)
    diags = assert_ok(t.replace("LINE", "usage gpu_jobs gpu_count=1"), warnings=True)
    assert [(d.rule, d.hints) for d in diags] == [("unused-event", ('did you mean "gpu_job"?',))]
    diags = assert_ok(t.replace("LINE", "usage gpu_job gpu_count=1 at 2026-11-01T00:00Z"), warnings=True)
    assert [d.rule for d in diags] == ["usage-outside-period"]
    # recurring metrics carry events from earlier periods: no warning
    assert_ok(t.replace("LINE", 'usage gpu_lease job_id="j1" at 2026-09-15T00:00Z'))


@pytest.mark.parametrize("garbage", ["\x00\x01\x02", "plan { {", "contract c { plan }", "metric m { sum / }"])
def test_garbage_gives_diagnostics_not_exceptions(garbage):
    diags = check(garbage)
    assert diags and all(d.rule for d in diags)


def test_contract_end_date_is_inclusive():
    assert_ok(contract("ends 2026-02-01").replace("starts 2026-02-01", "starts 2026-02-01T09:00Z"))
    assert_diag(contract("ends 2026-02-01T08:00Z").replace("starts 2026-02-01", "starts 2026-02-01T09:00Z"),
                "date-order", 7, 8)
