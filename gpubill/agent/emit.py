"""Events from a job's timeline: the segment grid, the job minimum's hold, transaction ids.

Receives an allocation, the segments already emitted and the job's elapsed
milliseconds on its own clock (``duration_seconds`` never comes from NVML), and
what the accumulators measured per window. Guarantees canonical ``gpu_job``
events (DESIGN.md) whose ``transaction_id`` and ``timestamp`` are pure
functions of facts the spool keeps: replaying them changes nothing.

The grid and the job minimum. Segments lie on a fixed grid of whole seconds
from the allocation start (``segment_ms``, default 5 minutes). The metric's
per-event rounding and minimum must act on the job, not on each segment, so a
segment is emitted only once the job has run ``hold_ms`` (the job minimum,
default 60 s) past its end; a job that ends within the hold folds that segment
into its final event. Hence a multi-segment job's final event lasts at least
the minimum, every segment event lasts exactly ``segment_ms`` (whole seconds
and, at the defaults, whole minutes), and only the final event carries a
fraction of a second: the job's events round and bill as one event of the
job's whole duration would.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from gpubill.agent.jobs import Allocation

CODE = "gpu_job"
SEGMENT = "segment"  # an event kind: one full grid window of a running job
FINAL = "final"      # an event kind: the job's last window, with its end_reason
DEFAULT_SEGMENT_MS = 300_000
DEFAULT_HOLD_MS = 60_000
END_REASONS = ("completed", "preempted", "failed_user", "failed_infrastructure")
MEASURED = ("avg_utilization", "peak_vram_gb", "energy_j", "energy_reset", "sample_coverage")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def transaction_id(node: str, alloc: Allocation, segment: int, kind: str) -> str:
    """A hash of (node, scheduler, job, attempt, segment, kind): never of a send or start time."""
    facts = "\x1f".join((node, alloc.scheduler, alloc.job_id, str(alloc.attempt), str(segment), kind))
    return "gpb-" + hashlib.sha256(facts.encode()).hexdigest()[:32]


def ready_segments(emitted: int, elapsed_ms: int, segment_ms: int, hold_ms: int) -> range:
    """The grid segments that may be emitted now: ended, and held ``hold_ms`` past their end."""
    k = emitted
    while (k + 1) * segment_ms + hold_ms <= elapsed_ms:
        k += 1
    return range(emitted, k)


def final_window(emitted: int, segment_ms: int, end_ms: int) -> tuple[int, int]:
    """The final event's window: from the first segment not emitted to the job's end."""
    return emitted * segment_ms, end_ms


def segment_window(k: int, segment_ms: int) -> tuple[int, int]:
    return k * segment_ms, (k + 1) * segment_ms


def seconds(ms: int) -> Decimal:
    """Milliseconds as exact seconds (no exponent, no trailing zeros past the point)."""
    d = Decimal(ms).scaleb(-3)
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


def iso(ms: int) -> str:
    """UTC epoch milliseconds as ISO-8601 with a Z."""
    t = EPOCH + timedelta(milliseconds=ms)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def unmeasured() -> dict:
    """What a window without any sample says: NVML unavailable, properties null, coverage 0."""
    return {"avg_utilization": None, "peak_vram_gb": None, "energy_j": None, "energy_reset": False,
            "sample_coverage": Decimal(0)}


def event(node: str, alloc: Allocation, kind: str, segment: int, window: tuple[int, int], measured: dict,
          hardware: dict, end_reason: str | None = None, end_reason_source: str | None = None) -> dict:
    """The canonical ``gpu_job`` event of one window of ``alloc``'s timeline.

    ``hardware``: ``gpu_type``, ``gpu_count`` and ``interconnect`` (the allocation's own
    values win over the devices'). The timestamp is the window's start on the grid.
    ``end_reason_source``: set when the end reason is not the job's own exit (``recovered``).
    """
    start, end = window
    props = {
        "gpu_type": alloc.gpu_type or hardware.get("gpu_type"),
        "gpu_count": _text(alloc.gpu_count if alloc.gpu_count is not None else hardware.get("gpu_count")),
        "duration_seconds": str(seconds(end - start)),
        **{k: _text(measured[k]) if k != "energy_reset" else measured[k] for k in MEASURED},
        "interconnect": hardware.get("interconnect"),
        "region": alloc.region,
        "availability_class": alloc.availability_class,
        "end_reason": end_reason,
        "end_reason_source": end_reason_source,
        "node": node,
        "job_id": alloc.job_id,
        "attempt": alloc.attempt,
        "segment": segment,
    }
    return {"transaction_id": transaction_id(node, alloc, segment, kind),
            "external_subscription_id": alloc.subscription, "code": CODE,
            "timestamp": iso(alloc.start_ms + start),
            "properties": {k: v for k, v in props.items() if v is not None or k in MEASURED}}


def _text(v) -> str | None:
    """An exact figure as a decimal string (the store reads strict numeric strings exactly)."""
    if v is None:
        return None
    d = Decimal(v) if not isinstance(v, Decimal) else v
    return str(d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize())
