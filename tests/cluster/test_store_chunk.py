"""The cluster's one write path (``ClickHouseEvents.store_chunk``) against a real 2-shard ClickHouse."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from gpubill.cluster.store import open_cluster_events
from gpubill.store.encode import payload_of, prepare
from gpubill.store.receipt import CONFLICT, DUPLICATE, INGESTED, REJECTED

NOW = 1_796_000_000_000


@pytest.fixture
def events(clickhouse_cluster):
    ev = open_cluster_events(clickhouse_cluster.url(f"chunk_{uuid.uuid4().hex[:8]}"))
    yield ev
    ev.close()


def chunk_of(objs):
    c = prepare(objs, NOW, 86_400_000)
    return c, payload_of(c, None)


def ev(txn, sub="s1", seconds=60, **props):
    return {"transaction_id": txn, "external_subscription_id": sub, "code": "gpu", "timestamp": 1_790_000_000,
            "properties": {"gpu_seconds": seconds, **props}}


def test_a_chunk_of_60000_events_is_stored_once_and_again_stores_nothing(events):
    """One dedup lookup for 60 000 keys (sent as an external table: a literal IN list stops at 50 000)."""
    objs = [ev(f"t{i}", f"s{i % 97}", i) for i in range(60_000)]
    c, payload = chunk_of(objs)
    ids = 1 + np.arange(len(objs), dtype=np.int64)
    first = events.store_chunk(c, payload, {}, "test", NOW, ids)
    assert first.counts()["ingested"] == 60_000
    events.advance_watermark(60_000)
    again = events.store_chunk(c, payload, {}, "test", NOW, ids)  # a re-delivered entry: the same ids
    assert again.counts()["ingested"] == 60_000 and (again.event_id == first.event_id).all()
    resent = events.store_chunk(c, payload, {}, "test", NOW, ids + 100_000)  # a re-send: other ids
    assert resent.counts()["duplicate"] == 60_000 and (resent.event_id == ids).all()
    assert events.count_events() == 60_000
    # lookups by id of a whole chunk (an external table: a literal IN list stops at 50 000 elements)
    assert [r.transaction_id for r in events.events_by_id(ids[::-1])] == [f"t{i}" for i in range(59_999, -1, -1)]
    everything = events.read_columns()
    assert everything.transaction_ids_of(everything.rowid) == [f"t{i}" for i in range(60_000)]
    cols = events.read_columns(subscriptions=["s5"])
    assert cols.n == len(range(5, 60_000, 97))
    m, e = cols.numeric("gpu_seconds")
    assert sorted((m * 10.0 ** e).astype(int).tolist()) == list(range(5, 60_000, 97))


def test_statuses_of_a_mixed_chunk(events):
    objs = [ev("a"), ev("b"), ev("a"), ev("b", seconds=61), {"bad": 1}, ev("c", region="eu", gpu_type="H100")]
    c, payload = chunk_of(objs)
    rec = events.store_chunk(c, payload, {4: b'{"bad":1}'}, "test", NOW, 10 + np.arange(len(objs)))
    assert rec.status.tolist() == [INGESTED, INGESTED, DUPLICATE, CONFLICT, REJECTED, INGESTED]
    assert rec.event_id.tolist()[:4] == [10, 11, 10, 11] and rec.quarantine_id == {4: 14}
    events.advance_watermark(15)
    assert [r.transaction_id for r in events.list_events()] == ["a", "b", "c"]
    assert events.list_rejected()[0].raw == b'{"bad":1}'
    assert [row[3] for row in events.list_conflicts()] == [11]
    assert events.get_events("c")[0].properties == {"gpu_seconds": 60, "region": "eu", "gpu_type": "H100"}
    cols = events.read_columns()
    assert cols.strings.decode(cols.dim("region")) == [None, None, "eu"]
    assert cols.strings.decode(cols.dim("gpu_seconds")) == ["60", "60", "60"]


def test_reads_stop_at_the_watermark(events):
    c, payload = chunk_of([ev("a"), ev("b")])
    events.store_chunk(c, payload, {}, "test", NOW, np.array([1, 2]))
    assert events.count_events() == 0 and events.read_columns().n == 0  # stored, not yet marked
    events.advance_watermark(1)
    assert [r.id for r in events.list_events()] == [1]
    assert events.read_columns(since_rowid=0).rowid.tolist() == [1]
    events.advance_watermark(2)
    assert events.read_columns(since_rowid=1).rowid.tolist() == [2]
    assert events.stats() == {"events": 2, "rejected_open": 0, "conflicts": 0}
