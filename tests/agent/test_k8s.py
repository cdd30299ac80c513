"""Kubernetes as a job source: pods' GPUs from the kubelet's pod-resources answer, who the pods are
from its pod list (subscription annotation, start, phase), their processes from their cgroups."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path

from agent.test_exec import AGENT, fake_proc, properties
from gpubill.agent.attribution import Attributor
from gpubill.agent.jobs import KUBERNETES, SUBSCRIPTION_KEY, Allocation, JsonFile, KubernetesSource

UID_A = "1a2b3c4d-1111-2222-3333-444455556666"
UID_B = "9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff"
START = "2026-11-10T00:00:00Z"
START_MS = 1_794_268_800_000


def resources(name: str, *ids: str, resource: str = "nvidia.com/gpu") -> dict:
    return {"name": name, "namespace": "ml", "containers": [
        {"name": "main", "devices": [{"resource_name": resource, "device_ids": list(ids)},
                                     {"resource_name": "example.com/fpga", "device_ids": ["fpga0"]}]}]}


def pod(name: str, uid: str, annotations=None, labels=None, phase="Running", reason=None, finished=None,
        deleting=False) -> dict:
    meta = {"name": name, "namespace": "ml", "uid": uid, "annotations": annotations or {}, "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-10T02:00:00Z"
    status = {"phase": phase, "startTime": START}
    if reason:
        status["reason"] = reason
    if finished:
        status["containerStatuses"] = [{"name": "main", "state": {"terminated": {"finishedAt": finished}}}]
    return {"metadata": meta, "status": status}


class Kubelet:
    """The two kubelet answers, as the tests set them (a PodResourcesClient and a PodsClient)."""

    def __init__(self):
        self.pod_resources: list[dict] = []
        self.items: list[dict] = []

    def list(self) -> list[dict]:
        return self.pod_resources

    def pods(self) -> list[dict]:
        return self.items


def test_pods_holding_gpus_with_a_subscription_are_jobs_until_they_end():
    k = Kubelet()
    k.pod_resources = [resources("a", "GPU-aaaa::0", "GPU-aaaa::1", "GPU-bbbb"),    # time-sliced replicas
                       resources("b", "MIG-cccc", resource="nvidia.com/mig-3g.40gb"),
                       resources("cpu-only"), resources("unbilled", "GPU-dddd")]
    k.items = [pod("a", UID_A, annotations={SUBSCRIPTION_KEY: "sub_a", "gpubill.dev/region": "us-east"}),
               pod("b", UID_B, labels={SUBSCRIPTION_KEY: "sub_b"}),
               pod("cpu-only", "u3", annotations={SUBSCRIPTION_KEY: "sub_c"}), pod("unbilled", "u4")]
    now = [START_MS + 10_000]
    src = KubernetesSource(k, k, lambda: now[0])
    a, b = src.poll()
    assert (a.allocation.scheduler, a.allocation.job_id, a.allocation.subscription) == (KUBERNETES, UID_A, "sub_a")
    assert a.allocation.gpus == ("GPU-aaaa", "GPU-bbbb") and a.allocation.region == "us-east"
    assert a.allocation.start_ms == START_MS and a.end_ms is None
    assert (b.allocation.subscription, b.allocation.gpus) == ("sub_b", ("MIG-cccc",))

    k.items[0] = pod("a", UID_A, annotations={SUBSCRIPTION_KEY: "sub_a"}, phase="Failed", reason="Evicted",
                     finished="2026-11-10T01:00:00Z")
    k.items[1] = pod("b", UID_B, labels={SUBSCRIPTION_KEY: "sub_b"}, deleting=True)
    a, b = src.poll()
    assert (a.end_ms - START_MS, a.end_reason) == (3_600_000, "preempted")
    assert b.end_ms is None
    k.pod_resources = k.pod_resources[:1]        # b is gone, deleted while it ran
    now[0] = START_MS + 7_200_500
    _, b = src.poll()
    assert (b.allocation.job_id, b.end_ms, b.end_reason) == (UID_B, now[0], "preempted")


def test_end_reasons_by_phase():
    k = Kubelet()
    k.pod_resources = [resources("a", "GPU-aaaa")]
    src = KubernetesSource(k, k, lambda: START_MS)
    for phase, reason, expected in (("Succeeded", None, "completed"), ("Failed", None, "failed_user"),
                                    ("Failed", "NodeShutdown", "preempted")):
        k.items = [pod("a", UID_A, {SUBSCRIPTION_KEY: "s"}, phase=phase, reason=reason, finished="2026-11-10T00:00:30Z")]
        (st,) = src.poll()
        assert (st.end_ms - START_MS, st.end_reason) == (30_000, expected)


def test_a_pod_a_killed_agent_left_open_ends_once_the_kubelet_no_longer_lists_it():
    k = Kubelet()
    left = Allocation(KUBERNETES, UID_A, 0, "sub_a", START_MS, ("GPU-aaaa",))
    (st,) = KubernetesSource(k, k, lambda: START_MS + 5000, open_jobs=[left]).poll()
    assert (st.allocation, st.end_ms, st.end_reason) == (left, START_MS + 5000, "completed")


def test_pod_processes_are_attributed_by_cgroup_under_either_driver(tmp_path):
    systemd = ("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
               f"{UID_A.replace('-', '_')}.slice/cri-containerd-0123abcd.scope\n")
    cgroupfs = f"12:memory:/kubepods/besteffort/pod{UID_B}/0123abcd\n0::/kubepods/besteffort/pod{UID_B}/0123abcd\n"
    fake_proc(tmp_path, 20, 1, 200, systemd)
    fake_proc(tmp_path, 21, 20, 201)              # a child of a pod's process: its parent's pod
    fake_proc(tmp_path, 22, 1, 202, cgroupfs)
    at = Attributor(tmp_path)
    assert [at.job_of(p) for p in (20, 21, 22)] == [(KUBERNETES, UID_A), (KUBERNETES, UID_A), (KUBERNETES, UID_B)]


def test_agent_run_meters_the_kubelets_pods(tmp_path):
    (tmp_path / "pod-resources.json").write_text(json.dumps({"pod_resources": [resources("a", "GPU-aaaa")]}))
    (tmp_path / "pods.json").write_text(json.dumps({"kind": "PodList", "items": [
        pod("a", UID_A, {SUBSCRIPTION_KEY: "sub_x"}, phase="Succeeded", finished="2026-11-10T01:00:00Z")]}))
    r = subprocess.run([*AGENT, "run", "--until-idle", "--pod-resources", str(tmp_path / "pod-resources.json"),
                        "--pods", str(tmp_path / "pods.json"), "--store", str(tmp_path / "events.db"),
                        "--spool", str(tmp_path / "spool.db")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = properties(tmp_path)
    assert all(st == "delivered" for st, _ in rows) and len(rows) == 12  # 11 segments, then the final
    assert sum(Decimal(p["duration_seconds"]) for _, p in rows) == 3600
    assert rows[-1][1]["end_reason"] == "completed" and rows[-1][1]["job_id"] == UID_A


def test_json_files_that_are_missing_or_half_written_read_as_empty(tmp_path):
    (tmp_path / "pods.json").write_text('{"items": [')
    files = JsonFile(tmp_path / "nope.json", tmp_path / "pods.json")
    assert files.list() == [] and files.pods() == []
    assert KubernetesSource(files, files, lambda: 0).poll() == []


def test_run_takes_the_kubelet_files_together(tmp_path):
    r = subprocess.run([*AGENT, "run", "--pods", str(tmp_path / "p.json"), "--store", str(tmp_path / "e.db"),
                        "--spool", str(tmp_path / "s.db")], capture_output=True, text=True)
    assert r.returncode == 2 and "--pod-resources and --pods go together" in r.stderr
    assert r.stderr.count("\n") == 1
    assert not Path(tmp_path / "s.db").exists()
