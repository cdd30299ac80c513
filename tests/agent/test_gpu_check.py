"""tools/gpu_check.py on a machine without NVML (CI): every file written, each saying "no NVML"
where NVML would answer, and the agent's end to end (kill -9 mid-job, recovery) passing on the
command's duration alone."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pynvml
import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "gpu_check.py"
FILES = ("capabilities.json", "inventory.json", "samples.jsonl", "summary.json", "e2e.json")
NVML_PROPERTIES = ("gpu_type", "gpu_count", "interconnect", "avg_utilization", "peak_vram_gb", "energy_j")


def nvml_present() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def load_tool():
    spec = importlib.util.spec_from_file_location("gpu_check", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(nvml_present(), reason="this machine has NVML: the check is for a machine without it")
def test_without_nvml_every_file_is_written_and_the_agent_end_to_end_passes(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(TOOL), "--out", str(out), "--seconds", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert all((out / f).exists() for f in FILES)
    docs = {f: json.loads((out / f).read_text()) for f in FILES if f.endswith(".json")}
    for f in ("capabilities.json", "inventory.json", "summary.json"):
        assert docs[f]["nvml"].startswith("no NVML"), f
        assert "error" not in docs[f], docs[f]
    assert docs["inventory.json"]["devices"] == [] and docs["summary.json"]["devices"] == []
    lines = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert lines and all(x["nvml"].startswith("no NVML") for x in lines)   # the idle sampling, 1 Hz, no NVML

    e2e = docs["e2e.json"]
    assert e2e["ok"] and all(e2e["checks"].values()), e2e
    assert e2e["checks"]["killed_mid_job"] and e2e["recovery_rc"] == [0, 0]
    assert e2e["events_stored"] == e2e["events_spooled"] >= 2
    assert Decimal(e2e["billed_seconds"]) == Decimal(e2e["allocation_seconds"])    # the duration exact
    final = e2e["final_properties"]
    assert final["end_reason"] == "completed"
    measured = e2e["measured"]
    assert all(measured[k] is None for k in NVML_PROPERTIES) and measured["sample_coverage"] == "0"


def test_a_failing_step_is_recorded_with_its_text_and_the_check_goes_on():
    tool = load_tool()

    def broken():
        raise RuntimeError("the driver went away")

    doc = tool.guarded(broken)
    assert doc["error"] == "RuntimeError: the driver went away" and "broken" in doc["traceback"]
    assert tool.guarded(lambda: {"nvml": "present"}) == {"nvml": "present"}


def test_nvml_answers_become_json():
    tool = load_tool()
    memory = pynvml.c_nvmlMemory_t(total=80, free=30, used=50)
    assert tool.jsonable(memory) == {"total": 80, "free": 30, "used": 50}
    assert tool.jsonable(b"NVIDIA H200") == "NVIDIA H200"
    assert tool.jsonable(list(range(10))) == {"count": 10, "first": [0, 1, 2, 3]}


def test_the_power_integral_is_the_trapezoid_in_milliwatt_milliseconds():
    tool = load_tool()
    assert tool.power_integral_mw_ms([(0, 100_000), (1000, 300_000), (2000, 300_000)]) == 500_000_000
    assert tool.power_integral_mw_ms([(0, 100_000)]) is None


class Driver:
    """libnvidia-ml as nvidia-ml-py's functions see it: every getter answers from ``table`` (a
    value, a callable of the call's arguments, or an NVMLError to raise) or raises NotSupported;
    every setter, clear or reset fails the test."""

    def __init__(self, monkeypatch, table: dict):
        self.table = table
        for name in dir(pynvml):
            if name.startswith(("nvmlDeviceGet", "nvmlSystemGet", "nvmlGpm")):
                monkeypatch.setattr(pynvml, name, self.answer(name))
            elif name.startswith(("nvmlDeviceSet", "nvmlDeviceClear", "nvmlDeviceReset", "nvmlGpuInstanceSet",
                                  "nvmlDeviceCreate", "nvmlGpuInstanceCreate", "nvmlSystemSet")):
                monkeypatch.setattr(pynvml, name, self.forbidden(name))
        monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
        monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)

    def answer(self, name):
        def f(*args):
            got = self.table.get(name.removeprefix("nvml"), pynvml.NVMLError_NotSupported())
            if isinstance(got, BaseException):
                raise got
            return got(*args) if callable(got) else got
        return f

    @staticmethod
    def forbidden(name):
        def f(*args):
            raise AssertionError(f"{name} called: the check is read only")
        return f


def h200(**extra) -> dict:
    return {"DeviceGetCount": 1, "DeviceGetHandleByIndex": "h0", "DeviceGetUUID": b"GPU-0e0f",
            "DeviceGetName": "NVIDIA H200", "SystemGetDriverVersion": "580.95.05",
            "DeviceGetMemoryInfo": lambda h, *v: pynvml.c_nvmlMemory_t(total=143771 * 2**20, free=0, used=2**30),
            "DeviceGetMigMode": [0, 0], "DeviceGetPowerUsage": 120_000,
            "DeviceGetTotalEnergyConsumption": pynvml.NVMLError_NoPermission(),
            "DeviceGetSamples": pynvml.NVMLError_Unknown(), **extra}


def test_the_capability_matrix_records_each_call_s_outcome_and_calls_no_setter(monkeypatch):
    Driver(monkeypatch, h200())
    caps = load_tool().capabilities()
    assert caps["nvml"] == "present" and caps["environment"]["driver"]["value"] == "580.95.05"
    (gpu,) = caps["devices"]
    calls = gpu["calls"]
    assert calls["uuid"]["value"] == "GPU-0e0f" and calls["uuid"]["outcome"] == "supported"
    assert calls["memory_v1"]["value"]["total"] == 143771 * 2**20
    assert calls["power"] == {"agent": True, "outcome": "supported", "value": 120_000, "ms": calls["power"]["ms"]}
    assert calls["energy"]["outcome"] == "NoPermission"
    assert calls["samples_utilization"]["outcome"].startswith("error: NVMLError_Unknown")
    assert calls["gpm_support"]["outcome"] == "NotSupported" and not calls["gpm_support"]["agent"]
    assert calls["accounting_mode"]["outcome"] == "NotSupported"   # read, never set
    assert {k for k, c in calls.items() if c["agent"]} >= {"processes", "utilization", "memory_v2", "mig_mode"}


def test_inventory_is_the_agent_s_device_list_with_its_checks(monkeypatch):
    Driver(monkeypatch, h200())
    inv = load_tool().inventory()
    (dev,) = inv["devices"]
    assert (dev["uuid"], dev["gpu_type"], dev["mig"], dev["interconnect"]) == ("GPU-0e0f", "H200", False, "pcie")
    assert inv["checks"] == {"device_count": 1, "name_is_h100_or_h200": True, "uuid_prefix_ok": True,
                             "gpu_types": ["H200"], "mig": False, "interconnects": ["pcie"]}


def test_the_load_is_sampled_through_the_agent_s_backend_and_summarised(monkeypatch, tmp_path):
    counter = iter(range(0, 10**9, 120_000))            # mJ: 120 J more at each reading
    Driver(monkeypatch, h200(DeviceGetTotalEnergyConsumption=lambda h: next(counter),
                             DeviceGetSamples=pynvml.NVMLError_NotFound(),
                             DeviceGetUtilizationRates=pynvml.c_nvmlUtilization_t(gpu=55, memory=10),
                             DeviceGetComputeRunningProcesses=[pynvml.c_nvmlProcessInfo_t(pid=4242,
                                                                                          usedGpuMemory=2**30)]))
    summary = load_tool().load(tmp_path, 0)
    lines = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert lines and all(len(x["samples"]) == 1 for x in lines)
    (dev,) = summary["devices"]
    assert dev["uuid"] == "GPU-0e0f" and summary["nvml"] == "present" and summary["load"] == "none"
    assert dev["energy_counter_j"] == Decimal(120 * (len(lines) - 1)) and dev["energy_counter_monotonic"]
    assert dev["energy_power_integral_j"] > 0 and dev["energy_counter_over_integral"] > 0
    assert dev["agent"]["peak_vram_gb"] == Decimal("1.073741824") and dev["agent"]["avg_utilization"] == Decimal("0.55")
    assert dev["utilization_idle"] == {"min": 55, "max": 55} and not dev["child_pid_seen"]
    assert summary["sample_ms"]["max"] >= 0 and summary["lost"] == []
    assert dev["pids_seen"] == [4242] and all(x["sm_clock_mhz"] == [None] for x in lines)
    (trace,) = summary["child_traces"]["gpus"]
    assert trace["process_utilization"]["outcome"] == trace["accounting_stats"]["outcome"] == "NotSupported"


def test_the_check_names_only_nvml_readers():
    """Read only by construction: every nvml* function the script names reads (Get/Query) or opens
    and closes the library; none sets, clears, resets or creates."""
    names = {n.attr for n in ast.walk(ast.parse(TOOL.read_text()))
             if isinstance(n, ast.Attribute) and n.attr.startswith("nvml")}
    reader = re.compile(r"nvml(Init|Shutdown|(Device|System)Get\w+|GpmQueryDeviceSupport|Memory_v2)$")
    assert names and {n for n in names if not reader.match(n)} == set()
