"""lago-semantics.md sections a and b: pricing group keys and charge filters, as `.bill` source, on both engines.

Lago's `__ALL_FILTER_VALUES__` ("any value declared on the metric for that
key") has no keyword of its own in the language: the filter lists the values
the metric's `dimension ... in` declares, which has the same meaning (values
not declared do not match).
"""

from __future__ import annotations

from decimal import Decimal as D

from lago_bill import compile_bill, event, total, usage

COMPUTE = """metric compute {
  event compute
  sum value
  dimension cloud in "aws", "gcp"
  dimension region in "eu", "us"
  dimension country
}
"""


def test_filter_spec_scenario_46000_cents(engine):
    """Lago spec: default price 10, filter cloud=aws, region=ALL at 12, grouped by country; four events
    of 10 -> aws 3 x 120 (one fee per country: fr 240, us 120) plus gcp 100 = 46000 cents."""
    spec = compile_bill(COMPUTE, """  charge compute 10 per unit {
    where cloud = "aws" and region in ("eu", "us") 12 per unit
    group by country
  }""")
    evs = [event("compute", "2024-05-02T00:00:00Z", value=10, cloud="aws", region="eu", country="fr"),
           event("compute", "2024-05-03T00:00:00Z", value=10, cloud="aws", region="us", country="fr"),
           event("compute", "2024-05-04T00:00:00Z", value=10, cloud="aws", region="eu", country="us"),
           event("compute", "2024-05-05T00:00:00Z", value=10, cloud="gcp", region="eu", country="fr")]
    r = engine([spec], evs)
    assert total(r) * 100 == 46000
    assert sorted((bool(ln.filter), ln.group["country"], ln.amount) for ln in usage(r)) == [
        (False, "fr", 100), (True, "fr", 240), (True, "us", 120)]


def test_undeclared_value_does_not_match_all_values(engine):
    """ALL means the values declared on the metric: an aws event in an undeclared region is default-priced."""
    spec = compile_bill(COMPUTE, """  charge compute 10 per unit {
    where cloud = "aws" and region in ("eu", "us") 12 per unit
  }""")
    evs = [event("compute", "2024-05-02T00:00:00Z", value=1, cloud="aws", region="ap")]
    (line,) = [ln for ln in usage(engine([spec], evs)) if ln.event_count]
    assert (line.filter, line.amount) == (None, 10)


def test_most_specific_filter_wins_and_unmatched_events_go_to_the_default(engine):
    """An event counts once, in the matching filter with the most keys; events matching none (or missing
    a key) fall to the default bucket at the charge's own price."""
    spec = compile_bill(COMPUTE, """  charge compute 1 per unit {
    where cloud = "aws" 2 per unit
    where cloud = "aws" and region = "eu" 3 per unit
  }""")
    evs = [event("compute", "2024-05-02T00:00:00Z", value=100, cloud="aws", region="eu"),
           event("compute", "2024-05-02T00:00:00Z", value=10, cloud="aws", region="us"),
           event("compute", "2024-05-02T00:00:00Z", value=1, cloud="gcp", region="eu"),
           event("compute", "2024-05-02T00:00:00Z", value=1000)]
    by_filter = {tuple(sorted(ln.filter)) if ln.filter else (): (ln.units, ln.amount) for ln in usage(engine([spec], evs))}
    assert by_filter == {(): (1001, 1001), ("cloud",): (10, 20), ("cloud", "region"): (100, 300)}


def test_equally_specific_filters_the_first_written_wins(engine):
    """Lago: among identical filters the oldest wins; in the language, among filters with as many keys,
    the first written."""
    spec = compile_bill(COMPUTE, """  charge compute 1 per unit {
    where region = "eu" 5 per unit
    where cloud = "aws" 7 per unit
  }""")
    evs = [event("compute", "2024-05-02T00:00:00Z", value=1, cloud="aws", region="eu")]
    assert total(engine([spec], evs)) == 5


def test_every_filter_and_the_default_is_its_own_fee_even_at_zero(engine):
    """Each bucket is priced separately (its own tiers and flat fee); zero fees still appear."""
    spec = compile_bill(COMPUTE, """  charge compute graduated per unit {
    0 to 10 at 1 flat 4
    11 and above at 0.5
  } {
    where cloud = "gcp" graduated per unit {
      0 to 10 at 2 flat 6
      11 and above at 1
    }
  }""")
    evs = [event("compute", "2024-05-02T00:00:00Z", value=12, cloud="aws")]
    lines = usage(engine([spec], evs))
    got = sorted((ln.filter is not None, ln.units, ln.precise_amount) for ln in lines)
    # default: 10 x 1 + 4 + 2 x 0.5 = 15; gcp: no usage, first tier's flat fee 6
    assert got == [(False, 12, 15), (True, 0, 6)]


def test_group_keys_restart_tiers_per_group_and_missing_key_is_a_null_group(engine):
    """Pricing group keys: tiers and flat fees restart per group; events missing the key form a null group."""
    spec = compile_bill(COMPUTE, """  charge compute graduated per unit {
    0 to 10 at 1 flat 2
    11 and above at 0.5
  } { group by region }""")
    evs = [event("compute", "2024-05-02T00:00:00Z", value=8, region="eu"),
           event("compute", "2024-05-03T00:00:00Z", value=8, region="eu"),
           event("compute", "2024-05-04T00:00:00Z", value=8, region="us"),
           event("compute", "2024-05-05T00:00:00Z", value=1)]
    got = sorted((ln.group["region"] or "", ln.units, ln.precise_amount) for ln in usage(engine([spec], evs)))
    # eu 16: 10 + 2 + 6 x 0.5 = 15; us 8: 8 + 2 = 10; null 1: 1 + 2 = 3
    assert got == [("", 1, 3), ("eu", 16, 15), ("us", 8, 10)]
    assert [ln.group for ln in usage(engine([spec], evs)) if ln.units == 1] == [{"region": None}]


def test_grouped_empty_result_is_one_group_of_nulls(engine):
    """An empty grouped result is one group whose keys are all null (it still pays the first flat fee)."""
    spec = compile_bill(COMPUTE, """  charge compute graduated per unit {
    0 to 10 at 1 flat 7
    11 and above at 0.5
  } { group by region, country }""")
    (line,) = usage(engine([spec], []))
    assert (line.group, line.units, line.amount) == ({"region": None, "country": None}, 0, 7)


def test_filter_and_group_values_compare_as_strings(engine):
    """Filters compare the property's string value: "1" matches, "1.0" and 1.0-looking values do not."""
    metric = 'metric compute { event compute sum value dimension tier in "1", "2" }\n'
    spec = compile_bill(metric, '  charge compute 1 per unit { where tier = "1" 9 per unit }')
    evs = [event("compute", "2024-05-02T00:00:00Z", value=1, tier="1"),
           event("compute", "2024-05-02T00:00:00Z", value=1, tier="1.0")]
    assert sorted((ln.filter is not None, ln.amount) for ln in usage(engine([spec], evs))) == [(False, 1), (True, 9)]


def test_spending_minimum_applies_across_all_filter_fees(engine):
    """Charge-level settings span the filter fees together: one minimum spend of 50 against 12 + 20."""
    spec = compile_bill(COMPUTE, """  charge compute 1 per unit {
    where cloud = "aws" 2 per unit
    minimum spend 50
  }""")
    evs = [event("compute", "2024-05-02T00:00:00Z", value=12),
           event("compute", "2024-05-02T00:00:00Z", value=10, cloud="aws")]
    r = engine([spec], evs)
    assert [ln.amount for ln in r.lines if ln.kind == "min_true_up"] == [D("18.00")]
    assert total(r) == 50


def test_a_price_table_prices_its_default_bucket_at_zero(engine):
    """Lago: a charge with no properties prices its default bucket at 0. A price table has no price of its
    own, so a value it does not list is default-priced at 0 (and still gets its line)."""
    spec = compile_bill(COMPUTE, '  charge compute per unit by cloud { "aws" 2 }')
    evs = [event("compute", "2024-05-02T00:00:00Z", value=5, cloud="aws"),
           event("compute", "2024-05-02T00:00:00Z", value=7, cloud="gcp")]
    got = sorted((ln.filter is not None, ln.units, ln.amount) for ln in usage(engine([spec], evs)))
    assert got == [(False, 7, 0), (True, 5, 10)]
