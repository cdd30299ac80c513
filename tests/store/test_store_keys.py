"""The in-memory dedup index: exact across writers (migrations: test_migrate_payloads.py)."""

import numpy as np

from gpubill.store import Store
from gpubill.store.keys import KeyIndex

from storekit import ev


def test_two_writers_on_one_file_deduplicate_against_each_other(tmp_path):
    path = tmp_path / "s.db"
    a, b = Store(path), Store(path)
    try:
        a.ingest([ev("x", gpu_count=1)])
        b.ingest([ev("y")])  # b's index is loaded now, before a's next write
        a.ingest([ev(f"bulk{i}") for i in range(50)] + [ev("z", gpu_count=2)])
        rec = b.ingest([ev("z", gpu_count=2), ev("z", gpu_count=3), ev("x", gpu_count=1), ev("w")])
        assert [r.status for r in rec.results()] == ["duplicate", "conflict", "duplicate", "ingested"]
        assert rec.result(0).event_id == a.get_events("z")[0].id
        # and the other way round, for what b wrote
        assert a.ingest([ev("w")]).result(0).status == "duplicate"
        assert [e.transaction_id for e in a.get_events("w")] == ["w"]
        assert a.count_events() == 54
    finally:
        a.close()
        b.close()


def test_key_index_levels_savepoints_and_shared_transaction_ids():
    k = KeyIndex()
    k.loaded = True
    rng = np.random.default_rng(1)
    k1 = rng.integers(-2**63, 2**63 - 1, 200_000, dtype=np.int64)
    k2 = rng.integers(-2**63, 2**63 - 1, 200_000, dtype=np.int64)
    for lo in range(0, 200_000, 20_000):  # committed in pieces: base and delta levels
        k.add_pending(k1[lo:lo + 20_000], k2[lo:lo + 20_000], np.arange(lo, lo + 20_000) + 1)
        k.committed()
    assert (k.find(k1, k2) == np.arange(200_000) + 1).all()
    assert (k.find(k1, k2 + 1) == -1).all()
    # one transaction id, several subscriptions: same k1, other k2
    k.add_pending(np.array([k1[7], k1[7]]), np.array([5, 9]), np.array([300_001, 300_002]))
    mark = k.mark()
    k.add_pending(np.array([42]), np.array([42]), np.array([300_003]))
    assert k.find(np.array([42]), np.array([42]))[0] == 300_003
    k.rollback_to(mark)  # a savepoint rolled back
    assert k.find(np.array([42]), np.array([42]))[0] == -1
    k.committed()
    assert k.find(np.array([k1[7], k1[7], k1[7]]), np.array([9, k2[7], 5])).tolist() == [300_002, 8, 300_001]
    assert k.rows_with_k1(int(k1[7])) == [8, 300_001, 300_002]
    k.add_pending(np.array([1]), np.array([1]), np.array([300_004]))
    k.rolled_back()
    assert k.find(np.array([1]), np.array([1]))[0] == -1
