"""Opening a store never drops the SQLite locks this process already holds on its file.

Closing any descriptor of a file releases every POSIX lock the process holds on it. When
``inspect`` read the header of a file this process had open (a connection, another Store), the
other process could take the database for unused: it checkpointed and deleted the WAL under
the first one, whose next statement failed with "disk I/O error"."""

from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import sqlite3, sys
from gpubill.store import Store
path, me = sys.argv[1], sys.argv[2]
db = sqlite3.connect(path, isolation_level=None, timeout=30)
for j in range(40):
    with Store(path) as s:
        s.ingest([{"transaction_id": f"t{j}", "external_subscription_id": me, "code": "c",
                   "timestamp": 1735689600}])
    db.execute("BEGIN IMMEDIATE")
    db.execute("SELECT 1").fetchone()
    db.execute("COMMIT")
"""


def test_two_processes_reopening_a_store_beside_their_own_connection_never_lose_the_wal(tmp_path):
    from gpubill.store import Store
    path = str(tmp_path / "s.db")
    Store(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, path, me], stderr=subprocess.PIPE) for me in "ab"]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    with Store(path) as s:
        assert s.count_events() == 80
