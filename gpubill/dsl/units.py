"""Units of quantities: seconds to hours, tokens, bytes, FLOP, GPUs.

A unit is a dimension (base -> exponent) and an exact Decimal scale relative
to the base units (second, token, byte, FLOP, GPU, count). Quantity
expressions get a unit from the canonical properties they use; a metric's
`in UNIT` converts the aggregate; a price's `per UNIT` must have the same
dimension as the metric. The `gpu` and `count` bases are "soft": a GPU-second
can be priced per hour (the GPU is the thing being counted), and `per event`
fits any count.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

D = Decimal

# name -> (dimension, scale). Plural and case variants are added below.
_BASE: dict[str, tuple[dict[str, int], Decimal]] = {
    "second": ({"time": 1}, D(1)),
    "sec": ({"time": 1}, D(1)),
    "s": ({"time": 1}, D(1)),
    "millisecond": ({"time": 1}, D("0.001")),
    "ms": ({"time": 1}, D("0.001")),
    "minute": ({"time": 1}, D(60)),
    "min": ({"time": 1}, D(60)),
    "hour": ({"time": 1}, D(3600)),
    "h": ({"time": 1}, D(3600)),
    "hr": ({"time": 1}, D(3600)),
    "day": ({"time": 1}, D(86400)),
    "week": ({"time": 1}, D(604800)),
    "token": ({"token": 1}, D(1)),
    "ktoken": ({"token": 1}, D(10) ** 3),
    "Ktoken": ({"token": 1}, D(10) ** 3),
    "Mtoken": ({"token": 1}, D(10) ** 6),
    "byte": ({"byte": 1}, D(1)),
    "B": ({"byte": 1}, D(1)),
    "KB": ({"byte": 1}, D(10) ** 3),
    "MB": ({"byte": 1}, D(10) ** 6),
    "GB": ({"byte": 1}, D(10) ** 9),
    "TB": ({"byte": 1}, D(10) ** 12),
    "KiB": ({"byte": 1}, D(2) ** 10),
    "MiB": ({"byte": 1}, D(2) ** 20),
    "GiB": ({"byte": 1}, D(2) ** 30),
    "TiB": ({"byte": 1}, D(2) ** 40),
    "FLOP": ({"flop": 1}, D(1)),
    "GFLOP": ({"flop": 1}, D(10) ** 9),
    "TFLOP": ({"flop": 1}, D(10) ** 12),
    "PFLOP": ({"flop": 1}, D(10) ** 15),
    "EFLOP": ({"flop": 1}, D(10) ** 18),
    # A PFLOP/s sustained for an hour: the research unit of compute.
    "PFLOP-hour": ({"flop": 1}, D(10) ** 15 * 3600),
    "PFLOPS-hour": ({"flop": 1}, D(10) ** 15 * 3600),
    "PFLOP-day": ({"flop": 1}, D(10) ** 15 * 86400),
    "GPU": ({"gpu": 1}, D(1)),
    "gpu": ({"gpu": 1}, D(1)),
    "event": ({"count": 1}, D(1)),
    "call": ({"count": 1}, D(1)),
    "request": ({"count": 1}, D(1)),
    "job": ({"count": 1}, D(1)),
    "unit": ({"count": 1}, D(1)),
    "instance": ({"count": 1}, D(1)),
    "image": ({"count": 1}, D(1)),
    "seat": ({"count": 1}, D(1)),
    "inference": ({"count": 1}, D(1)),
}

SOFT = frozenset({"gpu", "count"})

#: Units of the canonical event properties (DESIGN.md). Others are plain numbers.
PROPERTY_UNITS: dict[str, str] = {
    "duration_seconds": "second",
    "gpu_count": "GPU",
    "input_tokens": "token",
    "output_tokens": "token",
    "cached_tokens": "token",
    "peak_vram_gb": "GB",
    "total_flops": "FLOP",
}

#: Canonical properties that are numbers, and those that are strings.
NUMERIC_PROPERTIES = frozenset(PROPERTY_UNITS) | {"avg_utilization"}
STRING_PROPERTIES = frozenset(
    {
        "gpu_type", "interconnect", "region", "availability_class", "model_name", "job_id",
        "end_reason", "operation_type",
    }
)
CANONICAL_VALUES: dict[str, tuple[str, ...]] = {
    "availability_class": ("on_demand", "reserved", "spot"),
    "end_reason": ("completed", "preempted", "failed_user", "failed_infrastructure"),
    "operation_type": ("add", "remove"),
}


@attrs.frozen
class UnitValue:
    dims: tuple[tuple[str, int], ...]  # sorted, zero exponents dropped
    scale: Decimal

    @staticmethod
    def of(dims: dict[str, int], scale: Decimal) -> "UnitValue":
        return UnitValue(tuple(sorted((k, v) for k, v in dims.items() if v)), scale)

    def __mul__(self, other: "UnitValue") -> "UnitValue":
        d = dict(self.dims)
        for k, v in other.dims:
            d[k] = d.get(k, 0) + v
        return UnitValue.of(d, self.scale * other.scale)

    @property
    def hard_dims(self) -> tuple[tuple[str, int], ...]:
        return tuple((k, v) for k, v in self.dims if k not in SOFT)

    def compatible(self, other: "UnitValue") -> bool:
        return self.hard_dims == other.hard_dims

    def describe(self) -> str:
        if not self.dims:
            return "a plain number"
        words = {"time": "time", "token": "tokens", "byte": "bytes", "flop": "FLOP", "gpu": "GPUs", "count": "a count"}
        return " x ".join(words[k] + (f"^{v}" if v != 1 else "") for k, v in self.dims)


DIMENSIONLESS = UnitValue((), Decimal(1))


def _singular(name: str) -> str:
    for suffix in ("s",):
        if name.endswith(suffix) and name[:-1] in _BASE:
            return name[:-1]
    return name


def lookup(name: str) -> UnitValue | None:
    """The unit for a name such as `hours`, `GPU-hour`, `GB-hours`, `Mtokens`; None if unknown."""
    if name in _BASE:
        dims, scale = _BASE[name]
        return UnitValue.of(dims, scale)
    single = _singular(name)
    if single in _BASE:
        dims, scale = _BASE[single]
        return UnitValue.of(dims, scale)
    if name.endswith("s") and name[:-1] in _BASE:  # PFLOP-hours
        return lookup(name[:-1])
    if "-" in name:
        total = DIMENSIONLESS
        for part in name.split("-"):
            u = lookup(part)
            if u is None:
                return None
            total = total * u
        return total
    lowered = name.lower()
    for k in _BASE:
        if k.lower() == lowered or k.lower() + "s" == lowered:
            dims, scale = _BASE[k]
            return UnitValue.of(dims, scale)
    return None


def known_units() -> list[str]:
    return sorted(_BASE)


def property_unit(name: str) -> UnitValue:
    u = PROPERTY_UNITS.get(name)
    return lookup(u) if u else DIMENSIONLESS
