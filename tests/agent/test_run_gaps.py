"""The loop's gaps (issue 11): a lost GPU and NVML re-inventoried, per-job memory on a shared GPU,
a terminal's Ctrl-C reaching `agent exec`'s command once, a recovered command's end reason."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

from gpubill.agent.deliver import StoreSink
from gpubill.agent.fake import FakeClock, FakeGpu, FakeNvmlBackend, Reading, mig_device, whole_gpu
from gpubill.agent.jobs import EXEC, Allocation
from gpubill.agent.run import INVENTORY_MS, Agent, Settings
from gpubill.agent.spool import Spool
from agent.test_exec import AGENT, fake_proc, wait_for_job

GB = 10**9


class ReinitNvml(FakeNvmlBackend):
    """The double as NVML behaves: listing the devices re-initialises it, which forgets the lost."""

    listings = 0

    def devices(self):
        self.listings += 1
        self._lost.clear()
        return super().devices()


def agent_on(tmp: Path, backend, clock: FakeClock, proc: Path | None = None) -> Agent:
    return Agent(Spool(tmp / "spool.db"), StoreSink(str(tmp / "events.db")), backend, Settings("n1"), clock,
                 proc_root=str(proc or tmp / "proc"))


def finals(agent: Agent) -> dict[str, dict]:
    return {p["properties"]["job_id"]: p["properties"] for *_, p in agent.spool.outbox()
            if "end_reason" in p["properties"]}


def close(agent: Agent) -> None:
    agent.sink.close()
    agent.spool.close()


def test_a_lost_gpu_is_dropped_nvml_listed_again_and_its_job_fails_on_infrastructure(tmp_path):
    g0, g1 = whole_gpu(0), whole_gpu(1)
    steady = Reading(0, utilization=50, memory_used_bytes=GB, power_mw=100_000)
    backend = ReinitNvml([FakeGpu(g0, [steady]), FakeGpu(g1, [steady, Reading(30_000, lost=True)])])
    clock = FakeClock()
    agent = agent_on(tmp_path, backend, clock)
    a = Allocation(EXEC, "on-lost", 0, "sub_x", clock.wall_ms())
    agent.start(a, origin_ms=0)
    for _ in range(30):                       # the loss is read at 30 s ...
        clock.advance(1000)
        agent.tick()
    assert [d.uuid for d in agent.devices] == [g0.uuid] and backend.listings == 1  # ... its device dropped
    clock.advance(1000)
    agent.tick()                              # the next tick lists NVML's devices again
    assert backend.listings == 2
    for _ in range(9):                        # the same GPU faulting again is dropped, not listed every tick
        clock.advance(1000)
        agent.tick()
    assert backend.listings == 2 and [d.uuid for d in agent.devices] == [g0.uuid]
    agent.finish(a.key, 40_000, "failed_user")  # NVML has forgotten the loss since: the job has not
    assert finals(agent)["on-lost"]["end_reason"] == "failed_infrastructure"
    close(agent)


def test_a_mig_reconfiguration_is_picked_up_by_the_periodic_inventory(tmp_path):
    g0 = whole_gpu(0)
    backend = FakeNvmlBackend([FakeGpu(g0, [Reading(0, utilization=10)])])
    clock = FakeClock()
    agent = agent_on(tmp_path, backend, clock)
    migs = [mig_device(g0, 0), mig_device(g0, 1)]
    backend.replace([FakeGpu(m, [Reading(0, memory_used_bytes=GB)]) for m in migs])
    clock.advance(INVENTORY_MS - 1000)
    agent.tick()
    assert [d.uuid for d in agent.devices] == [g0.uuid]
    clock.advance(1000)
    agent.tick()
    assert [d.uuid for d in agent.devices] == [m.uuid for m in migs]
    close(agent)


def test_peak_vram_on_a_gpu_two_jobs_share_is_each_jobs_own_processes(tmp_path):
    proc = tmp_path / "proc"
    fake_proc(proc, 10, 1, 100, environ="BILLING_JOB_ID=a\n")
    fake_proc(proc, 11, 1, 101, environ="BILLING_JOB_ID=b\n")
    gpu = FakeGpu(whole_gpu(0), [Reading(0, utilization=90, memory_used_bytes=31 * GB,
                                         pids=((10, 10 * GB), (11, 20 * GB))),
                                 Reading(5000, utilization=90, memory_used_bytes=26 * GB,
                                         pids=((10, 25 * GB), (11, None)))])
    clock = FakeClock()
    agent = agent_on(tmp_path, FakeNvmlBackend([gpu]), clock, proc)
    jobs = [Allocation(EXEC, j, 0, "sub_x", clock.wall_ms(), ("0",)) for j in ("a", "b")]
    for a in jobs:
        agent.start(a, origin_ms=0)
    for _ in range(10):
        clock.advance(1000)
        agent.tick()
    for a in jobs:
        agent.finish(a.key, 10_000, "completed")
    got = finals(agent)
    close(agent)
    assert got["a"]["peak_vram_gb"] == "25"      # its own process, not the device's 31 GB
    assert got["b"]["peak_vram_gb"] == "20"      # a reading NVML could not give counts for nothing


def test_a_recovered_command_whose_exit_status_is_unknown_says_so(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()                               # ended (and reaped) while no agent ran
    clock = FakeClock()
    first = agent_on(tmp_path, None, clock)
    a = Allocation(EXEC, "cmd", 0, "sub_x", clock.wall_ms())
    first.start(a, pid=gone.pid, origin_ms=0)
    close(first)
    clock.advance(5000)
    again = agent_on(tmp_path, None, clock, Path("/proc"))
    assert again.recover() == [a.key]
    again.tick()
    props = finals(again)["cmd"]
    close(again)
    assert props["end_reason"] == "completed" and props["end_reason_source"] == "recovered"


def counting_child(ready: Path, count: Path) -> str:
    """A command that counts the SIGINTs it receives over 2.5 s from its start (exec handles a
    signal at its next tick, 1 s, at the latest)."""
    return ("import os, select, signal, time\n"
            "r, w = os.pipe()\n"
            "os.set_blocking(w, False)\n"
            "signal.signal(signal.SIGINT, lambda *_: None)\n"
            "signal.set_wakeup_fd(w)\n"  # a byte per signal received
            f"open({str(ready)!r}, 'w').close()\n"
            "end, got = time.monotonic() + 2.5, b''\n"
            "while (left := end - time.monotonic()) > 0:\n"
            "    if select.select([r], [], [], left)[0]:\n"
            "        got += os.read(r, 16)\n"
            f"open({str(count)!r}, 'w').write(str(len(got)))\n")


def exec_on_a_terminal(tmp: Path, send) -> str:
    """`agent exec` of the counting command as a terminal's foreground job; ``send(master, agent)``
    once the command runs; what the command counted."""
    count, ready = tmp / "count", tmp / "ready"
    master, slave = pty.openpty()

    def controlling_tty():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    args = [*AGENT, "exec", "--job", "tty", "--subscription", "sub_x", "--store", str(tmp / "events.db"),
            "--spool", str(tmp / "spool.db"), "--", sys.executable, "-c", counting_child(ready, count)]
    p = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                         preexec_fn=controlling_tty)
    os.close(slave)
    try:
        wait_for_job(tmp)
        for _ in range(400):
            if ready.exists():
                break
            time.sleep(0.05)
        send(master, p)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    return count.read_text()


def test_a_terminal_ctrl_c_reaches_the_command_once(tmp_path):
    """The terminal sends SIGINT to its whole foreground process group, the command included."""
    assert exec_on_a_terminal(tmp_path, lambda master, _: os.write(master, b"\x03")) == "1"


def test_exec_on_a_terminal_does_not_send_its_command_a_second_sigint(tmp_path):
    """The choice: a SIGINT reaching exec while its command is in the terminal's foreground group
    is taken for the terminal's, which the command has had. (So `kill -INT` of exec alone, there,
    reaches only exec: stop a job with SIGTERM.)"""
    assert exec_on_a_terminal(tmp_path, lambda _, agent: agent.send_signal(signal.SIGINT)) == "0"


def test_sigint_sent_to_exec_alone_is_passed_on(tmp_path):
    ready = tmp_path / "ready"
    child = (f"import signal, sys, time\nsignal.signal(signal.SIGINT, lambda *_: sys.exit(7))\n"
             f"open({str(ready)!r}, 'w').close()\ntime.sleep(30)\n")
    args = [*AGENT, "exec", "--job", "kill", "--subscription", "sub_x", "--store", str(tmp_path / "events.db"),
            "--spool", str(tmp_path / "spool.db"), "--", sys.executable, "-c", child]
    p = subprocess.Popen(args, stderr=subprocess.PIPE, start_new_session=True)  # no terminal at all
    try:
        wait_for_job(tmp_path)
        for _ in range(400):
            if ready.exists():
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        assert p.wait(30) == 7
    finally:
        if p.poll() is None:
            p.kill()


def test_a_signal_before_the_command_started_is_passed_on_once_it_has():
    from gpubill.agent.run import _Forward

    forward = _Forward()
    forward(signal.SIGTERM, None)            # exec's handler, called before the command exists
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    forward.started(child)
    assert child.wait(20) == -signal.SIGTERM and forward.signals == [signal.SIGTERM]
