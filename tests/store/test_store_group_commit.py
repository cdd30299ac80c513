"""Group commit: several chunks per transaction, acknowledged only once committed."""

import sqlite3
import threading
import time

import pytest

from gpubill.store import Store

from storekit import ev


def _committed_count(path) -> int:
    """Events another connection sees: only what has been committed."""
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT coalesce(sum(n), 0) FROM column_blocks").fetchone()[0]
    finally:
        db.close()


def test_a_chunk_is_acknowledged_only_after_its_transaction_committed(tmp_path):
    path = tmp_path / "s.db"
    with Store(path, chunk_size=10, commit_events=30) as s:
        stream = s.ingest_stream(([ev(f"t{k}-{i}") for i in range(10)], None) for k in range(7))
        seen = []
        for rec in stream:
            seen.append(len(rec))
            # Everything acknowledged so far is visible to another connection.
            assert _committed_count(path) >= sum(seen)
        assert seen == [10] * 7
        assert _committed_count(path) == 70
        db = sqlite3.connect(path)
        assert db.execute("SELECT count(*), sum(n_ingested) FROM batches").fetchone() == (7, 70)
        db.close()


def test_stopping_a_stream_early_rolls_back_what_was_not_acknowledged(tmp_path):
    path = tmp_path / "s.db"
    with Store(path, chunk_size=10, commit_events=30) as s:
        stream = s.ingest_stream(([ev(f"t{k}-{i}") for i in range(10)], None) for k in range(50))
        assert len(next(stream)) == 10  # the first group (3 chunks) has committed
        deadline = time.monotonic() + 1
        while not s._writer.db.in_transaction and time.monotonic() < deadline:
            time.sleep(0.001)  # the writer stages the chunks already handed to it
        stream.close()  # ... and they are rolled back, never acknowledged
        committed = _committed_count(path)
        assert committed in (30, 60)  # whole groups only (a second may have committed meanwhile)
        assert s.ingest([ev("after")]).result(0).status == "ingested"  # the write lock is free
        assert s.count_events() == committed + 1


def test_a_failing_input_keeps_the_committed_groups_and_drops_the_open_one(tmp_path):
    path = tmp_path / "s.db"

    def chunks():
        for k in range(6):
            yield [ev(f"t{k}-{i}") for i in range(10)], None
        raise OSError("disk gone")

    with Store(path, chunk_size=10, commit_events=20) as s:
        got = []
        with pytest.raises(OSError):
            for rec in s.ingest_stream(chunks()):
                got.append(rec)
        n = s.count_events()
        assert n % 20 == 0 and n >= sum(map(len, got))
        assert s.ingest([ev("after")]).ok


def test_concurrent_atomic_batches_share_transactions_but_not_fates(tmp_path):
    """Group commit of concurrent all-or-nothing batches: a conflicting batch is
    aborted under its own savepoint; the batches committed with it are stored."""
    with Store(tmp_path / "s.db") as s:
        s.ingest([ev("taken", gpu_count=1)])
        results: dict = {}
        start = threading.Barrier(8)

        def post(k):
            batch = [ev(f"b{k}-{i}") for i in range(200)]
            if k == 3:
                batch.append(ev("taken", gpu_count=2))  # conflicts: the whole batch must go
            start.wait()
            results[k] = s.ingest(batch, atomic=True)

        threads = [threading.Thread(target=post, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not results[3].ok and results[3].counts()["aborted"] == 200
        assert results[3].counts()["conflict"] == 1
        assert all(results[k].ok for k in range(8) if k != 3)
        assert s.count_events() == 1 + 7 * 200
        assert s.get_events("b3-0") == [] and len(s.get_events("b4-199")) == 1
        assert len(s.list_conflicts()) == 1
        # Columns hold exactly the stored events.
        assert s.read_columns().n == 1 + 7 * 200


def test_duplicates_across_chunks_of_one_transaction(tmp_path):
    with Store(tmp_path / "s.db", chunk_size=3, commit_events=100) as s:
        events = [ev("a"), ev("b"), ev("c"), ev("a"), ev("b", gpu_count=9), ev("d")]
        rec = s.ingest(events)
        assert [r.status for r in rec.results()] == [
            "ingested", "ingested", "ingested", "duplicate", "conflict", "ingested"]
        assert rec.result(3).event_id == rec.result(0).event_id
        assert s.count_events() == 4 and s.read_columns().n == 4
