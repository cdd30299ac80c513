"""The spool (SQLite WAL: jobs, outbox, cursors) and delivery: to a real `gpubill serve` or a
real store file; the server down for half an hour on an injected clock."""

from __future__ import annotations

import random
import socket
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from gpubill.agent import emit
from gpubill.agent.deliver import BACKOFF_MAX_MS, HttpSink, StoreSink, backoff_ms, deliver
from gpubill.agent.fake import FakeClock
from gpubill.agent.jobs import EXEC, Allocation
from gpubill.agent.run import Agent, Settings
from gpubill.agent.spool import DELIVERED, PENDING, REFUSED, Spool, SpoolBusy
from gpubill.service.events import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverkit import Server, make_key  # noqa: E402  (the server tests' real `gpubill serve` helper)

NOV_10 = 1_794_268_800_000
SUB = "sub_sunbeam_payg"


def alloc(job="j1") -> Allocation:
    return Allocation(EXEC, job, 0, SUB, NOV_10, gpu_type="H100-SXM", gpu_count=Decimal(2))


def events_of(job: str, n: int) -> list[tuple[str, int, dict]]:
    a = alloc(job)
    return [(emit.SEGMENT, k, emit.event("n1", a, emit.SEGMENT, k, emit.segment_window(k, 300_000),
                                        emit.unmeasured(), {})) for k in range(n)]


def test_the_outbox_is_keyed_by_transaction_id_and_survives_reopening(tmp_path):
    path = tmp_path / "spool.db"
    spool = Spool(path)
    assert spool.open_job(alloc(), {}) and not spool.open_job(alloc(), {})
    spool.emit("exec:j1:0", events_of("j1", 3), 3, 960_000, {})
    spool.emit("exec:j1:0", events_of("j1", 3), 3, 960_000, {})
    spool.close()
    again = Spool(path)
    assert [st for _, _, _, st, _ in again.outbox()] == [PENDING] * 3
    (job,) = again.jobs()
    assert job.emitted == 3 and job.elapsed_ms == 960_000 and job.allocation == alloc()
    assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()


def test_one_agent_process_holds_a_spool(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    with pytest.raises(SpoolBusy):
        Spool(tmp_path / "spool.db")
    reader = Spool(tmp_path / "spool.db", readonly=True)
    assert reader.counts() == {}
    reader.close()
    spool.close()


def test_backoff_doubles_to_five_minutes_with_jitter():
    rng = random.Random(1)
    waits = [backoff_ms(a, rng) for a in range(12)]
    assert all(500 * 2**a <= w <= 1000 * 2**a for a, w in enumerate(waits[:8]))
    assert all(BACKOFF_MAX_MS // 2 <= w <= BACKOFF_MAX_MS for w in waits[9:])


def test_a_duplicate_counts_as_delivered_and_a_refused_event_is_not_retried(tmp_path):
    store = str(tmp_path / "events.db")
    evs = events_of("j1", 3)
    bad = {**evs[2][2], "transaction_id": "gpb-bad", "properties": {"gpu_count": "-1"}}
    s = Store(store, create=True)
    s.ingest([evs[0][2]], source="test")
    s.close()
    spool = Spool(tmp_path / "spool.db")
    spool.open_job(alloc(), {})
    spool.emit("exec:j1:0", evs + [(emit.SEGMENT, 3, bad)], 4, 0, {})
    sink = StoreSink(store)
    assert deliver(spool, sink, 0, random.Random(0)) == 4
    sink.close()
    assert [st for *_, st, _ in spool.outbox()] == [DELIVERED] * 3 + [REFUSED]
    assert deliver(spool, StoreSink(store), 10**9, random.Random(0)) == 0
    spool.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_for_half_an_hour_then_everything_delivered_once_and_already_there_counts(tmp_path):
    store = str(tmp_path / "server.db")
    key = make_key(store, "agent", "writer")
    port = free_port()
    clock = FakeClock(wall_ms=NOV_10)
    spool = Spool(tmp_path / "spool.db")
    agent = Agent(spool, HttpSink(f"http://127.0.0.1:{port}", key, timeout_s=5), None,
                  Settings("n1", 60_000, 60_000), clock, random.Random(7))
    a = alloc()
    agent.start(a, origin_ms=clock.monotonic_ms())
    tries = []
    for _ in range(30 * 60):               # 30 minutes of 1 s ticks, the server away
        clock.advance(1000)
        before = spool.cursor("last_error")
        agent.tick()
        if spool.cursor("last_error") != before:
            tries.append(clock.wall_ms())
    agent.finish(a.key, 30 * 60_000, "completed")
    assert spool.counts() == {PENDING: 30} and spool.cursor("last_delivery") is None
    gaps = [b - a for a, b in zip(tries, tries[1:])]
    assert gaps[:3] == sorted(gaps[:3]) and max(gaps) <= BACKOFF_MAX_MS + 1000  # backing off, capped
    assert len(tries) < 30                  # not once a second
    first = spool.outbox()[0][4]            # already there with other content: Lago's 422 value_already_exist
    s = Store(store)
    s.ingest([{**first, "properties": {**first["properties"], "region": "elsewhere"}}], source="test")
    s.close()
    srv = Server(store).start(port)
    try:
        clock.advance(BACKOFF_MAX_MS)
        agent.tick()
        agent.tick()
        assert spool.counts() == {DELIVERED: 30}
        for t, *_ in spool.outbox():         # sent again (a replayed spool): nothing changes
            spool.settle([t], PENDING)
        agent.tick()
    finally:
        srv.stop()
        spool.close()
    s = Store(store, readonly=True)
    try:
        assert s.count_events(sub=SUB) == 30
    finally:
        s.close()
