"""tools/gpu_check.py on a machine without NVML (CI): every file written, each saying "no NVML"
where NVML would answer, and the agent's end to end (kill -9 mid-job, recovery) passing on the
command's duration alone."""

from __future__ import annotations

import importlib.util
import json
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
