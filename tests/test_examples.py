"""The example billing repository (examples/) is clean, coherent and complete.

It is the reference customers copy from, so it must pass `gpubill check`
silently, its contracts must point at real plans and entities, and together
they must exercise every contract clause and every price model the language
has (asserted over the parsed IR, so a new clause or model fails this test
until an example uses it).
"""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import attrs
import pytest

from gpubill.dsl import ast
from gpubill.dsl.check import check_paths

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def catalog():
    cat, _sources, _diags = check_paths([str(EXAMPLES)])
    return cat


def test_check_is_silent_and_exits_zero():
    proc = subprocess.run(
        [sys.executable, "-m", "gpubill", "check", str(EXAMPLES)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout == ""
    assert proc.stderr == ""
    assert proc.returncode == 0


def test_layout_is_a_customer_repository():
    for folder in ("entities", "metrics", "plans", "contracts", "tests"):
        assert list((EXAMPLES / folder).glob("*.bill")), f"examples/{folder} has no .bill file"
    assert (EXAMPLES / "README.md").is_file()


def test_contracts_reference_existing_plans_and_entities(catalog):
    assert len(catalog.contracts) >= 6
    for name, c in catalog.contracts.items():
        assert c.entity is not None and c.entity.name in catalog.entities, name
        assert c.plan is not None and c.plan.name.name in catalog.plans, name
        assert catalog.plan_version(c.plan) is not None, name
        assert c.customer is not None and c.subscription is not None, name


def test_two_entities_in_two_currencies_with_taxes(catalog):
    currencies = {e.currency.name for e in catalog.entities.values() if e.currency}
    assert {"USD", "EUR"} <= currencies
    for e in catalog.entities.values():
        assert e.taxes and e.invoice_prefix is not None and e.numbering is not None
    used = {c.entity.name for c in catalog.contracts.values()}
    assert used == set(catalog.entities)


def _contract_fields() -> list[str]:
    return [f.name for f in attrs.fields(ast.Contract) if f.name not in ("name", "span")]


@pytest.mark.parametrize("field", _contract_fields())
def test_every_contract_clause_is_used(catalog, field):
    assert any(getattr(c, field) for c in catalog.contracts.values()), f"no example contract sets `{field}`"


def test_every_variant_of_the_contract_terms_is_used(catalog):
    cs = list(catalog.contracts.values())
    assert {c.true_up for c in _all(cs, "commits")} >= {"period", "term"}
    assert {r.billing for r in _all(cs, "reserves")} >= {"prepaid", "arrears"}
    credits = _all(cs, "credits")
    assert {c.kind for c in credits} >= {"granted", "paid"}
    assert any(c.expires and c.priority and c.scope for c in credits)
    discounts = _all(cs, "discounts")
    assert {d.frequency for d in discounts} >= {"once", "recurring", "forever"}
    assert {type(d.value) for d in discounts} == {ast.Percent, ast.Amount}
    assert any(d.scope for d in discounts)
    prog = [c.progressive for c in cs if c.progressive]
    assert any(len(p.thresholds) >= 2 and len(p.every) == 1 for p in prog)
    assert any([a.value for a in c.budget.alerts] == [50, 80, 100] for c in cs if c.budget)
    assert {c.late_events.target for c in cs if c.late_events} >= {"next_invoice", "new_revision"}
    failures = _all(cs, "failure_policies")
    assert {(f.kind, f.action) for f in failures} >= {
        ("infrastructure", "no_charge"),
        ("infrastructure", "credit"),
        ("user", "charge_actual"),
    }
    preempt = [c.preemption for c in cs if c.preemption]
    assert {p.credit is None for p in preempt} == {True, False}
    idle = [c.idle for c in cs if c.idle]
    assert {i.kind for i in idle} == {"allocation", "utilization", "hybrid"}
    assert any(i.minimum for i in idle)
    assert any(c.plan.version for c in cs), "no contract pins a plan version"


def _all(contracts, field):
    return [x for c in contracts for x in getattr(c, field)]


def _prices(catalog):
    for versions in catalog.plans.values():
        for plan in versions:
            for ch in plan.charges:
                yield ch.price
                yield from (f.price for f in ch.filters)
                yield from (w.price for w in ch.windows)
    for c in catalog.contracts.values():
        yield from (o.price for o in c.overrides)


def test_every_price_model_is_used(catalog):
    used = {type(p) for p in _prices(catalog)}
    missing = set(typing.get_args(ast.Price)) - used
    assert not missing, f"no example uses {sorted(m.__name__ for m in missing)}"


def test_price_model_options_are_used(catalog):
    prices = list(_prices(catalog))
    assert any(isinstance(p, ast.Graduated) and any(t.flat for t in p.tiers) for p in prices)
    assert any(isinstance(p, ast.Package) and p.free for p in prices)
    pct = [p for p in prices if isinstance(p, ast.Percentage)]
    for option in ("fixed", "free_events", "free_amount", "minimum", "maximum"):
        assert any(getattr(p, option) for p in pct), f"no percentage uses `{option}`"


def test_every_aggregation_and_charge_option_is_used(catalog):
    kinds = {m.aggregation.kind for m in catalog.metrics.values()}
    assert kinds == {"count", "sum", "max", "latest", "unique_count", "weighted_sum"}
    assert any(m.recurring for m in catalog.metrics.values())
    charges = [ch for vs in catalog.plans.values() for p in vs for ch in p.charges]
    assert any(ch.group_by for ch in charges)
    assert any(ch.timing == "advance" for ch in charges)
    assert any(ch.minimum_spend for ch in charges)
    assert any(ch.rounding for ch in charges)
    assert any(ch.prorated for ch in charges)
    assert any(ch.windows for ch in charges)
    conds = [f.condition for ch in charges for f in ch.filters]
    assert {len(c.matches) for c in conds} >= {1, 2}, "filters with one and with two keys"
    plans = [p for vs in catalog.plans.values() for p in vs]
    assert any(p.rounding for p in plans) and any(p.rounding is None for p in plans)
    assert any(len(vs) > 1 and all(p.version for p in vs) for vs in catalog.plans.values())


def test_every_test_block_names_a_contract_a_period_and_expectations(catalog):
    assert len(catalog.tests) >= 10
    for t in catalog.tests:
        assert t.contract is not None and t.contract.name in catalog.contracts, t.name.value
        assert t.period is not None, t.name.value
        assert t.expects, t.name.value


def test_every_expectation_shows_its_arithmetic():
    """Each `expect` is preceded, within its test, by a comment with the working."""
    for path in sorted((EXAMPLES / "tests").glob("*.bill")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if not line.strip().startswith("expect"):
                continue
            j = i - 1
            while j >= 0 and lines[j].strip().startswith("expect"):
                j -= 1
            assert lines[j].strip().startswith("#"), f"{path.name}:{i + 1}: no comment with the arithmetic"
