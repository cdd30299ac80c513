"""Allocations: which jobs hold which GPUs on this node, from the scheduler (never from NVML).

Receives what a scheduler says about a job: the exec wrapper's own command line
(``gpubill agent exec``), a Slurm job's environment (``SLURM_JOB_ID``,
``SLURM_RESTART_COUNT``, ``SLURM_JOB_GPUS`` / ``CUDA_VISIBLE_DEVICES``), or the
drop files a Slurm prolog/epilog writes into a folder (``DropDirSource``).
Guarantees an ``Allocation`` value per job attempt: its identity (scheduler,
job id, attempt), the subscription it bills, its start instant and the GPUs it
holds. Billed time comes from the allocation's clock; NVML only describes it.
Kubernetes (pod-resources) is another ``JobSource`` to add beside these.
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import attrs

EXEC = "exec"
SLURM = "slurm"
KUBERNETES = "kubernetes"

SLURM_CGROUP = re.compile(r"/job_(\d+)(?:/|$)")
POD_CGROUP = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


@attrs.frozen
class Allocation:
    """One attempt of one job on this node, as its scheduler allocated it."""

    scheduler: str                 # EXEC | SLURM | KUBERNETES
    job_id: str
    attempt: int                   # a requeued Slurm job keeps its id: SLURM_RESTART_COUNT
    subscription: str              # external_subscription_id of its events
    start_ms: int                  # the allocation's start, UTC epoch ms
    gpus: tuple[str, ...] = ()     # UUIDs (GPU-/MIG-) or NVML indices ("0", "1")
    gpu_type: str | None = None    # None: from the devices
    gpu_count: Decimal | None = None  # None: the devices' fractions summed
    region: str | None = None
    availability_class: str | None = None

    @property
    def key(self) -> str:
        """The job attempt's identity on this node (one spool row)."""
        return f"{self.scheduler}:{self.job_id}:{self.attempt}"

    def to_json(self) -> dict:
        d = attrs.asdict(self)
        d["gpus"] = list(self.gpus)
        d["gpu_count"] = None if self.gpu_count is None else str(self.gpu_count)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Allocation":
        count = d.get("gpu_count")
        return cls(**{**d, "gpus": tuple(str(g) for g in d.get("gpus") or ()),
                      "gpu_count": None if count is None else Decimal(str(count)),
                      "attempt": int(d.get("attempt") or 0)})


@attrs.frozen
class JobState:
    """What a ``JobSource`` sees of one allocation now: ended when ``end_ms`` is set."""

    allocation: Allocation
    end_ms: int | None = None
    end_reason: str | None = None


class JobSource(Protocol):
    def poll(self) -> list[JobState]: ...


def slurm_allocation(env: dict, subscription: str, start_ms: int) -> Allocation | None:
    """The Slurm job this process runs in, from its environment; None outside Slurm.

    GPUs: ``SLURM_JOB_GPUS`` (global indices), else ``CUDA_VISIBLE_DEVICES`` only when it
    names UUIDs (inside a device cgroup its indices are relative, nvml-agent.md §2.6).
    """
    job = env.get("SLURM_JOB_ID")
    if not job:
        return None
    gpus = _split(env.get("SLURM_JOB_GPUS"))
    if not gpus:
        gpus = tuple(g for g in _split(env.get("CUDA_VISIBLE_DEVICES")) if g.startswith(("GPU-", "MIG-")))
    return Allocation(SLURM, job, int(env.get("SLURM_RESTART_COUNT") or 0), subscription, start_ms, gpus)


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def cgroup_job(cgroup_text: str) -> tuple[str, str] | None:
    """(scheduler, job id) named by a ``/proc/<pid>/cgroup`` text: a Slurm ``job_<id>`` or a
    Kubernetes pod UID (underscores of the systemd driver read as dashes); None otherwise."""
    for line in cgroup_text.splitlines():
        path = line.split(":", 2)[-1]
        if m := SLURM_CGROUP.search(path):
            return SLURM, m.group(1)
        if m := POD_CGROUP.search(path):
            return KUBERNETES, m.group(1).replace("_", "-")
    return None


class DropDirSource:
    """Slurm prolog/epilog drop files: one ``<job>.json`` per allocation in ``folder``.

    The prolog writes ``{"job_id", "attempt", "subscription", "start_ms", "gpus", ...}``
    (``Allocation``'s fields); the epilog adds ``"end_ms"`` and ``"end_reason"``. A file
    that cannot be read yet (being written) is skipped until the next poll.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def poll(self) -> list[JobState]:
        out = []
        for p in sorted(self.folder.glob("*.json")):
            try:
                d = json.loads(p.read_text())
                end_ms, reason = d.pop("end_ms", None), d.pop("end_reason", None)
                alloc = Allocation.from_json({"scheduler": SLURM, **d})
            except (OSError, ValueError, TypeError):
                continue
            out.append(JobState(alloc, end_ms, reason))
        return out
