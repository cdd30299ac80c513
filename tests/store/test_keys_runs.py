"""The dedup keys kept on disk as sorted runs (keys.py): exact from a new process without loading them.

Real store files. The run sizes are set small here (RUN_MIN, PAGE) so that a few thousand
events make several runs, pages and merges; the code paths are the ones of the real sizes.
"""

import json
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from gpubill.store import Store, keys
from gpubill.store.keys import KeyIndex

from storekit import ev


@pytest.fixture
def small_runs(monkeypatch):
    monkeypatch.setattr(keys, "RUN_MIN", 300)
    monkeypatch.setattr(keys, "PAGE", 16)


def fill(path, start, n, subs=7):
    with Store(path) as s:
        s.ingest([ev(f"t{i}", sub=f"s{i % subs}") for i in range(start, start + n)])


def stored(path):
    """(k1, k2, id) of every stored event, read from the column blocks."""
    db = sqlite3.connect(path)
    rows = db.execute("SELECT first_rowid, n, rowids, keys FROM column_blocks").fetchall()
    db.close()
    ids = np.concatenate([np.frombuffer(r[2], "<i8") if r[2] else np.arange(r[0], r[0] + r[1]) for r in rows])
    kk = np.frombuffer(b"".join(r[3] for r in rows), "<i8").reshape(-1, 2)
    return kk[:, 0].copy(), kk[:, 1].copy(), ids


def pages_read(sql: str) -> list:
    """The key pages a traced statement reads (their ids are bound as a JSON list)."""
    m = re.search(r"SELECT k1 FROM key_pages WHERE id IN \(SELECT value FROM json_each\(x'([0-9a-f]*)'\)", sql)
    return json.loads(bytes.fromhex(m.group(1))) if m else []


def connect(path):
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def write_txn(db, index):
    """What the writer does around its transaction: catch up (writing runs), commit."""
    db.execute("BEGIN IMMEDIATE")
    index.catch_up(db, writing=True)
    db.execute("COMMIT")
    index.committed()


def runs(path):
    db = sqlite3.connect(path)
    out = db.execute("SELECT n, last_rowid FROM key_runs ORDER BY id").fetchall()
    db.close()
    return out


def test_a_new_process_finds_every_key_in_the_runs_without_loading_them(tmp_path, small_runs, monkeypatch):
    path = tmp_path / "s.db"
    fill(path, 0, 2000)
    write_txn(connect(path), KeyIndex())
    assert sum(n for n, _ in runs(path)) == 2000
    fill(path, 2000, 100)  # past the watermark: read from the blocks
    k1, k2, ids = stored(path)
    monkeypatch.setattr(keys, "LOAD_SHARE", 1)  # never worth loading here
    fresh = KeyIndex()
    db = connect(path)
    db.execute("BEGIN")
    fresh.catch_up(db)
    assert fresh.floor == 2000 and len(fresh.base) + len(fresh.delta) == 100
    assert (fresh.find(k1, k2) == ids).all()
    assert fresh.floor == 2000  # still not loaded
    assert (fresh.find(k1, k2 + 1) == -1).all()
    db.execute("COMMIT")


def test_runs_of_one_size_are_merged_and_stay_exact(tmp_path, small_runs):
    path = tmp_path / "s.db"
    index, db = KeyIndex(), connect(path)
    for start in range(0, 30 * 310, 310):  # 30 runs' worth, one writer transaction each
        fill(path, start, 310)
        write_txn(db, index)
    sizes = [n for n, _ in runs(path)]
    assert sum(sizes) == 30 * 310
    assert max(sizes) >= 8 * 310  # merged: fewer than FANOUT runs of any size class
    assert all(sum(keys._size_class(m) == keys._size_class(n) for m in sizes) < keys.FANOUT for n in sizes)
    k1, k2, ids = stored(path)
    fresh, rd = KeyIndex(), connect(path)
    rd.execute("BEGIN")
    fresh.catch_up(rd)
    assert (fresh.find(k1, k2) == ids).all()  # asks for every key: loads the runs once
    assert fresh.floor == 0
    rd.execute("COMMIT")


def test_one_transaction_id_in_many_subscriptions_spans_pages(tmp_path, small_runs, monkeypatch):
    path = tmp_path / "s.db"
    with Store(path) as s:
        s.ingest([ev("same", sub=f"s{i}") for i in range(40)] + [ev(f"t{i}") for i in range(400)])
    write_txn(connect(path), KeyIndex())
    monkeypatch.setattr(keys, "LOAD_SHARE", 1)
    k1, k2, ids = stored(path)
    fresh, db = KeyIndex(), connect(path)
    db.execute("BEGIN")
    fresh.catch_up(db)
    assert fresh.floor == 440
    same = np.flatnonzero(k1 == k1[0])
    assert len(same) == 40  # 40 keys with one k1: three pages of 16
    assert fresh.rows_with_k1(int(k1[0])) == sorted(ids[same].tolist())
    assert (fresh.find(k1[same][::-1], k2[same][::-1]) == ids[same][::-1]).all()
    db.execute("COMMIT")


def test_runs_written_by_a_rolled_back_transaction_are_forgotten(tmp_path, small_runs):
    path = tmp_path / "s.db"
    fill(path, 0, 400)
    index, db = KeyIndex(), connect(path)
    db.execute("BEGIN IMMEDIATE")
    index.catch_up(db, writing=True)
    assert index.watermark == 400
    db.execute("ROLLBACK")
    index.rolled_back()
    assert runs(path) == [] and index.watermark == 0 and len(index.unrun) == 400
    write_txn(db, index)  # the next transaction writes them again
    assert runs(path) == [(400, 400)]


def test_pending_keys_and_savepoints_over_lazy_runs(tmp_path, small_runs, monkeypatch):
    path = tmp_path / "s.db"
    fill(path, 0, 500)
    write_txn(connect(path), KeyIndex())
    monkeypatch.setattr(keys, "LOAD_SHARE", 1)
    k1, k2, ids = stored(path)
    index, db = KeyIndex(), connect(path)
    db.execute("BEGIN IMMEDIATE")
    index.catch_up(db, writing=True)
    index.add_pending(np.array([11]), np.array([12]), np.array([900]))
    mark = index.mark()
    index.add_pending(np.array([21]), np.array([22]), np.array([901]))
    got = index.find(np.array([11, 21, k1[5]]), np.array([12, 22, k2[5]]))
    assert got.tolist() == [900, 901, ids[5]]
    index.rollback_to(mark)
    assert index.find(np.array([21]), np.array([22])).tolist() == [-1]
    db.execute("ROLLBACK")
    index.rolled_back()
    assert index.find(np.array([11, k1[7]]), np.array([12, k2[7]])).tolist() == [-1, ids[7]]


def test_a_reader_older_than_the_runs_still_sees_its_keys(tmp_path, small_runs, monkeypatch):
    path = tmp_path / "s.db"
    fill(path, 0, 400)
    old = connect(path)
    old.execute("BEGIN")
    old.execute("SELECT count(*) FROM column_blocks").fetchone()  # its snapshot: no runs yet
    write_txn(connect(path), KeyIndex())
    monkeypatch.setattr(keys, "LOAD_SHARE", 1)
    k1, k2, ids = stored(path)
    index, new = KeyIndex(), connect(path)
    new.execute("BEGIN")
    index.catch_up(new)
    assert index.floor == 400
    new.execute("COMMIT")
    seen = {}

    def read_old():  # another thread, bound to the old snapshot
        index.catch_up(old)
        seen["find"] = index.find(k1, k2)
        seen["rows"] = index.rows_with_k1(int(k1[3]))

    t = threading.Thread(target=read_old)
    t.start()
    t.join()
    assert (seen["find"] == ids).all() and seen["rows"] == [int(ids[3])]
    old.execute("COMMIT")


def test_a_second_process_sees_the_runs_and_the_keys_of_the_first(tmp_path, small_runs):
    path = tmp_path / "s.db"
    fill(path, 0, 700)
    mine, db = KeyIndex(), connect(path)
    write_txn(db, mine)
    child = textwrap.dedent(f"""
        import sqlite3
        from gpubill.store import Store, keys
        from gpubill.store.keys import KeyIndex
        keys.RUN_MIN, keys.PAGE = 300, 16
        with Store({str(path)!r}) as s:
            s.ingest([{{"transaction_id": f"t{{i}}", "external_subscription_id": f"s{{i % 7}}",
                        "code": "gpu_job", "timestamp": 1735689600}} for i in range(690, 3000)])
        db = sqlite3.connect({str(path)!r}, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        KeyIndex().catch_up(db, writing=True)
        db.execute("COMMIT")
    """)
    subprocess.run([sys.executable, "-c", child], check=True)
    k1, k2, ids = stored(path)
    assert runs(path) == [(700, 700), (2300, int(ids.max()))]  # 10 of its events were duplicates of mine
    db.execute("BEGIN IMMEDIATE")
    mine.catch_up(db, writing=True)  # the other process's run is seen
    assert mine.watermark == int(ids.max()) and len(mine.unrun) == 0
    assert (mine.find(k1, k2) == ids).all()
    db.execute("COMMIT")
    mine.committed()


def test_a_reopened_store_deduplicates_and_finds_events_through_the_runs(tmp_path, small_runs, monkeypatch):
    path = tmp_path / "s.db"
    fill(path, 0, 600)
    write_txn(connect(path), KeyIndex())
    monkeypatch.setattr(keys, "LOAD_SHARE", 1)
    with Store(path) as s:
        assert s._writer.keys.floor == 0  # nothing read yet
        rec = s.ingest([ev("t5", sub="s5"), ev("t5", sub="s5", gpu_count=3), ev("new")])
        assert [r.status for r in rec.results()] == ["duplicate", "conflict", "ingested"]
        assert s._writer.keys.floor == 600  # the runs were looked up, not loaded
        assert [e.external_subscription_id for e in s.get_events("t5")] == ["s5"]


def test_two_processes_writing_and_merging_runs_at_once_store_each_key_once(tmp_path):
    path = tmp_path / "s.db"
    Store(path).close()
    child = textwrap.dedent("""
        import sqlite3, sys
        from gpubill.store import Store, keys
        from gpubill.store.keys import KeyIndex
        keys.RUN_MIN, keys.PAGE, keys.LOAD_SHARE = 150, 16, 1  # many runs and merges; lookups in pages
        path, first = sys.argv[1], int(sys.argv[2])
        runs = KeyIndex()
        for j in range(first, first + 3000, 100):
            with Store(path) as s:  # a new index each time: it reads the runs the other process wrote
                s.ingest([{"transaction_id": f"t{i}", "external_subscription_id": f"s{i % 3}",
                           "code": "gpu_job", "timestamp": 1735689600} for i in range(j, j + 100)])
            # (no other connection open while a Store opens: its header check closes a descriptor)
            db = sqlite3.connect(path, isolation_level=None, timeout=30)
            db.execute("BEGIN IMMEDIATE")
            runs.catch_up(db, writing=True)
            db.execute("COMMIT")
            runs.committed()
            db.close()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", child, str(path), str(first)]) for first in (0, 1500)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    k1, k2, ids = stored(path)
    assert len(ids) == 4500 and len(set(zip(k1.tolist(), k2.tolist()))) == 4500  # 1500 sent by both
    watermark = max(last for _, last in runs(path))
    db = sqlite3.connect(path)
    rid = np.frombuffer(b"".join(r[0] for r in db.execute("SELECT rid FROM key_pages")), "<i8")
    db.close()
    assert sorted(rid.tolist()) == sorted(ids[ids <= watermark].tolist())  # each key once, none missing


def test_keys_that_are_not_stored_are_answered_by_the_bloom_filter_without_pages(tmp_path, small_runs,
                                                                                 monkeypatch):
    path = tmp_path / "s.db"
    fill(path, 0, 2000)
    write_txn(connect(path), KeyIndex())
    monkeypatch.setattr(keys, "LOAD_SHARE", 1)
    rng = np.random.default_rng(7)
    q1, q2 = (rng.integers(-2**63, 2**63 - 1, 1000, dtype=np.int64) for _ in range(2))
    k1, k2, ids = stored(path)
    pages = []
    db = connect(path)
    db.set_trace_callback(lambda sql: pages.extend(pages_read(sql)))
    index = KeyIndex()
    db.execute("BEGIN")
    index.catch_up(db)
    assert (index.find(q1, q2) == -1).all()
    assert 0 < len(pages) < 50  # 1 000 absent keys: a few false positives read a page
    assert (index.find(k1[:100], k2[:100]) == ids[:100]).all()
    db.execute("COMMIT")
    db.execute("UPDATE key_runs SET bloom = NULL")  # a run written before schema 7: pages only
    index = KeyIndex()
    db.execute("BEGIN")
    index.catch_up(db)
    assert (index.find(k1[::7], k2[::7]) == ids[::7]).all() and (index.find(q1, q2) == -1).all()
    db.execute("COMMIT")


def test_a_lookup_of_one_key_reads_a_page_rather_than_a_large_filter(tmp_path, small_runs, monkeypatch):
    path = tmp_path / "s.db"
    fill(path, 0, 14000)  # its filter (17.5 kB) is larger than a page
    write_txn(connect(path), KeyIndex())
    monkeypatch.setattr(keys, "LOAD_SHARE", 1)
    k1, k2, ids = stored(path)
    sql = []
    db = connect(path)
    db.set_trace_callback(sql.append)
    index = KeyIndex()
    db.execute("BEGIN")
    index.catch_up(db)
    assert index.find(k1[9:10], k2[9:10]).tolist() == [ids[9]]
    assert index.find(k1[9:10], k2[9:10] + 1).tolist() == [-1]
    assert not [s for s in sql if "SELECT bloom" in s]
    assert (index.find(k1[:20], k2[:20]) == ids[:20]).all()  # 20 pages cost more than the filter
    assert [s for s in sql if "SELECT bloom" in s]
    db.execute("COMMIT")
