"""The examples' contracts rated pushed down to the cluster give the SQLite store's result; a shard
down makes the pushed-down run fail with one line, never answer short."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from gpubill.cluster.events import ClickHouseEvents
from gpubill.cluster.pushdown import rate_pushed_down
from gpubill.cluster.store import ClusterStore
from gpubill.cluster.url import parse_events_url
from gpubill.engine.spec.program import ChargeSpec, MetricSpec, Standard, SubscriptionSpec
from gpubill.service.demo import run_demo
from gpubill.service.rating import billed_subscriptions, load_catalog, rate_period, read_window
from gpubill.store import Store, StoreError
from gpubill.store.encode import payload_of, prepare

ROOT = Path(__file__).resolve().parents[2]
PERIOD = "2026-10"
YEARS_MS = 20 * 365 * 86_400_000


def copy_events(store: Store, events: ClickHouseEvents) -> int:
    """Every event of the SQLite store into the cluster under its own id; returns how many."""
    records = store.list_events(limit=10**9)
    for k in range(0, len(records), 5000):
        part = records[k:k + 5000]
        objs = [orjson.loads(r.raw) for r in part]
        now = max(r.received_ms for r in part)
        chunk = prepare(objs, now, YEARS_MS)
        assert not chunk.rejected
        events.store_chunk(chunk, payload_of(chunk, None), {}, "copy", now, np.array([r.id for r in part], np.int64))
    events.advance_watermark(max(r.id for r in records))
    return len(records)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    result = run_demo(str(ROOT / "examples"), str(folder), 4000, PERIOD, 7, Store, invoices=False)
    return result.store_path


def test_examples_pushed_down_equal_the_sqlite_store(clickhouse_cluster, demo_store, tmp_path):
    sqlite = Store(demo_store)
    events = ClickHouseEvents(parse_events_url(clickhouse_cluster.url("h3_examples")))
    cluster = ClusterStore(str(tmp_path / "control.db"), events, create=True)
    try:
        assert copy_events(sqlite, events) > 1000
        want = rate_period(sqlite, [str(ROOT / "examples")], PERIOD).result
        got = rate_period(cluster, [str(ROOT / "examples")], PERIOD).result  # through rate_billed's hook
        assert len(want.lines) > 10
        assert got == want
        billed = billed_subscriptions(load_catalog([str(ROOT / "examples")])[0], PERIOD)
        column: set = set()
        direct = rate_pushed_down(events, [b.spec for b in billed], read_window(billed), column_path=column)
        assert direct == want
        print(f"pushed down: {len(billed) - len(column)} of {len(billed)}; column path: {sorted(column)}")
        assert len(column) < len(billed)
    finally:
        sqlite.close()
        cluster.close()


def test_a_shard_down_fails_the_pushed_down_run_in_one_line(clickhouse_cluster):
    events = ClickHouseEvents(parse_events_url(clickhouse_cluster.url("h3_down")))
    objs = [{"transaction_id": f"t{i}", "external_subscription_id": f"s{i % 8}", "code": "gpu",
             "timestamp": 1_790_000_000 + i, "properties": {"seconds": i}} for i in range(64)]
    now = int(time.time() * 1000)
    chunk = prepare(objs, now, YEARS_MS)
    events.store_chunk(chunk, payload_of(chunk, None), {}, "t", now, np.arange(1, 65, dtype=np.int64))
    events.advance_watermark(64)
    ch = ChargeSpec("c", MetricSpec("m", "gpu", "sum", field="seconds"), Standard(1))
    specs = [SubscriptionSpec(f"s{i}", (ch,), 1_790_000_000_000, 1_790_100_000_000) for i in range(8)]
    window = {"codes": ["gpu"], "subscriptions": [s.external_id for s in specs]}
    full = rate_pushed_down(events, specs, window)
    assert sum(ln.event_count for ln in full.lines) == 64
    clickhouse_cluster.stop_shard(1)
    try:
        with pytest.raises(StoreError) as err:
            rate_pushed_down(events, specs, window)
        assert "\n" not in str(err.value) and "h3_down" in str(err.value)
    finally:
        clickhouse_cluster.start_shard(1)
        events.close()
