"""Allocations: which jobs hold which GPUs on this node, from the scheduler (never from NVML).

Receives what a scheduler says about a job: the exec wrapper's own command line
(``gpubill agent exec``), a Slurm job's environment (``SLURM_JOB_ID``,
``SLURM_RESTART_COUNT``, ``SLURM_JOB_GPUS`` / ``CUDA_VISIBLE_DEVICES``), or the
drop files a Slurm prolog/epilog writes into a folder (``DropDirSource``), or
Kubernetes: the pods the kubelet's pod-resources API says hold GPUs
(``KubernetesSource``).
Guarantees an ``Allocation`` value per job attempt: its identity (scheduler,
job id, attempt), the subscription it bills, its start instant and the GPUs it
holds. Billed time comes from the allocation's clock; NVML only describes it.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import attrs

EXEC = "exec"
SLURM = "slurm"
KUBERNETES = "kubernetes"

K8S_PREFIX = "gpubill.dev/"                   # a pod's annotations (or labels) under it describe its job:
SUBSCRIPTION_KEY = K8S_PREFIX + "subscription"  # the subscription it bills (a pod without one is not metered)
REGION_KEY = K8S_PREFIX + "region"
CLASS_KEY = K8S_PREFIX + "availability-class"
GPU_RESOURCE = re.compile(r"^nvidia\.com/(gpu|mig-[\w.-]+)$")  # the NVIDIA device plugin's resources
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
PREEMPTED_REASONS = frozenset({"Evicted", "Preempting", "Shutdown", "NodeShutdown", "Terminated"})

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


class PodResourcesClient(Protocol):
    def list(self) -> list[dict]:
        """The kubelet pod-resources API's ``List`` answer, its ``pod_resources``: ``[{"name",
        "namespace", "containers": [{"name", "devices": [{"resource_name", "device_ids"}]}]}]``."""
        ...


class PodsClient(Protocol):
    def pods(self) -> list[dict]:
        """The node's pods as the kubelet lists them (``/pods``): ``{"metadata", "status"}`` each."""
        ...


class JsonFile:
    """Both clients over JSON files a sidecar keeps fresh (no gRPC here): the pod-resources
    ``List`` answer (``grpcurl -plaintext -unix <socket> ...List``) and the kubelet's ``/pods``
    answer. A file being rewritten, or missing, reads as empty until the next poll."""

    def __init__(self, pod_resources: str | os.PathLike, pods: str | os.PathLike):
        self.paths = Path(pod_resources), Path(pods)

    def list(self) -> list[dict]:
        return _json(self.paths[0]).get("pod_resources") or []

    def pods(self) -> list[dict]:
        return _json(self.paths[1]).get("items") or []


def _json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def pod_gpus(pod_resources: dict) -> tuple[str, ...]:
    """The GPU UUIDs (``GPU-``/``MIG-``) a pod's containers hold; a time-sliced replica's id
    (``GPU-...::2``) names its GPU."""
    ids = (i.split("::")[0] for c in pod_resources.get("containers") or () for d in c.get("devices") or ()
           if GPU_RESOURCE.match(d.get("resource_name", "")) for i in d.get("device_ids") or ())
    return tuple(dict.fromkeys(ids))


def epoch_ms(rfc3339: str | None) -> int | None:
    """An RFC 3339 instant (the kubelet's) as UTC epoch ms; None when absent or unreadable."""
    if not rfc3339:
        return None
    try:
        t = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ((t if t.tzinfo else t.replace(tzinfo=timezone.utc)) - EPOCH) // timedelta(milliseconds=1)


def pod_allocation(pod: dict, gpus: tuple[str, ...], now_ms: int) -> Allocation | None:
    """A pod's allocation: job id its UID (what its processes' cgroups name), attempt 0 (a pod
    run again is a new pod), start its ``status.startTime``; None without a subscription."""
    meta = pod.get("metadata") or {}
    tags = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}  # an annotation wins
    if not tags.get(SUBSCRIPTION_KEY) or not meta.get("uid"):
        return None
    start = epoch_ms((pod.get("status") or {}).get("startTime")) or epoch_ms(meta.get("creationTimestamp"))
    return Allocation(KUBERNETES, meta["uid"], 0, tags[SUBSCRIPTION_KEY], start or now_ms, gpus,
                      region=tags.get(REGION_KEY), availability_class=tags.get(CLASS_KEY))


def pod_end(pod: dict, now_ms: int) -> tuple[int, str] | None:
    """(end, end_reason) of a pod that has ended (phase Succeeded or Failed): the end is its
    containers' last finish; None while it runs."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase not in ("Succeeded", "Failed"):
        return None
    finished = [epoch_ms(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
                for c in status.get("containerStatuses") or ()]
    end = max((f for f in finished if f is not None), default=now_ms)
    if phase == "Succeeded":
        return end, "completed"
    return end, "preempted" if status.get("reason") in PREEMPTED_REASONS else "failed_user"


class KubernetesSource:
    """The pods of this node that hold GPUs, from the kubelet: pod-resources says which GPUs
    each pod holds, the pod list who it is (UID, subscription annotation, start, phase).

    A pod is a job while pod-resources lists GPUs for it; it ends when its phase is Succeeded
    (completed) or Failed (preempted when evicted or shut down, else failed_user), at its
    containers' last finish, or, when it vanishes from the kubelet's lists first, at the poll
    that sees it gone (preempted if it was being deleted, else completed). ``open_jobs``: the
    pods a previous agent left open in the spool, so that one that ended meanwhile ends too.
    """

    def __init__(self, resources: PodResourcesClient, pods: PodsClient, now_ms, open_jobs=()):
        self.resources, self.pods, self.now_ms = resources, pods, now_ms
        self.seen: dict[str, tuple[Allocation, bool]] = {a.key: (a, False) for a in open_jobs}

    def poll(self) -> list[JobState]:
        now = self.now_ms()
        by_name = {(p.get("metadata", {}).get("namespace"), p.get("metadata", {}).get("name")): p
                   for p in self.pods.pods()}
        out, listed = [], set()
        for pr in self.resources.list():
            pod, gpus = by_name.get((pr.get("namespace"), pr.get("name"))), pod_gpus(pr)
            alloc = pod_allocation(pod, gpus, now) if pod and gpus else None
            if alloc is None:
                continue
            listed.add(alloc.key)
            end = pod_end(pod, now)
            self.seen[alloc.key] = (alloc, bool(pod["metadata"].get("deletionTimestamp")))
            out.append(JobState(alloc, *(end or (None, None))))
        for key in [k for k in self.seen if k not in listed]:
            alloc, deleting = self.seen.pop(key)
            out.append(JobState(alloc, max(now, alloc.start_ms), "preempted" if deleting else "completed"))
        return out
