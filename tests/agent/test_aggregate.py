"""The accumulator's rules, one at a time: figures, coverage, energy, checkpoints."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction

import pytest

from gpubill.agent.aggregate import Accumulator, Tally, combined, decimal_of
from gpubill.agent.nvml import Sample

U = "GPU-0"


def sample(t_ms: int, util: int | None = None, mem: int | None = None, energy: int | None = None) -> Sample:
    return Sample(t_ms=t_ms, uuid=U, utilization=util, memory_used_bytes=mem, power_mw=None, energy_mj=energy)


@pytest.mark.parametrize(("x", "places", "text"), [
    (Fraction(1, 2), 6, "0.5"), (Fraction(38), 9, "38"), (Fraction(2, 3), 6, "0.666667"),
    (Fraction(1, 8), 6, "0.125"), (Fraction(12_345_678_901, 10**9), 9, "12.345678901"),
    (Fraction(1, 2 * 10**6), 6, "0"),        # half-even at the 6th place: 0.0000005 -> 0.000000
    (Fraction(3, 2 * 10**6), 6, "0.000002"), (Fraction(0), 3, "0"), (Fraction(100), 6, "100"),
])
def test_decimal_of_is_exact_or_half_even_without_trailing_zeros(x, places, text):
    assert str(decimal_of(x, places)) == text


def test_no_samples_means_every_measured_property_unavailable():
    s = Accumulator(U, 1000).summary(61_000)
    assert s == {"avg_utilization": None, "peak_vram_gb": None, "energy_j": None, "energy_reset": False,
                 "sample_coverage": Decimal(0), "gaps": 1, "samples": 0}


def test_one_energy_reading_is_no_energy_and_a_flat_counter_is_zero():
    acc = Accumulator(U, 0)
    acc.add(sample(0, energy=5000))
    assert acc.summary(1000)["energy_j"] is None
    acc.add(sample(1000, energy=5000))
    assert acc.summary(1000)["energy_j"] == Decimal(0)


def test_energy_is_counted_to_the_millijoule():
    acc = Accumulator(U, 0)
    for t, e in [(0, 1_000_000), (1000, 1_000_401), (2000, 1_000_802)]:
        acc.add(sample(t, energy=e))
    assert str(acc.summary(2000)["energy_j"]) == "0.802"


def test_peak_vram_is_decimal_gb_exact_to_the_byte():
    acc = Accumulator(U, 0)
    acc.add(sample(1000, mem=81_559 * 2**20))       # an H100's whole memory
    assert acc.summary(1000)["peak_vram_gb"] == Decimal("85.520809984")


def test_a_reading_at_or_before_the_covered_time_adds_no_time_but_its_memory_counts():
    acc = Accumulator(U, 0)
    acc.add(sample(2000, util=50))
    acc.add(sample(2000, util=100, mem=7 * 10**9))
    acc.add(sample(1000, util=100))
    s = acc.summary(2000)
    assert (s["avg_utilization"], s["sample_coverage"], s["peak_vram_gb"], s["samples"]) == (
        Decimal("0.5"), Decimal(1), Decimal(7), 3)


def test_a_job_shorter_than_its_first_reading_is_fully_covered_at_most():
    acc = Accumulator(U, 0)
    acc.add(sample(2000, util=10))
    assert acc.summary(1000)["sample_coverage"] == Decimal(1)
    assert acc.summary(0)["sample_coverage"] == Decimal(0)


def test_max_gap_is_the_accumulators():
    acc = Accumulator(U, 0, max_gap_ms=10_000)
    acc.add(sample(8000, util=20))
    assert (acc.summary(8000)["gaps"], acc.summary(8000)["sample_coverage"]) == (0, Decimal(1))


def test_a_sample_of_another_device_is_refused():
    with pytest.raises(ValueError, match="GPU-1"):
        Accumulator(U, 0).add(Sample(t_ms=1, uuid="GPU-1", utilization=1, memory_used_bytes=None, power_mw=None,
                                     energy_mj=None))


def test_a_checkpoint_through_json_resumes_to_the_same_figures():
    readings = [sample(t * 1000, util=t % 100, mem=t * 10**8, energy=10_000 + 7 * t) for t in range(0, 40)]
    straight = Accumulator(U, 0)
    for s in readings:
        straight.add(s)
    resumed = Accumulator(U, 0)
    for s in readings[:25]:
        resumed.add(s)
    resumed.cut(20_000)
    resumed = Accumulator.from_json(json.loads(json.dumps(resumed.to_json())))
    for s in readings[25:]:
        resumed.add(s)
    assert resumed.summary(39_000) == straight.summary(39_000)
    assert resumed.window.start_ms == 20_000


def test_merging_windows_sums_counts_and_keeps_the_larger_peak():
    first = Tally(start_ms=0, last_ms=0)
    for s in (sample(0, util=10, mem=5, energy=100), sample(1000, util=10, mem=9, energy=150)):
        first.fold(s)
    second = first.successor(1000)
    for s in (sample(2000, util=30, mem=2, energy=90),):
        second.fold(s)
    second.end_ms = 2000
    m = first.merged(second).summary()
    assert (m["avg_utilization"], m["energy_j"], m["energy_reset"], m["peak_vram_gb"]) == (
        Decimal("0.2"), Decimal("0.05"), True, Decimal("0.000000009"))


def test_combined_weighs_each_device_by_its_covered_time_exactly():
    a, b = Accumulator("GPU-a", 0), Accumulator("GPU-b", 0)
    for t in range(0, 61):
        a.add(Sample(t_ms=t * 1000, uuid="GPU-a", utilization=80, memory_used_bytes=30 * 10**9, power_mw=None,
                     energy_mj=t * 500))
        if t <= 20:   # b is lost after 20 s: a third of the job
            b.add(Sample(t_ms=t * 1000, uuid="GPU-b", utilization=20, memory_used_bytes=50 * 10**9, power_mw=None,
                         energy_mj=None))
    s = combined([a.cut(60_000), b.cut(60_000)])
    assert s == {"avg_utilization": Decimal("0.65"),            # (80*60 + 20*20) / 80 / 100
                 "peak_vram_gb": Decimal("50"), "energy_j": Decimal("30"), "energy_reset": False,
                 "sample_coverage": Decimal("0.666667"),         # 80 s of 120 device-seconds
                 "gaps": 1, "samples": 82}
    assert combined([a.job], 60_000) == a.summary(60_000)
