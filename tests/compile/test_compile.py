"""The compiler from IR to the engine's program: units, overrides, windows, policies."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest

from gpubill.dsl.check import check_sources
from gpubill.engine.spec import program as p
from gpubill.engine.calendar.period import parse_period_arg, period_containing
from gpubill.engine.spec.compile import CompileError, compile_subscription
from gpubill.engine.spec.subscription import resolve_subscription

BASE = """
entity us { name "GPU Cloud" currency USD timezone "UTC" }
metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in hours
  per event duration_seconds up to 1 second, minimum 1 minute
  dimension gpu_type in "A100-40GB", "H100-SXM"
  dimension region
}
metric tokens_out {
  event inference
  sum output_tokens
  dimension model_name
}
"""


def compile_one(plan: str, contract_extra: str = "", period: str = "2026-10"):
    src = BASE + plan + f"""
contract acme {{
  customer "acme" subscription "sub_1" entity us plan p starts 2026-01-01
  {contract_extra}
}}
"""
    cat, diags = check_sources({"t.bill": src})
    errors = [d for d in diags if d.is_error]
    assert not errors, errors
    return compile_subscription(cat, resolve_subscription(cat, cat.contracts["acme"], period))


def poly_value(expr, props: dict) -> Fraction:
    """Evaluate an engine expression exactly (test helper)."""
    if isinstance(expr, p.Prop):
        return Fraction(props[expr.name])
    if isinstance(expr, p.Const):
        return Fraction(expr.value)
    a, b = poly_value(expr.left, props), poly_value(expr.right, props)
    return {p.Add: a + b, p.Sub: a - b, p.Mul: a * b, p.Div: a / b}[type(expr)]


def test_gpu_seconds_become_exact_gpu_hours():
    spec = compile_one('plan p { currency USD billing monthly charge gpu_hours 3.49 per hour }')
    ch = spec.charges[0]
    # 8 GPUs for a day is 192 GPU-hours, exactly (no 1/3600 rounded to a Decimal)
    assert poly_value(ch.metric.expr, {"gpu_count": 8, "duration_seconds": 86400}) == 192
    assert ch.model == p.Standard(Decimal("3.49"))
    assert ch.metric.per_event == (p.PerEvent("duration_seconds", Decimal(1), Decimal(60), None),)


def test_a_price_per_minute_counts_the_charge_in_minutes():
    spec = compile_one('plan p { currency USD billing monthly charge gpu_hours 0.06 per minute }')
    ch = spec.charges[0]
    assert poly_value(ch.metric.expr, {"gpu_count": 1, "duration_seconds": 90}) == Fraction(3, 2)
    assert ch.model == p.Standard(Decimal("0.06"))


def test_price_table_becomes_one_filter_per_value_with_a_zero_default():
    spec = compile_one('plan p { currency USD billing monthly charge gpu_hours per hour by gpu_type { "A100-40GB" 1.89 "H100-SXM" 3.49 } }')
    ch = spec.charges[0]
    assert ch.model == p.Standard(Decimal(0))
    assert [(dict(f.values), f.model.amount) for f in ch.filters] == [
        ({"gpu_type": frozenset({"A100-40GB"})}, Decimal("1.89")),
        ({"gpu_type": frozenset({"H100-SXM"})}, Decimal("3.49")),
    ]


def test_override_replaces_the_matching_row_and_keeps_the_others():
    spec = compile_one(
        'plan p { currency USD billing monthly charge gpu_hours per hour by gpu_type { "A100-40GB" 1.89 "H100-SXM" 3.49 } }',
        'override gpu_hours where gpu_type = "H100-SXM" 3.00 per hour',
    )
    prices = {next(iter(f.values["gpu_type"])): f.model.amount for f in spec.charges[0].filters}
    assert prices == {"A100-40GB": Decimal("1.89"), "H100-SXM": Decimal("3.00")}


def test_unconditional_override_replaces_the_whole_price():
    spec = compile_one(
        'plan p { currency USD billing monthly charge gpu_hours per hour by gpu_type { "A100-40GB" 1.89 } }',
        "override gpu_hours 2.00 per hour",
    )
    ch = spec.charges[0]
    assert ch.model == p.Standard(Decimal("2.00")) and ch.filters == ()


def test_package_per_million_tokens():
    spec = compile_one('plan p { currency USD billing monthly charge tokens_out package 6.00 per 1M tokens free 100k tokens }')
    assert spec.charges[0].model == p.Package(Decimal("6.00"), 1_000_000, 100_000)


def test_windows_are_half_open_in_the_plan_timezone():
    spec = compile_one(
        'plan p { currency USD billing monthly timezone "Europe/Berlin" charge gpu_hours 3.49 per hour { during 2026-10-01 .. 2026-10-08 1.20 per hour } }'
    )
    w = spec.charges[0].windows[0]
    berlin_midnight = dt.datetime(2026, 9, 30, 22, 0, tzinfo=dt.timezone.utc)
    assert w.from_ms == int(berlin_midnight.timestamp() * 1000)
    assert w.to_ms - w.from_ms == 7 * 86_400_000
    assert w.model == p.Standard(Decimal("1.20"))


def test_hybrid_idle_policy_applies_to_gpu_time_only():
    spec = compile_one(
        'plan p { currency USD billing monthly charge gpu_hours 3.49 per hour charge tokens_out package 6 per 1M tokens }',
        "idle hybrid minimum 30%",
    )
    by_id = {c.id: c for c in spec.charges}
    assert by_id["gpu_hours"].utilization == p.Utilization("avg_utilization", Decimal("0.3"), Decimal(1))
    assert by_id["tokens_out"].utilization is None


def test_money_rounding_defaults_to_the_currency_and_follows_the_plan():
    spec = compile_one('plan p { currency USD billing monthly charge gpu_hours 3.49 per hour }')
    assert spec.charges[0].money_rounding == p.MoneyRounding("ROUND_HALF_UP", Decimal("0.01"))
    spec = compile_one('plan p { currency USD billing monthly rounding half_even 0.001 charge gpu_hours 3.49 per hour }')
    assert spec.charges[0].money_rounding == p.MoneyRounding("ROUND_HALF_EVEN", Decimal("0.001"))


def test_contract_bounds_cover_the_whole_end_day():
    spec = compile_one('plan p { currency USD billing monthly charge gpu_hours 3.49 per hour }', "ends 2026-10-15")
    end = dt.datetime(2026, 10, 16, tzinfo=dt.timezone.utc)
    assert spec.terminated_at_ms == int(end.timestamp() * 1000) - 1


def test_pinned_plan_version_is_used_and_latest_otherwise():
    plans = """
plan p version 1 effective 2026-01-01 { currency USD billing monthly charge gpu_hours 3.49 per hour }
plan p version 2 effective 2026-09-01 { currency USD billing monthly charge gpu_hours 2.99 per hour }
"""
    assert compile_one(plans).charges[0].model.amount == Decimal("2.99")
    assert compile_one(plans, period="2026-08").charges[0].model.amount == Decimal("3.49")


def test_anniversary_periods():
    per = period_containing(dt.date(2026, 10, 25), "monthly", "anniversary", "UTC", dt.date(2026, 1, 20))
    assert per.label == "2026-10-20..2026-11-19"
    per = period_containing(dt.date(2026, 10, 15), "weekly", "calendar", "UTC")
    assert per.label == "2026-10-12..2026-10-18"  # weeks start on Monday


def test_bad_period_argument_is_a_value_error():
    with pytest.raises(ValueError, match="offset"):
        parse_period_arg("2026-10-01T00:00..2026-10-02")
    with pytest.raises(ValueError):
        parse_period_arg("2026-13")


def test_incompatible_units_are_refused():
    src = BASE + """
plan p { currency USD billing monthly charge tokens_out 3.49 per hour }
contract acme { customer "acme" subscription "s" entity us plan p starts 2026-01-01 }
"""
    cat, _ = check_sources({"t.bill": src})
    with pytest.raises(CompileError, match="per hour"):
        compile_subscription(cat, resolve_subscription(cat, cat.contracts["acme"], "2026-10"))
