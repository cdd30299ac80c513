"""The read-only hardware check of the metering agent (nvml-agent.md §3.4, issue 11 item 7).

READ ONLY: this script never changes a card's setting. It calls no NVML setter of any kind (no
accounting mode, MIG, persistence, clocks, power limit, application clocks or reset) and runs no
`nvidia-smi`. Accounting stats are read only if an administrator already enabled them.

    .venv/bin/python tools/gpu_check.py --out DIR [--seconds N]

writes into DIR, each step guarded (a failure is recorded in its file as "error" with the
exception's text, and the next step runs; the exit status is 0 unless the script itself breaks):

* capabilities.json: the environment (driver, NVML, CUDA driver, nvidia-ml-py, kernel) and, per
  device, every NVML call the agent makes (gpubill/agent/nvml.py) and the few more §3.4 asks
  about, each with its outcome (supported / NotSupported / NoPermission / error ...), its
  latency and the value read;
* inventory.json: the devices as the agent lists them (gpu_type, MIG, interconnect);
* samples.jsonl and summary.json: a short load (torch or cupy bf16/fp32 matmuls over ~8 GiB,
  when importable with a GPU; else the idle GPU, or nothing, is sampled) read at 1 Hz through
  the agent's backend and folded by its accumulator: utilization, peak VRAM, energy by counter
  difference against the power integral, sample coverage, NVML's own time per reading;
* e2e.json: `gpubill agent exec` into a temporary local store around a short command, kill -9
  of the agent mid-job, recovery by `gpubill agent run --until-idle`, then the events and billed
  seconds in the store against the allocation.

Where there is no NVML (no driver, a CI machine) every file is still written and says "no NVML";
the end-to-end part then meters the command's duration alone (NVML properties null).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import attrs  # noqa: E402
import pynvml  # noqa: E402

from gpubill.agent.aggregate import Accumulator, decimal_of  # noqa: E402
from gpubill.agent.nvml import open_backend  # noqa: E402
from gpubill.agent.spool import Spool  # noqa: E402
from gpubill.service.events import Store  # noqa: E402

DEFAULT_SECONDS = 20
STARTUP_S = 60                    # the most the load's child may take to start (import torch, CUDA context)
IDLE_AFTER_S = 3                  # the load's child sleeps this long after its work: "about 0 when idle"
LOAD_BYTES = 8 << 30              # about 8 GiB held by the load
MATMUL_N = 8192
SUB = "sub_gpu_check"
JOB = "gpu-check"
AGENT = [sys.executable, "-m", "gpubill", "agent"]
# The agent's processes import this checkout's gpubill, from wherever the check was started.
AGENT_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
# The final event's properties NVML gives (null without it; an absent property reads null too).
MEASURED = ("gpu_type", "gpu_count", "interconnect", "avg_utilization", "peak_vram_gb", "energy_j", "sample_coverage")
E2E_GRID = ["--segment", "2", "--job-minimum", "1"]   # two-second segments: some are spooled before the kill
LIST_LIMIT = 4                    # items of a list value kept in capabilities.json (its length is kept too)
MJ_PER_J, MW_MS_PER_J = 1000, 10**6


# -- guarded steps and JSON -------------------------------------------------------------------

def jsonable(v, depth: int = 0):
    """An NVML answer as JSON: ctypes structs and unions as dicts, bytes as text, long lists cut."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, (Decimal, Fraction)):
        return str(v)
    if depth > 4:
        return repr(v)
    if isinstance(v, (ctypes.Structure, ctypes.Union)):
        return {name: jsonable(getattr(v, name), depth + 1) for name, *_ in v._fields_}
    if isinstance(v, (list, tuple, ctypes.Array)):
        items = list(v)
        out = [jsonable(x, depth + 1) for x in items[:LIST_LIMIT]]
        return out if len(items) <= LIST_LIMIT else {"count": len(items), "first": out}
    if isinstance(v, dict):
        return {str(k): jsonable(x, depth + 1) for k, x in v.items()}
    return repr(v)


def write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(jsonable(doc), indent=2) + "\n")


def guarded(step: Callable[[], dict]) -> dict:
    """step()'s result, or its failure as {"error": "<type>: <text>", "traceback": ...}."""
    try:
        return step()
    except Exception as e:  # a check goes on past any failure: the failure is the finding
        return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=4)}


def nvml_absent() -> str | None:
    """None when NVML initialises (it stays initialised: calls are reference counted), else
    "no NVML (<why>)"."""
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError) as e:
        return f"no NVML ({type(e).__name__})"
    return None


# -- capabilities -----------------------------------------------------------------------------

def outcome(fn: Callable, *args) -> dict:
    """One NVML call: its outcome, latency and value."""
    t0 = time.perf_counter()
    try:
        v = fn(*args)
        result = {"outcome": "supported", "value": jsonable(v)}
    except pynvml.NVMLError_NotSupported:
        result = {"outcome": "NotSupported"}
    except pynvml.NVMLError_NoPermission:
        result = {"outcome": "NoPermission"}
    except (pynvml.NVMLError, pynvml.NVMLLibraryMismatchError, AttributeError, TypeError) as e:
        result = {"outcome": f"error: {type(e).__name__}: {e}"}
    result["ms"] = round((time.perf_counter() - t0) * 1000, 3)
    return result


def environment() -> dict:
    env = {"kernel": platform.release(), "python": platform.python_version(),
           "nvidia-ml-py": metadata.version("nvidia-ml-py"), "load": load_kind()}
    for name, fn in (("driver", pynvml.nvmlSystemGetDriverVersion), ("nvml", pynvml.nvmlSystemGetNVMLVersion),
                     ("cuda_driver", pynvml.nvmlSystemGetCudaDriverVersion)):
        env[name] = outcome(fn)
    return env


def field_ids() -> list[int]:
    """POWER_INSTANT (where the binding has it), TOTAL_ENERGY_CONSUMPTION, NVLINK_LINK_COUNT."""
    names = ("NVML_FI_DEV_POWER_INSTANT", "NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "NVML_FI_DEV_NVLINK_LINK_COUNT")
    return [getattr(pynvml, n) for n in names if hasattr(pynvml, n)]


def device_calls(handle) -> dict[str, tuple]:
    """Every read the agent makes of a device (agent: True), and those §3.4 asks about besides."""
    p = pynvml
    agent = {
        "uuid": (p.nvmlDeviceGetUUID, handle), "name": (p.nvmlDeviceGetName, handle),
        "memory_v1": (p.nvmlDeviceGetMemoryInfo, handle),
        "memory_v2": (p.nvmlDeviceGetMemoryInfo, handle, p.nvmlMemory_v2),
        "nvlink_state_0": (p.nvmlDeviceGetNvLinkState, handle, 0),
        "mig_mode": (p.nvmlDeviceGetMigMode, handle), "mig_count": (p.nvmlDeviceGetMaxMigDeviceCount, handle),
        "attributes": (p.nvmlDeviceGetAttributes, handle),
        "processes": (p.nvmlDeviceGetComputeRunningProcesses, handle),
        "power": (p.nvmlDeviceGetPowerUsage, handle), "energy": (p.nvmlDeviceGetTotalEnergyConsumption, handle),
        "samples_utilization": (p.nvmlDeviceGetSamples, handle, p.NVML_GPU_UTILIZATION_SAMPLES, 0),
        "utilization": (p.nvmlDeviceGetUtilizationRates, handle),
    }
    more = {
        "pci": (p.nvmlDeviceGetPciInfo, handle), "virtualization_mode": (p.nvmlDeviceGetVirtualizationMode, handle),
        "samples_power": (p.nvmlDeviceGetSamples, handle, p.NVML_TOTAL_POWER_SAMPLES, 0),
        "process_utilization": (p.nvmlDeviceGetProcessUtilization, handle, 0),
        "processes_utilization_info": (p.nvmlDeviceGetProcessesUtilizationInfo, handle, 0),
        "field_values": (p.nvmlDeviceGetFieldValues, handle, field_ids()),
        "clock_sm": (p.nvmlDeviceGetClockInfo, handle, p.NVML_CLOCK_SM),
        "clock_event_reasons": (p.nvmlDeviceGetCurrentClocksEventReasons, handle),
        "accounting_mode": (p.nvmlDeviceGetAccountingMode, handle),
        "accounting_pids": (p.nvmlDeviceGetAccountingPids, handle),
        "gpm_support": (p.nvmlGpmQueryDeviceSupport, handle),
    }
    return {k: (True, *v) for k, v in agent.items()} | {k: (False, *v) for k, v in more.items()}


def device_matrix(handle) -> dict:
    return {name: {"agent": agent, **outcome(fn, *args)} for name, (agent, fn, *args) in device_calls(handle).items()}


def mig_handles(handle) -> list:
    try:
        slots = pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)
    except pynvml.NVMLError:
        return []
    out = []
    for slot in range(slots):
        try:
            out.append(pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot))
        except pynvml.NVMLError:
            continue
    return out


def device_entry(index: int) -> dict:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    return {"index": index, "calls": device_matrix(handle), "mig_devices": [device_matrix(m) for m in mig_handles(handle)]}


def capabilities() -> dict:
    absent = nvml_absent()
    if absent:
        return {"nvml": absent, "environment": {"nvidia-ml-py": metadata.version("nvidia-ml-py"),
                                                "kernel": platform.release(), "load": load_kind()}}
    count = outcome(pynvml.nvmlDeviceGetCount)
    devices = [guarded(lambda i=i: device_entry(i)) for i in range(count.get("value") or 0)]
    return {"nvml": "present", "environment": environment(), "device_count": count, "devices": devices}


# -- inventory --------------------------------------------------------------------------------

def inventory() -> dict:
    absent = nvml_absent()
    backend = None if absent else open_backend()
    if backend is None:
        return {"nvml": absent or "no NVML", "devices": []}
    try:
        devices = backend.devices()
    finally:
        backend.close()
    return {
        "nvml": "present",
        "devices": [attrs.asdict(d) for d in devices],
        "checks": {
            "device_count": len({d.parent_uuid or d.uuid for d in devices}),   # physical GPUs
            "name_is_h100_or_h200": all("H100" in d.name or "H200" in d.name for d in devices),
            "uuid_prefix_ok": all(d.uuid.startswith("MIG-" if d.mig else "GPU-") for d in devices),
            "gpu_types": sorted({str(d.gpu_type) for d in devices}),
            "mig": any(d.mig for d in devices),
            "interconnects": sorted({str(d.interconnect) for d in devices}),
        },
    }


# -- the load and its samples -----------------------------------------------------------------

def load_kind() -> str:
    """What makes the load: "torch" or "cupy" with a GPU, else "none"."""
    try:
        import torch
        if torch.cuda.is_available():
            return "torch"
    except Exception:  # noqa: BLE001  (any import failure: no torch load)
        pass
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() > 0:
            return "cupy"
    except Exception:  # noqa: BLE001
        pass
    return "none"


def torch_load(seconds: float) -> tuple[float, float]:
    import torch
    hold = torch.empty(LOAD_BYTES, dtype=torch.uint8, device="cuda")
    a = torch.randn(MATMUL_N, MATMUL_N, dtype=torch.bfloat16, device="cuda")
    begin = time.monotonic()
    while time.monotonic() - begin < seconds:
        (a @ a).sum().item()
    del hold
    return begin, time.monotonic()


def cupy_load(seconds: float) -> tuple[float, float]:
    import cupy
    hold = cupy.empty(LOAD_BYTES, dtype=cupy.uint8)
    a = cupy.random.random((MATMUL_N, MATMUL_N), dtype=cupy.float32)
    begin = time.monotonic()
    while time.monotonic() - begin < seconds:
        float((a @ a).sum())
    del hold
    return begin, time.monotonic()


def idle_load(seconds: float) -> tuple[float, float]:
    begin = time.monotonic()
    time.sleep(seconds)
    return begin, time.monotonic()


LOADS = {"torch": torch_load, "cupy": cupy_load, "none": idle_load}


def child(seconds: float, mark: str | None) -> None:
    """The load: ~8 GiB held and matmuls for ``seconds`` once the GPU library is up (without one,
    just the wait), then IDLE_AFTER_S idle; writes to ``mark`` its own monotonic start and end and
    the load's (seconds, the clock every process of the machine shares)."""
    start = time.monotonic()
    kind = load_kind()
    load_start, load_end = LOADS[kind](seconds)
    time.sleep(IDLE_AFTER_S)
    if mark:
        Path(mark).write_text(json.dumps({"kind": kind, "start": start, "load_start": load_start,
                                          "load_end": load_end, "end": time.monotonic()}))


def child_command(seconds: float, mark: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", str(seconds), "--mark", str(mark)]


def child_traces(pid: int) -> list[dict]:
    """What NVML kept of the load's process once it ended, per GPU: its process-utilization
    samples (smUtil) and, only where an administrator enabled accounting, its accounting stats."""
    def utilization(handle) -> dict:
        mine = [x for x in pynvml.nvmlDeviceGetProcessUtilization(handle, 0) if x.pid == pid]
        return {"samples": len(mine), "max_sm_util": max((x.smUtil for x in mine), default=None)}
    out = []
    for i in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(i)
        out.append({"index": i, "sm_clock_mhz": outcome(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM),
                    "process_utilization": outcome(utilization, handle),
                    "accounting_stats": outcome(pynvml.nvmlDeviceGetAccountingStats, handle, pid)})
    return out


def sm_clocks() -> list[int | None]:
    """Each GPU's SM clock now (MHz; None where NVML won't say): descriptive, it rises under load."""
    clocks = []
    for i in range(pynvml.nvmlDeviceGetCount()):
        read = outcome(lambda i=i: pynvml.nvmlDeviceGetClockInfo(pynvml.nvmlDeviceGetHandleByIndex(i),
                                                                   pynvml.NVML_CLOCK_SM))
        clocks.append(read.get("value"))
    return clocks


def power_integral_mw_ms(points: list[tuple[int, int]]) -> int | None:
    """Trapezoid integral of (t_ms, power_mw) readings, in mW·ms (2x, halved at the end)."""
    if len(points) < 2:
        return None
    return sum((p0 + p1) * (t1 - t0) for (t0, p0), (t1, p1) in zip(points, points[1:])) // 2


def device_summary(uuid: str, readings: list, acc: Accumulator, end_ms: int, child_pid: int,
                   window: tuple[int, int] | None) -> dict:
    """One device's figures; ``window``: the load's (start, end) in monotonic ms, when known."""
    power = [(s.t_ms, s.power_mw) for s in readings if s.power_mw is not None]
    energy = [s.energy_mj for s in readings if s.energy_mj is not None]
    integral = power_integral_mw_ms(power)
    counter = energy[-1] - energy[0] if len(energy) > 1 else None
    begin, end = window or (end_ms, end_ms)     # a reading covers the second before it: one second's margin
    loaded = [s.utilization for s in readings if s.utilization is not None and begin + 1000 < s.t_ms <= end]
    idle = [s.utilization for s in readings if s.utilization is not None and s.t_ms > end + 1000]
    child_bytes = [b for s in readings for pid, b in s.pids if pid == child_pid]
    return {
        "uuid": uuid,
        "agent": acc.summary(end_ms),
        "energy_counter_j": decimal_of(Fraction(counter, MJ_PER_J), 3) if counter is not None else None,
        "energy_counter_monotonic": all(b >= a for a, b in zip(energy, energy[1:])) if energy else None,
        "energy_power_integral_j": decimal_of(Fraction(integral, MW_MS_PER_J), 3) if integral is not None else None,
        "energy_counter_over_integral": decimal_of(Fraction(counter * MJ_PER_J, integral), 4)
        if counter is not None and integral else None,
        "utilization_under_load": {"min": min(loaded), "max": max(loaded)} if loaded else None,
        "utilization_idle": {"min": min(idle), "max": max(idle)} if idle else None,
        "pids_seen": sorted({pid for s in readings for pid, _ in s.pids}),
        "child_pid_seen": bool(child_bytes),
        "child_used_bytes_max": max((b for b in child_bytes if b is not None), default=None),
    }


def load(out: Path, seconds: float) -> dict:
    """The load's child meanwhile sampled at 1 Hz through the agent's backend and accumulator."""
    absent = nvml_absent()
    backend = None if absent else open_backend()
    uuids = [d.uuid for d in backend.devices()] if backend else []
    kind = load_kind()
    mark = Path(tempfile.mkdtemp(prefix="gpu-check-")) / "mark.json"
    t0 = time.monotonic_ns() // 1_000_000
    accs = {u: Accumulator(u, t0) for u in uuids}
    readings: dict[str, list] = {u: [] for u in uuids}
    latencies = []
    proc = subprocess.Popen(child_command(seconds, mark))
    try:
        with (out / "samples.jsonl").open("w") as f:
            after = 0
            for tick in range(int(seconds) + IDLE_AFTER_S + STARTUP_S):   # until two readings after the child's end
                time.sleep(max(0.0, t0 / 1000 + tick + 1 - time.monotonic()))
                t_ms = time.monotonic_ns() // 1_000_000
                line = {"t_ms": t_ms - t0, "load_running": proc.poll() is None}
                if backend is None:
                    line["nvml"] = absent
                else:
                    c0 = time.perf_counter()
                    samples = backend.sample(uuids, t_ms)
                    latencies.append((time.perf_counter() - c0) * 1000)
                    line |= {"sample_ms": round(latencies[-1], 3), "samples": [attrs.asdict(s) for s in samples],
                             "sm_clock_mhz": sm_clocks()}
                    for s in samples:
                        accs[s.uuid].add(s)
                        readings[s.uuid].append(s)
                f.write(json.dumps(line) + "\n")
                after += not line["load_running"]
                if after >= 2:
                    break
        end_ms = time.monotonic_ns() // 1_000_000
        traces = guarded(lambda: {"gpus": child_traces(proc.pid)}) if backend is not None else None
    finally:
        if proc.poll() is None:
            proc.kill()
        if backend is not None:
            backend.close()
    times = json.loads(mark.read_text()) if mark.exists() else None
    window = (int(times["load_start"] * 1000), int(times["load_end"] * 1000)) if times else None
    return {"nvml": absent or "present", "load": kind, "seconds": seconds, "child_exit": proc.returncode,
            "load_window_ms": [w - t0 for w in window] if window else None,
            "lost": sorted(backend.lost()) if backend else [], "child_pid": proc.pid, "child_traces": traces,
            "sample_ms": {"mean": round(sum(latencies) / len(latencies), 3), "max": round(max(latencies), 3)}
            if latencies else None,
            "devices": [device_summary(u, readings[u], accs[u], end_ms, proc.pid, window) for u in uuids]}


# -- end to end -------------------------------------------------------------------------------

def outbox(spool: Path) -> list[tuple]:
    s = Spool(spool, readonly=True)
    try:
        return s.outbox()
    finally:
        s.close()


def wait_for_outbox(spool: Path, deadline_s: float) -> int:
    """Rows in the outbox once there is at least one (0 if none came before the deadline)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            rows = outbox(spool)
            if rows:
                return len(rows)
        except Exception:  # noqa: BLE001  (the agent is still creating the spool)
            pass
        time.sleep(0.1)
    return 0


def tail(b: bytes | None) -> str:
    return (b or b"").decode(errors="replace")[-2000:]


def e2e(seconds: float) -> dict:
    """exec around the load's child; kill -9 of the agent once a segment is spooled; recovery."""
    tmp = Path(tempfile.mkdtemp(prefix="gpu-check-e2e-"))
    store, spool, mark = tmp / "store.db", tmp / "spool.db", tmp / "mark.json"
    to = ["--store", str(store), "--spool", str(spool)]
    with (tmp / "exec.stderr").open("wb") as err:   # a file, not a pipe: the command inherits it and outlives the agent
        agent = subprocess.Popen([*AGENT, "exec", "--job", JOB, "--subscription", SUB, "--node", JOB, *to, *E2E_GRID,
                                  "--", *child_command(seconds, mark)], stderr=err, env=AGENT_ENV)
    spooled = wait_for_outbox(spool, seconds + IDLE_AFTER_S)
    command_running = not mark.exists()
    agent.send_signal(signal.SIGKILL)
    agent.wait()
    before = {t for t, *_ in outbox(spool)}
    limit = seconds + IDLE_AFTER_S + 60
    runs = [subprocess.run([*AGENT, "run", "--until-idle", *to], capture_output=True, timeout=limit, env=AGENT_ENV)
            for _ in range(2)]    # the second finds nothing left to do: nothing more is stored
    return {"store": str(store), "spool": str(spool), "spooled_before_kill": spooled,
            "exec_killed_rc": agent.returncode, "exec_stderr": tail((tmp / "exec.stderr").read_bytes()),
            "recovery_rc": [r.returncode for r in runs], "recovery_stderr": [tail(r.stderr) for r in runs],
            **tally(store, spool, mark, before, killed_mid_job=bool(spooled) and command_running)}


def tally(store: Path, spool: Path, mark: Path, before: set, killed_mid_job: bool) -> dict:
    """The events in the store against the spool's outbox and the job's allocation; ``before``:
    the outbox's transaction ids at the kill, ``killed_mid_job``: a segment was spooled and the
    command still ran when the agent was killed."""
    rows = outbox(spool)
    spooled = {t: payload for t, *_, payload in rows}
    s = Store(str(store), readonly=True)
    try:
        stored = sorted(e.transaction_id for e in s.list_events(sub=SUB, limit=10_000))
    finally:
        s.close()
    reader = Spool(spool, readonly=True)
    try:
        (job,) = reader.jobs()
    finally:
        reader.close()
    props = [p["properties"] for p in spooled.values()]
    finals = [p for p in props if p.get("end_reason")]
    final = finals[0] if finals else {}
    billed = sum((Decimal(p["duration_seconds"]) for p in props), Decimal(0))
    allocation = Decimal(job.end_ms) / 1000 if job.end_ms is not None else None
    command = json.loads(mark.read_text()) if mark.exists() else None
    checks = {
        "killed_mid_job": killed_mid_job,
        "one_final_event": len(finals) == 1,
        "all_delivered": all(st == "delivered" for _, _, _, st, _ in rows),
        "stored_once": stored == sorted(spooled),
        "ids_stable_across_kill": before <= set(spooled),
        "segments_contiguous": sorted(p["segment"] for p in props) == list(range(len(props))),
        "billed_equals_allocation": billed == allocation,
        "billed_covers_command": command is not None and billed >= Decimal(command["end"] - command["start"]),
    }
    return {"ok": all(checks.values()), "checks": checks, "events_spooled": len(rows), "events_stored": len(stored),
            "billed_seconds": str(billed), "allocation_seconds": str(allocation), "job_state": job.state,
            "end_reason": job.end_reason,
            "command_seconds": round(command["end"] - command["start"], 3) if command else None,
            "measured": {k: final.get(k) for k in MEASURED}, "final_properties": final}


# -- main -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Read-only real-GPU check of the gpubill agent (results as JSON in DIR).")
    p.add_argument("--out", type=Path, help="the folder the results go to")
    p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="the load's length (default 20)")
    p.add_argument("--child", type=float, help=argparse.SUPPRESS)   # the load itself, in its own process
    p.add_argument("--mark", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        child(args.child, args.mark)
        return 0
    if args.out is None:
        p.error("--out DIR is required")
    args.out.mkdir(parents=True, exist_ok=True)
    steps = {"capabilities.json": capabilities, "inventory.json": inventory,
             "summary.json": lambda: load(args.out, args.seconds), "e2e.json": lambda: e2e(args.seconds)}
    for name, step in steps.items():
        t0 = time.monotonic()
        doc = guarded(step)
        doc["step_seconds"] = round(time.monotonic() - t0, 3)
        write_json(args.out / name, doc)
        print(f"{name}: {'error: ' + doc['error'] if 'error' in doc else 'written'}", flush=True)
    if not (args.out / "samples.jsonl").exists():
        (args.out / "samples.jsonl").write_text("")    # the load step failed before its first line
    return 0


if __name__ == "__main__":
    sys.exit(main())
