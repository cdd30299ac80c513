"""Imported Lago plans rate to Lago's own numbers (lago-semantics.md section a).

Each test imports Lago JSON, checks the generated .bill files, compiles the
contract with the engine's compiler and rates events with the reference
engine; the amounts are the worked examples of Lago's spec.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from gpubill.dsl.check import check_sources
from gpubill.lago.importer import import_lago
from gpubill.engine.spec.compile import compile_subscription
from gpubill.engine.reference.engine import rate_reference
from gpubill.engine.spec.subscription import resolve_subscription

from lago_objects import charge, customer, metric, plan, sources, subscription

JUNE = "2024-06"  # rated as `gpubill rate --period 2024-06`


def rate(metrics, charges, events):
    """Import one plan + subscription, rate `events` in June 2024; return the rated lines."""
    res = import_lago(
        sources(
            billable_metrics={"billable_metrics": metrics},
            plan={"plan": plan(charges=charges)},
            customer={"customer": customer()},
            subscription={"subscription": subscription()},
        ),
        "out",
    )
    assert res.ok, res.diagnostics
    catalog, diags = check_sources(res.files)
    assert not [d for d in diags if d.is_error], diags
    spec = compile_subscription(catalog, resolve_subscription(catalog, catalog.contracts["sub_1"], JUNE))
    return rate_reference([spec], events).lines


def events(code, values=None, n=None, prop="value", extra=None):
    """Events of `code` during June, one per value (or n without properties), in time order."""
    base = int(dt.datetime(2024, 6, 10, tzinfo=dt.timezone.utc).timestamp())
    vals = values if values is not None else [None] * n
    out = []
    for i, v in enumerate(vals):
        props = dict(extra[i]) if extra else {}
        if v is not None:
            props[prop] = str(v)
        out.append({"transaction_id": f"{code}-{i}", "external_subscription_id": "sub_1", "code": code,
                    "timestamp": base + 60 * i, "properties": props})
    return out


def total(lines):
    return sum((ln.amount for ln in lines if ln.kind == "usage"), D(0))


GRADUATED = {"graduated_ranges": [
    {"from_value": 0, "to_value": 10, "per_unit_amount": "10", "flat_amount": "2"},
    {"from_value": 11, "to_value": 20, "per_unit_amount": "5", "flat_amount": "3"},
    {"from_value": 21, "to_value": None, "per_unit_amount": "5", "flat_amount": "3"},
]}


@pytest.mark.parametrize("units,amount", [(0, 2), (1, 12), (10, 102), (11, 110), (12, 115), (21, 163)])
def test_graduated_table(units, amount):
    lines = rate([metric("calls", "count_agg")], [charge("calls", "graduated", GRADUATED)], events("calls", n=units))
    assert total(lines) == amount


@pytest.mark.parametrize("free,amount", [(0, 1300), (10, 1200), (200, 0)])
def test_package_121_units(free, amount):
    props = {"amount": "100", "package_size": 10, "free_units": free}
    lines = rate([metric("calls", "count_agg")], [charge("calls", "package", props)], events("calls", n=121))
    assert total(lines) == amount


@pytest.mark.parametrize("props,amount", [
    ({"rate": "1.3", "fixed_amount": "2", "free_units_per_events": 3, "free_units_per_total_aggregation": "250"}, "11.15"),
    ({"rate": "1.3", "fixed_amount": "2", "free_units_per_events": 3}, "7.20"),
    ({"rate": "1.3", "fixed_amount": "2"}, "18.40"),
])
def test_percentage(props, amount):
    lines = rate([metric("payments", field="amount")], [charge("payments", "percentage", props)],
                 events("payments", [50, 100, 250, 400], prop="amount"))
    assert total(lines) == D(amount)


def test_percentage_per_transaction_min_max():
    props = {"rate": "2.99", "per_transaction_min_amount": "1.75", "per_transaction_max_amount": "12"}
    lines = rate([metric("payments", field="amount")], [charge("payments", "percentage", props)],
                 events("payments", [10, 80, 10000], prop="amount"))
    assert lines[0].precise_amount == D("16.142")


def test_volume_decimal_lands_in_upper_tier():
    props = {"volume_ranges": [
        {"from_value": 0, "to_value": 100, "per_unit_amount": "1", "flat_amount": "0"},
        {"from_value": 101, "to_value": 200, "per_unit_amount": "0.5", "flat_amount": "50"},
        {"from_value": 201, "to_value": None, "per_unit_amount": "0.25", "flat_amount": "0"},
    ]}
    lines = rate([metric("gpu_hours")], [charge("gpu_hours", "volume", props)], events("gpu_hours", ["100.5"]))
    assert total(lines) == D("100.25")  # all 100.5 units at tier 2: 100.5 x 0.5 + 50


GRAD_PCT = {"graduated_percentage_ranges": [
    {"from_value": 0, "to_value": 10, "rate": "1", "flat_amount": "200"},
    {"from_value": 11, "to_value": 20, "rate": "2", "flat_amount": "300"},
    {"from_value": 21, "to_value": None, "rate": "3", "flat_amount": "400"},
]}


@pytest.mark.parametrize("units,amount", [(0, "200"), (1, "200.01"), (10, "200.10"), (11, "500.12"), (21, "900.33")])
def test_graduated_percentage_table(units, amount):
    evs = events("payments", [units], prop="amount") if units else []
    lines = rate([metric("payments", field="amount")], [charge("payments", "graduated_percentage", GRAD_PCT)], evs)
    assert total(lines) == D(amount)


def test_adjacent_decimal_tiers():
    props = {"graduated_ranges": [
        {"from_value": 0, "to_value": 0.1, "per_unit_amount": "10", "flat_amount": "0"},
        {"from_value": 0.1, "to_value": 1, "per_unit_amount": "5", "flat_amount": "0"},
        {"from_value": 1, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"},
    ]}
    lines = rate([metric("gpu_hours")], [charge("gpu_hours", "graduated", props)], events("gpu_hours", ["0.5"]))
    assert total(lines) == D("3.00")  # 0.1 x 10 + 0.4 x 5


def test_filters_all_values_most_specific_and_group_keys():
    """Lago spec scenario: default 10, filter cloud=aws, region=ALL at 12, grouped by country -> 460.00."""
    m = metric("compute", filters=[("cloud", ["aws", "gcp"]), ("region", ["us", "eu"])])
    c = charge("compute", "standard", {"amount": "10", "pricing_group_keys": ["country"]}, filters=[
        {"invoice_display_name": "AWS", "values": {"cloud": ["aws"], "region": ["__ALL_FILTER_VALUES__"]},
         "properties": {"amount": "12", "pricing_group_keys": ["country"]}},
    ])
    props = [{"cloud": "aws", "region": "us", "country": "fr"}, {"cloud": "aws", "region": "eu", "country": "fr"},
             {"cloud": "aws", "region": "us", "country": "de"}, {"cloud": "gcp", "region": "us", "country": "fr"}]
    lines = rate([m], [c], events("compute", [10, 10, 10, 10], extra=props))
    assert total(lines) == D("460.00")
    aws = [ln for ln in lines if ln.filter]
    assert sorted(ln.amount for ln in aws) == [D("120.00"), D("240.00")]  # one fee per country


def test_expression_metric_sums_the_properties():
    m = metric("llm_tokens", field="total", expression="event.properties.tokens_in + event.properties.tokens_out")
    evs = events("llm_tokens", n=2, extra=[{"tokens_in": "600000", "tokens_out": "500000"},
                                           {"tokens_in": "100", "tokens_out": "0"}])
    props = {"amount": "2.00", "package_size": 1000000, "free_units": 0}
    lines = rate([m], [charge("llm_tokens", "package", props)], evs)
    assert total(lines) == D("4.00")  # 1_100_100 tokens -> 2 started packages


def test_metric_rounding_and_standard_price():
    m = metric("storage", field="gb", rounding_function="ceil", rounding_precision=-2)
    lines = rate([m], [charge("storage", "standard", {"amount": "0.5"})], events("storage", ["123.456"], prop="gb"))
    assert total(lines) == D("100.00")  # ceil(123.456, -2) = 200 units x 0.5


def test_dynamic_amount_is_cents_over_100():
    evs = events("spend", ["20"], prop="value")
    evs[0]["precise_total_amount_cents"] = "40.2"
    lines = rate([metric("spend")], [charge("spend", "dynamic", {})], evs)
    assert lines[0].precise_amount == D("0.402") and lines[0].amount == D("0.40")
