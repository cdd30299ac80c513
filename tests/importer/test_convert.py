"""Lago JSON -> .bill text: the mapping, object by object, and the diagnostics for what cannot be mapped."""

from __future__ import annotations

import json

import pytest

from gpubill.dsl.check import check_sources
from gpubill.lago.importer import import_lago
from gpubill.lago.importer.jsonpos import InvalidJson, load, render_path

from lago_objects import FIXTURES, charge, customer, metric, plan, sources, subscription


def norm(text: str) -> str:
    """Lines with their whitespace collapsed: the formatter aligns tiers and indents blocks."""
    return "\n".join(" ".join(line.split()) for line in text.splitlines()) + "\n"


def has(text: str, snippet: str) -> bool:
    return norm(snippet).rstrip("\n") in norm(text)


def fixture_sources():
    return {p.name: p.read_text() for p in sorted(FIXTURES.glob("*.json"))}


def imported(**objs):
    res = import_lago(sources(**objs), "out")
    assert res.ok, [str(d) for d in res.diagnostics]
    return res


def errors(res, rule=None):
    return [d for d in res.diagnostics if d.is_error and (rule is None or d.rule == rule)]


def one_error(rule="lago-unsupported", **objs):
    res = import_lago(sources(**objs), "out")
    errs = errors(res)
    assert res.files == {}
    assert len(errs) == 1, [d.message for d in errs]
    assert errs[0].rule == rule
    return errs[0]


# ------------------------------------------------------------------ the fixture set


def test_fixtures_import_and_check_cleanly():
    res = import_lago(fixture_sources(), "out")
    assert res.ok, [d.message for d in res.diagnostics]
    assert sorted(res.files) == ["out/contracts.bill", "out/entities.bill", "out/metrics.bill", "out/plans.bill"]
    _, diags = check_sources(res.files)
    assert diags == []


def test_fixtures_are_valid_lago_api_objects():
    """The fixtures parse with Lago's own Python client models (the documented response shapes)."""
    from lago_python_client.models.billable_metric import BillableMetricResponse
    from lago_python_client.models.customer import CustomerResponse
    from lago_python_client.models.plan import PlanResponse
    from lago_python_client.models.subscription import SubscriptionResponse

    load_ = lambda name: json.loads((FIXTURES / name).read_text())  # noqa: E731
    for m in load_("billable_metrics.json")["billable_metrics"]:
        BillableMetricResponse.parse_obj(m)
    PlanResponse.parse_obj(load_("plan_gpu_cloud.json")["plan"])
    PlanResponse.parse_obj(load_("plan_starter_bare.json"))
    for c in load_("customers.json"):
        CustomerResponse.parse_obj(c.get("customer", c))
    for s in load_("subscriptions.json")["subscriptions"]:
        SubscriptionResponse.parse_obj(s)


def test_output_is_deterministic():
    assert import_lago(fixture_sources(), "out").files == import_lago(fixture_sources(), "out").files


def test_output_is_in_canonical_format():
    from gpubill.dsl.fmt import format_source

    for path, text in import_lago(fixture_sources(), "out").files.items():
        assert format_source(text, path) == (text, [])


def test_applicable_timezone_is_used_when_the_customer_has_none():
    c = customer(timezone=None, applicable_timezone="Europe/Paris")
    res = imported(p={"plan": plan()}, c={"customer": c}, s={"subscription": subscription()})
    assert has(res.files["out/contracts.bill"], '  timezone "Europe/Paris"')


def test_fixture_plan_text():
    text = import_lago(fixture_sources(), "out").files["out/plans.bill"]
    for expected in [
        '# Lago plan "gpu-cloud-pro": GPU Cloud Pro',
        "plan gpu_cloud_pro {",
        "  billing monthly calendar",
        "  fee 499.00 in advance",
        "  progressive billing at 1000.00, 2500.00, every 500.00",
        "  charge compute_hours 2.10 per unit {",
        '    where instance_type = "gpu-a100-80gb" and region in ("us-east-1", "eu-west-1") 1.89 per unit',
        '    where instance_type = "gpu-h100-sxm" and region = "eu-west-1" 3.89 per unit',
        "    group by project",
        "    minimum spend 50.00",
        "    11 to 20 at 5 flat 3",
        "    21 and above at 5 flat 3",
        "    101 to 200 at 0.5 flat 50",
        '    where model = "llama-3-70b" package 0.90 per 1000000 units free 100000 units',
        "    in advance",
        "  charge payments percentage 1.3%, fixed 2 per event, free 3 events, free 250, "
        "minimum 1.75 per event, maximum 12 per event",
        "  charge payments as payments_2 graduated percentage {",
        "    0 to 10 at 1% flat 200",
        "  charge payments as payments_3 dynamic",
        "    prorated",
        "  billing yearly anniversary",
        "  fee 1200.00 in arrears",
        "  charge api_requests 0.0002 per event {",
    ]:
        assert has(text, expected + "\n"), expected


def test_fixture_metrics_text():
    text = import_lago(fixture_sources(), "out").files["out/metrics.bill"]
    for expected in [
        "  sum hours", "  count", "  max gpus", "  latest gb", "  unique count instance_id",
        "  weighted sum gpus", "  sum tokens_in + tokens_out", "  rounding ceil 2", "  recurring",
        '  dimension region in "us-east-1", "eu-west-1"',
        "  dimension project  # a pricing group key in Lago",
    ]:
        assert has(text, expected + "\n"), expected


def test_fixture_contracts_and_entities():
    files = import_lago(fixture_sources(), "out").files
    contracts, entities = files["out/contracts.bill"], files["out/entities.bill"]
    assert has(contracts, "contract sub_acme_gpu {")
    assert has(contracts, '  customer "acme-corp" name "Acme Corp"')
    assert has(contracts, '  timezone "America/New_York"')
    assert has(contracts, "  invoice grace 3 days")
    assert has(contracts, "  commit 10000.00 USD per period, true-up each period")
    # a UUID external id: sanitized name, exact quoted id
    assert has(contracts, "contract sub_5eb02857_a71e_4ea2_bcf9_57d3a41bc6ba {")
    assert has(contracts, '  subscription "5eb02857-a71e-4ea2-bcf9-57d3a41bc6ba"')
    assert has(contracts, "  invoice grace 5 days")  # from billing_configuration
    assert has(contracts, "  ends 2026-03-14T23:59:59Z")
    assert "entity lago_default_usd {" in entities and "  currency USD" in entities
    assert "entity globex_eu {" in entities and "  currency EUR" in entities
    assert has(contracts, "  entity globex_eu")


# ------------------------------------------------------------------ shapes


@pytest.mark.parametrize("wrap", [
    lambda p: {"plan": p},
    lambda p: p,
    lambda p: {"plans": [p], "meta": {"current_page": 1}},
    lambda p: [p],
    lambda p: [{"plan": p}],
])
def test_plan_with_or_without_root_key_or_in_a_list(wrap):
    res = imported(m={"billable_metric": metric("calls", "count_agg")},
                   p=wrap(plan(charges=[charge("calls", properties={"amount": "1"})])))
    assert has(res.files["out/plans.bill"], "plan pro {")
    assert has(res.files["out/plans.bill"], "charge calls 1 per event")


def test_identical_duplicates_are_merged_different_ones_are_errors():
    m = metric("calls", "count_agg")
    assert imported(a={"billable_metric": m}, b=[m])
    err = one_error("lago-duplicate", a={"billable_metric": m}, b=[dict(m, recurring=True)])
    assert "calls" in err.message


def test_embedded_plan_and_metric_fill_in():
    m = metric("calls", "count_agg")
    c = charge("calls", properties={"amount": "1"})
    c["billable_metric"] = m
    s = subscription(plan=plan(charges=[c]))
    res = imported(s={"subscription": s}, c={"customer": customer()})
    assert has(res.files["out/metrics.bill"], "metric calls {")
    assert has(res.files["out/contracts.bill"], "contract sub_1 {")


# ------------------------------------------------------------------ money and names


@pytest.mark.parametrize("cur,cents,text", [("USD", 1234, "12.34"), ("JPY", 1234, "1234"),
                                            ("KWD", 1234, "1.234"), ("EUR", 5, "0.05")])
def test_cents_use_the_currencys_minor_unit(cur, cents, text):
    res = imported(p={"plan": plan(currency=cur, amount_cents=cents)})
    assert has(res.files["out/plans.bill"], f"  fee {text} in arrears\n")


def test_non_two_decimal_currencies_state_their_rounding():
    assert "  rounding half_up 1\n" in imported(p={"plan": plan(currency="JPY")}).files["out/plans.bill"]
    assert "rounding" not in imported(p={"plan": plan(currency="USD")}).files["out/plans.bill"]


def test_prices_stay_exact_decimal_strings():
    res = imported(m={"billable_metric": metric("calls", "count_agg")},
                   p={"plan": plan(charges=[charge("calls", properties={"amount": "0.000012500"})])})
    assert has(res.files["out/plans.bill"], "charge calls 0.000012500 per event")


def test_tier_bounds_read_exactly_from_json_numbers():
    props = {"graduated_ranges": [
        {"from_value": 0, "to_value": 0.1, "per_unit_amount": "10", "flat_amount": "0"},
        {"from_value": 0.1, "to_value": None, "per_unit_amount": "5", "flat_amount": "1.5"},
    ]}
    res = imported(m={"billable_metric": metric("hours")},
                   p={"plan": plan(charges=[charge("hours", "graduated", props)])})
    assert has(res.files["out/plans.bill"], "    0 to 0.1 at 10\n    0.1 and above at 5 flat 1.5\n")


def test_codes_are_sanitized_with_the_original_in_a_comment():
    res = imported(p={"plan": plan(code="Pro Plan-2024")}, q={"plan": plan(code="Pro_Plan_2024")},
                   r={"plan": plan(code="2024-plan")})
    text = res.files["out/plans.bill"]
    assert '# Lago plan "Pro Plan-2024"' in text and "plan Pro_Plan_2024 {" in text
    assert has(text, "plan Pro_Plan_2024_2 {")  # the second code that sanitizes to the same name
    assert has(text, "plan plan_2024_plan {")


def test_canonical_units_price_per_natural_unit():
    res = imported(m={"billable_metric": metric("gpu", field="duration_seconds")},
                   p={"plan": plan(charges=[charge("gpu", properties={"amount": "0.001"})])})
    assert has(res.files["out/plans.bill"], "charge gpu 0.001 per second")


# ------------------------------------------------------------------ plan features


def test_thresholds_commitment_and_charge_options():
    c = charge("calls", properties={"amount": "1", "grouped_by": ["region"]}, pay_in_advance=True)
    c2 = charge("hours", min_amount_cents=1500, prorated=True, n=2, properties={"amount": "2"})
    p = plan(charges=[c, c2], usage_thresholds=[{"amount_cents": 10000, "recurring": False},
                                                {"amount_cents": 2500, "recurring": True}],
             minimum_commitment={"amount_cents": 100000, "interval": "monthly"})
    res = imported(m={"billable_metrics": [metric("calls", "count_agg"), metric("hours", recurring=True)]},
                   p={"plan": p}, c={"customer": customer()}, s={"subscription": subscription()})
    text = res.files["out/plans.bill"]
    assert has(text, "  progressive billing at 100.00, every 25.00\n")
    assert has(text, "    group by region\n    in advance\n")
    assert has(text, "    minimum spend 15.00\n    prorated\n")
    assert has(res.files["out/contracts.bill"], "  commit 1000.00 USD per period, true-up each period\n")


def test_anniversary_and_calendar_subscriptions_get_two_plan_variants():
    subs = [subscription("s1"), subscription("s2", billing_time="anniversary", started="2024-06-15T00:00:00Z")]
    res = imported(p={"plan": plan()}, c={"customer": customer()}, s={"subscriptions": subs})
    text, contracts = res.files["out/plans.bill"], res.files["out/contracts.bill"]
    assert has(text, "plan pro {\n  currency USD\n  billing monthly calendar")
    assert has(text, "plan pro_anniversary {\n  currency USD\n  billing monthly anniversary")
    assert "  plan pro_anniversary\n" in contracts and "  plan pro\n" in contracts


def test_plan_overrides_make_a_plan_of_their_own():
    c = charge("calls", properties={"amount": "1"})
    s = subscription(plan_overrides={"amount_cents": 999, "charges": [{"id": c["lago_id"],
                                                                       "properties": {"amount": "0.5"}}]})
    res = imported(m={"billable_metric": metric("calls", "count_agg")}, p={"plan": plan(charges=[c])},
                   c={"customer": customer()}, s={"subscription": s})
    text = res.files["out/plans.bill"]
    assert has(text, "charge calls 1 per event")  # the plan itself
    assert "plan pro_sub_1 {" in text and "  fee 9.99 in arrears" in text and "charge calls 0.5 per event" in text
    assert has(res.files["out/contracts.bill"], "  plan pro_sub_1\n")


def test_customer_missing_is_a_warning_and_the_contract_uses_the_plan_currency():
    res = imported(p={"plan": plan(currency="EUR")}, s={"subscription": subscription()})
    assert any(d.rule == "lago-missing" and not d.is_error for d in res.diagnostics)
    assert has(res.files["out/entities.bill"], "entity lago_default_eur {")


# ------------------------------------------------------------------ unsupported and invalid


def _plan_with(ch, m=None):
    return dict(m={"billable_metric": m or metric("calls", "count_agg")}, p={"plans": [plan(charges=[ch])]})


@pytest.mark.parametrize("ch,needle,where", [
    (charge("calls", "custom", {"custom_properties": {}}), 'charge model "custom" is not supported',
     "plans[0].charges[0].charge_model"),
    (charge("calls", regroup_paid_fees="invoice", pay_in_advance=True), "regroup_paid_fees",
     "plans[0].charges[0].regroup_paid_fees"),
    (charge("calls", invoiceable=False, pay_in_advance=True), "invoiceable", "plans[0].charges[0].invoiceable"),
    (charge("calls", applied_pricing_unit={"code": "credits", "conversion_rate": "0.5"}), "pricing units",
     "plans[0].charges[0].applied_pricing_unit"),
])
def test_unsupported_charge_features(ch, needle, where):
    err = one_error(**_plan_with(ch))
    assert needle in err.message and err.message.startswith(where + ":")
    assert err.span.path == "p.json" and err.span.line > 1


def test_unsupported_plan_features():
    for kw, needle in [({"trial_period": 14}, "trial"), ({"interval": "semiannual"}, "semiannual"),
                       ({"interval": "yearly", "bill_charges_monthly": True}, "bill_charges_monthly"),
                       ({"fixed_charges": [{"add_on_code": "setup"}]}, "fixed charges")]:
        err = one_error(p={"plan": plan(**kw)})
        assert needle in err.message, err.message


def test_unsupported_metric_features():
    for m, needle in [
        (metric("x", "custom_agg", custom_aggregator="ruby"), "custom aggregation"),
        (metric("x", expression="ceil(event.properties.a)"), "'ceil'"),
        (metric("x", expression="event.timestamp + 1"), "'event.timestamp'"),
        (metric("x", expression="event.properties.a / event.properties.b"), "divides by an event property"),
        (metric("gpu-hours"), "not a valid event code"),
        (metric("x", field="gpu.type"), "cannot be named"),
    ]:
        err = one_error(m={"billable_metric": m})
        assert needle in err.message, err.message


def test_expression_arithmetic_is_kept():
    res = imported(m={"billable_metric": metric("x", expression="(event.properties.a + 2) * event.properties.b / 1000")})
    assert has(res.files["out/metrics.bill"], "  sum (a + 2) * b / 1000\n")


def test_presentation_group_keys_are_only_a_warning():
    ch = charge("calls", properties={"amount": "1", "presentation_group_keys": ["region"]})
    res = import_lago(sources(**_plan_with(ch)), "out")
    assert res.ok and res.files
    [w] = [d for d in res.diagnostics if not d.is_error]
    assert w.rule == "lago-ignored" and "presentation" in w.message


def test_filter_group_keys_that_differ_from_the_charge_are_unsupported():
    m = metric("calls", "count_agg", filters=[("region", ["us", "eu"])])
    ch = charge("calls", properties={"amount": "1", "grouped_by": ["team"]}, filters=[
        {"values": {"region": ["us"]}, "properties": {"amount": "2"}, "invoice_display_name": None}])
    err = one_error(**_plan_with(ch, m))
    assert "groups by" in err.message and "filters[0]" in err.message


def test_identical_filters_keep_the_oldest_like_lago():
    m = metric("calls", "count_agg", filters=[("region", ["us", "eu"])])
    ch = charge("calls", properties={"amount": "1"}, filters=[
        {"values": {"region": ["us", "eu"]}, "properties": {"amount": "2"}},
        {"values": {"region": ["__ALL_FILTER_VALUES__"]}, "properties": {"amount": "3"}}])
    res = import_lago(sources(**_plan_with(ch, m)), "out")
    assert res.ok
    [w] = [d for d in res.diagnostics if not d.is_error]
    assert "filters[1]" in w.message and "filters[0]" in w.message
    text = res.files["out/plans.bill"]
    assert has(text, 'where region in ("us", "eu") 2 per event') and "3 per event" not in text


def test_filter_on_an_undeclared_key_is_invalid():
    ch = charge("calls", properties={"amount": "1"}, filters=[{"values": {"zone": ["a"]}, "properties": {}}])
    err = one_error("lago-invalid", **_plan_with(ch))
    assert "zone" in err.message


def test_add_ons_and_invoices_are_not_part_of_a_plan_import():
    # Wallets and coupons are imported since issue 9 (tests/importer/test_setup.py).
    for obj, needle in [({"add_on": {"code": "setup", "amount_cents": 100}}, "add-ons"),
                        ({"invoices": []}, "invoices"), ({"code": "setup", "amount_cents": 100}, "add-ons")]:
        err = one_error(x=obj)
        assert needle in err.message and "not part of a plan import" in err.message


def test_missing_metric_and_plan_are_reported():
    err = one_error("lago-missing", p={"plan": plan(charges=[charge("nope")])})
    assert "'nope'" in err.message and "plan.charges[0]" in err.message
    err = one_error("lago-missing", s={"subscription": subscription(plan_code="ghost")}, c={"customer": customer()})
    assert "'ghost'" in err.message


def test_prices_must_be_decimal_strings():
    err = one_error("lago-invalid", **_plan_with(charge("calls", properties={"amount": "1,5"})))
    assert "decimal string" in err.message and "properties.amount" in err.message


def test_all_errors_are_collected():
    res = import_lago(sources(p={"plans": [plan(code="a", trial_period=3), plan(code="b", interval="daily")]}), "out")
    assert len(errors(res)) == 2 and res.files == {}


# ------------------------------------------------------------------ JSON positions


def test_locator_points_at_the_value():
    text = '{\n  "plans": [\n    {"code": "a",\n     "charges": [1, {"x": "y"}]}\n  ]\n}\n'
    _, loc = load(text, "f.json")
    span = loc.span(("plans", 0, "charges", 1, "x"))
    assert (span.line, span.col) == (4, 27)
    assert text.splitlines()[3][span.col - 1:span.end_col - 1] == '"y"'
    assert render_path(("plans", 0, "charges", 1, "x")) == "plans[0].charges[1].x"


def test_invalid_json_names_line_and_column():
    with pytest.raises(InvalidJson) as e:
        load('{\n  "a": 1,\n  "b" 2\n}', "f.json")
    assert (e.value.line, e.value.col) == (3, 7)
    res = import_lago({"bad.json": "[1, 2,"}, "out")
    [d] = res.diagnostics
    assert d.rule == "lago-invalid-json" and d.span.path == "bad.json" and res.files == {}


def test_generated_text_that_does_not_check_is_an_error_not_a_silent_write():
    from gpubill.lago.importer import _self_check

    src = "plan p {\n  currency USD\n  billing monthly\n  charge nowhere 1 per unit\n}\n"
    [d] = _self_check({"out/plans.bill": src})
    assert d.is_error and d.rule == "lago-generated" and "out/plans.bill:4" in d.message


def test_the_importer_writes_no_bill_syntax_of_its_own():
    # The importer builds IR nodes and prints them with gpubill.dsl.fmt: no string in it is a piece of
    # a `.bill` block (an indented clause, a block's `{` or `}`), and it joins no lines of text.
    import ast as pyast
    import re
    from pathlib import Path

    import gpubill.lago.importer as importer

    layout_like = re.compile(r"^ {2,}\S|\{\n|\n\}| \{$|^\}$")
    found = []
    for path in sorted(Path(importer.__file__).parent.glob("*.py")):
        if path.name == "jsonpos.py":  # the JSON reader: its braces are JSON's
            continue
        tree = pyast.parse(path.read_text())
        for node in pyast.walk(tree):
            if isinstance(node, pyast.Constant) and isinstance(node.value, str) and layout_like.search(node.value):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
            if (isinstance(node, pyast.Call) and isinstance(node.func, pyast.Attribute) and node.func.attr == "join"
                    and isinstance(node.func.value, pyast.Constant) and "\n" in str(node.func.value.value)):
                found.append(f"{path.name}:{node.lineno}: joins lines")
    assert not found, "\n".join(found)
