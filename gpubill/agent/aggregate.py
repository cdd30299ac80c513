"""Per-(job, device) accumulation of NVML samples into the event's measured properties.

A ``Tally`` folds samples over one stretch of time; an ``Accumulator`` keeps two, the job's and
the open window's (the current segment), and ``cut`` closes the window at a segment boundary.
``Tally.merged`` joins consecutive windows of a device; ``combined`` gives one set of
properties for the same window on several devices (a job's GPUs), from the exact sums.

What a sample stands for: NVML's utilization describes the period *before* the reading, so a
sample at t covers the interval (previous reading, t]. Each interval counts for at most
``max_gap_ms``: a longer one is a gap (counted in ``gaps``, its excess not covered, nothing
interpolated). Hence:

* ``sample_coverage`` = covered ms / the tally's duration (0..1); the time after the last sample
  is not covered (and is a gap when longer than max_gap);
* ``avg_utilization`` = sum(utilization % x covered ms) / (100 x covered ms with a utilization):
  a fraction 0..1, as examples/metrics/compute.bill reads it; None with no utilization at all;
* ``peak_vram_gb`` = the largest ``memory_used_bytes`` / 10^9 (GB are decimal, 10^9 bytes, as
  in the MIG profile names "3g.40gb"); None with no memory reading;
* ``energy_j`` = the sum of the energy counter's increases between readings / 1000 (the counter
  is mJ). A reading below the previous one is a reset (driver reload): a new baseline, nothing
  counted across it, ``energy_reset`` true. None until two readings were differenced: an
  unavailable counter is never 0 J.

Figures are exact Decimals: energy to the mJ, memory to the byte; a ratio (utilization,
coverage) that does not end within ``RATIO_PLACES`` decimals is rounded half-even there. The
tallies are plain integers, so a checkpoint (``to_json``) loses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

import attrs

from gpubill.agent.nvml import Sample

RATIO_PLACES = 6            # avg_utilization and sample_coverage: 0.000001 = 0.0001 %
BYTES_PER_GB = 10**9
GB_PLACES = 9               # exact to the byte
MJ_PER_J = 1000
J_PLACES = 3                # exact to the mJ
DEFAULT_MAX_GAP_MS = 5000


def decimal_of(x: Fraction, places: int) -> Decimal:
    """x as a Decimal, rounded half-even at ``places`` decimals, without trailing zeros (0.5, 38)."""
    d = Decimal(round(x * 10**places)).scaleb(-places)
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


@attrs.define
class Tally:
    """The sums of one stretch of samples (all integers: ms, %·ms, bytes, mJ)."""

    start_ms: int
    last_ms: int                  # the end of the covered time so far (the last reading, or start_ms)
    max_gap_ms: int = DEFAULT_MAX_GAP_MS
    end_ms: int | None = None     # set when the window is cut
    samples: int = 0
    covered_ms: int = 0
    gaps: int = 0
    util_pct_ms: int = 0          # sum of utilization % x covered ms
    util_ms: int = 0              # covered ms that had a utilization reading
    peak_bytes: int | None = None
    energy_mj: int | None = None  # sum of counter increases; None until one difference
    energy_last_mj: int | None = None
    energy_reset: bool = False

    def fold(self, s: Sample) -> None:
        span = s.t_ms - self.last_ms
        if span > 0:
            weight = min(span, self.max_gap_ms)
            self.gaps += span > self.max_gap_ms
            self.covered_ms += weight
            if s.utilization is not None:
                self.util_pct_ms += s.utilization * weight
                self.util_ms += weight
            self.last_ms = s.t_ms
        self.samples += 1
        if s.memory_used_bytes is not None:
            self.peak_bytes = max(self.peak_bytes or 0, s.memory_used_bytes)
        self._energy(s.energy_mj)

    def _energy(self, counter: int | None) -> None:
        if counter is None:
            return
        if self.energy_last_mj is not None:
            if counter >= self.energy_last_mj:
                self.energy_mj = (self.energy_mj or 0) + counter - self.energy_last_mj
            else:
                self.energy_reset = True
        self.energy_last_mj = counter

    def successor(self, at_ms: int) -> Tally:
        """The next window, from at_ms on (the energy baseline carries over: no reading is lost)."""
        return Tally(start_ms=at_ms, last_ms=max(at_ms, self.last_ms), max_gap_ms=self.max_gap_ms,
                     energy_last_mj=self.energy_last_mj)

    def merged(self, later: Tally) -> Tally:
        """This window and the one after it as one (a held segment folded into the job's final event)."""
        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)
        peaks = [p for p in (self.peak_bytes, later.peak_bytes) if p is not None]
        return Tally(start_ms=self.start_ms, last_ms=later.last_ms, max_gap_ms=self.max_gap_ms, end_ms=later.end_ms,
                     samples=self.samples + later.samples, covered_ms=self.covered_ms + later.covered_ms,
                     gaps=self.gaps + later.gaps, util_pct_ms=self.util_pct_ms + later.util_pct_ms,
                     util_ms=self.util_ms + later.util_ms, peak_bytes=max(peaks) if peaks else None,
                     energy_mj=add(self.energy_mj, later.energy_mj), energy_last_mj=later.energy_last_mj,
                     energy_reset=self.energy_reset or later.energy_reset)

    def summary(self, end_ms: int | None = None) -> dict:
        """The measured properties over [start_ms, end_ms] (end_ms: the cut's, when not given)."""
        return combined([self], end_ms)

    def to_json(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Tally:
        return cls(**d)


def combined(tallies: Sequence[Tally], end_ms: int | None = None) -> dict:
    """The properties of the same window on several devices (a job's GPUs), from their exact sums:
    utilization weighted by each device's covered time, coverage = covered / the devices' time,
    energy summed (None when no device has it), gaps summed, and the peak the largest device's
    (``peak_vram_gb`` is per GPU). end_ms: each tally's cut when not given."""
    util_pct_ms = util_ms = covered_ms = duration_ms = gaps = samples = 0
    for t in tallies:
        end = t.end_ms if end_ms is None else end_ms
        span = end - t.start_ms
        util_pct_ms, util_ms = util_pct_ms + t.util_pct_ms, util_ms + t.util_ms
        covered_ms += min(t.covered_ms, max(span, 0))
        duration_ms += max(span, 0)
        gaps += t.gaps + (end - t.last_ms > t.max_gap_ms)
        samples += t.samples
    peaks = [t.peak_bytes for t in tallies if t.peak_bytes is not None]
    energies = [t.energy_mj for t in tallies if t.energy_mj is not None]
    return {
        "avg_utilization": decimal_of(Fraction(util_pct_ms, 100 * util_ms), RATIO_PLACES) if util_ms else None,
        "peak_vram_gb": decimal_of(Fraction(max(peaks), BYTES_PER_GB), GB_PLACES) if peaks else None,
        "energy_j": decimal_of(Fraction(sum(energies), MJ_PER_J), J_PLACES) if energies else None,
        "energy_reset": any(t.energy_reset for t in tallies),
        "sample_coverage": decimal_of(Fraction(covered_ms, duration_ms), RATIO_PLACES) if duration_ms else Decimal(0),
        "gaps": gaps,
        "samples": samples,
    }


class Accumulator:
    """One per (job, device): the job's tally and the open window's (the current segment)."""

    def __init__(self, uuid: str, start_ms: int, max_gap_ms: int = DEFAULT_MAX_GAP_MS) -> None:
        self.uuid = uuid
        self.job = Tally(start_ms=start_ms, last_ms=start_ms, max_gap_ms=max_gap_ms)
        self.window = Tally(start_ms=start_ms, last_ms=start_ms, max_gap_ms=max_gap_ms)

    def add(self, s: Sample) -> None:
        """Fold one sample of this device into the job and the open window."""
        if s.uuid != self.uuid:
            raise ValueError(f"a sample of {s.uuid} given to the accumulator of {self.uuid}")
        self.job.fold(s)
        self.window.fold(s)

    def summary(self, end_ms: int) -> dict:
        """The job's measured properties from its start to end_ms."""
        return self.job.summary(end_ms)

    def cut(self, at_ms: int) -> Tally:
        """Close the open window at at_ms (fold the reading taken at the boundary first) and open
        the next; the closed window's ``summary()`` is the segment's properties."""
        closed, self.window = self.window, self.window.successor(at_ms)
        closed.end_ms = at_ms
        return closed

    def to_json(self) -> dict:
        return {"uuid": self.uuid, "job": self.job.to_json(), "window": self.window.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> Accumulator:
        acc = cls.__new__(cls)
        acc.uuid = d["uuid"]
        acc.job = Tally.from_json(d["job"])
        acc.window = Tally.from_json(d["window"])
        return acc
