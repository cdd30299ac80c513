"""Validation of one canonical event: the exact rules and their messages.

``check_event(obj, now_ms, max_future_ms)`` returns ``(Normalized, [])`` or
``(None, problems)``; every problem names the field and the reason. The chunk
encoder (``encode.py``) checks whole columns at once and falls back to this
module for the events its fast path cannot settle, so the rules live here.

Rules (docs/store.md has the table):

* the event is a JSON object of at most ``MAX_EVENT_BYTES`` once serialized;
* ``transaction_id``, ``external_subscription_id``, ``code``: non-empty strings
  of at most 256 characters;
* ``timestamp``: Unix seconds as a JSON number or a strict numeric string
  (as Lago), or ISO-8601 with an offset ("2025-01-01T00:00:00Z"); a naive
  date-time is rejected; missing or null means the reception time (as Lago);
  kept to the millisecond (finer digits are truncated toward the past);
  not before 1970, not more than ``max_future`` ahead of the reception time;
* ``properties``: an object (missing or null means ``{}``) of at most 256 keys,
  values nested at most ``MAX_DEPTH`` deep, strings of at most 4096 characters;
* ``precise_total_amount_cents``: null, or a strict decimal string (or a JSON
  number), as Lago;
* NaN and Infinity are rejected anywhere;
* the canonical properties have the types in ``CANONICAL``.
"""

from __future__ import annotations

import math
from datetime import datetime

import attrs

from .numeric import MISSING, STRICT, from_number, parse_strict

MAX_ID_LEN = 256
MAX_KEYS = 256
MAX_STRING = 4096
MAX_DEPTH = 4
MAX_EVENT_BYTES = 64 * 1024
MAX_TS_MS = 253402300799999  # 9999-12-31T23:59:59.999Z

END_REASONS = frozenset({"completed", "preempted", "failed_user", "failed_infrastructure"})
AVAILABILITY = frozenset({"on_demand", "reserved", "spot"})
OPERATIONS = frozenset({"add", "remove"})


@attrs.frozen
class Problem:
    """Why an event was rejected: the field (dotted path) and a reason."""

    field: str
    code: str
    message: str

    def text(self) -> str:
        return f"{self.field}: {self.message}"


@attrs.frozen
class Normalized:
    """An event that passed validation, with its timestamp in UTC epoch ms."""

    transaction_id: str
    external_subscription_id: str
    code: str
    timestamp_ms: int
    properties: dict
    precise_total_amount_cents: tuple[int, int] | None


def _number(v):
    """A finite number from a JSON number or strict numeric string, else None."""
    t = type(v)
    if t is int:
        return v
    if t is float:
        return v if math.isfinite(v) else None
    if t is str and STRICT.fullmatch(v):
        return float(v) if "." in v else int(v)
    return None


def _nonneg(v):
    x = _number(v)
    if x is None:
        return "not_a_number", f"must be a number or a numeric string, got {_show(v)}"
    if x < 0:
        return "must_be_non_negative", f"must be >= 0, got {_show(v)}"
    return None


def _count(v):
    if type(v) is int:
        n = v
    elif type(v) is str and STRICT.fullmatch(v) and "." not in v:
        n = int(v)
    else:
        return "not_an_integer", f"must be a non-negative integer, got {_show(v)}"
    if n < 0:
        return "must_be_non_negative", f"must be >= 0, got {_show(v)}"
    return None


def _fraction(v):
    x = _number(v)
    if x is None:
        return "not_a_number", f"must be a number or a numeric string, got {_show(v)}"
    if not 0 <= x <= 1:
        return "out_of_range", f"must be between 0 and 1, got {_show(v)}"
    return None


def _text(v):
    if type(v) is not str or not v:
        return "not_a_string", f"must be a non-empty string, got {_show(v)}"
    return None


def _one_of(allowed):
    def check(v):
        if type(v) is not str or v not in allowed:
            return "invalid_value", f"must be one of {', '.join(sorted(allowed))}, got {_show(v)}"
        return None
    check.allowed = allowed
    return check


#: canonical property -> checker(value) -> None or (code, message)
CANONICAL = {
    "gpu_type": _text,
    "gpu_count": _nonneg,
    "duration_seconds": _nonneg,
    "avg_utilization": _fraction,
    "peak_vram_gb": _nonneg,
    "interconnect": _text,
    "region": _text,
    "availability_class": _one_of(AVAILABILITY),
    "model_name": _text,
    "input_tokens": _count,
    "output_tokens": _count,
    "cached_tokens": _count,
    "total_flops": _nonneg,
    "job_id": _text,
    "end_reason": _one_of(END_REASONS),
    "operation_type": _one_of(OPERATIONS),
}


def _show(v) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def parse_timestamp(v, now_ms: int) -> tuple[int | None, Problem | None]:
    """Timestamp in UTC epoch ms, or a problem. None/missing -> now_ms."""
    if v is None:
        return now_ms, None
    t = type(v)
    if t is int:
        ms = v * 1000
    elif t is float:
        if not math.isfinite(v):
            return None, Problem("timestamp", "invalid_format", "must be finite (NaN/Infinity are not numbers)")
        m, e = from_number(v)
        ms = _ms_of(m, e) if e != MISSING else None
    elif t is str:
        p = parse_strict(v)
        if p is not None:
            ms = _ms_of(*p) if p[1] != MISSING else None
        else:
            ms = _iso_ms(v)
            if ms is None:
                return None, Problem(
                    "timestamp", "invalid_format",
                    f"must be Unix seconds or ISO-8601 with an offset, got {_show(v)}")
            if ms == "naive":
                return None, Problem(
                    "timestamp", "invalid_format",
                    f"date-time without a UTC offset is ambiguous, got {_show(v)} (add Z or +hh:mm)")
    else:
        return None, Problem("timestamp", "invalid_format",
                             f"must be a number or a string, got {_show(v)}")
    if ms is None or not 0 <= ms <= MAX_TS_MS:
        return None, Problem("timestamp", "out_of_range", f"is out of range, got {_show(v)}")
    return ms, None


def _ms_of(m: int, e: int) -> int:
    # floor(m * 10**e * 1000) exactly
    e3 = e + 3
    return m * 10**e3 if e3 >= 0 else m // 10**(-e3)


def _iso_ms(s: str):
    if len(s) > 40:
        return None
    try:
        d = datetime.fromisoformat(s.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    if d.tzinfo is None or d.utcoffset() is None:
        return "naive"
    return int(d.timestamp()) * 1000 + d.microsecond // 1000


def _id(obj: dict, name: str, problems: list) -> str | None:
    v = obj.get(name)
    if v is None:
        problems.append(Problem(name, "value_is_mandatory", "is missing"))
    elif type(v) is not str:
        problems.append(Problem(name, "invalid_type", f"must be a string, got {_show(v)}"))
    elif not v or len(v) > MAX_ID_LEN:
        problems.append(Problem(name, "invalid_length", f"must have 1 to {MAX_ID_LEN} characters"))
    else:
        return v
    return None


def check_value(path: str, v, depth: int, problems: list) -> None:
    """Generic checks on any property value: finite, bounded, not too deep."""
    t = type(v)
    if t is float and not math.isfinite(v):
        problems.append(Problem(path, "not_finite", "NaN and Infinity are not allowed"))
    elif t is str and len(v) > MAX_STRING:
        problems.append(Problem(path, "too_long", f"string longer than {MAX_STRING} characters"))
    elif t is dict or t is list:
        if depth >= MAX_DEPTH:
            problems.append(Problem(path, "too_deep", f"nested deeper than {MAX_DEPTH} levels"))
            return
        items = v.items() if t is dict else enumerate(v)
        if len(v) > MAX_KEYS:
            problems.append(Problem(path, "too_large", f"more than {MAX_KEYS} entries"))
            return
        for k, x in items:
            if t is dict and type(k) is not str:
                problems.append(Problem(path, "invalid_key", "object keys must be strings"))
                return
            check_value(f"{path}.{k}", x, depth + 1, problems)
    elif not (v is None or t is str or t is int or t is bool or t is float):
        problems.append(Problem(path, "invalid_type", f"unsupported value {_show(v)}"))


class Unparsable:
    """Stands for an input record that is not JSON (or not UTF-8): always rejected."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


def check_event(obj, now_ms: int, max_future_ms: int) -> tuple[Normalized | None, list[Problem]]:
    """Validate one event (a parsed JSON object). The slow, exact path."""
    if type(obj) is Unparsable:
        return None, [Problem("event", "invalid_json", obj.message)]
    if type(obj) is not dict:
        return None, [Problem("event", "invalid_type", f"must be a JSON object, got {_show(obj)}")]
    problems: list[Problem] = []
    txn = _id(obj, "transaction_id", problems)
    sub = _id(obj, "external_subscription_id", problems)
    code = _id(obj, "code", problems)
    ts, p = parse_timestamp(obj.get("timestamp"), now_ms)
    if p:
        problems.append(p)
    elif ts > now_ms + max_future_ms:
        problems.append(Problem("timestamp", "too_far_in_future",
                                f"is more than {max_future_ms // 3_600_000} h after the reception time"))
    props = obj.get("properties")
    if props is None:
        props = {}
    if type(props) is not dict:
        problems.append(Problem("properties", "invalid_type", f"must be an object, got {_show(props)}"))
        props = {}
    elif len(props) > MAX_KEYS:
        problems.append(Problem("properties", "too_large", f"more than {MAX_KEYS} properties"))
    else:
        for k, v in props.items():
            path = f"properties.{k}"
            if len(k) > MAX_ID_LEN:
                problems.append(Problem(path, "invalid_key", f"name longer than {MAX_ID_LEN} characters"))
                continue
            n0 = len(problems)
            check_value(path, v, 1, problems)
            chk = CANONICAL.get(k)
            if chk is not None and len(problems) == n0 and v is not None:
                r = chk(v)
                if r:
                    problems.append(Problem(path, r[0], r[1]))
    ptac = _ptac(obj.get("precise_total_amount_cents"), problems)
    if problems:
        return None, problems
    return Normalized(txn, sub, code, ts, props, ptac), []


def _ptac(v, problems):
    if v is None:
        return None
    if type(v) is str:
        p = parse_strict(v)
        if p is not None:
            return p
    elif (type(v) is int) or (type(v) is float and math.isfinite(v)):
        return from_number(v)
    problems.append(Problem("precise_total_amount_cents", "invalid_format",
                            f"must be a decimal string such as \"123.45\", got {_show(v)}"))
    return None


def problems_text(problems: list[Problem]) -> str:
    return "; ".join(p.text() for p in problems)
