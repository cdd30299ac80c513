"""Every ```bill example in docs/language.md is valid, and every construct has one.

The examples are extracted from the Markdown and checked together, as one
billing repository, with `check_sources`. A fence marked
```bill fragment:plan is a piece of a plan (a charge, a plan clause) and is
wrapped in a minimal plan; ```bill fragment:contract is wrapped in a minimal
contract of the doc's `on_demand` plan, billed by its `gpucloud_us` entity
(both defined in the doc's first example).
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import attrs
import pytest

from gpubill.dsl import ast
from gpubill.dsl.check import check_sources
from gpubill.dsl.diagnostics import render_text

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"
FENCE = re.compile(r"^```bill(?:\s+(?P<info>\S+))?\s*$")
KINDS = (None, "fragment:plan", "fragment:contract")


@attrs.frozen
class Example:
    line: int  # 1-based line of the first line of code in the doc
    kind: str | None
    code: str


def extract(text: str) -> list[Example]:
    out: list[Example] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        assert j < len(lines), f"docs/language.md:{i + 1}: unclosed ```bill fence"
        out.append(Example(start + 1, m.group("info"), "\n".join(lines[start:j]) + "\n"))
        i = j + 1
    return out


def _head(ex: Example) -> str:
    """The wrapper's opening, written on the fence's own line."""
    tag = f"doc_example_l{ex.line}"
    if ex.kind == "fragment:plan":
        return f"plan {tag} {{ currency USD billing monthly"
    if ex.kind == "fragment:contract":
        return (
            f'contract {tag} {{ customer "{tag}" subscription "sub_{tag}" '
            "entity gpucloud_us plan on_demand starts 2026-01-01"
        )
    return ""


def combine(examples: list[Example], total_lines: int) -> str:
    """All examples as one source, each at its own lines of the doc.

    A fragment's wrapper opens on its opening fence line and closes on its
    closing fence line, so every diagnostic points at the doc's line and column.
    """
    out = [""] * (total_lines + 1)
    for ex in examples:
        code = ex.code.splitlines()
        out[ex.line - 2] = _head(ex)
        out[ex.line - 1 : ex.line - 1 + len(code)] = code
        if ex.kind is not None:
            out[ex.line - 1 + len(code)] = "}"
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return extract(DOC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def checked(examples):
    text = DOC.read_text(encoding="utf-8")
    sources = {"docs/language.md": combine(examples, len(text.splitlines()))}
    return check_sources(sources), sources


def test_extraction_finds_the_examples(examples):
    assert len(examples) >= 35
    assert {ex.kind for ex in examples} == set(KINDS)


def test_fence_kinds_are_known(examples):
    for ex in examples:
        assert ex.kind in KINDS, f"docs/language.md:{ex.line - 1}: unknown fence kind {ex.kind!r}"


def test_every_example_checks_clean(checked):
    (_catalog, diags), sources = checked
    assert not diags, render_text(diags, sources)


def test_examples_keep_their_doc_lines(examples):
    text = DOC.read_text(encoding="utf-8")
    combined = combine(examples, len(text.splitlines())).splitlines()
    doc = text.splitlines()
    for ex in examples:
        n = len(ex.code.splitlines())
        assert combined[ex.line - 1 : ex.line - 1 + n] == doc[ex.line - 1 : ex.line - 1 + n]


# ------------------------------------------------------------ every construct has an example


def _catalog(checked):
    (catalog, _diags), _sources = checked
    return catalog


def test_every_aggregation_has_an_example(checked):
    cat = _catalog(checked)
    kinds = {m.aggregation.kind for m in cat.metrics.values() if m.aggregation}
    assert kinds == {"count", "sum", "max", "latest", "unique_count", "weighted_sum"}
    metrics = list(cat.metrics.values())
    assert any(m.recurring for m in metrics)
    assert any(m.rounding for m in metrics)
    assert any(pe.increment and pe.minimum and pe.maximum for m in metrics for pe in m.per_event)
    assert any(d.values for m in metrics for d in m.dimensions)
    ops = set()

    def walk(e):
        if isinstance(e, ast.BinOp):
            ops.add(e.op)
            walk(e.left)
            walk(e.right)

    for m in metrics:
        if m.aggregation and m.aggregation.expr is not None:
            walk(m.aggregation.expr)
    assert {"+", "*"} <= ops


def test_every_plan_clause_has_an_example(checked):
    plans = [p for vs in _catalog(checked).plans.values() for p in vs]
    assert any(p.version and p.version.effective_from and p.version.effective_to for p in plans)
    assert any(p.fee for p in plans)
    assert any(p.rounding for p in plans)
    assert any(p.timezone for p in plans)
    assert any(p.progressive and p.progressive.every for p in plans)
    assert any(p.billing and p.billing.timing == "advance" for p in plans)


def test_every_price_model_and_charge_option_has_an_example(checked):
    cat = _catalog(checked)
    charges = [ch for vs in cat.plans.values() for p in vs for ch in p.charges]
    prices = [ch.price for ch in charges] + [f.price for ch in charges for f in ch.filters]
    missing = set(typing.get_args(ast.Price)) - {type(p) for p in prices}
    assert not missing, f"no example of {sorted(m.__name__ for m in missing)}"
    for option in ("filters", "windows", "group_by", "minimum_spend", "rounding", "prorated", "label"):
        assert any(getattr(ch, option) for ch in charges), f"no charge example with `{option}`"
    assert any(ch.timing == "advance" for ch in charges)
    assert any(len(f.condition.matches) == 2 for ch in charges for f in ch.filters)
    assert any(m.op == "in" for ch in charges for f in ch.filters for m in f.condition.matches)


def test_every_contract_clause_has_an_example(checked):
    contracts = list(_catalog(checked).contracts.values())
    for f in attrs.fields(ast.Contract):
        if f.name in ("name", "span"):
            continue
        assert any(getattr(c, f.name) for c in contracts), f"no contract example with `{f.name}`"


def test_every_test_clause_has_an_example(checked):
    tests = _catalog(checked).tests
    assert {e.what for t in tests for e in t.expects} == {"charge", "units", "events", "total"}
    assert any(e.condition for t in tests for e in t.expects)
    assert any(u.times for t in tests for u in t.usages)
    assert any(t.period and t.period.end for t in tests)
