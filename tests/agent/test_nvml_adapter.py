"""PynvmlBackend against nvidia-ml-py's own structs and error classes, with its nvml* functions patched.

The driver here is a table per handle; every patched function returns what the real wrapper
returns (c_nvmlMemory_t, c_nvmlUtilization_t, c_nvmlSample_t, c_nvmlProcessInfo_t,
c_nvmlDeviceAttributes, bytes names as older wrappers gave) or raises the real NVMLError_* class.
"""

from __future__ import annotations

import ctypes.util
from collections import Counter
from fractions import Fraction

import pynvml
import pytest

from gpubill.agent import gputypes, nvml
from gpubill.agent.nvml import NVLINK, PCIE, PynvmlBackend, open_backend

MIB = 2**20
H100 = b"NVIDIA H100 80GB HBM3"


def util_samples(*pairs):
    return pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, [
        pynvml.c_nvmlSample_t(timeStamp=ts, sampleValue=pynvml.c_nvmlValue_t(uiVal=v)) for ts, v in pairs]


class Driver:
    """What libnvidia-ml would answer, per handle name: a value, or an NVMLError to raise."""

    def __init__(self, monkeypatch, gpus: list[str], table: dict[tuple[str, str], object]):
        self.gpus, self.table, self.calls = gpus, table, Counter()
        self.args: dict[str, list] = {}
        for name in dir(pynvml):   # a setter or reset reached would fail the test
            if name.startswith(("nvmlDeviceSet", "nvmlDeviceClear", "nvmlDeviceReset", "nvmlGpuInstanceSet")):
                monkeypatch.setattr(pynvml, name, self.forbidden(name))
        for name in ("nvmlInit", "nvmlShutdown"):
            monkeypatch.setattr(pynvml, name, self.counted(name))
        monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: len(self.gpus))
        monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: self.gpus[i])
        for call in ("UUID", "Name", "MemoryInfo", "UtilizationRates", "Samples", "PowerUsage",
                     "TotalEnergyConsumption", "ComputeRunningProcesses", "MigMode", "MaxMigDeviceCount",
                     "Attributes", "NvLinkState", "MigDeviceHandleByIndex"):
            monkeypatch.setattr(pynvml, "nvmlDeviceGet" + call, self.answer(call))

    def forbidden(self, name):
        def f(*args):
            raise AssertionError(f"{name} called: the agent never changes a card's setting")
        return f

    def counted(self, name):
        def f(*args):
            self.calls[name] += 1
        return f

    def answer(self, call):
        def f(handle, *args):
            self.calls[call, handle] += 1
            self.args.setdefault(call, []).append(args)
            key = (handle, call) if call != "MemoryInfo" or not args else (handle, "MemoryInfo_v2")
            if call in ("NvLinkState", "MigDeviceHandleByIndex"):
                key = (handle, f"{call}{args[0]}")
            got = self.table.get(key, pynvml.NVMLError_NotSupported())
            if isinstance(got, BaseException):
                raise got
            return got(*args) if callable(got) else got
        return f


def memory(total_mib: int, used: int):
    return pynvml.c_nvmlMemory_t(total=total_mib * MIB, free=total_mib * MIB - used, used=used)


def gpu_table(h: str, uuid: bytes, **extra) -> dict:
    table = {
        (h, "UUID"): uuid, (h, "Name"): H100, (h, "MemoryInfo"): memory(81559, 40 * 10**9),
        (h, "MemoryInfo_v2"): pynvml.NVMLError_ArgumentVersionMismatch(),
        (h, "UtilizationRates"): pynvml.c_nvmlUtilization_t(gpu=55, memory=10),
        (h, "Samples"): pynvml.NVMLError_NotFound(),
        (h, "PowerUsage"): 350_000, (h, "TotalEnergyConsumption"): 9_000_000,
        (h, "ComputeRunningProcesses"): [pynvml.c_nvmlProcessInfo_t(pid=4242, usedGpuMemory=39 * 10**9)],
        (h, "MigMode"): [0, 0], (h, "NvLinkState0"): pynvml.NVML_NVLINK_STATE_ACTIVE,
    }
    table.update({(h, k): v for k, v in extra.items()})
    return table


@pytest.fixture
def two_gpus(monkeypatch):
    table = gpu_table("h0", b"GPU-aaaa") | gpu_table("h1", b"GPU-bbbb", NvLinkState0=pynvml.NVMLError_NotSupported())
    return Driver(monkeypatch, ["h0", "h1"], table)


def test_inventory_names_types_memory_and_interconnect(two_gpus):
    devices = PynvmlBackend().devices()
    assert [(d.uuid, d.name, d.gpu_type, d.memory_total_bytes, d.mig, d.fraction, d.interconnect)
            for d in devices] == [
        ("GPU-aaaa", "NVIDIA H100 80GB HBM3", "H100-SXM", 81559 * MIB, False, Fraction(1), NVLINK),
        ("GPU-bbbb", "NVIDIA H100 80GB HBM3", "H100-SXM", 81559 * MIB, False, Fraction(1), PCIE),
    ]


def test_a_sample_reads_every_figure_from_the_real_structs(two_gpus):
    backend = PynvmlBackend()
    backend.devices()
    s = backend.sample(["GPU-aaaa"], 5000)
    assert [(x.t_ms, x.uuid, x.utilization, x.memory_used_bytes, x.power_mw, x.energy_mj, x.pids) for x in s] == [
        (5000, "GPU-aaaa", 55, 40 * 10**9, 350_000, 9_000_000, ((4242, 39 * 10**9),))]


def test_unavailable_calls_read_none_and_are_not_called_again(monkeypatch):
    table = gpu_table("h0", b"GPU-aaaa", PowerUsage=pynvml.NVMLError_NotSupported(),
                      TotalEnergyConsumption=pynvml.NVMLError_NoPermission(),
                      ComputeRunningProcesses=pynvml.NVMLLibraryMismatchError("no _v3"),
                      UtilizationRates=pynvml.NVMLError_FunctionNotFound(),
                      Samples=pynvml.NVMLError_NotSupported())
    driver = Driver(monkeypatch, ["h0"], table)
    backend = PynvmlBackend()
    backend.devices()
    for t in (1000, 2000, 3000):
        [s] = backend.sample(["GPU-aaaa"], t)
        assert (s.utilization, s.power_mw, s.energy_mj, s.pids) == (None, None, None, ())
        assert s.memory_used_bytes == 40 * 10**9
    for call in ("PowerUsage", "TotalEnergyConsumption", "ComputeRunningProcesses", "UtilizationRates", "Samples"):
        assert driver.calls[call, "h0"] == 1, call


def test_utilization_is_the_mean_of_the_driver_samples_since_the_cursor(monkeypatch):
    answers = iter([util_samples((100, 5), (200, 7)),            # the whole buffer: before the job
                    util_samples((300, 80), (400, 91)),
                    pynvml.NVMLError_NotFound(),                    # nothing new since 400
                    util_samples((400, 91), (500, 60))])

    def samples(kind, cursor):
        got = next(answers)
        if isinstance(got, BaseException):
            raise got
        return got
    driver = Driver(monkeypatch, ["h0"], gpu_table("h0", b"GPU-aaaa", Samples=samples))
    backend = PynvmlBackend()
    backend.devices()
    got = [backend.sample(["GPU-aaaa"], t)[0].utilization for t in (1000, 2000, 3000, 4000)]
    assert got == [55, 86, 55, 60]   # rates; mean(80, 91) = 85.5 -> 86 (half-even); rates; only 500 is new
    assert [a[1] for a in driver.args["Samples"]] == [0, 200, 400, 400]
    assert all(a[0] == pynvml.NVML_GPU_UTILIZATION_SAMPLES for a in driver.args["Samples"])


def test_not_available_sentinels_are_none(monkeypatch):
    table = gpu_table("h0", b"GPU-aaaa", UtilizationRates=pynvml.c_nvmlUtilization_t(gpu=0xFFFFFFFF, memory=0),
                      ComputeRunningProcesses=[pynvml.c_nvmlProcessInfo_t(pid=7, usedGpuMemory=2**64 - 1)])
    Driver(monkeypatch, ["h0"], table)
    backend = PynvmlBackend()
    backend.devices()
    [s] = backend.sample(["GPU-aaaa"], 1)
    assert (s.utilization, s.pids) == (None, ((7, None),))


def test_memory_v2_is_preferred_where_the_driver_has_it(monkeypatch):
    v2 = pynvml.c_nvmlMemory_v2_t(version=pynvml.nvmlMemory_v2, total=81559 * MIB, reserved=600 * MIB,
                                  free=0, used=12 * 10**9)
    Driver(monkeypatch, ["h0"], gpu_table("h0", b"GPU-aaaa", MemoryInfo_v2=v2))
    backend = PynvmlBackend()
    backend.devices()
    assert backend.sample(["GPU-aaaa"], 1)[0].memory_used_bytes == 12 * 10**9


def test_a_lost_gpu_stops_sampling_is_reported_and_nvml_is_reinitialised(monkeypatch, two_gpus):
    backend = PynvmlBackend()
    backend.devices()
    two_gpus.table["h0", "MemoryInfo"] = pynvml.NVMLError_GpuIsLost()
    assert [s.uuid for s in backend.sample(["GPU-aaaa", "GPU-bbbb"], 1000)] == ["GPU-bbbb"]
    assert backend.lost() == {"GPU-aaaa"}
    assert backend.sample(["GPU-aaaa"], 2000) == []
    # the GPU comes back after the driver recovered: the next inventory re-initialises NVML
    two_gpus.table["h0", "MemoryInfo"] = memory(81559, 1)
    assert [d.uuid for d in backend.devices()] == ["GPU-aaaa", "GPU-bbbb"]
    assert (two_gpus.calls["nvmlShutdown"], two_gpus.calls["nvmlInit"]) == (1, 1)
    assert backend.lost() == frozenset()
    assert [s.uuid for s in backend.sample(["GPU-aaaa"], 3000)] == ["GPU-aaaa"]


def test_mig_slices_are_listed_with_their_memory_share(monkeypatch):
    table = gpu_table("h0", b"GPU-aaaa", MigMode=[pynvml.NVML_DEVICE_MIG_ENABLE] * 2, MaxMigDeviceCount=7,
                      MigDeviceHandleByIndex0="m0", MigDeviceHandleByIndex1="m1")
    for slot in range(2, 7):
        table["h0", f"MigDeviceHandleByIndex{slot}"] = pynvml.NVMLError_NotFound()
    for m, uuid in (("m0", b"MIG-0000"), ("m1", b"MIG-0001")):
        table |= {(m, "UUID"): uuid, (m, "Name"): H100 + b" MIG 3g.40gb", (m, "MemoryInfo"): memory(40320, 38 * 10**9),
                  (m, "Attributes"): pynvml.c_nvmlDeviceAttributes(gpuInstanceSliceCount=3, memorySizeMB=40320),
                  (m, "UtilizationRates"): pynvml.NVMLError_NotSupported(),
                  (m, "ComputeRunningProcesses"): []}
    driver = Driver(monkeypatch, ["h0"], table)
    backend = PynvmlBackend()
    devices = backend.devices()
    # the GPU itself is not listed: in MIG mode only its MIG devices run (and bill) jobs
    assert [(d.uuid, d.mig, d.parent_uuid, d.fraction, d.mig_profile, d.gpu_type) for d in devices] == [
        ("MIG-0000", True, "GPU-aaaa", Fraction(1, 2), "3g.40gb", "H100-SXM"),
        ("MIG-0001", True, "GPU-aaaa", Fraction(1, 2), "3g.40gb", "H100-SXM"),
    ]
    [s] = backend.sample(["MIG-0000"], 1000)
    assert (s.utilization, s.memory_used_bytes, s.power_mw, s.energy_mj) == (None, 38 * 10**9, None, None)
    assert driver.args["Samples"] == [(pynvml.NVML_GPU_UTILIZATION_SAMPLES, 0)]


@pytest.mark.parametrize(("memory_mib", "profile", "slices", "eighths"), [
    (9856, "1g.10gb", 1, 1), (19968, "2g.20gb", 2, 2), (40320, "3g.40gb", 3, 4), (40320, "4g.40gb", 4, 4),
    (80896, "7g.80gb", 7, 8), (None, "1g.20gb", 1, 2), (None, "3g.40gb", None, 4), (None, None, 3, 4),
    (None, None, None, 1),
])
def test_mig_fraction_in_memory_eighths(memory_mib, profile, slices, eighths):
    got = nvml.mig_fraction(memory_mib and memory_mib * MIB, 81559 * MIB if memory_mib else None, profile,
                            "NVIDIA H100 80GB HBM3", slices)
    assert got == Fraction(eighths, 8)


def test_no_library_means_no_backend(monkeypatch, caplog):
    def no_library():
        raise pynvml.NVMLError_LibraryNotFound()
    monkeypatch.setattr(pynvml, "nvmlInit", no_library)
    nvml._say_no_nvml.cache_clear()
    assert open_backend() is None and open_backend() is None
    assert [r.message for r in caplog.records].count(
        "no NVML (NVMLError_LibraryNotFound): GPU properties are unavailable, durations are still metered") == 1


@pytest.mark.skipif(ctypes.util.find_library("nvidia-ml") is not None, reason="this machine has NVML")
def test_the_real_nvml_init_on_a_machine_without_a_gpu_gives_no_backend():
    assert open_backend() is None


@pytest.mark.parametrize(("name", "gpu_type"), [
    ("NVIDIA H100 80GB HBM3", "H100-SXM"), (b"NVIDIA H100 80GB HBM3", "H100-SXM"),
    ("NVIDIA H100 80GB HBM3 MIG 3g.40gb", "H100-SXM"), ("NVIDIA H200", "H200"), ("NVIDIA H200 MIG 1g.18gb", "H200"),
    ("NVIDIA A100-SXM4-40GB", "A100-40GB"), ("NVIDIA A100-PCIE-40GB", "A100-40GB"),
    ("NVIDIA A100-SXM4-80GB", "A100-80GB"), ("NVIDIA A100 80GB PCIe", "A100-80GB"),
    ("NVIDIA H100 PCIe", None), ("NVIDIA H200 NVL", None), ("Tesla T4", None), ("NVIDIA GeForce RTX 4090", None),
])
def test_nvml_names_map_to_the_plans_gpu_types_or_none(name, gpu_type):
    assert gputypes.gpu_type(name) == gpu_type


def test_after_a_mig_reconfiguration_a_gone_uuid_gives_no_samples(monkeypatch):
    """NVML reuses MIG handles: a sample asked for a MIG UUID that is gone must not read the new slice."""
    table = gpu_table("h0", b"GPU-aaaa", MigMode=[pynvml.NVML_DEVICE_MIG_ENABLE] * 2, MaxMigDeviceCount=1,
                      MigDeviceHandleByIndex0="m0")
    table |= {("m0", "UUID"): b"MIG-0000", ("m0", "Name"): H100 + b" MIG 7g.80gb",
              ("m0", "MemoryInfo"): memory(80896, 1)}
    driver = Driver(monkeypatch, ["h0"], table)
    backend = PynvmlBackend()
    assert [d.uuid for d in backend.devices()] == ["MIG-0000"]
    driver.table["m0", "UUID"] = b"MIG-0001"      # the administrator made a new instance in the same slot
    assert [d.uuid for d in backend.devices()] == ["MIG-0001"]
    assert backend.sample(["MIG-0000"], 1000) == []
    assert [s.uuid for s in backend.sample(["MIG-0001"], 1000)] == ["MIG-0001"]


def test_a_gpu_in_mig_mode_without_instances_lists_nothing(monkeypatch):
    Driver(monkeypatch, ["h0", "h1"], gpu_table("h0", b"GPU-aaaa", MigMode=[pynvml.NVML_DEVICE_MIG_ENABLE] * 2,
                                                 MaxMigDeviceCount=7) | gpu_table("h1", b"GPU-bbbb"))
    assert [d.uuid for d in PynvmlBackend().devices()] == ["GPU-bbbb"]
