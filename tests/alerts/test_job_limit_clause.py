"""The `job limit AMOUNT` contract clause: parsed, checked, formatted back, refused when wrong."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from gpubill.dsl import ast
from gpubill.dsl.check import check_sources
from gpubill.dsl.fmt import format_source
from gpubill.dsl.parse import parse

from .helpers import ROOT, write_contracts

CONTRACT = """contract c {{
  customer "c-co"
  subscription "sub_c"
  entity gpucloud_us
  plan on_demand
  starts 2026-01-01
  {clause}
}}
"""


def _diags(clause: str, tmp_path: Path) -> list:
    d = tmp_path / "contracts"
    if not d.exists():
        write_contracts(d)
    sources = {str(p): p.read_text() for p in sorted(d.rglob("*.bill"))}
    sources["c.bill"] = CONTRACT.format(clause=clause)
    return [x for x in check_sources(sources)[1] if x.span and x.span.path == "c.bill"]


def test_job_limit_parses_into_the_contract_and_formats_back():
    text = CONTRACT.format(clause="job limit 5_000 USD")
    doc, diags = parse(text, "c.bill")
    assert diags == []
    [c] = [b for b in doc.blocks if isinstance(b, ast.Contract)]
    assert c.job_limit.amount.value == Decimal(5000) and c.job_limit.amount.currency == "USD"
    assert c.job_limit.span.line == 7
    out, diags = format_source(text, "c.bill")
    assert diags == [] and "  job limit 5_000 USD\n" in out
    assert parse(out, "c.bill")[0] == doc


def test_a_valid_job_limit_checks_clean(tmp_path):
    assert _diags("job limit 300 USD", tmp_path) == []
    assert _diags("job limit 300", tmp_path) == []  # the plan's currency


def test_a_job_limit_is_positive_and_in_the_plans_currency(tmp_path):
    [d] = _diags("job limit 0 USD", tmp_path)
    assert (d.rule, d.span.line, d.span.col) == ("not-positive", 7, 13)
    [d] = _diags("job limit 300 EUR", tmp_path)
    assert (d.rule, d.span.line, d.span.col) == ("currency-mismatch", 7, 13)
    assert d.hints == ("write the amount in USD",)


def test_job_limit_twice_is_a_duplicate_clause(tmp_path):
    diags = _diags("job limit 300 USD\n  job limit 400 USD", tmp_path)
    assert [(d.rule, d.span.line) for d in diags] == [("duplicate-clause", 8)]
    assert diags[0].message == '"job limit" is given twice in this contract'


def test_the_example_corpus_keeps_its_job_limit():
    corpus = (ROOT / "tests" / "dsl" / "corpus" / "contracts.bill").read_text()
    assert "job limit 5_000 USD" in corpus
