"""Clauses a block cannot do without (rule `missing-clause`).

A metric needs `event` and an aggregation; a plan `currency` and `billing`;
a contract `customer`, `subscription`, `entity`, `plan` and `starts`; an
entity `currency`; a test `contract` and `period`. The caret points at the
block's name, and the hint shows the clause to add.
"""

from __future__ import annotations

from collections.abc import Iterator

from gpubill.dsl import ast
from gpubill.dsl.checks.common import blocks
from gpubill.dsl.diagnostics import Diagnostic, error
from gpubill.dsl.resolve import Catalog

#: block type -> (field, what to write) in the order they are reported.
REQUIRED: dict[type, tuple[tuple[str, str], ...]] = {
    ast.Entity: (("currency", "currency USD"),),
    ast.Metric: (
        ("event", "event gpu_job"),
        ("aggregation", "an aggregation: count, sum EXPR, max EXPR, latest EXPR, unique count PROP or weighted sum EXPR"),
    ),
    ast.Plan: (("currency", "currency USD"), ("billing", "billing monthly")),
    ast.Contract: (
        ("customer", 'customer "acme-corp"'),
        ("subscription", 'subscription "sub_acme"'),
        ("entity", "entity NAME"),
        ("plan", "plan NAME"),
        ("starts", "starts 2026-01-01"),
    ),
    ast.TestBlock: (("contract", "contract NAME"), ("period", "period 2026-10")),
}

_KIND = {ast.Entity: "entity", ast.Metric: "metric", ast.Plan: "plan", ast.Contract: "contract", ast.TestBlock: "test"}


def check_required(cat: Catalog) -> Iterator[Diagnostic]:
    for b in blocks(cat):
        kind = _KIND[type(b)]
        name = b.name.value if isinstance(b, ast.TestBlock) else b.name.name
        for field, example in REQUIRED[type(b)]:
            if getattr(b, field) is None:
                word = "an aggregation" if field == "aggregation" else f"`{field}`"
                yield error(
                    "missing-clause",
                    f'{kind} "{name}" has no {word}',
                    b.name.span,
                    hints=(f"add {example}",),
                )
