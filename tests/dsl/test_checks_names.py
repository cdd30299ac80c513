"""Names that refer to nothing, names given twice, clauses missing, dimensions and values."""

from helpers import assert_diag, assert_ok, check, contract


def test_prelude_and_a_full_contract_are_clean():
    assert_ok("""\
        contract globex {
          customer "globex" name "Globex"
          subscription "sub_globex"
          entity gpucloud
          plan on_demand version 1
          starts 2026-03-01T00:00Z
          ends 2027-02-28
          override gpu_hours where gpu_type = "H100-SXM" 3.00 per hour
          commit 100_000 USD per year, true-up at term end
          reserve 8 "H100-SXM" on gpu_hours at 2.50 per hour, prepaid
          credit 5_000 USD granted, expires 2026-12-31, priority 1, for gpu_hours
          discount 10% recurring 3 periods for output_tokens
          budget 20_000 USD monthly, alert at 50%, 80%, 100%, 120%
          late events grace 3 days, then next invoice
          on infrastructure failure no charge
          on user failure charge actual usage
          on preemption credit 20%
          idle hybrid minimum 30%
          invoice grace 5 days
        }
        test "a day on 8 H100s" {
          contract globex
          period 2026-10
          usage gpu_job gpu_type="H100-SXM" gpu_count=8 duration_seconds=86400 at 2026-10-03T10:00:00Z
          expect charge gpu_hours where gpu_type = "H100-SXM" = 576.00 USD
          expect total = 576.00
        }
    """)


def test_unknown_metric_with_did_you_mean():
    d = assert_diag("""\
        plan p version 1 effective 2026-01-01 {
          currency USD
          billing monthly
          charge gpu_hour 3.49 per hour
        }
    """, "unknown-metric", 4, 10)
    assert d.hints == ('did you mean "gpu_hours"?',)


def test_unknown_plan_entity_and_version():
    src = """\
        contract c {
          customer "c"
          subscription "s"
          entity gpucloud
          plan on_demnd
          starts 2026-02-01
        }
    """
    d = assert_diag(src, "unknown-plan", 5, 8)
    assert d.hints == ('did you mean "on_demand"?',)
    assert_diag(src.replace("gpucloud", "gpu_cloud").replace("on_demnd", "on_demand"), "unknown-entity", 4, 10)
    d = assert_diag(src.replace("on_demnd", "on_demand version 7"), "unknown-plan-version", 5, 3)
    assert d.hints == ("versions of this plan: 1",)


def test_unknown_charge_in_override_credit_and_expect():
    src = contract("override gpu_hour 3.00 per hour")
    assert_diag(src, "unknown-charge", 7, 12)
    assert_diag(src.replace("override gpu_hour 3.00 per hour", "credit 10 USD, for gpu_hour"), "unknown-charge", 7, 22)
    assert_diag(src.replace("override gpu_hour 3.00 per hour", "discount 5% once for tokens"), "unknown-charge", 7, 24)
    d = assert_diag("""\
        test "t" {
          contract acme
          period 2026-10
          expect charge gpu_hour = 1
        }
    """, "unknown-charge", 4, 17)
    assert d.hints == ('did you mean "gpu_hours"?',)


def test_unknown_contract_in_test():
    assert_diag("""\
        test "t" {
          contract acm
          period 2026-10
        }
    """, "unknown-contract", 2, 12)


def test_duplicate_charge_and_dimension_and_row():
    assert_diag("""\
        plan p version 1 effective 2026-01-01 {
          currency USD
          billing monthly
          charge jobs 0.10 per event
          charge jobs 0.20 per event
        }
    """, "duplicate-charge", 5, 10)
    assert_ok("""\
        plan p version 1 effective 2026-01-01 {
          currency USD
          billing monthly
          charge jobs 0.10 per event
          charge jobs as more_jobs 0.20 per event
        }
    """)
    assert_diag("""\
        metric m {
          event e
          count
          dimension region
          dimension region
        }
    """, "duplicate-entry", 5, 13)
    assert_diag("""\
        plan p version 1 effective 2026-01-01 {
          currency USD
          billing monthly
          charge gpu_hours per hour by gpu_type {
            "A100-80GB" 2.21
            "H100-SXM" 3.49
            "H100-SXM" 3.19
          }
        }
    """, "duplicate-entry", 7, 5)


def test_missing_clauses_point_at_the_block_name():
    assert_diag("metric m {\n  count\n}\n", "missing-clause", 1, 8)
    d = assert_diag("metric m {\n  event e\n}\n", "missing-clause", 1, 8)
    assert "aggregation" in d.message
    assert_diag("plan p {\n  currency USD\n}\n", "missing-clause", 1, 6)
    assert_diag("entity e {\n  name \"E\"\n}\n", "missing-clause", 1, 8)
    d = assert_diag("""\
        contract c {
          customer "c"
          subscription "s"
          entity gpucloud
          plan on_demand
        }
    """, "missing-clause", 1, 10)
    assert d.hints == ("add starts 2026-01-01",)
    assert_diag('test "t" {\n  contract acme\n}\n', "missing-clause", 1, 6)


def test_unknown_dimension_in_filter_group_table_and_expect():
    plan = """\
        plan p version 1 effective 2026-01-01 {
          currency USD
          billing monthly
          charge gpu_hours 3.49 per hour {
            where regoin = "eu" 3.89 per hour
          }
        }
    """
    d = assert_diag(plan, "unknown-dimension", 5, 11)
    assert d.hints[0] == 'did you mean "region"?'
    assert 'declares: gpu_type, region' in d.hints[1]
    assert_diag(plan.replace('where regoin = "eu" 3.89 per hour', "group by zone"), "unknown-dimension", 5, 14)
    assert_diag(plan.replace("3.49 per hour {", "per hour by model_name {").replace(
        'where regoin = "eu" 3.89 per hour', '"x" 1'), "unknown-dimension", 4, 32)
    assert_diag("""\
        test "t" {
          contract acme
          period 2026-10
          expect charge gpu_hours where model_name = "x" = 1
        }
    """, "unknown-dimension", 4, 33)


def test_unknown_value_in_filter_table_and_reserve():
    d = assert_diag("""\
        plan p version 1 effective 2026-01-01 {
          currency USD
          billing monthly
          charge gpu_hours 3.49 per hour {
            where gpu_type = "H100-SMX" 3.00 per hour
          }
        }
    """, "unknown-value", 5, 22)
    assert d.hints[0] == 'did you mean "H100-SXM"?'
    assert_diag("""\
        plan p version 1 effective 2026-01-01 {
          currency USD
          billing monthly
          charge gpu_hours per hour by gpu_type {
            "A100-80GB" 2.21
            "H100-SXM" 3.49
            "H200" 4.25
          }
        }
    """, "unknown-value", 7, 5)
    assert_diag("""\
        contract c {
          customer "c"
          subscription "s"
          entity gpucloud
          plan on_demand
          starts 2026-02-01
          reserve 8 "H200" on gpu_hours at 2.50 per hour
        }
    """, "unknown-value", 7, 13)


def test_canonical_values_count_as_declared():
    assert_diag("""\
        metric m {
          event e
          count
          dimension availability_class
        }
        plan p version 1 effective 2026-01-01 {
          currency USD
          billing monthly
          charge m 1 per event { where availability_class = "ondemand" 2 per event }
        }
    """, "unknown-value", 9, 53)


def test_missing_price_is_a_warning():
    diags = assert_ok("""\
        plan p version 1 effective 2026-01-01 {
          currency USD
          billing monthly
          charge gpu_hours per hour by gpu_type {
            "H100-SXM" 3.49
          }
        }
    """, warnings=True)
    [d] = diags
    assert (d.rule, d.severity, d.span.line, d.span.col) == ("missing-price", "warning", 4, 32)
    assert '"A100-80GB"' in d.message


def test_filters_that_can_never_match_or_never_win():
    assert_diag("""\
        plan p version 1 effective 2026-01-01 {
          currency USD
          billing monthly
          charge gpu_hours 3.49 per hour {
            where gpu_type = "H100-SXM" and gpu_type = "A100-80GB" 3.00 per hour
          }
        }
    """, "filter-never-matches", 5, 37)
    assert_ok("""\
        plan p version 1 effective 2026-01-01 {
          currency USD
          billing monthly
          charge gpu_hours 3.49 per hour {
            where gpu_type in ("H100-SXM", "A100-80GB") and gpu_type = "A100-80GB" 3.00 per hour
          }
        }
    """)
    d = assert_diag("""\
        plan p version 1 effective 2026-01-01 {
          currency USD
          billing monthly
          charge gpu_hours 3.49 per hour {
            where region = "eu" and gpu_type = "H100-SXM" 3.00 per hour
            where gpu_type = "H100-SXM" and region = "eu" 3.10 per hour
          }
        }
    """, "duplicate-filter", 6, 11)
    assert d.notes[0][1].line == 5


def test_reserve_on_a_metric_the_plan_does_not_charge():
    assert_diag("""\
        contract c {
          customer "c"
          subscription "s"
          entity gpucloud
          plan on_demand
          starts 2026-02-01
          reserve 1 "H100-SXM" on jobs at 2.50 per event
        }
    """, "reserve-not-charged", 7, 27)


def test_no_cascade_from_an_unknown_metric():
    diags = check("""\
        plan p version 1 effective 2026-01-01 {
          currency USD
          billing monthly
          charge nope per token by model { "x" 1 }
        }
    """)
    assert [d.rule for d in diags] == ["unknown-metric"]
