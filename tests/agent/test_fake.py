"""Scenario timelines on the test double: what the accumulator reports matches the script exactly.

Each test scripts GPUs with FakeNvmlBackend, drives them with an injected FakeClock at the agent's
1 Hz, folds every sample into an Accumulator and checks the job's properties as exact Decimals.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from gpubill.agent.aggregate import Accumulator
from gpubill.agent.fake import DEFAULT_ENERGY_MJ, FakeClock, FakeGpu, FakeNvmlBackend, Reading, mig_device, whole_gpu

GB = 10**9


def run(backend: FakeNvmlBackend, clock: FakeClock, seconds: int, tick_ms: int = 1000,
        times: list[int] | None = None) -> dict[str, Accumulator]:
    """Sample every device from now, at tick_ms for `seconds` (or at the given offsets in ms)."""
    start = clock.monotonic_ms()
    uuids = [d.uuid for d in backend.devices()]
    accs = {u: Accumulator(u, start) for u in uuids}
    offsets = times if times is not None else range(0, seconds * 1000 + 1, tick_ms)
    for offset in offsets:
        clock.advance(start + offset - clock.monotonic_ms())
        for s in backend.sample(uuids, clock.monotonic_ms()):
            accs[s.uuid].add(s)
    return accs


def test_steady_80_and_20_percent_match_the_timeline_exactly():
    g0, g1 = whole_gpu(0), whole_gpu(1)
    backend = FakeNvmlBackend([
        FakeGpu(g0, [Reading(0, utilization=80, memory_used_bytes=40 * GB, power_mw=500_000)]),
        FakeGpu(g1, [Reading(0, utilization=20, memory_used_bytes=10 * GB + 500_000_000, power_mw=200_000)]),
    ])
    accs = run(backend, FakeClock(), 60)
    assert accs[g0.uuid].summary(60_000) == {
        "avg_utilization": Decimal("0.8"), "peak_vram_gb": Decimal("40"), "energy_j": Decimal("30000"),
        "energy_reset": False, "sample_coverage": Decimal("1"), "gaps": 0, "samples": 61}
    s1 = accs[g1.uuid].summary(60_000)
    assert (s1["avg_utilization"], s1["peak_vram_gb"], s1["energy_j"]) == (Decimal("0.2"), Decimal("10.5"),
                                                                         Decimal("12000"))


def test_a_change_of_load_is_time_weighted_and_the_peak_kept():
    g = whole_gpu(0)
    backend = FakeNvmlBackend([FakeGpu(g, [
        Reading(0, utilization=100, memory_used_bytes=70 * GB, power_mw=700_000),
        Reading(30_000, utilization=0, memory_used_bytes=1 * GB, power_mw=100_000),
    ])])
    s = run(backend, FakeClock(), 60)[g.uuid].summary(60_000)
    # 30 s at 700 W and 30 s at 100 W; 30 s at 100 % of 60 s.
    assert (s["avg_utilization"], s["peak_vram_gb"], s["energy_j"]) == (Decimal("0.5"), Decimal("70"), Decimal("24000"))


def test_sparse_samples_are_weighted_by_coverage_and_a_long_gap_is_counted_not_interpolated():
    g = whole_gpu(0)
    backend = FakeNvmlBackend([FakeGpu(g, [Reading(0, utilization=50, memory_used_bytes=GB),
                                           Reading(1000, utilization=90, memory_used_bytes=GB)])])
    # readings at 0, 1, 8 and 9 s: the 7 s interval counts for max_gap (5 s) only.
    s = run(backend, FakeClock(), 9, times=[0, 1000, 8000, 9000])[g.uuid].summary(9000)
    assert s["gaps"] == 1
    assert s["sample_coverage"] == Decimal("0.777778")          # (1 + 5 + 1) / 9, half-even at 6 places
    assert s["avg_utilization"] == Decimal("0.842857")          # (50*1 + 90*5 + 90*1) / 7 / 100


def test_time_after_the_last_sample_is_a_gap_when_longer_than_max_gap():
    g = whole_gpu(0)
    backend = FakeNvmlBackend([FakeGpu(g, [Reading(0, utilization=40)])])
    acc = run(backend, FakeClock(), 10)[g.uuid]
    assert acc.summary(15_000)["gaps"] == 0 and acc.summary(15_000)["sample_coverage"] == Decimal("0.666667")
    assert acc.summary(16_000)["gaps"] == 1 and acc.summary(16_000)["avg_utilization"] == Decimal("0.4")


def test_an_energy_counter_reset_starts_a_new_baseline():
    g = whole_gpu(0)
    backend = FakeNvmlBackend([FakeGpu(g, [
        Reading(0, utilization=10, power_mw=100_000),
        Reading(20_000, utilization=10, power_mw=100_000, energy_mj=5_000),   # the driver reloaded
    ])])
    s = run(backend, FakeClock(), 40)[g.uuid].summary(40_000)
    # 0..19 s and 20..40 s at 100 W: 1900 J + 2000 J; the second across the reset is not counted.
    assert (s["energy_j"], s["energy_reset"]) == (Decimal("3900"), True)


def test_unsupported_readings_are_none_never_zero_and_the_rest_is_measured():
    g = whole_gpu(0)
    backend = FakeNvmlBackend([FakeGpu(g, [Reading(0, utilization=70, memory_used_bytes=3 * GB, power_mw=300_000)],
                                       unsupported=frozenset({"utilization", "energy", "power"}))])
    s = run(backend, FakeClock(), 30)[g.uuid].summary(30_000)
    assert s["avg_utilization"] is None and s["energy_j"] is None
    assert s["peak_vram_gb"] == Decimal("3") and s["sample_coverage"] == Decimal("1")


def test_two_3g40gb_mig_slices_are_half_a_gpu_each_with_their_own_memory():
    parent = whole_gpu(0)
    a, b = mig_device(parent, 0, "3g.40gb"), mig_device(parent, 1, "3g.40gb")
    assert (a.fraction, b.fraction, a.mig_profile, a.parent_uuid) == (Fraction(1, 2), Fraction(1, 2), "3g.40gb",
                                                                      parent.uuid)
    no_util = frozenset({"utilization", "power", "energy"})   # NVML has none of these per MIG device
    backend = FakeNvmlBackend([   # the parent is not a device of its own in MIG mode
        FakeGpu(a, [Reading(0, memory_used_bytes=38 * GB)], no_util),
        FakeGpu(b, [Reading(0, memory_used_bytes=12_250_000_000)], no_util),
    ])
    accs = run(backend, FakeClock(), 60)
    sa, sb = accs[a.uuid].summary(60_000), accs[b.uuid].summary(60_000)
    assert (sa["peak_vram_gb"], sb["peak_vram_gb"]) == (Decimal("38"), Decimal("12.25"))
    assert sa["avg_utilization"] is None and sa["energy_j"] is None and sa["sample_coverage"] == Decimal("1")


def test_a_gpu_lost_mid_job_stops_sampling_is_named_lost_and_leaves_a_gap():
    g0, g1 = whole_gpu(0), whole_gpu(1)
    backend = FakeNvmlBackend([
        FakeGpu(g0, [Reading(0, utilization=90, power_mw=600_000), Reading(30_000, lost=True)]),
        FakeGpu(g1, [Reading(0, utilization=30)]),
    ])
    accs = run(backend, FakeClock(), 60)
    assert backend.lost() == {g0.uuid}
    assert [d.uuid for d in backend.devices()] == [g1.uuid]
    s = accs[g0.uuid].summary(60_000)
    # samples to 29 s: 29 s covered of 60, the rest one gap; what was measured stays exact.
    assert (s["sample_coverage"], s["gaps"], s["avg_utilization"], s["energy_j"]) == (
        Decimal("0.483333"), 1, Decimal("0.9"), Decimal("17400"))
    assert accs[g1.uuid].summary(60_000)["sample_coverage"] == Decimal("1")


def test_a_wall_clock_jump_changes_nothing_measured():
    """The wall clock is stepped back an hour mid-job; readings carry monotonic ms only."""
    g = whole_gpu(0)
    timeline = [Reading(0, utilization=80, memory_used_bytes=40 * GB, power_mw=500_000)]
    steady = run(FakeNvmlBackend([FakeGpu(g, timeline)]), FakeClock(), 60)[g.uuid].summary(60_000)

    clock = FakeClock()
    backend = FakeNvmlBackend([FakeGpu(g, timeline)])
    acc, wall_start = Accumulator(g.uuid, clock.monotonic_ms()), clock.wall_ms()
    for second in range(61):
        if second == 30:
            clock.jump_wall(-3_600_000)
        for s in backend.sample([g.uuid], clock.monotonic_ms()):
            acc.add(s)
        if second < 60:
            clock.advance(1000)
    assert clock.wall_ms() - wall_start == 60_000 - 3_600_000
    assert acc.summary(clock.monotonic_ms()) == steady


def test_segments_cut_on_the_grid_add_up_to_the_job():
    g = whole_gpu(0)
    backend = FakeNvmlBackend([FakeGpu(g, [
        Reading(0, utilization=100, memory_used_bytes=10 * GB, power_mw=300_000),
        Reading(20_000, utilization=50, memory_used_bytes=30 * GB, power_mw=300_000),
        Reading(40_000, utilization=0, memory_used_bytes=20 * GB, power_mw=300_000),
    ])])
    clock, acc, windows = FakeClock(), Accumulator(g.uuid, 0), []
    for second in range(61):
        clock.advance(second * 1000 - clock.monotonic_ms())
        for s in backend.sample([g.uuid], clock.monotonic_ms()):
            acc.add(s)
        if second in (20, 40, 60):
            windows.append(acc.cut(clock.monotonic_ms()))
    parts = [w.summary() for w in windows]
    assert [p["avg_utilization"] for p in parts] == [Decimal("1"), Decimal("0.5"), Decimal("0")]
    assert [p["peak_vram_gb"] for p in parts] == [Decimal("30"), Decimal("30"), Decimal("20")]
    assert [p["energy_j"] for p in parts] == [Decimal("6000")] * 3
    job = acc.summary(60_000)
    assert windows[0].merged(windows[1]).merged(windows[2]).summary() == job
    assert job["avg_utilization"] == Decimal("0.5") and job["energy_j"] == Decimal("18000")


def test_the_counter_starts_where_the_driver_left_it():
    g = whole_gpu(0)
    backend = FakeNvmlBackend([FakeGpu(g, [Reading(0, power_mw=1_500)])])
    assert backend.sample([g.uuid], 0)[0].energy_mj == DEFAULT_ENERGY_MJ
    assert backend.sample([g.uuid], 1999)[0].energy_mj == DEFAULT_ENERGY_MJ + 2998   # 1.5 W x 1.999 s, truncated


def test_the_agent_benchmark_runs_on_the_double():
    """bench/agent.py (ticks on this double, spool writes, delivery) runs in a few ticks."""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(root / "bench" / "agent.py"), "--ticks", "20", "--events", "20",
                          "--repeat", "1"], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "ms/tick" in out and "20 events: spool writes" in out
