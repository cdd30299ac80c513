"""Done means (issue 11): kill -9 of the agent mid-job, and of the server meanwhile; a restarted
`gpubill agent run` finishes the job from the spool: exactly one final event, stable
transaction ids, the billed duration equal to the allocation, everything delivered once."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from gpubill.agent.spool import Spool
from gpubill.service.events import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverkit import Server, make_key  # noqa: E402  (the server tests' real `gpubill serve` helper)

AGENT = [sys.executable, "-m", "gpubill", "agent"]
SUB = "sub_crash"
GRID = ["--segment", "1", "--job-minimum", "1"]  # one-second segments: several before the kill


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outbox(spool_path: Path) -> list[tuple]:
    spool = Spool(spool_path, readonly=True)
    try:
        return spool.outbox()
    finally:
        spool.close()


def wait_until(pred, what: str, deadline_s: float = 30) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if pred():
                return
        except Exception:  # the spool is being created by the agent
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stored_events(store: str) -> list:
    s = Store(store, readonly=True)
    try:
        return s.list_events(sub=SUB, limit=1000)
    finally:
        s.close()


def test_kill_9_of_agent_and_server_mid_job_then_restart_bills_the_job_once(tmp_path):
    store, spool = str(tmp_path / "server.db"), tmp_path / "spool.db"
    key = make_key(store, "agent", "writer")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    to = ["--endpoint", url, "--api-key", key, "--spool", str(spool), *GRID]
    srv = Server(store).start(port)
    agent = subprocess.Popen([*AGENT, "exec", "--job", "train-7", "--subscription", SUB, "--gpu-type", "H100-SXM",
                              "--gpu-count", "4", *to, "--", "sleep", "5"], stderr=subprocess.PIPE)
    try:
        wait_until(lambda: sum(st == "delivered" for *_, st, _ in outbox(spool)) >= 1, "a delivered segment")
        srv.kill()                                    # the billing host dies ...
        wait_until(lambda: sum(st == "pending" for *_, st, _ in outbox(spool)) >= 1, "a segment spooled, unsent")
        agent.kill()                                  # ... and then the agent, mid-job
        agent.wait()
        before = {t for t, *_ in outbox(spool)}
        srv = Server(store).start(port)
        r = subprocess.run([*AGENT, "run", "--until-idle", *to], capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        rows = outbox(spool)
        assert all(st == "delivered" for *_, st, _ in rows)
        again = subprocess.run([*AGENT, "run", "--until-idle", *to], capture_output=True, timeout=60)
        assert again.returncode == 0, again.stderr
    finally:
        srv.stop()
        if agent.poll() is None:
            agent.kill()
    events = stored_events(store)
    spooled = {t: p for t, _, _, _, p in rows}
    assert sorted(e.transaction_id for e in events) == sorted(spooled)     # everything, once
    assert before <= set(spooled)                                          # ids stable across the kill
    props = [spooled[t]["properties"] for t in spooled]
    finals = [p for p in props if p.get("end_reason")]
    assert len(finals) == 1 and finals[0]["end_reason"] == "completed"
    assert sorted(p["segment"] for p in props) == list(range(len(props)))
    reader = Spool(spool, readonly=True)
    (job,) = reader.jobs()
    reader.close()
    billed = sum(Decimal(p["duration_seconds"]) for p in props)
    assert job.state == "ended" and billed == Decimal(job.end_ms) / 1000 and billed >= 5
