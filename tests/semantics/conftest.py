"""Every example runs on both engines: the reference (exact rationals) and the numba engine."""

import pytest

from gpubill.engine.reference.engine import rate_reference


def _numba(specs, events):
    # Imported here so that a broken fast engine fails its own cases, not the reference ones.
    from gpubill.engine.fast.columns import InMemoryColumns
    from gpubill.engine.fast.rate import rate

    return rate(specs, InMemoryColumns.from_events(events))


@pytest.fixture(params=["reference", "numba"])
def engine(request):
    """`engine(specs, events) -> RateResult`."""
    return rate_reference if request.param == "reference" else _numba
