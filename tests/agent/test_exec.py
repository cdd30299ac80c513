"""`gpubill agent exec` as a real subprocess (no GPU here: NVML absent), and where its
allocations and attributions come from: Slurm's environment, cgroups, a fake /proc root."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from gpubill.agent.attribution import Attributor
from gpubill.agent.jobs import KUBERNETES, SLURM, cgroup_job, slurm_allocation
from gpubill.agent.spool import Spool

AGENT = [sys.executable, "-m", "gpubill", "agent"]


def exec_args(tmp: Path, job: str, *cmd: str) -> list[str]:
    return [*AGENT, "exec", "--job", job, "--subscription", "sub_x", "--store", str(tmp / "events.db"),
            "--spool", str(tmp / "spool.db"), "--gpu-type", "H100-SXM", "--gpu-count", "2", "--", *cmd]


def properties(tmp: Path) -> list[dict]:
    spool = Spool(tmp / "spool.db", readonly=True)
    try:
        return [(st, p["properties"]) for _, _, _, st, p in spool.outbox()]
    finally:
        spool.close()


def test_the_exit_status_passes_through_and_a_failure_is_the_users(tmp_path):
    r = subprocess.run(exec_args(tmp_path, "j1", "sh", "-c", "sleep 0.3; exit 3"), capture_output=True)
    assert r.returncode == 3, r.stderr
    ((status, p),) = properties(tmp_path)
    assert status == "delivered" and p["end_reason"] == "failed_user" and p["gpu_count"] == "2"
    assert float(p["duration_seconds"]) >= 0.3
    assert p["sample_coverage"] == "0" and p["avg_utilization"] is None  # no NVML on this machine


def test_a_clean_exit_completes(tmp_path):
    r = subprocess.run(exec_args(tmp_path, "j2", "true"), capture_output=True)
    assert r.returncode == 0, r.stderr
    assert properties(tmp_path)[0][1]["end_reason"] == "completed"


def wait_for_job(tmp: Path) -> None:
    for _ in range(200):
        if (tmp / "spool.db").exists():
            spool = Spool(tmp / "spool.db", readonly=True)
            try:
                if spool.jobs():
                    return
            except sqlite3.OperationalError:  # the schema is being created
                pass
            finally:
                spool.close()
        time.sleep(0.05)
    raise AssertionError("the job never reached the spool")


def test_sigterm_is_passed_on_and_the_job_ends_preempted(tmp_path):
    p = subprocess.Popen(exec_args(tmp_path, "j3", "sleep", "30"), stderr=subprocess.PIPE)
    wait_for_job(tmp_path)
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 128 + signal.SIGTERM
    ((status, props),) = properties(tmp_path)
    assert props["end_reason"] == "preempted" and status == "delivered"


def test_no_command_is_a_usage_error(tmp_path):
    r = subprocess.run(exec_args(tmp_path, "j4"), capture_output=True)
    assert r.returncode == 2 and r.stderr.decode().count("\n") == 1


def test_a_missing_command_exits_127_in_one_line(tmp_path):
    r = subprocess.run(exec_args(tmp_path, "j5", str(tmp_path / "nope")), capture_output=True)
    assert r.returncode == 127 and "nope" in r.stderr.decode().splitlines()[-1]
    assert "Traceback" not in r.stderr.decode()


def test_status_shows_the_outbox(tmp_path):
    subprocess.run(exec_args(tmp_path, "j6", "true"), check=True, capture_output=True)
    r = subprocess.run([*AGENT, "status", "--spool", str(tmp_path / "spool.db")], capture_output=True, text=True)
    assert r.returncode == 0 and "outbox: 0 pending, 1 delivered, 0 refused" in r.stdout
    assert "open jobs: 0" in r.stdout


# -- where jobs come from ------------------------------------------------------

def test_slurm_environment():
    a = slurm_allocation({"SLURM_JOB_ID": "4242", "SLURM_RESTART_COUNT": "1", "SLURM_JOB_GPUS": "2,3",
                          "CUDA_VISIBLE_DEVICES": "0,1"}, "sub_x", 0)
    assert (a.scheduler, a.job_id, a.attempt, a.gpus, a.key) == (SLURM, "4242", 1, ("2", "3"), "slurm:4242:1")
    uuids = slurm_allocation({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "0"}, "s", 0)
    assert uuids.gpus == ()  # relative indices inside a device cgroup are not taken
    assert slurm_allocation({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "GPU-a,MIG-b"}, "s", 0).gpus == ("GPU-a", "MIG-b")
    assert slurm_allocation({}, "s", 0) is None


def test_cgroup_paths():
    assert cgroup_job("0::/system.slice/slurmstepd.scope/job_123/step_0/user/task_0\n") == (SLURM, "123")
    assert cgroup_job("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                      "1a2b3c4d_1111_2222_3333_444455556666.slice/cri-containerd-ab.scope") == \
        (KUBERNETES, "1a2b3c4d-1111-2222-3333-444455556666")
    assert cgroup_job("0::/user.slice/user-1000.slice/session-2.scope") is None


def fake_proc(root: Path, pid: int, ppid: int, start: int, cgroup: str = "0::/\n", environ: str = "") -> None:
    d = root / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    (d / "stat").write_text(f"{pid} (py thon) S {ppid} 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0\n")
    (d / "cgroup").write_text(cgroup)
    (d / "environ").write_bytes(environ.encode().replace(b"\n", b"\0"))


def test_attribution_by_cgroup_environment_parent_and_not_fooled_by_pid_reuse(tmp_path):
    fake_proc(tmp_path, 10, 1, 100, "0::/system.slice/slurmstepd.scope/job_55/step_batch\n")
    fake_proc(tmp_path, 11, 10, 101)
    fake_proc(tmp_path, 12, 1, 102, environ="PATH=/bin\nBILLING_JOB_ID=train-1\n")
    fake_proc(tmp_path, 13, 1, 103)
    at = Attributor(tmp_path)
    assert [at.job_of(p) for p in (10, 11, 12, 13, 99)] == [(SLURM, "55"), (SLURM, "55"), ("exec", "train-1"),
                                                            None, None]
    fake_proc(tmp_path, 11, 1, 500, environ="SLURM_JOB_ID=77\n")  # pid 11 reused by another job's process
    assert at.job_of(11) == (SLURM, "77")



def test_the_same_job_attempt_twice_is_refused(tmp_path):
    subprocess.run(exec_args(tmp_path, "j7", "true"), check=True, capture_output=True)
    r = subprocess.run(exec_args(tmp_path, "j7", "true"), capture_output=True, text=True)
    assert r.returncode == 2 and "--attempt" in r.stderr and "Traceback" not in r.stderr


def test_run_meters_slurm_drop_files_by_the_schedulers_instants(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    start = 1_794_268_800_000
    (jobs / "4242.json").write_text(json.dumps({
        "job_id": "4242", "attempt": 1, "subscription": "sub_x", "start_ms": start, "gpus": ["0"],
        "gpu_type": "H100-SXM", "gpu_count": "8", "end_ms": start + 3_600_250, "end_reason": "preempted"}))
    (jobs / "partial.json").write_text('{"job_id": ')  # being written by the prolog: skipped
    r = subprocess.run([*AGENT, "run", "--until-idle", "--jobs-dir", str(jobs), "--store", str(tmp_path / "events.db"),
                        "--spool", str(tmp_path / "spool.db")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = properties(tmp_path)
    assert all(st == "delivered" for st, _ in rows) and len(rows) == 12  # 11 segments, then the final
    assert sum(Decimal(p["duration_seconds"]) for _, p in rows) == Decimal("3600.25")
    assert rows[-1][1]["end_reason"] == "preempted" and rows[-1][1]["attempt"] == 1


def test_usage_no_job_holding_the_gpu_owns_is_reported_not_billed(tmp_path):
    from gpubill.agent.deliver import StoreSink
    from gpubill.agent.fake import FakeClock, FakeGpu, FakeNvmlBackend, Reading, whole_gpu
    from gpubill.agent.jobs import EXEC, Allocation
    from gpubill.agent.run import Agent, Settings

    proc = tmp_path / "proc"
    fake_proc(proc, 10, 1, 100, environ="BILLING_JOB_ID=j1\n")
    fake_proc(proc, 11, 1, 101, environ="SLURM_JOB_ID=99\n")
    fake_proc(proc, 12, 1, 102)
    gpus = [FakeGpu(whole_gpu(0), [Reading(0, utilization=50, pids=((10, 10**9), (11, 10**9)))]),
            FakeGpu(whole_gpu(1), [Reading(0, utilization=0, pids=((12, 10**9),))])]
    spool = Spool(tmp_path / "spool.db")
    clock = FakeClock()
    agent = Agent(spool, StoreSink(str(tmp_path / "events.db")), FakeNvmlBackend(gpus), Settings("n1"), clock,
                  proc_root=str(proc))
    agent.start(Allocation(EXEC, "j1", 0, "sub_x", clock.wall_ms(), ("0",)), origin_ms=0)
    clock.advance(1000)
    agent.tick()
    assert spool.cursor("unattributed") == [{"uuid": "GPU-fake-0000", "pid": 11, "job": "slurm:99"},
                                            {"uuid": "GPU-fake-0001", "pid": 12, "job": None}]
    spool.close()
    r = subprocess.run([*AGENT, "status", "--spool", str(tmp_path / "spool.db")], capture_output=True, text=True)
    assert "unattributed: pid 12 on GPU-fake-0001" in r.stdout and "(job slurm:99, not holding it)" in r.stdout


def test_exec_names_the_job_in_its_commands_environment(tmp_path):
    out = tmp_path / "env.txt"
    subprocess.run(exec_args(tmp_path, "j8", "sh", "-c", f'echo "$BILLING_JOB_ID" > {out}'), check=True)
    assert out.read_text().strip() == "j8"


def test_exec_inside_a_slurm_job_meters_that_job(tmp_path):
    args = [a for a in exec_args(tmp_path, "x", "true") if a not in ("--job", "x")]
    env = {**os.environ, "SLURM_JOB_ID": "4242", "SLURM_RESTART_COUNT": "2"}
    subprocess.run(args, check=True, capture_output=True, env=env)
    ((_, p),) = properties(tmp_path)
    assert (p["job_id"], p["attempt"]) == ("4242", 2)
    no_slurm = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    r = subprocess.run(args, capture_output=True, text=True, env=no_slurm)
    assert r.returncode == 2 and "--job is needed outside a Slurm job" in r.stderr
