"""`gpubill ingest` killed with SIGKILL while it streams a large file: what it committed is whole
and exactly once, nothing else is stored, and running the same ingest again completes the file
with every event stored once (the first run's events are duplicates)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

from gpubill.store import Store

N = 120_000


def write_file(path) -> list[str]:
    txns = [f"k{i:06d}" for i in range(N)]
    with open(path, "w") as f:
        for i, t in enumerate(txns):
            f.write(json.dumps({"transaction_id": t, "external_subscription_id": f"sub_{i % 37}",
                                "code": "gpu_job", "timestamp": 1735689600 + i,
                                "properties": {"gpu_type": "H100-SXM", "gpu_count": 8, "duration_seconds": 60,
                                               "job_id": f"job-{i // 10}"}}) + "\n")
    return txns


def stored_count(path) -> int:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute("SELECT coalesce(sum(n), 0) FROM column_blocks").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def ingest(path, src, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gpubill", "ingest", str(src), "--store", str(path),
                             "--chunk", "2000", "--quiet", "--format", "json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_killed_ingest_keeps_whole_transactions_and_a_rerun_stores_the_rest_once(tmp_path):
    path, src = tmp_path / "s.db", tmp_path / "big.jsonl"
    txns = write_file(src)
    proc = ingest(path, src)
    deadline = time.monotonic() + 120
    while stored_count(path) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store(path) as s:
        before = [e.transaction_id for e in s.list_events(limit=10**9)]
    assert 0 < len(before) < N, "the kill came after the last commit: no mid-stream kill was tested"
    assert before == txns[:len(before)]  # whole committed transactions, in file order, once each
    assert len(before) % 2000 == 0
    again = ingest(path, src)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    summary = json.loads(out)
    assert (summary["ingested"], summary["duplicate"]) == (N - len(before), len(before))
    with Store(path) as s:
        after = [e.transaction_id for e in s.list_events(limit=10**9)]
        assert s.count_events() == N
    assert after == txns
