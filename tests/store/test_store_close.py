"""Closing a store while another thread is in the middle of a query.

A reviewer quits the TUI while a screen is still loading; ``gpubill serve``
stops while a request reads. The closing thread must not close a connection
under a running statement: CPython's sqlite3 then reads the closed handle
when the statement's step returns, and the process dies of a segmentation
fault (it did, in CI, when a TUI test ended while its overview was loading).

Each case runs in its own interpreter, so that a crash is a failed test
rather than a dead pytest worker.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gpubill.store import StoreError

ROOT = Path(__file__).resolve().parents[2]

# A thread starts a query that is inside SQLite (a user function that sleeps)
# when the main thread closes; the thread reports what its query and its next
# read answered.
_MID_QUERY = """
import sqlite3, threading, time
from gpubill.store import Store, StoreError
{setup}
inside, said = threading.Event(), []

def slow(x):
    inside.set()
    time.sleep(0.3)
    return x

def query():
    db = {reader}
    db.create_function("slow", 1, slow)
    try:
        said.append(("query", db.execute("SELECT slow(1)").fetchall()))
    except sqlite3.Error as e:
        said.append(("query", type(e).__name__ + ": " + str(e)))
    try:
        {reader}
        said.append(("next read", "answered"))
    except StoreError as e:
        said.append(("next read", "StoreError: " + str(e).split(": ", 1)[1]))

t = threading.Thread(target=query)
t.start()
inside.wait()
began = time.monotonic()
{close}
closed_s = time.monotonic() - began
t.join()
print(said)
print("close waited on the query:", closed_s >= 0.25)
"""


def _run(tmp_path, setup: str, reader: str, close: str) -> subprocess.CompletedProcess:
    code = _MID_QUERY.format(setup=textwrap.dedent(setup), reader=reader, close=close)
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=60)


def _said(r: subprocess.CompletedProcess) -> list[str]:
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stderr[-2000:]}"
    return r.stdout.splitlines()


def test_closing_a_store_interrupts_another_threads_query_instead_of_crashing_the_process(tmp_path):
    r = _run(tmp_path, "store = Store('s.db')", "store._read()", "store.close()")
    assert _said(r) == [
        "[('query', 'OperationalError: interrupted'), ('next read', 'StoreError: the store was closed')]",
        "close waited on the query: False",
    ]


def test_closing_a_review_session_leaves_a_loading_screens_query_to_end_safely(tmp_path):
    # the TUI closes its session when it unmounts, while a worker thread may be reading
    setup = """
    from gpubill.service.review import ReviewSession
    from gpubill.store.roles import Actor
    Store('s.db').close()
    session = ReviewSession('s.db', [], Actor('reviewer', 'admin', 'tui'))
    session.reader()
    """
    r = _run(tmp_path, setup, "session.reader()._read()", "session.close()")
    assert _said(r) == [
        "[('query', 'OperationalError: interrupted'), ('next read', 'StoreError: the store was closed')]",
        "close waited on the query: False",
    ]


def test_a_store_closed_by_the_thread_that_reads_it_refuses_the_next_read(store):
    store.event_watermark()
    store.close()
    with pytest.raises(StoreError, match="the store was closed"):
        store.event_watermark()
