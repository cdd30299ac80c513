"""Store.ingest: statuses, idempotency, conflicts, quarantine, migrations."""

import sqlite3

import pytest

from gpubill.store import Store, StoreError, StoreVersionError
from gpubill.store.schema import LATEST

from storekit import ev


def test_receipt_has_one_status_per_event_in_order(store):
    rec = store.ingest([ev("a"), ev("b", gpu_count=-1), ev("c"), "nope"])
    assert [r.status for r in rec.results()] == ["ingested", "rejected", "ingested", "rejected"]
    assert rec.result(1).problems[0].field == "properties.gpu_count"
    assert rec.result(0).event_id == 1 and rec.result(2).event_id == 2
    assert rec.counts()["ingested"] == 2 and not rec.ok


def test_same_key_same_content_is_a_duplicate_success(store):
    store.ingest([ev("a", gpu_count=8)])
    rec = store.ingest([ev("a", gpu_count=8), ev("a", gpu_count=8.0)])
    assert [r.status for r in rec.results()] == ["duplicate", "duplicate"]
    assert rec.ok and store.count_events() == 1


def test_iso_and_unix_timestamps_of_the_same_instant_are_the_same_content(store):
    store.ingest([ev("a", ts=1735689600)])
    assert store.ingest([ev("a", ts="2025-01-01T00:00:00Z")]).result(0).status == "duplicate"


def test_same_key_other_content_is_a_recorded_conflict_and_the_first_copy_wins(store):
    store.ingest([ev("a", gpu_count=8)])
    rec = store.ingest([ev("a", gpu_count=4)])
    r = rec.result(0)
    assert r.status == "conflict" and r.event_id == 1 and r.conflict_id
    (stored,) = store.get_events("a")
    assert stored.properties == {"gpu_count": 8}
    assert len(store.list_conflicts()) == 1


def test_the_key_is_subscription_and_transaction(store):
    rec = store.ingest([ev("a", sub="s1"), ev("a", sub="s2")])
    assert rec.counts()["ingested"] == 2
    assert {e.external_subscription_id for e in store.get_events("a")} == {"s1", "s2"}
    assert [e.external_subscription_id for e in store.get_events("a", "s2")] == ["s2"]


def test_duplicates_inside_one_chunk(store):
    rec = store.ingest([ev("a"), ev("a"), ev("a", gpu_count=1)])
    assert [r.status for r in rec.results()] == ["ingested", "duplicate", "conflict"]


def test_rejected_events_land_in_quarantine_and_can_be_resubmitted(store):
    rec = store.ingest([ev("a", duration_seconds=-5)])
    (q,) = store.list_rejected()
    assert q.id == rec.result(0).quarantine_id
    assert q.reasons[0]["field"] == "properties.duration_seconds"
    again = store.resubmit(q.id)                       # unchanged: still invalid
    assert again.result(0).status == "rejected"
    fixed = store.resubmit(q.id, ev("a", duration_seconds=5))
    assert fixed.result(0).status == "ingested"
    assert store.get_rejected(q.id).status == "resubmitted"
    assert store.get_rejected(q.id).resolved_event_id == fixed.result(0).event_id
    with pytest.raises(StoreError):
        store.resubmit(q.id)


def test_atomic_batches_store_all_or_nothing(store):
    rec = store.ingest([ev("a"), ev("b", ts="soon")], atomic=True)
    assert [r.status for r in rec.results()] == ["aborted", "rejected"]
    assert store.count_events() == 0 and len(store.list_rejected()) == 1
    store.ingest([ev("c")])
    rec = store.ingest([ev("d"), ev("c", gpu_count=3)], atomic=True)
    assert [r.status for r in rec.results()] == ["aborted", "conflict"]
    assert store.count_events() == 1


def test_large_input_is_chunked_and_pipelined(tmp_path):
    with Store(tmp_path / "s.db", chunk_size=100) as s:
        events = [ev(f"t{i}", gpu_count=i % 8, region="eu" if i % 3 else "us") for i in range(1050)]
        events[500]["properties"]["gpu_count"] = -1
        rec = s.ingest(iter(events))
        assert len(rec) == 1050 and rec.counts()["rejected"] == 1 and rec.result(500).status == "rejected"
        assert s.count_events() == 1049
        assert s.ingest(events).counts()["duplicate"] == 1049


def test_a_new_store_is_versioned_and_reopens(tmp_path):
    path = tmp_path / "s.db"
    Store(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    Store(path).close()


def test_a_store_from_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "s.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {LATEST + 1}")
    db.close()
    with pytest.raises(StoreVersionError, match="newer"):
        Store(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == LATEST + 1


def test_an_older_store_is_migrated(tmp_path, monkeypatch):
    from gpubill.store import schema
    path = tmp_path / "s.db"
    Store(path).close()
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS + ["CREATE TABLE later (x);"])
    monkeypatch.setattr(schema, "LATEST", LATEST + 1)
    Store(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST + 1
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name='later'").fetchone()[0] == 1


def test_a_foreign_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError, match="not a gpubill store"):
        Store(path)


def test_api_keys_store_hashes_only(store):
    from gpubill.store import users
    from gpubill.store.roles import Actor

    admin = Actor("ci-admin", "admin")
    key = users.create_key(store, admin, "ci", "writer")
    assert store.verify_key(key) == "writer" and store.verify_key(key + "x") is None
    raw = store._read().execute("SELECT hash FROM api_keys").fetchone()[0]
    assert key.encode() not in bytes(raw)
    assert users.revoke_key(store, admin, "ci") and store.verify_key(key) is None


def test_read_only_store_reads_and_refuses_writes(tmp_path):
    path = tmp_path / "s.db"
    with pytest.raises(StoreError, match="no such store"):
        Store(path, readonly=True)
    with Store(path) as s:
        s.ingest([ev("a", gpu_count=8), ev("b", gpu_count="8")])
    with Store(path, readonly=True) as ro:
        c = ro.read_columns()
        d = c.dim("gpu_count")
        assert d[0] == d[1] and c.strings[d[0]] == "8"
        with pytest.raises(StoreError, match="read-only"):
            ro.ingest([ev("c")])
        (a, b) = ro.events_as_dicts(codes=["gpu_job"])
        assert a["rowid"] == 1 and a["timestamp_ms"] == 1_735_689_600_000 and b["properties"] == {"gpu_count": "8"}
        assert ro.events_as_dicts(subscriptions=["other"]) == []
