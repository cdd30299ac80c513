"""A scripted NvmlBackend and an injected clock: the agent's tests and benchmarks run on these.

A fake GPU is a ``Device`` and a timeline of ``Reading`` steps: from a step's ``t_ms`` on (until the
next step) the device is in that step's state. A reading at t reports the memory, power and
processes of t, and, as NVML does, the utilization of the period just before t (the step in force
before t): 1 Hz readings of a step at 100 % from 0 to 30 s and 0 % after average exactly 0.5
over 60 s. The energy counter is what a real one is: mJ, cumulative, advanced by the step's
power (mW x ms, kept exact in µJ and truncated to mJ when read); a step that sets ``energy_mj``
sets the counter (a lower value is a driver reload: a reset). A ``lost`` step makes the device fault from then on (as GpuIsLost would): it gives no samples and
``lost()`` names it once a sample has been asked for at or after that time. ``unsupported`` names
the readings the device never has ("utilization", "memory", "power", "energy", "processes"), which
read None, as PynvmlBackend's do.

    clock = FakeClock()
    gpu0 = FakeGpu(whole_gpu(0), [Reading(0, utilization=80, memory_used_bytes=40 * 10**9, power_mw=500_000)])
    backend = FakeNvmlBackend([gpu0])
    clock.advance(1000); backend.sample([gpu0.device.uuid], clock.monotonic_ms())
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from fractions import Fraction

import attrs

from gpubill.agent.nvml import NVLINK, Device, Sample, mig_fraction

H100_NAME = "NVIDIA H100 80GB HBM3"
H100_MEMORY = 81559 * 2**20            # what NVML reports for an H100 SXM 80 GB (81559 MiB)
DEFAULT_ENERGY_MJ = 1_000_000_000      # the counter's value at the first step: the driver loaded a while ago


@attrs.frozen
class Reading:
    """From t_ms on, the device reads these values (None: the value is unavailable then)."""

    t_ms: int
    utilization: int | None = None
    memory_used_bytes: int | None = None
    power_mw: int | None = None
    energy_mj: int | None = None       # set the counter to this at t_ms (None: it keeps counting)
    pids: tuple[tuple[int, int | None], ...] = ()
    lost: bool = False


@attrs.frozen
class FakeGpu:
    device: Device
    timeline: Sequence[Reading]
    unsupported: frozenset[str] = frozenset()


def whole_gpu(index: int, gpu_type: str = "H100-SXM", name: str = H100_NAME, memory: int = H100_MEMORY,
              interconnect: str | None = NVLINK) -> Device:
    return Device(index=index, uuid=f"GPU-fake-{index:04d}", name=name, gpu_type=gpu_type,
                  memory_total_bytes=memory, mig=False, parent_uuid=None, fraction=Fraction(1),
                  interconnect=interconnect)


def mig_device(parent: Device, slot: int, profile: str = "3g.40gb", memory: int | None = None) -> Device:
    """A MIG device on ``parent`` (its fraction from the profile, as PynvmlBackend derives it)."""
    return Device(index=parent.index, uuid=f"MIG-fake-{parent.index:04d}-{slot}", name=f"{parent.name} MIG {profile}",
                  gpu_type=parent.gpu_type, memory_total_bytes=memory, mig=True, parent_uuid=parent.uuid,
                  fraction=mig_fraction(memory, parent.memory_total_bytes, profile, parent.name, None),
                  interconnect=parent.interconnect, mig_profile=profile)


class _Timeline:
    """One GPU's steps, with the energy counter (µJ) precomputed at each step."""

    def __init__(self, gpu: FakeGpu) -> None:
        self.gpu = gpu
        self.steps = sorted(gpu.timeline, key=lambda r: r.t_ms)
        self.times = [r.t_ms for r in self.steps]
        self.counter_uj: list[int] = []
        for i, step in enumerate(self.steps):
            if step.energy_mj is not None:
                self.counter_uj.append(step.energy_mj * 1000)
            elif i == 0:
                self.counter_uj.append(DEFAULT_ENERGY_MJ * 1000)
            else:
                self.counter_uj.append(self._advanced(i - 1, step.t_ms))
        self.lost_at = next((r.t_ms for r in self.steps if r.lost), None)

    def _advanced(self, i: int, t_ms: int) -> int:
        return self.counter_uj[i] + (self.steps[i].power_mw or 0) * (t_ms - self.times[i])

    def read(self, t_ms: int) -> Sample | None:
        i = bisect.bisect_right(self.times, t_ms) - 1
        if i < 0:
            return None
        step, missing = self.steps[i], self.gpu.unsupported
        before = self.steps[max(bisect.bisect_left(self.times, t_ms) - 1, 0)]
        return Sample(
            t_ms=t_ms, uuid=self.gpu.device.uuid,
            utilization=None if "utilization" in missing else before.utilization,
            memory_used_bytes=None if "memory" in missing else step.memory_used_bytes,
            power_mw=None if "power" in missing else step.power_mw,
            energy_mj=None if "energy" in missing else self._advanced(i, t_ms) // 1000,
            pids=() if "processes" in missing else step.pids,
        )


class FakeNvmlBackend:
    """NvmlBackend on scripted timelines (no NVML, no clock of its own: t_ms is the caller's)."""

    def __init__(self, gpus: Sequence[FakeGpu]) -> None:
        self._lost: set[str] = set()
        self.calls = 0                              # sample() calls, for the benchmarks
        self.replace(gpus)

    def replace(self, gpus: Sequence[FakeGpu]) -> None:
        """A new inventory (a MIG reconfiguration, a GPU swapped): what devices() lists from now on."""
        self._timelines = {g.device.uuid: _Timeline(g) for g in gpus}

    def devices(self) -> list[Device]:
        return [t.gpu.device for uuid, t in self._timelines.items() if uuid not in self._lost]

    def sample(self, uuids: Sequence[str], t_ms: int) -> list[Sample]:
        self.calls += 1
        out = []
        for uuid in uuids:
            timeline = self._timelines.get(uuid)
            if timeline is None or uuid in self._lost:
                continue
            if timeline.lost_at is not None and t_ms >= timeline.lost_at:
                self._lost.add(uuid)
                continue
            reading = timeline.read(t_ms)
            if reading is not None:
                out.append(reading)
        return out

    def lost(self) -> frozenset[str]:
        return frozenset(self._lost)

    def close(self) -> None:
        pass


class FakeClock:
    """An injected clock: a monotonic one and a wall one, in integer ms, moved only by the test.

    ``monotonic()``/``time()``/``sleep()`` have the time module's shape (seconds) for code that
    takes a clock object; ``jump_wall`` moves the wall clock alone (NTP stepping it, an operator
    setting it) while the monotonic clock goes on."""

    def __init__(self, monotonic_ms: int = 0, wall_ms: int = 1_793_000_000_000) -> None:
        self._mono = monotonic_ms
        self._wall = wall_ms

    def monotonic_ms(self) -> int:
        return self._mono

    def wall_ms(self) -> int:
        return self._wall

    def monotonic(self) -> float:
        return self._mono / 1000

    def time(self) -> float:
        return self._wall / 1000

    def advance(self, ms: int) -> None:
        self._mono += ms
        self._wall += ms

    def sleep(self, seconds: float) -> None:
        self.advance(round(seconds * 1000))

    def jump_wall(self, ms: int) -> None:
        self._wall += ms
