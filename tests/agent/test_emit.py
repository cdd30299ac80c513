"""Events from a job's timeline: the segment grid, the job minimum's hold, transaction ids, and
the invoice a segmented job gets through the real `gpubill invoice` on the examples."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from gpubill.agent import emit
from gpubill.agent.deliver import StoreSink
from gpubill.agent.fake import FakeClock, FakeGpu, FakeNvmlBackend, Reading, whole_gpu
from gpubill.agent.jobs import EXEC, Allocation
from gpubill.agent.run import Agent, Settings
from gpubill.agent.spool import Spool

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOV_10 = 1_794_268_800_000  # 2026-11-10T00:00:00Z
SUB = "sub_sunbeam_payg"    # examples/contracts/sunbeam_robotics.bill: on_demand, gpu_hours per started minute
HOUR_MS = 3_600_000
GB = 10**9


def alloc(job="j1", attempt=0, **kw) -> Allocation:
    return Allocation(EXEC, job, attempt, SUB, NOV_10, gpu_type="H100-SXM", gpu_count=Decimal(8), **kw)


def test_transaction_id_is_a_function_of_node_job_attempt_segment_and_kind():
    a = alloc()
    assert emit.transaction_id("n1", a, 3, emit.SEGMENT) == emit.transaction_id("n1", alloc(), 3, emit.SEGMENT)
    others = {emit.transaction_id("n2", a, 3, emit.SEGMENT), emit.transaction_id("n1", alloc(attempt=1), 3, "segment"),
              emit.transaction_id("n1", a, 4, emit.SEGMENT), emit.transaction_id("n1", a, 3, emit.FINAL),
              emit.transaction_id("n1", alloc(job="j2"), 3, emit.SEGMENT)}
    assert len(others) == 5 and emit.transaction_id("n1", a, 3, emit.SEGMENT) not in others


def test_a_segment_waits_the_job_minimum_past_its_end():
    assert emit.ready_segments(0, 359_999, 300_000, 60_000) == range(0, 0)
    assert emit.ready_segments(0, 360_000, 300_000, 60_000) == range(0, 1)
    assert emit.ready_segments(1, 960_000, 300_000, 60_000) == range(1, 3)
    assert emit.final_window(3, 300_000, 1_000_500) == (900_000, 1_000_500)


def test_seconds_are_exact():
    assert [str(emit.seconds(ms)) for ms in (300_000, 20_000, 1_504, 320_001)] == ["300", "20", "1.504", "320.001"]


class Run:
    """An agent on the test double with an injected clock, delivering into a real store file."""

    def __init__(self, tmp: Path, gpus=None, segment_s=300, hold_s=60):
        self.clock = FakeClock(wall_ms=NOV_10)
        self.store = str(tmp / "events.db")
        self.backend = FakeNvmlBackend(gpus or [])
        self.spool = Spool(tmp / "spool.db")
        self.agent = Agent(self.spool, StoreSink(self.store), self.backend,
                           Settings("node-1", segment_s * 1000, hold_s * 1000, checkpoint_ms=600_000), self.clock)

    def job(self, ms: int, step_ms: int = 5000, end_reason="completed", **kw) -> list[dict]:
        a = alloc(**kw)
        self.agent.start(a, origin_ms=self.clock.monotonic_ms())
        origin = self.clock.monotonic_ms()
        while self.clock.monotonic_ms() + step_ms < origin + ms:
            self.clock.advance(step_ms)
            self.agent.tick()
        self.clock.advance(origin + ms - self.clock.monotonic_ms())
        self.agent.tick()
        self.agent.finish(a.key, ms, end_reason)
        self.agent.deliver()
        return [p for _, _, _, _, p in self.spool.outbox() if p["properties"]["job_id"] == a.job_id]

    def close(self):
        self.agent.sink.close()
        self.spool.close()


@pytest.fixture
def run(tmp_path):
    r = Run(tmp_path)
    yield r
    r.close()


def durations(events) -> list[Decimal]:
    return [Decimal(e["properties"]["duration_seconds"]) for e in events]


def test_a_four_hour_job_is_whole_segments_and_a_final_event_of_at_least_the_minimum(run):
    events = run.job(4 * HOUR_MS)
    d = durations(events)
    assert sum(d) == 14_400
    assert d[:-1] == [300] * (len(d) - 1) and d[-1] >= 60
    assert [e["properties"]["segment"] for e in events] == list(range(len(events)))
    assert [e["properties"].get("end_reason") for e in events] == [None] * (len(d) - 1) + ["completed"]
    assert events[1]["timestamp"] == "2026-11-10T00:05:00.000Z"  # the grid, not the send time


def test_a_short_job_is_one_event_and_a_job_ending_within_the_hold_folds_its_last_segment(run):
    assert durations(run.job(20_000, job="short")) == [20]
    events = run.job(4 * HOUR_MS + 20_000, job="long")
    d = durations(events)
    assert sum(d) == Decimal("14420") and d[-1] == 320


def test_measured_properties_per_segment_match_the_scripted_timeline(tmp_path):
    gpu = FakeGpu(whole_gpu(0), [Reading(0, utilization=80, memory_used_bytes=40 * GB, power_mw=500_000),
                                 Reading(420_000, utilization=20, memory_used_bytes=60 * GB, power_mw=500_000)])
    r = Run(tmp_path, [gpu])
    try:
        events = r.job(600_000, step_ms=1000)
    finally:
        r.close()
    seg, final = (e["properties"] for e in events)
    assert seg["avg_utilization"] == "0.8" and seg["peak_vram_gb"] == "40" and seg["sample_coverage"] == "1"
    assert seg["energy_j"] == "149500"  # 500 W over 299 s of counter differences
    assert seg["interconnect"] == "nvlink" and final["end_reason"] == "completed"
    # 300..420 s at 80 %, 420..600 s at 20 % (a reading reports the period before it)
    assert final["avg_utilization"] == "0.44" and final["peak_vram_gb"] == "60"


def test_without_nvml_the_duration_is_exact_and_properties_unavailable(run):
    run.agent.backend = None
    (only,) = run.job(90_500)
    p = only["properties"]
    assert p["duration_seconds"] == "90.5" and p["sample_coverage"] == "0"
    assert p["avg_utilization"] is None and p["peak_vram_gb"] is None and p["energy_j"] is None


def invoice_total(store: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "gpubill", "invoice", "--store", store, "--contracts",
                          str(EXAMPLES), "--period", "2026-11", "--customer", SUB, "--format", "json"],
                         capture_output=True, check=True)
    doc = json.loads(out.stdout)
    (inv,) = doc["invoices"]
    return {k: inv[k] for k in ("total_amount_cents", "fees_amount_cents")}


def single_event_store(tmp: Path, seconds: int) -> str:
    store = str(tmp / "one.db")
    sink = StoreSink(store)
    sink.send([emit.event("node-1", alloc(), emit.FINAL, 0, (0, seconds * 1000), emit.unmeasured(),
                          {}, "completed")])
    sink.close()
    return store


@pytest.mark.parametrize("ms, as_one_s", [(4 * HOUR_MS, 14_400), (20_000, 60), (4 * HOUR_MS + 20_000, 14_420)])
def test_a_segmented_job_invoices_as_one_event_of_its_duration(tmp_path, ms, as_one_s):
    r = Run(tmp_path / "seg")
    try:
        r.job(ms, step_ms=60_000)
    finally:
        r.close()
    assert invoice_total(r.store) == invoice_total(single_event_store(tmp_path, as_one_s))


def test_a_wall_clock_jump_moves_neither_durations_nor_timestamps(run):
    a = alloc(job="jump")
    run.agent.start(a, origin_ms=run.clock.monotonic_ms())
    for i in range(900):
        run.clock.advance(1000)
        if i == 400:
            run.clock.jump_wall(-3_600_000)
        run.agent.tick()
    run.agent.finish(a.key, 900_000, "completed")
    events = [p for *_, p in run.spool.outbox()]
    assert durations(events) == [300, 300, 300]
    assert [e["timestamp"][11:19] for e in events] == ["00:00:00", "00:05:00", "00:10:00"]


def test_a_job_that_fails_after_losing_a_gpu_failed_on_infrastructure(tmp_path):
    steady = Reading(0, utilization=90, memory_used_bytes=GB, power_mw=300_000)
    gpus = [FakeGpu(whole_gpu(0), [steady]), FakeGpu(whole_gpu(1), [steady, Reading(30_000, lost=True)])]
    r = Run(tmp_path, gpus)
    try:
        (lost,) = r.job(60_000, step_ms=1000, end_reason="failed_user", job="lost")
        (fine,) = r.job(10_000, step_ms=1000, end_reason="failed_user", job="other", gpus=("0",))
    finally:
        r.close()
    assert lost["properties"]["end_reason"] == "failed_infrastructure"
    # GPU 1's last reading was at 29 s (lost at 30 s), GPU 0 read throughout: 89 of 120 device-seconds
    assert lost["properties"]["sample_coverage"] == "0.741667"
    assert fine["properties"]["end_reason"] == "failed_user"
