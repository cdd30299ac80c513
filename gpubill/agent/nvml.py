"""The agent's view of the GPUs: a small NvmlBackend protocol, and its real implementation on NVML.

The loop talks to ``NvmlBackend`` only: ``devices()`` (the inventory), ``sample(uuids, t_ms)``
(one reading per device), ``lost()`` (devices that faulted) and ``close()``. Two implementations:

* ``PynvmlBackend`` over nvidia-ml-py (``import pynvml``), opened by ``open_backend()``;
* ``gpubill.agent.fake.FakeNvmlBackend``, a scripted timeline for tests and benchmarks.

Every NVML call goes through ``PynvmlBackend._query`` (nvitop's nvmlQuery pattern):

* NotSupported, NoPermission, FunctionNotFound, ArgumentVersionMismatch and the wrapper's
  NVMLLibraryMismatchError mean "unavailable": the value is None, and the answer is cached per
  (device, call), so the call is not made again;
* GpuIsLost, ResetRequired, DriverNotLoaded, LibRmVersionMismatch and Unknown are device faults:
  the device is marked lost (``lost()``), gives no more samples, and the next ``devices()``
  re-initialises NVML;
* any other NVML error (Timeout, NotFound...) loses that one value for that one tick.

Nothing here ever changes a card's setting: no NVML setter is called.

Devices are keyed by UUID (``GPU-...``, ``MIG-...``), never by index. A MIG device's
``fraction`` is its share of the physical GPU by memory, in eighths (the examples' convention,
examples/metrics/research.bill: a 1g.10gb slice of an 80 GB card is 0.125, a 3g.40gb slice 0.5);
eighths are exact decimals.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, Protocol

import attrs
import pynvml

from gpubill.agent.gputypes import gpu_type, nominal_gb, split_mig, text

log = logging.getLogger("gpubill.agent")

NVLINK, PCIE = "nvlink", "pcie"
MIG_MEMORY_EIGHTHS = 8
# Memory eighths of a MIG profile by its GPU-instance slice count (A100/H100/H200: 3g -> 4/8), the
# fallback when neither the memory sizes nor the profile name are known.
EIGHTHS_BY_SLICES = {1: 1, 2: 2, 3: 4, 4: 4, 7: 8}
NOT_AVAILABLE = {0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF}   # NVML_VALUE_NOT_AVAILABLE as uint and as ulonglong
PROFILE_GB = re.compile(r"g\.(\d+)gb$")

UNAVAILABLE = (
    pynvml.NVMLError_NotSupported,
    pynvml.NVMLError_NoPermission,
    pynvml.NVMLError_FunctionNotFound,
    pynvml.NVMLError_ArgumentVersionMismatch,   # the driver lacks this struct version (memory v2)
    pynvml.NVMLLibraryMismatchError,   # an Exception, not an NVMLError: the driver lacks the _vN symbol
)
DEVICE_FAULTS = (
    pynvml.NVMLError_GpuIsLost,
    pynvml.NVMLError_ResetRequired,
    pynvml.NVMLError_DriverNotLoaded,
    pynvml.NVMLError_LibRmVersionMismatch,
    pynvml.NVMLError_Unknown,
)
EMPTY_MIG_SLOT = (pynvml.NVMLError_NotFound, pynvml.NVMLError_InvalidArgument)
# The union member of c_nvmlValue_t holding a sample, by the value type nvmlDeviceGetSamples returns.
SAMPLE_FIELD = {
    pynvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
    pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
    pynvml.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal",
}


@attrs.frozen
class Device:
    """One billable GPU: a whole card, or a MIG device (``mig``, with its parent's UUID)."""

    index: int                      # NVML index of the physical GPU (PCI order; for display only)
    uuid: str
    name: str                       # NVML's product name, as read
    gpu_type: str | None            # canonical type (gputypes), None when the name is not known
    memory_total_bytes: int | None
    mig: bool
    parent_uuid: str | None
    fraction: Fraction              # 1 for a whole GPU; a MIG device's memory share in eighths
    interconnect: str | None        # "nvlink" | "pcie" | None (unavailable)
    mig_profile: str | None = None  # "3g.40gb" for a MIG device


@attrs.frozen
class Sample:
    """One reading of one device. None: unavailable on this device (never 0 for unknown)."""

    t_ms: int                       # monotonic ms of the reading (the caller's clock)
    uuid: str
    utilization: int | None         # % of the period a kernel ran (NVML's "gpu" figure, 0..100)
    memory_used_bytes: int | None
    power_mw: int | None
    energy_mj: int | None           # the cumulative counter as read (mJ since the driver loaded)
    pids: tuple[tuple[int, int | None], ...] = ()   # (host pid, used bytes or None when NVML can't say)


class NvmlBackend(Protocol):
    def devices(self) -> list[Device]: ...
    def sample(self, uuids: Sequence[str], t_ms: int) -> list[Sample]: ...
    def lost(self) -> frozenset[str]: ...
    def close(self) -> None: ...


class _Lost(Exception):
    """A device fault during one device's reading (internal: the device is already marked lost)."""


def value(v: Any) -> int | None:
    """An NVML integer with the NOT_AVAILABLE sentinels (and None) mapped to None."""
    return None if v is None or int(v) in NOT_AVAILABLE else int(v)


def mig_fraction(memory: int | None, card_memory: int | None, profile: str | None,
                 card_name: str, slices: int | None) -> Fraction:
    """A MIG device's share of its GPU by memory, in eighths (1/8..1).

    From the measured memory sizes; failing that from the profile name's GB over the card's
    nominal GB (3g.40gb on an 80 GB card: 4/8); failing that from the slice count; 1/8 if
    nothing is known (never more than was allocated)."""
    eighths = None
    gb = PROFILE_GB.search(profile) if profile else None
    if memory and card_memory:
        eighths = round(Fraction(MIG_MEMORY_EIGHTHS * memory, card_memory))
    elif gb and nominal_gb(card_name):
        eighths = round(Fraction(MIG_MEMORY_EIGHTHS * int(gb[1]), nominal_gb(card_name)))
    elif slices in EIGHTHS_BY_SLICES:
        eighths = EIGHTHS_BY_SLICES[slices]
    return Fraction(min(max(eighths or 1, 1), MIG_MEMORY_EIGHTHS), MIG_MEMORY_EIGHTHS)


class PynvmlBackend:
    """NvmlBackend over nvidia-ml-py. Build it with ``open_backend()`` (which has called nvmlInit)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """Forget every handle, cursor and capability answer (they belong to one NVML session)."""
        self._handles: dict[str, Any] = {}
        self._unavailable: set[tuple[str, str]] = set()
        self._cursors: dict[str, int] = {}        # uuid -> last nvmlDeviceGetSamples timeStamp seen
        self._lost: set[str] = set()
        self._broken = False                      # the last enumeration failed: re-initialise first

    def _query(self, uuid: str, what: str, fn: Callable[..., Any], *args: Any, default: Any = None) -> Any:
        """fn(*args), with NVML's errors turned into 'unavailable' (cached), 'lost' or one missed value."""
        if (uuid, what) in self._unavailable:
            return default
        try:
            return fn(*args)
        except UNAVAILABLE as e:
            self._unavailable.add((uuid, what))
            log.info("NVML: %s unavailable on %s (%s); not asked again", what, uuid, type(e).__name__)
        except DEVICE_FAULTS as e:
            self._lost.add(uuid)
            log.warning("NVML: %s on %s during %s: device marked lost", type(e).__name__, uuid, what)
            raise _Lost(uuid) from e
        except pynvml.NVMLError:
            pass
        return default

    # -- inventory ------------------------------------------------------------------------------

    def devices(self) -> list[Device]:
        """The billable devices now: each GPU, or for a GPU in MIG mode its MIG devices instead
        (re-initialising NVML first after a device fault)."""
        if (self._lost or self._broken) and not self._reinit():
            return []
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as e:
            self._broken = True
            log.warning("NVML: device count failed (%s)", type(e).__name__)
            return []
        self._handles = {}    # MIG handles are reused after a reconfiguration: only this inventory's count
        found: list[Device] = []
        for i in range(count):
            try:
                found += self._physical(i)
            except (pynvml.NVMLError, _Lost) as e:
                log.warning("NVML: GPU %d skipped (%s)", i, type(e).__name__)
        return found

    def _physical(self, index: int) -> list[Device]:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        uuid = text(pynvml.nvmlDeviceGetUUID(handle))
        name = text(pynvml.nvmlDeviceGetName(handle))
        self._handles[uuid] = handle
        memory = self._memory_total(uuid, handle)
        gpu = Device(index=index, uuid=uuid, name=name, gpu_type=gpu_type(name), memory_total_bytes=memory,
                     mig=False, parent_uuid=None, fraction=Fraction(1),
                     interconnect=self._interconnect(uuid, handle))
        migs = self._mig_devices(gpu, handle)
        return [gpu] if migs is None else migs

    def _memory_total(self, uuid: str, handle: Any) -> int | None:
        info = self._query(uuid, "memory", pynvml.nvmlDeviceGetMemoryInfo, handle)
        return value(info.total) if info is not None else None

    def _interconnect(self, uuid: str, handle: Any) -> str | None:
        """"nvlink" if any NVLink is active, "pcie" if none (or none exists), None if NVML won't say."""
        for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
            try:
                if pynvml.nvmlDeviceGetNvLinkState(handle, link) == pynvml.NVML_NVLINK_STATE_ACTIVE:
                    return NVLINK
            except (pynvml.NVMLError_InvalidArgument, pynvml.NVMLError_NotSupported, pynvml.NVMLError_NotFound):
                break          # past the last link, or no NVLink on this part
            except (pynvml.NVMLError, pynvml.NVMLLibraryMismatchError):
                return None
        return PCIE

    def _mig_devices(self, gpu: Device, handle: Any) -> list[Device] | None:
        """The MIG devices of a GPU in MIG mode (they, not the GPU, run and bill jobs); None when
        MIG is off."""
        mode = self._query(gpu.uuid, "mig_mode", pynvml.nvmlDeviceGetMigMode, handle)
        if not mode or mode[0] != pynvml.NVML_DEVICE_MIG_ENABLE:
            return None
        slots = self._query(gpu.uuid, "mig_count", pynvml.nvmlDeviceGetMaxMigDeviceCount, handle, default=0)
        out = []
        for slot in range(slots):
            try:
                mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except EMPTY_MIG_SLOT:
                continue
            out.append(self._mig_device(gpu, mig))
        return out

    def _mig_device(self, gpu: Device, mig: Any) -> Device:
        uuid = text(pynvml.nvmlDeviceGetUUID(mig))
        name = text(pynvml.nvmlDeviceGetName(mig))
        self._handles[uuid] = mig
        memory = self._memory_total(uuid, mig)
        attributes = self._query(uuid, "attributes", pynvml.nvmlDeviceGetAttributes, mig)
        slices = attributes.gpuInstanceSliceCount if attributes is not None else None
        profile = split_mig(name)[1]
        return Device(index=gpu.index, uuid=uuid, name=name, gpu_type=gpu.gpu_type, memory_total_bytes=memory,
                      mig=True, parent_uuid=gpu.uuid,
                      fraction=mig_fraction(memory, gpu.memory_total_bytes, profile, gpu.name, slices),
                      interconnect=gpu.interconnect, mig_profile=profile)

    def _reinit(self) -> bool:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as e:
            log.warning("NVML: re-initialisation failed (%s)", type(e).__name__)
            return False
        self._reset()
        return True

    # -- sampling -------------------------------------------------------------------------------

    def sample(self, uuids: Sequence[str], t_ms: int) -> list[Sample]:
        """One reading per device; a lost or unknown device gives none."""
        out = []
        for uuid in uuids:
            handle = self._handles.get(uuid)
            if handle is None or uuid in self._lost:
                continue
            try:
                out.append(self._sample_one(uuid, handle, t_ms))
            except _Lost:
                continue
        return out

    def _sample_one(self, uuid: str, handle: Any, t_ms: int) -> Sample:
        processes = self._query(uuid, "processes", pynvml.nvmlDeviceGetComputeRunningProcesses, handle, default=[])
        return Sample(
            t_ms=t_ms, uuid=uuid,
            utilization=self._utilization(uuid, handle),
            memory_used_bytes=self._memory_used(uuid, handle),
            power_mw=value(self._query(uuid, "power", pynvml.nvmlDeviceGetPowerUsage, handle)),
            energy_mj=value(self._query(uuid, "energy", pynvml.nvmlDeviceGetTotalEnergyConsumption, handle)),
            pids=tuple((int(p.pid), value(p.usedGpuMemory)) for p in processes),
        )

    def _memory_used(self, uuid: str, handle: Any) -> int | None:
        """Used bytes without the driver's reserved memory (v2) where the driver has it, else v1's."""
        info = self._query(uuid, "memory_v2", pynvml.nvmlDeviceGetMemoryInfo, handle, pynvml.nvmlMemory_v2)
        if info is None:
            info = self._query(uuid, "memory", pynvml.nvmlDeviceGetMemoryInfo, handle)
        return value(info.used) if info is not None else None

    def _utilization(self, uuid: str, handle: Any) -> int | None:
        """The mean of the driver's utilization samples since the last reading (the cursor), rounded
        to a whole percent; NVML's current figure when there are none new (or on the first reading,
        whose buffer reaches back before the job)."""
        cursor = self._cursors.get(uuid)
        kind, samples = self._query(uuid, "samples", pynvml.nvmlDeviceGetSamples, handle,
                                    pynvml.NVML_GPU_UTILIZATION_SAMPLES, cursor or 0, default=(None, []))
        fresh = [s for s in samples if s.timeStamp > (cursor or 0)]
        if fresh:
            self._cursors[uuid] = max(s.timeStamp for s in fresh)
        values = [value(getattr(s.sampleValue, SAMPLE_FIELD.get(kind, "uiVal"))) for s in fresh]
        values = [v for v in values if v is not None]
        if cursor is not None and values:
            return round(Fraction(sum(values), len(values)))
        rates = self._query(uuid, "utilization", pynvml.nvmlDeviceGetUtilizationRates, handle)
        return value(rates.gpu) if rates is not None else None

    def lost(self) -> frozenset[str]:
        return frozenset(self._lost)

    def close(self) -> None:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


@functools.cache
def _say_no_nvml(reason: str) -> None:
    log.warning("no NVML (%s): GPU properties are unavailable, durations are still metered", reason)


def open_backend() -> PynvmlBackend | None:
    """The NVML backend, or None where there is no NVML (no library, no driver, no permission): logged once."""
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError) as e:
        _say_no_nvml(type(e).__name__)
        return None
    return PynvmlBackend()
