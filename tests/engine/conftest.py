"""Shared helpers: run a program through either engine."""

import pytest

from gpubill.engine.fast.columns import InMemoryColumns
from gpubill.engine.fast.rate import rate
from gpubill.engine.reference.engine import rate_reference


def run_fast(subs, events):
    return rate(subs, InMemoryColumns.from_events(events))


@pytest.fixture(params=["reference", "numba"])
def engine(request):
    """Both engines must give the same answer on every worked example."""
    return rate_reference if request.param == "reference" else run_fast
