"""The metering agent's CPU cost per 1 Hz tick, on the test double; spool and delivery throughput.

    .venv/bin/python bench/agent.py                  # 8 GPUs, 3 600 ticks (an hour at 1 Hz), 20 000 events
    .venv/bin/python bench/agent.py --ticks 600 --events 2000    # a quicker run

The goal (issue 11): <= 1 % of a core at 1 Hz for 8 GPUs, i.e. <= 10 ms of CPU per tick.

Eight scripted H100s (FakeNvmlBackend: their load, memory and power change every 10 s) are read
once per tick with an injected clock, so nothing sleeps and the run measures CPU only
(time.process_time over all ticks, best of --repeat). In the same run:

1. baseline: the fake reads alone (what any agent pays to read 8 devices from Python);
2. tick: the reads, each sample folded into its (job, device) Accumulator, and a segment cut on
   the 5-minute grid;
3. tick + checkpoint: the same, with the accumulators serialised (to_json, orjson) every 10 s,
   the spool's checkpoint cadence;
4. the same tick on PynvmlBackend, its nvml* calls answered at once by stubs returning
   nvidia-ml-py's real structs: the adapter's own Python cost (wrapping, the sample cursor,
   reading the structs) without the driver's.

It prints ms per tick, the share of one core at 1 Hz, and each figure's ratio to the baseline.
NVML's own time on a real GPU is not in these figures (the double answers at once): that is
tools/gpu_check.py's to measure.

Then, for --events canonical gpu_job events (emit.event, one job's segments each):

5. spool writes: each event put in the outbox by Spool.emit in its own transaction (WAL,
   synchronous=FULL: what the agent does before anything is sent), events/s;
6. delivery: deliver() from that outbox into a fresh local store (StoreSink, batches of 100,
   each settled in the spool), events/s.

A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pynvml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpubill.agent import emit  # noqa: E402
from gpubill.agent.aggregate import Accumulator  # noqa: E402
from gpubill.agent.deliver import StoreSink, deliver  # noqa: E402
from gpubill.agent.jobs import Allocation  # noqa: E402
from gpubill.agent.fake import FakeClock, FakeGpu, FakeNvmlBackend, Reading, whole_gpu  # noqa: E402
from gpubill.agent.nvml import PynvmlBackend  # noqa: E402
from gpubill.agent.spool import Spool  # noqa: E402

TICK_MS = 1000
SEGMENT_TICKS = 300      # the 5-minute segment grid
CHECKPOINT_TICKS = 10    # accumulators checkpointed every 10 s


def backend(gpus: int, ticks: int) -> FakeNvmlBackend:
    """gpus H100s whose load, memory and power change every 10 s (a step per 10 ticks)."""
    return FakeNvmlBackend([
        FakeGpu(whole_gpu(i), [
            Reading(t, utilization=(t // 1000 + 13 * i) % 101, memory_used_bytes=(i + 1) * 10**9 + t * 1000,
                    power_mw=100_000 + 10 * t % 500_000, pids=((1000 + i, (i + 1) * 10**9),))
            for t in range(0, (ticks + 1) * TICK_MS, 10 * TICK_MS)])
        for i in range(gpus)])


def stubbed_nvml(gpus: int, ticks: int) -> PynvmlBackend:
    """PynvmlBackend over pynvml functions that answer at once with real structs (one new
    utilization sample per call, as the driver's buffer would hold at 1 Hz)."""
    stamp = iter(range(1, 10 * ticks * gpus + 10))
    memory = pynvml.c_nvmlMemory_v2_t(version=pynvml.nvmlMemory_v2, total=81559 * 2**20, reserved=0, free=0,
                                      used=40 * 10**9)
    answers = {
        "nvmlInit": lambda: None, "nvmlDeviceGetCount": lambda: gpus, "nvmlDeviceGetHandleByIndex": lambda i: i,
        "nvmlDeviceGetUUID": lambda h: f"GPU-bench-{h}", "nvmlDeviceGetName": lambda h: "NVIDIA H100 80GB HBM3",
        "nvmlDeviceGetMemoryInfo": lambda h, version=None: memory,
        "nvmlDeviceGetNvLinkState": lambda h, link: pynvml.NVML_NVLINK_STATE_ACTIVE,
        "nvmlDeviceGetMigMode": lambda h: [0, 0],
        "nvmlDeviceGetSamples": lambda h, kind, cursor: (pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, [
            pynvml.c_nvmlSample_t(timeStamp=next(stamp), sampleValue=pynvml.c_nvmlValue_t(uiVal=77))]),
        "nvmlDeviceGetPowerUsage": lambda h: 400_000, "nvmlDeviceGetTotalEnergyConsumption": lambda h: next(stamp),
        "nvmlDeviceGetComputeRunningProcesses": lambda h: [pynvml.c_nvmlProcessInfo_t(pid=1000 + h,
                                                                                      usedGpuMemory=39 * 10**9)],
    }
    for name, fn in answers.items():
        setattr(pynvml, name, fn)
    pynvml.nvmlInit()
    return PynvmlBackend()


def run(gpus: int, ticks: int, fold: bool, checkpoint: bool, real_adapter: bool = False) -> float:
    """CPU seconds for `ticks` ticks over `gpus` GPUs (the double, or PynvmlBackend on stubs)."""
    fake, clock = (stubbed_nvml if real_adapter else backend)(gpus, ticks), FakeClock()
    uuids = [d.uuid for d in fake.devices()]
    accs = {u: Accumulator(u, clock.monotonic_ms()) for u in uuids}
    start = time.process_time()
    for tick in range(1, ticks + 1):
        clock.advance(TICK_MS)
        now = clock.monotonic_ms()
        samples = fake.sample(uuids, now)
        if fold:
            for s in samples:
                accs[s.uuid].add(s)
            if tick % SEGMENT_TICKS == 0:
                for acc in accs.values():
                    acc.cut(now).summary()
        if checkpoint and tick % CHECKPOINT_TICKS == 0:
            orjson.dumps([acc.to_json() for acc in accs.values()])
    return time.process_time() - start


def spool_and_delivery(events: int, work: Path) -> tuple[float, float]:
    """Events/s written to the outbox one transaction each, and delivered from it into a local store."""
    alloc = Allocation(scheduler="exec", job_id="bench", attempt=0, subscription="sub_bench",
                       start_ms=1_793_000_000_000, gpu_type="H100-SXM", gpu_count=Decimal(8))
    measured = {"avg_utilization": Decimal("0.8"), "peak_vram_gb": Decimal("40"), "energy_j": Decimal("150000"),
                "energy_reset": False, "sample_coverage": Decimal("1")}
    segment_ms = SEGMENT_TICKS * TICK_MS
    payloads = [emit.event("node-1", alloc, "segment", k, (k * segment_ms, (k + 1) * segment_ms), measured,
                           {"interconnect": "nvlink"}) for k in range(events)]
    spool = Spool(work / "spool.db")
    spool.open_job(alloc, {})
    t = time.perf_counter()
    for k, p in enumerate(payloads):
        spool.emit(alloc.key, [("segment", k, p)], k + 1, (k + 1) * segment_ms, {})
    written = events / (time.perf_counter() - t)
    sink = StoreSink(str(work / "store.db"))
    t = time.perf_counter()
    delivered = deliver(spool, sink, 0, random.Random(0))
    rate = delivered / (time.perf_counter() - t)
    sink.close()
    spool.close()
    return written, rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--ticks", type=int, default=3600)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--events", type=int, default=20_000)
    args = ap.parse_args()
    print(f"{args.gpus} fake GPUs, {args.ticks:,} ticks at 1 Hz, best of {args.repeat}, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    cases = [("baseline: fake reads only", False, False, False), ("tick: reads + accumulators", True, False, False),
             ("tick + checkpoint every 10 s", True, True, False),
             ("the same on PynvmlBackend (stubs)", True, True, True)]
    baseline = None
    for label, fold, checkpoint, real_adapter in cases:
        best = min(run(args.gpus, args.ticks, fold, checkpoint, real_adapter) for _ in range(args.repeat))
        ms = best * 1000 / args.ticks
        baseline = baseline or ms
        print(f"{label:34} {ms:8.3f} ms/tick  {ms / TICK_MS * 100:6.3f} % of a core at 1 Hz  "
              f"x{ms / baseline:5.2f} the baseline")
    with tempfile.TemporaryDirectory(prefix="gpubill-agent-bench-") as work:
        written, delivered = spool_and_delivery(args.events, Path(work))
    print(f"{args.events:,} events: spool writes {written:,.0f} events/s (one transaction each, synchronous=FULL), "
          f"delivery into a local store {delivered:,.0f} events/s")


if __name__ == "__main__":
    main()
