"""The store's open and write paths under hostile conditions, on real files and real processes.

A full disk (a small tmpfs), missing / foreign / damaged / read-only store files, concurrent
writers and a writer killed -9 mid-transaction, and out-of-range numbers given to queries.
"""

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest

from gpubill.store import Store, StoreError, StoreFull, StoreVersionError, payloads, users
from gpubill.store.roles import Actor
from gpubill.store.schema import LATEST

TS = 1_735_689_600
CLI_TIMEOUT_S = 120  # a hang fails the test instead of blocking the suite


def ev(txn, sub="s1", code="gpu_job", **props):
    return {"transaction_id": txn, "external_subscription_id": sub, "code": code,
            "timestamp": TS, "properties": props}


def padded(txn):
    """An event of about 300 bytes, so that a few thousand fill a small disk."""
    return ev(txn, job_id=f"job-{txn}", note="x" * 200, gpu_count=8)


def gpubill(*args, stdin=None):
    env = {k: v for k, v in os.environ.items() if k != "GPUBILL_STORE"}
    p = subprocess.run([sys.executable, "-m", "gpubill", *map(str, args)], input=stdin,
                       capture_output=True, env=env, timeout=CLI_TIMEOUT_S)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def one_line_error(err):
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpubill: error: "), err
    assert "Traceback" not in err
    return lines[0]


def files_of(path):
    """The path's bytes digest and which SQLite side files exist beside it."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return digest, sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name + "-"))


def integrity(path):
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def consistent_counts(path):
    """Payloads stored, what the batches say they stored, and what the column blocks cover: all
    equal when no transaction was half-written."""
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT (SELECT coalesce(sum(length(raw_end)), 0) / 8 FROM column_blocks),"
                          " (SELECT coalesce(sum(n_ingested), 0) FROM batches),"
                          " (SELECT coalesce(sum(n), 0) FROM column_blocks)").fetchone()
    finally:
        db.close()


def stored_events(path) -> list:
    with Store(path, readonly=True) as s:
        return s.list_events(limit=10**9)


def keys_stored_once(path):
    events = stored_events(path)
    n = len(events)
    return n == len({(e.external_subscription_id, e.transaction_id) for e in events}), n


def in_thread(fn, timeout=CLI_TIMEOUT_S):
    """Run fn in a daemon thread: its result or exception; a hang fails the test."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: B036 — handed back to the test
            box["error"] = e
    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(timeout)
    assert not th.is_alive(), "hung: the call did not return"
    return box


# -- a full disk ----------------------------------------------------------------------------


def fill(disk, leave_bytes=0):
    """Fill the disk with a filler file, leaving about ``leave_bytes`` free."""
    st = os.statvfs(disk)
    size = max(0, st.f_bavail * st.f_frsize - leave_bytes)
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            f.write(b"\1" * size)
        except OSError:
            pass
    return filler


def test_full_disk_embedded_ingest_is_store_full_then_recovers(tiny_disk):
    path = tiny_disk / "s.db"
    s = Store(path)
    try:
        assert s.ingest([padded("first")]).ok and s.health() is None
        filler = fill(tiny_disk)
        box = in_thread(lambda: s.ingest([padded(f"t{i}") for i in range(3000)]))
        assert isinstance(box.get("error"), StoreFull), box
        assert "disk full" in str(box["error"]) and str(path) in str(box["error"])
        assert "disk full" in s.health()
        assert s.count_events() == 1 and s.get_events("first")
        filler.unlink()
        assert s.ingest([padded("after")]).ok and s.health() is None
        assert s.count_events() == 2
    finally:
        s.close()
    assert integrity(path) == "ok"
    assert consistent_counts(path) == (2, 2, 2)


def test_full_disk_single_chunk_and_atomic_writes_raise_store_full(tiny_disk):
    path = tiny_disk / "s.db"
    with Store(path) as s:
        s.ingest([padded("first")])
        filler = fill(tiny_disk)
        for atomic in (False, True):
            box = in_thread(lambda: s.ingest([padded(f"a{i}") for i in range(2000)], atomic=atomic))
            assert isinstance(box.get("error"), StoreFull), box
        filler.unlink()
        assert s.ingest([padded("after")], atomic=True).ok
    assert integrity(path) == "ok" and consistent_counts(path) == (2, 2, 2)


def test_full_disk_ingest_stream_keeps_every_acknowledged_chunk(tiny_disk):
    path = tiny_disk / "s.db"
    s = Store(path, chunk_size=250, commit_events=1000)
    acked = []

    def run():
        chunks = (([padded(f"t{k}-{i}") for i in range(250)], None) for k in range(40))
        for rec in s.ingest_stream(chunks, source="test"):
            acked.extend(int(i) for i in rec.event_id)
    try:
        fill(tiny_disk, leave_bytes=1_000_000)
        box = in_thread(run)
        assert isinstance(box.get("error"), StoreFull), box
        assert acked, "some groups should have committed before the disk filled up"
        assert s.count_events() == len(acked)
        stored = [e.id for e in s.list_events(limit=len(acked) + 10)]
        assert stored == sorted(acked)
    finally:
        s.close()
    assert integrity(path) == "ok"
    n = len(acked)
    assert consistent_counts(path) == (n, n, n)


def test_full_disk_cli_ingest_exits_3_in_one_line_then_a_new_ingest_works(tiny_disk, tmp_path):
    path = tiny_disk / "s.db"
    big = tmp_path / "big.jsonl"
    with open(big, "w") as f:
        for i in range(70_000):  # more than one group of 65536 events: the writer fails mid-stream
            f.write(json.dumps(ev(f"t{i}", job_id=f"job-{i}")) + "\n")
    assert gpubill("ingest", "-", "--store", path, stdin=json.dumps(ev("first")).encode())[0] == 0
    filler = fill(tiny_disk, leave_bytes=100_000)
    rc, out, err = gpubill("ingest", big, "--store", path)
    assert rc == 3 and out == ""
    assert "disk full" in one_line_error(err)
    assert integrity(path) == "ok"
    n = consistent_counts(path)[0]
    assert consistent_counts(path) == (n, n, n) and n >= 1
    filler.unlink()
    rc, out, err = gpubill("ingest", "-", "--store", path, stdin=json.dumps(ev("after")).encode())
    assert (rc, err) == (0, "") and "1 ingested" in out
    assert integrity(path) == "ok"


def test_full_disk_when_creating_a_store_leaves_no_half_made_file(tiny_disk):
    fill(tiny_disk)
    path = tiny_disk / "new.db"
    rc, _, err = gpubill("ingest", "-", "--store", path, stdin=json.dumps(ev("a")).encode())
    assert rc == 3 and "disk full" in one_line_error(err)
    assert not path.exists() and files_of(path)[1] == []


def test_a_full_disk_still_reads_and_refuses_writes_in_one_line(tiny_disk):
    path = tiny_disk / "s.db"
    with Store(path) as s:
        s.ingest([ev("a"), ev("b")])
    fill(tiny_disk)
    rc, out, err = gpubill("events", "list", "--store", path)
    assert (rc, err) == (0, "") and out.count("\n") == 2
    with Store(path, readonly=True) as ro:
        assert ro.count_events() == 2
    for cmd in (("ingest", "-"), ("keys", "create", "--name", "k", "--role", "writer")):
        rc, out, err = gpubill(*cmd, "--store", path, stdin=json.dumps(ev("c")).encode())
        assert rc == 3 and "disk full" in one_line_error(err)
    with Store(path, readonly=True) as ro:
        assert [e.transaction_id for e in ro.list_events()] == ["a", "b"]


# -- read-only commands never create a store ---------------------------------------------------

READERS = [("events",), ("events", "list"), ("events", "show", "t1"), ("events", "rejected"),
           ("events", "rejected", "1"), ("events", "conflicts"), ("keys", "list"),
           ("events", "resubmit", "1"), ("events", "discard", "1"), ("keys", "revoke", "--name", "k")]


@pytest.mark.parametrize("cmd", READERS, ids=" ".join)
def test_commands_that_need_a_store_refuse_a_missing_one_and_create_nothing(tmp_path, cmd):
    path = tmp_path / "absent.db"
    rc, out, err = gpubill(*cmd, "--store", path)
    assert rc == 3 and out == ""
    assert "no such store" in one_line_error(err)
    assert list(tmp_path.iterdir()) == []


def test_commands_that_write_create_a_missing_store(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    assert gpubill("ingest", "-", "--store", a, stdin=json.dumps(ev("x")).encode())[0] == 0
    assert gpubill("keys", "create", "--name", "k", "--role", "writer", "--store", b)[0] == 0
    assert a.is_file() and b.is_file()


def test_the_embedded_store_refuses_a_missing_file_when_asked_not_to_create(tmp_path):
    with pytest.raises(StoreError, match="no such store"):
        Store(tmp_path / "absent.db", create=False)
    assert list(tmp_path.iterdir()) == []


# -- files that are not (our) stores are refused untouched -------------------------------------

def _foreign_rollback(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (x)")
    db.execute("INSERT INTO notes VALUES ('keep me')")
    db.commit()
    db.close()


def _foreign_wal(path):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE notes (x)")
    db.commit()
    db.close()


def _foreign_app_id(path):
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 1234")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()


def _foreign_versioned_no_tables(path):
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 7")
    db.close()


def _newer_store(path):
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {LATEST + 1}")
    db.close()


def _random_bytes(path):
    path.write_bytes(os.urandom(64 * 1024))


def _short_garbage(path):
    path.write_bytes(b"SQLite format 3")


def _sqlite_header_then_garbage(path):
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(16384 * 3))


def _truncated_store(path):
    with Store(path) as s:
        s.ingest([padded(f"t{i}") for i in range(2000)])
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


BAD_FILES = {
    "foreign sqlite": (_foreign_rollback, "not a gpubill store"),
    "foreign sqlite in WAL mode": (_foreign_wal, "not a gpubill store"),
    "other application_id": (_foreign_app_id, "not a gpubill store"),
    "user_version but no tables": (_foreign_versioned_no_tables, "not a gpubill store"),
    "newer gpubill store": (_newer_store, "newer than this gpubill supports"),
    "random bytes": (_random_bytes, "not a gpubill store"),
    "short garbage": (_short_garbage, "not a gpubill store"),
    "sqlite header, garbage after": (_sqlite_header_then_garbage, "damaged"),
    "truncated store": (_truncated_store, "truncated"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_file_that_is_not_a_usable_store_is_refused_byte_identical(tmp_path, name):
    make, message = BAD_FILES[name]
    path = tmp_path / "x.db"
    make(path)
    before = files_of(path)
    for kw in ({}, {"readonly": True}):
        with pytest.raises(StoreError, match=message):
            Store(path, **kw)
        assert files_of(path) == before
    for cmd in (("ingest", "-"), ("events", "list"), ("keys", "create", "--name", "k", "--role", "viewer")):
        rc, out, err = gpubill(*cmd, "--store", path, stdin=json.dumps(ev("a")).encode())
        assert rc == 3 and out == ""
        assert message in one_line_error(err)
        assert files_of(path) == before


def test_a_newer_store_raises_the_version_error(tmp_path):
    path = tmp_path / "x.db"
    _newer_store(path)
    with pytest.raises(StoreVersionError):
        Store(path)


def test_an_empty_file_is_a_new_store_for_writers_and_none_yet_for_readers(tmp_path):
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    rc, out, err = gpubill("events", "list", "--store", path)
    assert rc == 3 and "empty" in one_line_error(err) and path.read_bytes() == b""
    assert files_of(path)[1] == []
    rc, out, err = gpubill("ingest", "-", "--store", path, stdin=json.dumps(ev("a")).encode())
    assert (rc, err) == (0, "")
    assert gpubill("events", "list", "--store", path)[1].count("\n") == 1


@pytest.mark.parametrize("case", ["directory", "missing directory", "parent is a file", "fifo"])
def test_a_store_path_that_cannot_be_a_store_file(tmp_path, case):
    if case == "directory":
        path, want = tmp_path / "dir.db", "is a directory"
        path.mkdir()
    elif case == "missing directory":
        path, want = tmp_path / "nope" / "s.db", "does not exist"
    elif case == "parent is a file":
        (tmp_path / "file").write_text("x")
        path, want = tmp_path / "file" / "s.db", "not a directory"
    else:
        path, want = tmp_path / "pipe.db", "not a regular file"
        os.mkfifo(path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for cmd in (("ingest", "-"), ("events", "list"), ("keys", "create", "--name", "k", "--role", "viewer")):
        rc, out, err = gpubill(*cmd, "--store", path, stdin=json.dumps(ev("a")).encode())
        assert rc == 3 and out == ""
        assert want in one_line_error(err)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.fixture
def readonly_disk(tiny_disk):
    """A store with two events on a file system remounted read-only."""
    path = tiny_disk / "s.db"
    with Store(path) as s:
        s.ingest([ev("a"), ev("b")])
    r = subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount read-only: {r.stderr.decode().strip()}")
    return path


def test_a_read_only_store_can_be_read_and_refuses_writes_cleanly(readonly_disk):
    path = readonly_disk
    before = files_of(path)
    rc, out, err = gpubill("events", "list", "--store", path)
    assert (rc, err) == (0, "") and out.count("\n") == 2
    rc, out, err = gpubill("events", "show", "a", "--store", path, "--format", "json")
    assert rc == 0 and json.loads(out)["transaction_id"] == "a"
    rc, out, err = gpubill("ingest", "-", "--store", path, stdin=json.dumps(ev("c")).encode())
    assert rc == 3 and "read-only" in one_line_error(err)
    with pytest.raises(StoreError, match="read-only"):
        Store(path)
    with Store(path, readonly=True) as ro:
        assert ro.count_events() == 2 and ro.read_columns().n == 2
    assert files_of(path) == before


def test_reading_commands_leave_no_side_files_behind(tmp_path):
    path = tmp_path / "s.db"
    assert gpubill("ingest", "-", "--store", path, stdin=json.dumps(ev("a")).encode())[0] == 0
    before = files_of(path)
    assert before[1] == []
    for cmd in (("events", "list"), ("events", "show", "a"), ("keys", "list"), ("events", "rejected")):
        assert gpubill(*cmd, "--store", path)[0] in (0, 1)
        assert files_of(path) == before


# -- concurrent writers ----------------------------------------------------------------------

def _jsonl(path, txns):
    with open(path, "w") as f:
        for t in txns:
            f.write(json.dumps(ev(t, gpu_count=1)) + "\n")


def test_two_cli_processes_and_an_embedded_store_store_each_event_once(tmp_path):
    path = tmp_path / "s.db"
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _jsonl(a, [f"t{i}" for i in range(0, 30_000)])
    _jsonl(b, [f"t{i}" for i in range(15_000, 45_000)])
    Store(path).close()
    procs = [subprocess.Popen([sys.executable, "-m", "gpubill", "ingest", str(f), "--store", str(path),
                               "--chunk", "1000", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for f in (a, b)]
    with Store(path, chunk_size=500, commit_events=2000) as s:
        for k in range(10):
            s.ingest([ev(f"t{i}", gpu_count=1) for i in range(k * 5000, k * 5000 + 5000)])
    for p in procs:
        out, err = p.communicate(timeout=CLI_TIMEOUT_S)
        assert p.returncode == 0, err
    once, n = keys_stored_once(path)
    assert once and n == 50_000
    assert integrity(path) == "ok" and consistent_counts(path) == (n, n, n)


VICTIM = r"""
import sys, time
from gpubill.store import Store
s = Store(sys.argv[1])
events = [{"transaction_id": f"t{i}", "external_subscription_id": "s1", "code": "gpu_job",
           "timestamp": 1735689600, "properties": {"who": "victim"}} for i in range(5000)]
chunk, payload, rej, t = s._prepare(events, None, None)
s._wlock.acquire()
s._writer.begin()
s._writer.stage(chunk, payload, rej, "victim", t)   # written, not committed
print("staged", flush=True)
time.sleep(600)
"""


def test_a_writer_killed_mid_transaction_leaves_the_others_whole(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as s:
        s.ingest([ev(f"t{i}", gpu_count=1) for i in range(100)])
    victim = subprocess.Popen([sys.executable, "-c", VICTIM, str(path)], stdout=subprocess.PIPE)
    try:
        assert victim.stdout.readline() == b"staged\n"
        survivor_in = tmp_path / "b.jsonl"
        _jsonl(survivor_in, [f"t{i}" for i in range(2000, 8000)])
        survivor = subprocess.Popen([sys.executable, "-m", "gpubill", "ingest", str(survivor_in), "--store",
                                     str(path), "--chunk", "700", "--quiet"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with Store(path) as s:
            # this writer waits for the victim's write lock, then for its turn with the survivor
            killer = threading.Timer(1.0, victim.send_signal, (signal.SIGKILL,))
            killer.start()
            rec = s.ingest([ev(f"t{i}", gpu_count=1) for i in range(50, 3000)])
            assert rec.ok
        out, err = survivor.communicate(timeout=CLI_TIMEOUT_S)
        assert survivor.returncode == 0, err
    finally:
        victim.kill()
        victim.wait()
    once, n = keys_stored_once(path)
    assert once and n == 8000
    assert not [e for e in stored_events(path) if e.properties.get("who") == "victim"]
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM batches WHERE source = 'victim'").fetchone()[0] == 0
    db.close()
    assert integrity(path) == "ok" and consistent_counts(path) == (n, n, n)


# -- out-of-range numbers given to queries -------------------------------------------------------

HUGE = 10 ** 20


def test_queries_take_out_of_range_numbers_without_raw_errors(tmp_path):
    with Store(tmp_path / "s.db") as s:
        s.ingest([ev("a"), {"transaction_id": "bad"}])
        assert s.get_event(HUGE) is None and s.get_event(-HUGE) is None
        assert s.get_rejected(HUGE) is None
        assert s.discard_rejected(HUGE) is False
        with pytest.raises(KeyError):
            s.resubmit(HUGE)
        assert s.list_events(time_from_ms=HUGE) == [] and s.count_events(time_to_ms=-HUGE) == 0
        assert len(s.list_events(time_from_ms=-HUGE, time_to_ms=HUGE, limit=HUGE)) == 1
        assert s.list_events(offset=HUGE) == [] and s.list_events(after_id=HUGE) == []
        assert len(s.list_rejected(limit=HUGE)) == 1 and s.list_conflicts(offset=HUGE) == []
        assert s.events_as_dicts(time_from_ms=-HUGE, time_to_ms=HUGE)[0]["transaction_id"] == "a"
        assert s.read_columns(since_rowid=HUGE).n == 0
        assert s.read_columns(time_from_ms=-HUGE, time_to_ms=HUGE).n == 1
        for bad in ({"limit": -1}, {"offset": -1}, {"limit": "10"}, {"limit": 1.5}):
            with pytest.raises(ValueError):
                s.list_events(**bad)
        with pytest.raises(ValueError):
            s.list_rejected(limit=-5)


@pytest.mark.parametrize("args,code", [
    (("events", "rejected", "99999999999999999999"), 1),
    (("events", "resubmit", "-5"), 1),
    (("events", "discard", "99999999999999999999"), 1),
    (("events", "show", "99999999999999999999"), 1),
    (("events", "list", "--limit", "1000000000000"), 0),
    (("events", "list", "--offset", "1000000000000"), 0),
    (("events", "conflicts", "--offset", "1000000000000"), 0),
    (("events", "list", "--limit", "99999999999999999999"), 2),
    (("events", "rejected", "--limit", "-1"), 2),
    (("events", "list", "--offset", "-1"), 2),
])
def test_cli_huge_and_negative_numbers_are_one_line(tmp_path, args, code):
    path = tmp_path / "s.db"
    gpubill("ingest", "-", "--store", path, stdin=json.dumps(ev("a")).encode())
    rc, out, err = gpubill(*args, "--store", path)
    assert rc == code, err
    if code:
        one_line_error(err)
    else:
        assert err == ""


# -- hostile text ------------------------------------------------------------------------------

def test_text_that_cannot_be_stored_finds_nothing_instead_of_crashing(tmp_path):
    with Store(tmp_path / "s.db") as s:
        s.ingest([ev("a")])
        assert s.get_events("\ud800") == [] and s.get_events("a", "\udcff") == []
        assert s.list_events(code="\ud800") == [] and s.count_events(sub="\ud800") == 0
        assert s.events_as_dicts(codes=["\ud800"]) == []
        assert s.verify_key("gpb_\ud800") is None and s.verify_key("") is None


@pytest.mark.parametrize("name", ["", "x" * 1000, "a\nb", "\ud800"])
def test_key_names_must_be_short_printable_text(tmp_path, name):
    with Store(tmp_path / "s.db") as s:
        with pytest.raises(ValueError):
            users.create_key(s, Actor("admin", "admin"), name, "writer")
        assert s.list_keys() == []


def test_cli_arguments_that_are_not_utf8_are_one_line(tmp_path):
    path = tmp_path / "s.db"
    gpubill("ingest", "-", "--store", path, stdin=json.dumps(ev("a")).encode())
    for args, code in (((b"events", b"show", b"\xff"), 1), ((b"events", b"list", b"--code", b"\xff"), 0),
                       ((b"keys", b"create", b"--name", b"\xff", b"--role", b"writer"), 2)):
        p = subprocess.run([sys.executable.encode(), b"-m", b"gpubill", *args, b"--store", bytes(path)],
                           capture_output=True, timeout=CLI_TIMEOUT_S)
        assert p.returncode == code, p.stderr
        if code:
            one_line_error(p.stderr.decode())


def test_paths_with_uri_characters_and_bytes_that_are_not_utf8(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(ev("a")) + "\n" + json.dumps({"transaction_id": "b"}) + "\n")
    odd_input = bytes(tmp_path) + b"/\xfe in?#%20.jsonl"
    os.rename(data, odd_input)
    for store in (bytes(tmp_path) + b"/a?b#c%20d.db", bytes(tmp_path) + b"/\xff.db"):
        p = subprocess.run([sys.executable.encode(), b"-m", b"gpubill", b"ingest", odd_input, b"--store", store],
                           capture_output=True, timeout=CLI_TIMEOUT_S)
        assert p.returncode == 1 and p.stdout.decode().endswith(
            "\\xfe in?#%20.jsonl: 1 ingested, 0 duplicate, 0 conflict, 1 rejected\n"), p
        assert b"Traceback" not in p.stderr and os.path.isfile(store)
        p = subprocess.run([sys.executable.encode(), b"-m", b"gpubill", b"events", b"rejected", b"--store", store],
                           capture_output=True, timeout=CLI_TIMEOUT_S)
        assert p.returncode == 0 and "cli:\\xfe in?#%20.jsonl" in p.stdout.decode()
    assert sorted(os.listdir(bytes(tmp_path))) == sorted([b"\xfe in?#%20.jsonl", b"a?b#c%20d.db", b"\xff.db"])


def test_text_listings_keep_one_event_per_line(tmp_path):
    path = tmp_path / "s.db"
    doc = ev("a", **{"k\tey": "line\nbreak", "sep": "\u2028", "n": 8, "b": True})
    assert gpubill("ingest", "-", "--store", path, stdin=json.dumps(doc).encode())[0] == 0
    rc, out, _ = gpubill("events", "list", "--store", path)
    assert rc == 0 and out.count("\n") == 1 and out.count("\t") == 5
    assert out.rstrip("\n").endswith("k\\tey=line\\nbreak sep=\\u2028 n=8 b=true")


def test_a_store_damaged_inside_is_one_line_for_every_command(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as s:
        s.ingest([padded(f"t{i}") for i in range(3000)])
    size = path.stat().st_size
    with open(path, "r+b") as f:  # every page past the schema's: blocks, payloads, their indexes
        for at in range(4 * 16384, size, 16384):
            f.seek(at)
            f.write(b"\xa5" * 16384)
    for cmd in (("events", "list", "--offset", "2990"), ("events", "show", "t2000"), ("ingest", "-")):
        rc, out, err = gpubill(*cmd, "--store", path, stdin=json.dumps(ev("new")).encode())
        assert rc == 3 and "damaged" in one_line_error(err), (cmd, err)


def test_resubmit_refuses_a_null_or_oversized_fix_without_touching_the_quarantine(tmp_path):
    path = tmp_path / "s.db"
    gpubill("ingest", "-", "--store", path, stdin=json.dumps(ev("q", gpu_count=-1)).encode())
    for content, want in ((b"null", "got null"), (b" " * (2 << 20), "larger than")):
        fix = tmp_path / "fix.json"
        fix.write_bytes(content)
        rc, out, err = gpubill("events", "resubmit", "1", "--file", fix, "--store", path)
        assert rc == 1 and out == "" and want in one_line_error(err)
    rc, out, _ = gpubill("events", "rejected", "--store", path, "--format", "json")
    assert json.loads(out)["status"] == "open"


def test_rebuilding_columns_never_drops_an_event_that_no_longer_validates(tmp_path):
    """An event stored before a limit was enforced stops the rebuild, named; the blocks stay."""
    path = tmp_path / "s.db"
    with Store(path) as s:
        assert s.ingest([ev("ok", duration_seconds=60), ev("old", duration_seconds=60)]).counts()["ingested"] == 2
    db = sqlite3.connect(path)
    old = json.dumps(ev("old", duration_seconds=1e300)).encode()  # what an older gpubill accepted
    bid, *packed = db.execute("SELECT id, raw, raw_end, frame_end FROM column_blocks ORDER BY id DESC"
                              " LIMIT 1").fetchone()
    events = payloads.unpack(*packed)[:-1] + [old]
    db.execute("UPDATE column_blocks SET raw = ?, raw_end = ?, frame_end = ? WHERE id = ?",
               (*payloads.pack(b"".join(events), np.array([len(e) for e in events])), bid))
    db.commit()
    db.close()
    with Store(path) as s:
        with pytest.raises(StoreError, match=r"1 stored event\(s\) no longer pass validation.*duration_seconds"):
            s.rebuild_columns()
        assert s.read_columns().n == 2  # the previous blocks are intact
