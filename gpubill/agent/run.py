"""The agent's loop: jobs in, samples folded, segments emitted, the outbox delivered.

Receives a spool, a sink (``deliver``), an NVML backend or None (no GPU, no
driver: the job's duration is still exact, the NVML properties are null with
``sample_coverage`` 0) and a clock. Guarantees, at every tick: samples folded
into each job's ``Meter`` (an accumulator per device, its window cut at every
grid boundary and held until the segment is emitted), the segments that are due
(``emit.ready_segments``) written to the outbox with the job's segment count in
one transaction, a checkpoint every ``checkpoint_ms`` and on every job state
change, and the outbox delivered; NVML's devices listed again after a loss and
every ``INVENTORY_MS``. A job's time is read from its allocation's
clock: a monotonic origin for ``agent exec`` (kept in the spool with the boot
id, so a restarted agent carries on), the scheduler's instants for Slurm.

``run_exec`` meters one command as a job; ``Agent.recover`` picks up the jobs
a killed agent left open in the spool.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import attrs

from gpubill.agent import emit
from gpubill.agent.aggregate import Accumulator, Tally, combined
from gpubill.agent.attribution import ENV_EXEC_JOB, Attributor, alive, start_time
from gpubill.agent.deliver import deliver, retry_at_ms
from gpubill.agent.jobs import Allocation, JobSource
from gpubill.agent.nvml import Sample
from gpubill.agent.spool import OPEN, Spool

TICK_MS = 1_000
CHECKPOINT_MS = 10_000
KEEP_DELIVERED_MS = 7 * 86_400_000  # delivered events stay in the spool a week (to look at), then go
PRUNE_EVERY_MS = 3_600_000
INVENTORY_MS = 60_000  # NVML's devices are listed again this often (a MIG reconfiguration), and after a loss
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
RECOVERED = "recovered"  # end_reason_source: a killed agent's command ended, its exit status unknown


class Clock:
    """The node's clocks: wall time for event timestamps, monotonic time for durations."""

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


@attrs.frozen
class Settings:
    node: str
    segment_ms: int = emit.DEFAULT_SEGMENT_MS
    hold_ms: int = emit.DEFAULT_HOLD_MS
    checkpoint_ms: int = CHECKPOINT_MS


class Meter:
    """A job's measurements: one ``Accumulator`` per device, cut at each grid boundary; a closed
    window (a ``Tally``) is held until its segment is emitted, or merged into the final event."""

    def __init__(self, uuids: list[str], origin_ms: int, segment_ms: int, saved: dict | None = None):
        self.origin_ms, self.segment_ms = origin_ms, segment_ms
        saved = saved or {}
        self.cuts = saved.get("cuts", 0)
        self.accs = {u: Accumulator.from_json(saved["accs"][u]) if u in saved.get("accs", {})
                     else Accumulator(u, origin_ms) for u in uuids}
        self.held = {int(k): {u: Tally.from_json(t) for u, t in ts.items()} for k, ts in saved.get("held", {}).items()}
        self.lost: set[str] = set(saved.get("lost", ()))  # its devices NVML reported lost (kept: NVML forgets)

    def boundary(self, k: int) -> int:
        """The monotonic ms at which segment ``k`` ends."""
        return self.origin_ms + (k + 1) * self.segment_ms

    def add(self, s) -> None:
        """Fold a sample in; a reading after a boundary closes the window first (a reading at
        t covers the time before t, so the one at the boundary still belongs to it)."""
        while self.boundary(self.cuts) < s.t_ms:
            self.cut_until(self.cuts + 1)
        self.accs[s.uuid].add(s)

    def cut_until(self, n: int) -> None:
        while self.cuts < n:
            self.held[self.cuts] = {u: a.cut(self.boundary(self.cuts)) for u, a in self.accs.items()}
            self.cuts += 1

    def segment(self, k: int) -> dict:
        """Segment ``k``'s properties (its window is released)."""
        self.cut_until(k + 1)
        return combined(list(self.held.pop(k).values())) if self.accs else emit.unmeasured()

    def final(self, end_ms: int) -> dict:
        """The final window's properties, to ``end_ms`` on the job's clock: the held windows and
        the open one, merged per device."""
        merged = []
        for u, acc in self.accs.items():
            tallies = [self.held[k][u] for k in sorted(self.held)] + [acc.window]
            m = tallies[0]
            for t in tallies[1:]:
                m = m.merged(t)
            merged.append(m)
        return combined(merged, self.origin_ms + end_ms) if merged else emit.unmeasured()

    def to_json(self) -> dict:
        return {"cuts": self.cuts, "accs": {u: a.to_json() for u, a in self.accs.items()},
                "held": {str(k): {u: t.to_json() for u, t in ts.items()} for k, ts in self.held.items()},
                "lost": sorted(self.lost)}


@attrs.define
class _Live:
    """An open job in memory: where its clock starts and what it measured."""

    allocation: Allocation
    origin_ms: int                      # the agent's monotonic ms at the allocation's start
    uuids: list[str]
    hardware: dict
    emitted: int
    meter: Meter
    segment_ms: int                     # the job's grid, kept in the spool: a restarted agent keeps it
    hold_ms: int
    checkpoint_at: int = 0
    watch: "Watch | None" = None        # a command whose end this process watches (a killed agent's)


class Watch:
    """The end of a command that this process did not start (a killed agent's), timed by a
    thread blocked on its pidfd: the end is exact, not rounded to a tick. A command already
    gone when the watch begins ended at some unknown time while no agent ran: its end is taken
    as ``known_alive_ms`` (the last checkpoint), never later."""

    def __init__(self, pid: int, started: int | None, proc_root: str, clock, known_alive_ms: int):
        self.clock = clock
        self._ended: int | None = None
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            fd = None
        if fd is None or not alive(Path(proc_root), pid, started):
            self._ended = known_alive_ms
            if fd is not None:
                os.close(fd)
            return
        threading.Thread(target=self._wait, args=(fd,), daemon=True).start()

    def _wait(self, fd: int) -> None:
        select.select([fd], [], [])
        self._ended = self.clock.monotonic_ms()
        os.close(fd)

    def ended_ms(self) -> int | None:
        """When the command ended (monotonic ms); None while it runs."""
        return self._ended


class Agent:
    def __init__(self, spool: Spool, sink, backend, settings: Settings, clock: Clock | None = None,
                 rng: random.Random | None = None, proc_root: str = "/proc"):
        self.spool, self.sink, self.backend, self.settings = spool, sink, backend, settings
        self.clock = clock or Clock()
        self.rng = rng or random.Random()
        self.proc_root = proc_root
        self.devices = backend.devices() if backend is not None else []
        self.listed_at = self.clock.monotonic_ms()
        self.lost_seen: set[str] = set()   # devices whose loss was acted on (NVML forgets at its re-init)
        self.relist = False                # list the devices again at the next tick (after a loss)
        self.live: dict[str, _Live] = {}
        self.attributor = Attributor(proc_root)
        self.pruned_at = self.clock.monotonic_ms()
        self.unattributed: list[dict] = []

    # -- jobs -------------------------------------------------------------
    def start(self, alloc: Allocation, pid: int | None = None, origin_ms: int | None = None) -> None:
        """Meter ``alloc`` from now on (from ``origin_ms`` on the monotonic clock, when given:
        an exec job's start); a job the spool has already is left as it is (``recover`` resumes it)."""
        now = self.clock.monotonic_ms()
        origin = origin_ms if origin_ms is not None else now - (self.clock.wall_ms() - alloc.start_ms)
        clock = {"segment_ms": self.settings.segment_ms, "hold_ms": self.settings.hold_ms}
        if origin_ms is not None:
            clock |= {"mono_origin_ms": origin, "boot_id": boot_id()}
        if pid is not None:
            clock |= {"pid": pid, "pid_start": start_time(Path(self.proc_root), pid)}
        if self.spool.open_job(alloc, clock):
            self._load(alloc, origin, 0, {}, clock)

    def recover(self) -> list[str]:
        """Pick up the jobs a previous agent left open: resumed when their clock still runs
        (same boot), else ended at their last checkpoint as an infrastructure failure."""
        keys = []
        for row in self.spool.jobs(OPEN):
            if row.allocation.key in self.live:
                continue
            clock = row.clock
            if "mono_origin_ms" in clock and clock.get("boot_id") != boot_id():
                self._load(row.allocation, self.clock.monotonic_ms() - row.elapsed_ms, row.emitted, row.accumulators, clock)
                self.finish(row.allocation.key, row.elapsed_ms, "failed_infrastructure")
                continue
            origin = clock.get("mono_origin_ms",
                               self.clock.monotonic_ms() - (self.clock.wall_ms() - row.allocation.start_ms))
            self._load(row.allocation, origin, row.emitted, row.accumulators, clock, row.elapsed_ms)
            keys.append(row.allocation.key)
        return keys

    def _load(self, alloc: Allocation, origin: int, emitted: int, accs: dict, clock: dict,
              alive_at: int | None = None) -> None:
        """Hold an open job in memory; ``alive_at``: a killed agent's command, last seen running
        at that elapsed ms: its end is watched from here."""
        uuids = self._uuids(alloc)
        watch = None
        if "pid" in clock and alive_at is not None:
            watch = Watch(clock["pid"], clock.get("pid_start"), self.proc_root, self.clock, origin + alive_at)
        grid = (clock.get("segment_ms", self.settings.segment_ms), clock.get("hold_ms", self.settings.hold_ms))
        meter = Meter(uuids, origin, grid[0], accs)
        self.live[alloc.key] = _Live(alloc, origin, uuids, self._hardware(uuids), emitted, meter, *grid,
                                     self.clock.monotonic_ms(), watch)

    def _uuids(self, alloc: Allocation) -> list[str]:
        if not alloc.gpus:
            return [d.uuid for d in self.devices]
        wanted = set(alloc.gpus)
        return [d.uuid for d in self.devices if d.uuid in wanted or str(d.index) in wanted]

    def _hardware(self, uuids: list[str]) -> dict:
        devs = [d for d in self.devices if d.uuid in uuids]
        types = {d.gpu_type for d in devs}
        links = [d.interconnect for d in devs if d.interconnect]
        return {"gpu_type": types.pop() if len(types) == 1 else None,
                "gpu_count": sum((Decimal(d.fraction.numerator) / d.fraction.denominator for d in devs),
                                 Decimal(0)) if devs else None,
                "interconnect": "nvlink" if "nvlink" in links else (links[0] if links else None)}

    def finish(self, key: str, end_ms: int, end_reason: str, source: str | None = None) -> None:
        """End a job at ``end_ms`` on its clock: its final event (the windows not yet
        emitted, held ones included) goes to the outbox as the job is marked ended. A failure
        of a job one of whose GPUs was lost is an infrastructure failure, and so is an end of
        unknown cause (``source``: where the end reason came from, when not from the job's exit)."""
        job = self.live[key]
        self._note_lost()
        if job.meter.lost and (end_reason == "failed_user" or source == RECOVERED):
            end_reason = "failed_infrastructure"  # it ended on a GPU that was lost: not the user's doing
        self._emit_segments(key, job, end_ms)  # a job that ended while no agent ran: its segments first
        del self.live[key]
        window = emit.final_window(job.emitted, job.segment_ms, end_ms)
        ev = emit.event(self.settings.node, job.allocation, emit.FINAL, job.emitted, window,
                        job.meter.final(window[1]), job.hardware, end_reason, source)
        self.spool.emit(key, [(emit.FINAL, job.emitted, ev)], job.emitted, end_ms, {}, (end_ms, end_reason))

    # -- the tick ---------------------------------------------------------
    def tick(self) -> None:
        """One pass: sample, emit what is due, checkpoint, deliver; hourly, prune the spool."""
        self._sample()
        now = self.clock.monotonic_ms()
        for key, job in list(self.live.items()):
            ended = job.watch.ended_ms() if job.watch else None
            if ended is not None:  # its exit status is not ours to know: completed, and said so
                self.finish(key, ended - job.origin_ms, "completed", RECOVERED)
                continue
            if not self._emit_segments(key, job, now - job.origin_ms) and \
                    now - job.checkpoint_at >= self.settings.checkpoint_ms:
                self.spool.checkpoint(key, now - job.origin_ms, job.meter.to_json())
                job.checkpoint_at = now
        self.deliver()
        if now - self.pruned_at >= PRUNE_EVERY_MS:
            self.spool.prune(self.clock.wall_ms() - KEEP_DELIVERED_MS)
            self.pruned_at = now

    def deliver(self) -> int:
        return deliver(self.spool, self.sink, self.clock.wall_ms(), self.rng)

    def _sample(self) -> None:
        """Read every device once: a job's devices feed its meter (on a device two jobs share,
        with the job's own processes' memory); any device's processes are attributed
        (``unattributed``); a device NVML lost is dropped from the inventory and its jobs marked."""
        if self.backend is None:
            return
        self._inventory()
        if not self.devices:
            return
        samples = self.backend.sample([d.uuid for d in self.devices], self.clock.monotonic_ms())
        shared = self._shared()
        for s in samples:
            for job in self.live.values():
                if s.uuid in job.uuids:
                    job.meter.add(self._own(s, job) if s.uuid in shared else s)
        self._note_lost()
        self._attribute(samples)

    def _inventory(self) -> None:
        """List NVML's devices again on the tick after a loss, and every ``INVENTORY_MS`` (a MIG
        reconfiguration, a GPU back after a reset). An open job keeps the devices it started with."""
        now = self.clock.monotonic_ms()
        if self.relist or now - self.listed_at >= INVENTORY_MS:
            self.devices, self.listed_at, self.relist = self.backend.devices(), now, False

    def _note_lost(self) -> None:
        """Devices NVML reports lost: dropped from the inventory, marked on the jobs holding them
        (their failure is an infrastructure failure); a newly lost one has the devices listed again."""
        lost = self.backend.lost() if self.backend is not None else frozenset()
        if not lost:
            return
        self.devices = [d for d in self.devices if d.uuid not in lost]
        for job in self.live.values():
            job.meter.lost |= lost & set(job.uuids)
        self.relist = self.relist or bool(lost - self.lost_seen)
        self.lost_seen |= lost

    def _shared(self) -> set[str]:
        """The devices more than one open job holds."""
        held = Counter(u for job in self.live.values() for u in job.uuids)
        return {u for u, n in held.items() if n > 1}

    def _own(self, s: Sample, job: _Live) -> Sample:
        """``s`` as ``job`` used it: its processes only, memory their sum (None when NVML gave
        none of theirs a figure, 0 when it has none on the device)."""
        me = (job.allocation.scheduler, job.allocation.job_id)
        pids = tuple((pid, used) for pid, used in s.pids if self.attributor.job_of(pid) == me)
        figures = [used for _, used in pids if used is not None]
        memory = sum(figures) if figures or not pids else None
        return attrs.evolve(s, memory_used_bytes=memory, pids=pids)

    def _attribute(self, samples) -> None:
        """Processes on a GPU that no job holding it owns (no job at all, or another job's: a
        leak) are kept in the spool's ``unattributed`` cursor: reported, never billed."""
        holders: dict[str, set] = {}
        for job in self.live.values():
            for u in job.uuids:
                holders.setdefault(u, set()).add((job.allocation.scheduler, job.allocation.job_id))
        found = []
        for s in samples:
            for pid, _ in s.pids:
                owner = self.attributor.job_of(pid)
                if owner not in holders.get(s.uuid, ()):
                    found.append({"uuid": s.uuid, "pid": pid, "job": ":".join(owner) if owner else None})
        if found != self.unattributed:
            self.unattributed = found
            self.spool.set_cursor("unattributed", found)

    def _emit_segments(self, key: str, job: _Live, elapsed: int) -> bool:
        ready = emit.ready_segments(job.emitted, elapsed, job.segment_ms, job.hold_ms)
        if not ready:
            return False
        events = [(emit.SEGMENT, k, emit.event(self.settings.node, job.allocation, emit.SEGMENT, k,
                                               emit.segment_window(k, job.segment_ms),
                                               job.meter.segment(k), job.hardware)) for k in ready]
        job.emitted = ready.stop
        self.spool.emit(key, events, job.emitted, elapsed, job.meter.to_json())
        job.checkpoint_at = self.clock.monotonic_ms()
        return True

    # -- loops ------------------------------------------------------------
    def run(self, source: JobSource | None, *, until_idle: bool = False, stop: threading.Event | None = None) -> None:
        """Tick every second: new allocations from ``source`` started, ended ones finished.
        ``until_idle``: return once no job is open and the outbox is empty."""
        stop = stop or threading.Event()
        self.recover()
        while not stop.is_set():
            if source is not None:
                self.poll(source)
            self.tick()
            if until_idle and not self.live and not self.spool.counts().get("pending"):
                return
            stop.wait(TICK_MS / 1000)

    def poll(self, source: JobSource) -> None:
        """Start the source's new allocations, finish its ended ones (a job the spool has ended
        is left alone: one indexed look-up per allocation, however long the spool's history)."""
        for st in source.poll():
            key = st.allocation.key
            if key not in self.live and not self.spool.has_job(key):
                self.start(st.allocation)
            if st.end_ms is not None and key in self.live:
                self.finish(key, st.end_ms - st.allocation.start_ms, st.end_reason or "completed")


class JobExists(Exception):
    """``agent exec`` of a job attempt the spool has already."""


@attrs.define
class ExecResult:
    returncode: int        # the command's exit status (128 + signal when a signal ended it)
    end_reason: str
    undelivered: int       # events left in the spool (a later `gpubill agent run` delivers them)


def run_exec(agent: Agent, alloc_of, argv: list[str], flush_ms: int) -> ExecResult:
    """Run ``argv`` as one job: ``alloc_of(start_wall_ms)`` is its allocation. SIGTERM and
    SIGINT are passed to the command (SIGTERM: the job is preempted); its exit is timed by a
    thread of its own, so a slow delivery never lengthens the job."""
    origin, wall = agent.clock.monotonic_ms(), agent.clock.wall_ms()
    alloc = alloc_of(wall)
    if agent.spool.has_job(alloc.key):
        raise JobExists(f"job {alloc.job_id} attempt {alloc.attempt} is in the spool already: "
                        "a new run of it needs a new --attempt (or its events would count as duplicates)")
    forward = _Forward()
    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}  # before the command starts
    try:
        child = subprocess.Popen(argv, env={**os.environ, ENV_EXEC_JOB: alloc.job_id})  # its processes: attributed
        agent.start(alloc, pid=child.pid, origin_ms=origin)
        ended_at: list[int] = []
        done = threading.Event()

        def waiter():
            child.wait()
            ended_at.append(agent.clock.monotonic_ms())
            done.set()

        threading.Thread(target=waiter, daemon=True).start()
        forward.started(child)
        while not done.wait(TICK_MS / 1000):
            agent.tick()
        reason = _end_reason(child.returncode, forward.signals)
        agent.finish(alloc.key, ended_at[0] - origin, reason)
        pending = _flush(agent, flush_ms)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    code = child.returncode if child.returncode >= 0 else 128 - child.returncode
    return ExecResult(code, reason, pending)


class _Forward:
    """SIGTERM and SIGINT: recorded (SIGTERM: the job is preempted) and passed on to the command,
    but for a Ctrl-C at a terminal whose foreground process group holds the command: the terminal
    sent it the SIGINT itself, and a second one would interrupt its own handler. A signal that
    comes before the command has started is passed on once it has."""

    def __init__(self) -> None:
        self.signals: list[int] = []
        self.child: subprocess.Popen | None = None

    def __call__(self, signum: int, _frame) -> None:
        self.signals.append(signum)
        if self.child is not None:
            self._send(signum)

    def started(self, child: subprocess.Popen) -> None:
        self.child = child
        for signum in self.signals:
            self._send(signum)

    def _send(self, signum: int) -> None:
        if self.child.poll() is None and not (signum == signal.SIGINT and in_foreground(self.child.pid)):
            self.child.send_signal(signum)


def in_foreground(pid: int) -> bool:
    """Whether ``pid`` is in the foreground process group of this process's controlling terminal
    (the group a Ctrl-C there signals); False without a terminal."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgid(pid)
    except OSError:
        return False
    finally:
        os.close(fd)


def _end_reason(returncode: int, signals: list[int]) -> str:
    if signal.SIGTERM in signals:
        return "preempted"
    return "completed" if returncode == 0 else "failed_user"


def _flush(agent: Agent, flush_ms: int) -> int:
    """Deliver until the outbox is empty or ``flush_ms`` has passed; what is left pending."""
    deadline = agent.clock.monotonic_ms() + flush_ms
    while True:
        agent.deliver()
        pending = agent.spool.counts().get("pending", 0)
        wait = retry_at_ms(agent.spool) - agent.clock.wall_ms()
        if not pending or agent.clock.monotonic_ms() + max(wait, 0) > deadline:
            return pending
        agent.clock.sleep(max(wait, 0) / 1000)
