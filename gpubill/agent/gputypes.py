"""NVML product names -> the canonical ``gpu_type`` names the plans price.

NVML names a part as the driver does ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"; a MIG
device adds " MIG 3g.40gb"). The examples' metrics and plans know four types: "A100-40GB",
"A100-80GB", "H100-SXM" and "H200". A name no rule matches maps to None: the raw string is never
billed (the operator names the type instead, ``--gpu-type``).
"""

from __future__ import annotations

import re

# (pattern on the NVML name without its MIG suffix, canonical gpu_type, nominal memory in GB). First match wins.
RULES: tuple[tuple[re.Pattern[str], str, int], ...] = (
    (re.compile(r"\bA100\b.*\b40\s?GB\b", re.I), "A100-40GB", 40),
    (re.compile(r"\bA100\b.*\b80\s?GB\b", re.I), "A100-80GB", 80),
    (re.compile(r"\bH100\b.*\b(HBM3|SXM5?)\b", re.I), "H100-SXM", 80),
    (re.compile(r"\bH200$", re.I), "H200", 141),
)
MIG_SUFFIX = re.compile(r"\s+MIG\s+(?P<profile>\d+g\.\d+gb)\s*$", re.I)


def text(value: str | bytes) -> str:
    """NVML strings are str in nvidia-ml-py >= 11.525 and bytes before: accept both."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def split_mig(name: str) -> tuple[str, str | None]:
    """("NVIDIA H100 80GB HBM3", "3g.40gb") for a MIG device's name; (name, None) for a whole GPU."""
    m = MIG_SUFFIX.search(name)
    return (name[: m.start()], m["profile"].lower()) if m else (name, None)


def _rule(name: str) -> tuple[str, int] | None:
    base, _ = split_mig(text(name).strip())
    for pattern, gpu_type, gb in RULES:
        if pattern.search(base):
            return gpu_type, gb
    return None


def gpu_type(name: str | bytes) -> str | None:
    """The canonical gpu_type of an NVML device name (a MIG device: its parent's type), None if unknown."""
    rule = _rule(text(name))
    return rule[0] if rule else None


def nominal_gb(name: str | bytes) -> int | None:
    """The card's nominal memory in GB (80 for an H100 SXM), the unit of MIG profile names; None if unknown."""
    rule = _rule(text(name))
    return rule[1] if rule else None
