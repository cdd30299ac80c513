"""The spool (SQLite WAL: jobs, outbox, cursors) and delivery: to a real `gpubill serve` or a
real store file; the server down for half an hour on an injected clock."""

from __future__ import annotations

import json
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


# -- a restarted agent carries on from the spool (in process, injected clock) -------------------

def test_a_restarted_agent_resumes_the_job_from_its_checkpoint(tmp_path):
    from gpubill.agent.fake import FakeGpu, FakeNvmlBackend, Reading, whole_gpu

    clock = FakeClock(wall_ms=NOV_10)
    backend = FakeNvmlBackend([FakeGpu(whole_gpu(0), [Reading(0, utilization=50, memory_used_bytes=10**10,
                                                              power_mw=100_000)])])
    store = str(tmp_path / "events.db")

    def agent():
        return Agent(Spool(tmp_path / "spool.db"), StoreSink(store), backend, Settings("n1", 300_000, 60_000), clock)

    a, job = agent(), alloc()
    a.start(job, origin_ms=clock.monotonic_ms())
    for _ in range(425):                       # 425 s: segment 0 emitted, a checkpoint at 420 s
        clock.advance(1000)
        a.tick()
    a.spool.close()                            # killed: nothing more of it reaches the spool
    clock.advance(30_000)                      # down for 30 s
    b = agent()
    assert b.recover() == [job.key]
    for _ in range(445):                       # on to 900 s
        clock.advance(1000)
        b.tick()
    b.finish(job.key, 900_000, "completed")
    b.deliver()
    rows = b.spool.outbox()
    b.spool.close()
    props = [p["properties"] for *_, p in rows]
    assert [p["segment"] for p in props] == [0, 1, 2] and [p.get("end_reason") for p in props] == [None, None, "completed"]
    assert sum(Decimal(p["duration_seconds"]) for p in props) == 900
    # readings stopped at the checkpoint (420 s) and came back at 456 s: 36 s, of which max_gap (5 s) counts
    assert props[0]["sample_coverage"] == "1" and props[1]["sample_coverage"] == "0.896667"
    assert props[1]["avg_utilization"] == "0.5" and props[2]["sample_coverage"] == "1"
    s = Store(store, readonly=True)
    assert s.count_events(sub=SUB) == 3
    s.close()


def test_a_job_whose_node_rebooted_ends_at_its_checkpoint_as_infrastructure(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    spool.open_job(alloc(), {"mono_origin_ms": 0, "boot_id": "a boot before this one", "segment_ms": 300_000,
                             "hold_ms": 60_000})
    spool.checkpoint("exec:j1:0", 742_500, {})
    a = Agent(spool, StoreSink(str(tmp_path / "events.db")), None, Settings("n1"), FakeClock(wall_ms=NOV_10))
    assert a.recover() == []
    props = [p["properties"] for *_, p in spool.outbox()]
    spool.close()
    assert [(p["segment"], p["duration_seconds"], p.get("end_reason")) for p in props] == \
        [(0, "300", None), (1, "300", None), (2, "142.5", "failed_infrastructure")]


def test_a_command_that_ended_while_no_agent_ran_ends_at_the_last_checkpoint(tmp_path):
    import subprocess

    from gpubill.agent.attribution import start_time
    from gpubill.agent.run import boot_id

    gone = subprocess.Popen(["true"])
    started = start_time(Path("/proc"), gone.pid)
    gone.wait()
    clock = FakeClock(monotonic_ms=1_000_000, wall_ms=NOV_10)
    spool = Spool(tmp_path / "spool.db")
    spool.open_job(alloc(), {"mono_origin_ms": 0, "boot_id": boot_id(), "segment_ms": 300_000, "hold_ms": 60_000,
                             "pid": gone.pid, "pid_start": started})
    spool.checkpoint("exec:j1:0", 90_000, {})
    a = Agent(spool, StoreSink(str(tmp_path / "events.db")), None, Settings("n1"), clock)
    assert a.recover() == ["exec:j1:0"]
    a.tick()
    (only,) = [p["properties"] for *_, p in spool.outbox()]
    spool.close()
    assert only["duration_seconds"] == "90" and only["end_reason"] == "completed"


def test_a_wall_clock_stepped_back_does_not_stretch_the_backoff(tmp_path):
    store = str(tmp_path / "events.db")
    spool = Spool(tmp_path / "spool.db")
    spool.open_job(alloc(), {})
    spool.emit("exec:j1:0", events_of("j1", 2), 2, 0, {})
    rng = random.Random(3)
    assert deliver(spool, HttpSink(f"http://127.0.0.1:{free_port()}", "k", timeout_s=5), NOV_10, rng) == 0
    stepped_back = NOV_10 - 3_600_000           # NTP steps the clock back an hour
    assert deliver(spool, StoreSink(store), stepped_back, rng) == 2
    spool.close()


def test_delivered_events_leave_the_spool_after_a_week_and_their_job_is_not_metered_again(tmp_path):
    from gpubill.agent.jobs import DropDirSource

    jobs = tmp_path / "jobs"
    jobs.mkdir()
    clock = FakeClock(wall_ms=NOV_10 + 600_000)
    (jobs / "1.json").write_text(json.dumps({**alloc("1").to_json(), "end_ms": NOV_10 + 90_000}))
    spool = Spool(tmp_path / "spool.db")
    agent = Agent(spool, StoreSink(str(tmp_path / "events.db")), None, Settings("n1"), clock)
    agent.poll(DropDirSource(jobs))
    agent.tick()
    assert spool.counts() == {DELIVERED: 1}
    for _ in range(7 * 24 + 1):                # a week and an hour on, the drop file still there
        clock.advance(3_600_000)
        agent.poll(DropDirSource(jobs))
        agent.tick()
    assert spool.counts() == {} and [j.state for j in spool.jobs()] == ["ended"]
    spool.close()
