"""A small read renumbered to its own strings (``CompactColumns``) rates exactly as the read itself.

The portal prices one customer at a time in a store of many; the engine's
tables then cost the store's whole string table per run unless the read is
renumbered (``service.rating.compact_read``). Every subscription of the demo
month, and every subscription's window of it, is rated both ways here: the
lines (units, amounts, events, transaction ids of in-advance fees) are equal.
"""

from __future__ import annotations

import pytest

from gpubill.engine.fast.columns import CompactColumns, worth_compacting
from gpubill.engine.fast.rate import rate
from gpubill.service.events import open_event_store
from gpubill.service.rating import billed_subscriptions, load_catalog, read_window

from .conftest import PERIOD, ROOT

CONTRACTS = [str(ROOT / "examples")]


@pytest.fixture(scope="module")
def demo(demo_store):
    with open_event_store(str(demo_store), readonly=True, create=False) as store:
        catalog, _ = load_catalog(CONTRACTS)
        yield store, billed_subscriptions(catalog, PERIOD)


def test_one_subscription_read_rates_the_same_renumbered(demo):
    store, billed = demo
    assert len(billed) >= 8
    for b in billed:
        cols = store.read_columns(**read_window([b]))
        compact = CompactColumns(cols)
        assert len(compact.strings) < len(cols.strings)
        assert rate([b.spec], compact) == rate([b.spec], cols), b.spec.external_id


def test_every_subscription_in_one_read_rates_the_same_renumbered(demo):
    store, billed = demo
    cols = store.read_columns(**read_window(billed))
    specs = [b.spec for b in billed]
    plain = rate(specs, cols)
    assert plain.lines
    assert rate(specs, CompactColumns(cols)) == plain


def test_renumbered_columns_decode_to_the_same_strings(demo):
    store, billed = demo
    cols = store.read_columns(**read_window(billed[:1]))
    compact = CompactColumns(cols)
    assert cols.n > 0
    assert compact.strings == sorted(set(compact.strings), key=compact.strings.index)  # each string once
    for name in ("gpu_type", "region"):
        assert [compact.strings[i] if i >= 0 else None for i in compact.dim(name).tolist()] == \
            cols.strings.decode(cols.dim(name))
    assert [compact.strings[i] for i in compact.subscription.tolist()] == cols.strings.decode(cols.subscription)
    assert compact.lookup("no such string anywhere") is None


def test_a_small_read_in_a_large_table_is_worth_compacting(demo):
    store, billed = demo
    one = store.read_columns(**read_window(billed[:1]))
    assert worth_compacting(one, ratio=max(1, len(one.strings) // max(one.n, 1) - 1))
    assert not worth_compacting(one, ratio=len(one.strings) + 1)
