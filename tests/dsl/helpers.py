"""Helpers for checker tests: check inline `.bill` sources and assert on diagnostics.

A test plants one mistake in an otherwise valid source and asserts the rule
id, line and column. The source is checked together with PRELUDE (a small,
valid billing repository in a file of its own, so the test's line numbers are
its own), unless `prelude=False`.
"""

from __future__ import annotations

import textwrap

from gpubill.dsl.check import check_sources
from gpubill.dsl.diagnostics import Diagnostic

PATH = "t.bill"

PRELUDE = """\
entity gpucloud {
  name "GPU Cloud Inc."
  currency USD
  timezone "America/New_York"
  tax "sales tax" 8%
  invoice prefix "GCU" numbering per_customer
}

metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in hours
  per event duration_seconds up to 1 second, minimum 60 seconds
  dimension gpu_type in "A100-80GB", "H100-SXM"
  dimension region
}

metric output_tokens {
  event inference
  sum output_tokens
  dimension model_name
}

metric jobs {
  event gpu_job
  count
}

metric active_gpus {
  event gpu_lease
  unique count job_id
  recurring
}

plan on_demand version 1 effective 2026-01-01 {
  currency USD
  billing monthly
  charge gpu_hours per hour by gpu_type {
    "A100-80GB" 2.21
    "H100-SXM" 3.49
  }
  charge output_tokens package 2.00 per 1M tokens
}

contract acme {
  customer "acme-corp"
  subscription "sub_acme"
  entity gpucloud
  plan on_demand
  starts 2026-02-01
}
"""


def check(src: str, prelude: bool = True) -> list[Diagnostic]:
    sources = {"prelude.bill": PRELUDE} if prelude else {}
    sources[PATH] = textwrap.dedent(src)
    _, diags = check_sources(sources)
    return diags


def _show(diags: list[Diagnostic]) -> str:
    return "\n".join(f"{d.span}: {d.severity}[{d.rule}] {d.message}" for d in diags) or "(none)"


def assert_ok(src: str, prelude: bool = True, warnings: bool = False) -> list[Diagnostic]:
    """No errors (and no warnings unless `warnings=True`)."""
    diags = check(src, prelude)
    bad = [d for d in diags if d.is_error or not warnings]
    assert not bad, _show(bad)
    return diags


def assert_diag(src: str, rule: str, line: int, col: int, prelude: bool = True) -> Diagnostic:
    """`rule` is reported at line:col of the source, and no other error is.

    Returns the diagnostic, for assertions on its message and hints.
    """
    diags = check(src, prelude)
    hits = [d for d in diags if d.rule == rule and d.span and d.span.path == PATH and (d.span.line, d.span.col) == (line, col)]
    assert hits, f"no {rule} at {line}:{col}; got:\n{_show(diags)}"
    others = [d for d in diags if d.is_error and d.rule != rule]
    assert not others, f"unexpected errors besides {rule}:\n{_show(others)}"
    return hits[0]


CONTRACT = """\
contract c {
  customer "c"
  subscription "s"
  entity gpucloud
  plan on_demand
  starts 2026-02-01
  LINE
}
"""


def contract(line: str) -> str:
    """A valid contract on the prelude's plan, with one more clause."""
    return CONTRACT.replace("LINE", line)
