"""The examples' `test` blocks hold on both engines.

The expected numbers in examples/tests were worked out by hand from the
documented semantics; ``gpubill.service.testing`` (the runner behind
`gpubill test`) invoices each test's usage as `gpubill invoice` does, and
both engines must give the same invoice lines and pass every `expect`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpubill.dsl.check import check_paths
from gpubill.service.testing import run_test

ROOT = Path(__file__).resolve().parents[1]
CATALOG, _, DIAGS = check_paths([str(ROOT / "examples")])
TESTS = list(CATALOG.tests)


def test_the_examples_check_clean():
    assert not [d for d in DIAGS if d.is_error]
    assert len(TESTS) >= 10


@pytest.mark.parametrize("t", TESTS, ids=[t.name.value for t in TESTS])
def test_example_test_block(t):
    fast = run_test(CATALOG, t, "fast")
    ref = run_test(CATALOG, t, "reference")
    assert fast == ref
    assert ref.error is None, ref.error
    for o in ref.outcomes:
        assert o.passed, f"{t.name.value}: expect {o.expect.what} at {o.expect.span}: {o.actual} != {o.expect.value.value}"
