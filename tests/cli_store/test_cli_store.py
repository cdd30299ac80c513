"""`gpubill ingest`, `events`, `keys`, `serve` as real subprocesses."""

import json
import socket
import sqlite3
import subprocess
import sys

import pytest

TS = 1735689600


def gpubill(*args, stdin=None, env=None):
    p = subprocess.run([sys.executable, "-m", "gpubill", *map(str, args)], input=stdin,
                       capture_output=True, env=env)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def line(txn, **props):
    return json.dumps({"transaction_id": txn, "external_subscription_id": "s1", "code": "gpu_job",
                       "timestamp": TS, "properties": props})


@pytest.fixture
def db(tmp_path):
    return tmp_path / "s.db"


def test_ingest_jsonl_reports_and_is_idempotent(tmp_path, db):
    f = tmp_path / "e.jsonl"
    f.write_text("\n".join([line("a", gpu_count=8), line("b", duration_seconds=-1), "{oops",
                            line("c")]) + "\n")
    rc, out, err = gpubill("ingest", f, "--store", db)
    assert rc == 1
    assert out == f"{f}: 2 ingested, 0 duplicate, 0 conflict, 2 rejected\n"
    assert f"{f}:2: rejected: properties.duration_seconds: must be >= 0, got -1" in err
    assert f"{f}:3: rejected: event: malformed JSON" in err
    assert "Traceback" not in err
    rc, out, _ = gpubill("ingest", f, "--store", db, "--format", "json", "--quiet")
    assert json.loads(out) == {"file": str(f), "format": "jsonl", "ingested": 0, "duplicate": 2,
                               "conflict": 0, "rejected": 2}


def test_ingest_clean_file_exits_0_and_reads_stdin(db):
    data = "\n".join(line(f"t{i}") for i in range(3)).encode()
    rc, out, err = gpubill("ingest", "-", "--store", db, stdin=data)
    assert (rc, err) == (0, "") and "3 ingested" in out


def test_ingest_csv_and_lago_batch(tmp_path, db):
    csv = tmp_path / "e.csv"
    csv.write_text("transaction_id,external_subscription_id,code,timestamp,gpu_type,gpu_count,properties\n"
                   'c1,s1,gpu_job,2025-01-01T00:00:00Z,H100,8,"{""region"": ""eu""}"\n'
                   "c2,s1,gpu_job,1735689600,A100,,\n")
    assert gpubill("ingest", csv, "--store", db)[0] == 0
    batch = tmp_path / "b.json"
    batch.write_text(json.dumps({"events": [json.loads(line("l1")), json.loads(line("l2"))]}))
    rc, out, _ = gpubill("ingest", batch, "--store", db)
    assert rc == 0 and "2 ingested" in out
    rc, out, _ = gpubill("events", "show", "c1", "--store", db, "--format", "json")
    shown = json.loads(out)
    assert shown["properties"] == {"gpu_type": "H100", "gpu_count": "8", "region": "eu"}
    assert shown["timestamp"] == "2025-01-01T00:00:00.000Z"


def test_events_list_filters_and_json(tmp_path, db):
    gpubill("ingest", "-", "--store", db, stdin="\n".join(
        [line("a"), json.dumps({**json.loads(line("b")), "code": "tokens", "timestamp": TS + 60})]).encode())
    rc, out, _ = gpubill("events", "--store", db, "--code", "tokens", "--format", "json")
    assert rc == 0 and [json.loads(row)["transaction_id"] for row in out.splitlines()] == ["b"]
    rc, out, _ = gpubill("events", "list", "--store", db, "--to", "2025-01-01T00:00:30Z")
    assert [row.split("\t")[4] for row in out.splitlines()] == ["a"]
    assert gpubill("events", "show", "zzz", "--store", db)[0] == 1
    assert gpubill("events", "list", "--store", db, "--from", "tomorrow")[0] == 2


def test_quarantine_resubmit_with_a_fixed_file(tmp_path, db):
    gpubill("ingest", "-", "--store", db, stdin=line("q", gpu_count=-4).encode())
    rc, out, _ = gpubill("events", "rejected", "--store", db, "--format", "json")
    (q,) = [json.loads(row) for row in out.splitlines()]
    assert q["reasons"][0]["field"] == "properties.gpu_count" and q["raw"]["transaction_id"] == "q"
    rc, out, err = gpubill("events", "resubmit", q["id"], "--store", db)
    assert rc == 1 and "properties.gpu_count" in err
    fixed = tmp_path / "fixed.json"
    fixed.write_text(line("q", gpu_count=4))
    rc, out, _ = gpubill("events", "resubmit", q["id"], "--file", fixed, "--store", db)
    assert rc == 0 and "ingested" in out
    assert gpubill("events", "rejected", "--store", db)[1] == ""          # none open any more
    assert "resubmitted" in gpubill("events", "rejected", "--all", "--store", db)[1]


def test_keys_create_list_revoke(db):
    rc, key, _ = gpubill("keys", "create", "--name", "ci", "--role", "writer", "--store", db)
    assert rc == 0 and key.startswith("gpb_")
    rc, out, _ = gpubill("keys", "list", "--store", db)
    assert out.startswith("ci\twriter\t") and key.strip() not in out
    assert gpubill("keys", "create", "--name", "ci", "--role", "viewer", "--store", db)[0] == 1
    assert gpubill("keys", "revoke", "--name", "ci", "--store", db)[0] == 0
    assert gpubill("keys", "create", "--store", db)[0] == 2


def test_store_from_env_and_errors_without_tracebacks(tmp_path, db):
    import os
    env = {**os.environ, "GPUBILL_STORE": str(db)}
    assert gpubill("ingest", "-", stdin=line("e").encode(), env=env)[0] == 0
    assert "\te\t" in gpubill("events", env=env)[1]
    rc, _, err = gpubill("ingest", tmp_path / "missing.jsonl", "--store", db)
    assert rc == 3 and err.startswith("gpubill: error:") and "Traceback" not in err
    newer = tmp_path / "newer.db"
    gpubill("keys", "create", "--name", "k", "--role", "viewer", "--store", newer)  # creates the store
    c = sqlite3.connect(newer)
    c.execute("PRAGMA user_version = 99")
    c.close()
    rc, _, err = gpubill("events", "--store", newer)
    assert rc == 3 and "newer than this gpubill supports" in err and "Traceback" not in err
    notdb = tmp_path / "garbage.db"
    notdb.write_bytes(b"not a database" * 100)
    rc, _, err = gpubill("events", "--store", notdb)
    assert rc == 3 and "Traceback" not in err


def test_serve_reports_a_busy_port(db):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        rc, _, err = gpubill("serve", "--store", db, "--port", s.getsockname()[1])
    finally:
        s.close()
    assert rc == 3 and "cannot listen" in err and "Traceback" not in err
