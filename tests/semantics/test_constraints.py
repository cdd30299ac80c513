"""lago-semantics.md sections a and b: which charge options Lago allows, as `gpubill check` rules.

Lago's API rejects these combinations; in the language they are check errors
(rule ids below), so a plan that Lago would refuse never reaches the engine.
"""

from __future__ import annotations

import pytest

from gpubill.dsl.check import check_sources

from lago_bill import source

METRICS = """
metric n { event e count }
metric s { event e sum value }
metric mx { event e max value }
metric lt { event e latest value }
metric rs { event e sum value recurring }
metric ru { event e unique count id recurring }
metric rw { event e weighted sum value recurring }
"""


def errors(charge: str, metrics: str = METRICS) -> list[str]:
    _, diags = check_sources({"lago.bill": source(metrics, "  " + charge)})
    return sorted(d.rule for d in diags if d.is_error)


@pytest.mark.parametrize("charge", [
    "charge n 1 per unit { in advance }",
    "charge s 1 per unit { in advance }",
    "charge ru 1 per unit { in advance }",
    "charge rs 1 per unit { prorated }",
    "charge rs 1 per unit { prorated in advance }",
    "charge ru graduated { 0 to 10 at 1  11 and above at 0.5 } { prorated }",
    "charge rs volume { 0 to 10 at 1  11 and above at 0.5 } { prorated }",
    "charge s dynamic",
    "charge lt 1 per unit",
    "charge s 1 per unit { minimum spend 10 }",
])
def test_lago_allows(charge):
    assert errors(charge) == []


@pytest.mark.parametrize("charge,rule", [
    # pay in advance: only count, sum, unique count metrics, never a volume price
    ("charge mx 1 per unit { in advance }", "advance-not-allowed"),
    ("charge lt 1 per unit { in advance }", "advance-not-allowed"),
    ("charge rw 1 per unit { in advance }", "advance-not-allowed"),
    ("charge s volume { 0 to 10 at 1  11 and above at 0.5 } { in advance }", "advance-not-allowed"),
    # prorated: recurring metrics only, never weighted sum; in advance with standard only;
    # in arrears with standard, volume or graduated
    ("charge s 1 per unit { prorated }", "prorated-not-allowed"),
    ("charge rw 1 per unit { prorated }", "prorated-not-allowed"),
    ("charge rs graduated { 0 to 10 at 1  11 and above at 0.5 } { prorated in advance }", "prorated-not-allowed"),
    ("charge rs package 1 per 10 units { prorated }", "prorated-not-allowed"),
    ("charge rs percentage 1% { prorated }", "prorated-not-allowed"),
    # a spending minimum is not allowed on pay-in-advance charges
    ("charge s 1 per unit { in advance minimum spend 10 }", "minimum-spend-in-advance"),
    # dynamic requires a sum metric; percentage models cannot use a latest metric
    ("charge n dynamic", "model-not-allowed"),
    ("charge lt percentage 1%", "model-not-allowed"),
    ("charge lt graduated percentage { 0 and above at 1% }", "model-not-allowed"),
])
def test_lago_refuses(charge, rule):
    assert errors(charge) == [rule]


@pytest.mark.parametrize("aggregation", ["count", "max value", "latest value"])
def test_recurring_only_for_sum_unique_count_weighted_sum(aggregation):
    metrics = f"metric m {{ event e {aggregation} recurring }}\n"
    assert errors("charge m 1 per unit", metrics) == ["recurring-not-allowed"]


@pytest.mark.parametrize("tiers,rule", [
    ("2 to 10 at 1  11 and above at 1", "tier-first"),  # the first from is 0 or 1
    ("0 to 10 at 1  13 and above at 1", "tier-gap"),  # a later from is the previous to or to + 1
    ("0 to 10 at 1  10 to 10 at 1  11 and above at 1", "tier-empty"),  # to > from, except the last
    ("0 to 10 at 1  11 to 20 at 1", "tier-last-bounded"),  # the last tier is open
])
def test_graduated_tier_validation(tiers, rule):
    assert rule in errors(f"charge s graduated {{ {tiers} }}")


def test_identical_filters_are_refused():
    """Lago: among identical filters the oldest wins, so the later one never prices anything; the
    language reports the later one as an error instead of ignoring it silently."""
    metrics = "metric s { event e sum value dimension cloud }\n"
    charge = 'charge s 1 per unit { where cloud = "aws" 5 per unit  where cloud = "aws" 7 per unit }'
    assert errors(charge, metrics) == ["duplicate-filter"]


def test_volume_tiers_with_a_gap_of_two_are_refused():
    """Lago's volume validator tolerates from = previous to + 2; the language does not (a decimal total
    between 10 and 12 would fall in no tier). A Lago plan relying on it does not check."""
    assert errors("charge s volume { 0 to 10 at 1  12 and above at 0.5 }") == ["tier-gap"]
