"""Validation of one canonical event: the exact rules and their messages.

``check_event(obj, now_ms, max_future_ms, size=None)`` returns
``(Normalized, [])`` or ``(None, problems)``; every problem names the field and
the reason. The chunk encoder (``encode.py``) checks whole columns at once and
falls back to this module for the events its fast path cannot settle, so the
rules live here (docs/store.md, "Limits", lists each with its error).

Rules:

* the event is a JSON object of at most ``MAX_EVENT_BYTES`` once serialized
  (its raw payload when one is given, else its compact JSON);
* ``transaction_id``, ``external_subscription_id``, ``code``: non-empty strings
  of at most ``MAX_ID_LEN`` characters, without control characters
  (U+0000-U+001F, U+007F) or lone surrogates;
* ``timestamp``: Unix seconds as a JSON number or a strict numeric string
  (as Lago), or ISO-8601 with an offset ("2025-01-01T00:00:00Z"); a naive
  date-time is rejected; missing or null means the reception time (as Lago);
  kept to the millisecond (finer digits are truncated toward the past);
  not before 1970 (the instant itself, not its truncation), not after
  ``MAX_TS_MS``, not more than ``max_future`` ahead of the reception time;
* ``properties``: an object (missing or null means ``{}``) of at most
  ``MAX_KEYS`` keys of at most ``MAX_ID_LEN`` characters, values nested at most
  ``MAX_DEPTH`` deep, objects and arrays of at most ``MAX_KEYS`` entries,
  strings of at most ``MAX_STRING`` characters;
* ``precise_total_amount_cents``: null, or a strict decimal string (or a JSON
  number), as Lago, that the engine can hold exactly (``fits_quantity``);
* anywhere (properties and any other top-level field): NaN and Infinity are
  rejected; text must be valid Unicode (no lone surrogates); a JSON number
  must be one the (int64, int8) pair holds exactly (``gpubill/numbers.py``);
* the canonical properties have the types in ``CANONICAL``; their quantities
  must be ones the engine can hold exactly.

"Strictly numeric" is ``^-?[0-9]+(\\.[0-9]+)?$`` with ASCII digits only.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta, timezone

import attrs
import orjson

from gpubill.text import shown

from .numeric import (I64_MAX, MAX_FRACTION_DIGITS, STRICT, fits_quantity, from_number, held,
                      parse_strict)

MAX_ID_LEN = 256
MAX_KEYS = 256
MAX_STRING = 4096
MAX_DEPTH = 4
MAX_EVENT_BYTES = 64 * 1024
MAX_TS_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
FLOPS_SCALE = 9  # total_flops may pass 2**63 - 1: the engine counts it in 10**9 FLOP (engine/spec/compile.py)

END_REASONS = frozenset({"completed", "preempted", "failed_user", "failed_infrastructure"})
AVAILABILITY = frozenset({"on_demand", "reserved", "spot"})
OPERATIONS = frozenset({"add", "remove"})
TOP_LEVEL = frozenset({"transaction_id", "external_subscription_id", "code", "timestamp", "properties",
                       "precise_total_amount_cents"})

ID_BAD_CHARS = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
SURROGATE = re.compile("[\ud800-\udfff]")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


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


def _pair(v):
    """(mantissa, exponent) of a JSON number or strict numeric string, else None."""
    if _finite_number(v):
        return from_number(v)
    return parse_strict(v) if type(v) is str else None


def _unholdable(v, max_scale: int = 0):
    top = f"{I64_MAX}" + (f"e{max_scale}" if max_scale else "")
    return "out_of_range", (f"cannot be held exactly: at most {top} with at most "
                            f"{MAX_FRACTION_DIGITS} decimals, got {shown(v)}")


def _quantity(kind: str, max_scale: int = 0):
    """A checker of a canonical quantity: ``nonneg``, ``count`` (integer) or ``fraction`` (0..1)."""
    def check(v):
        if kind == "count" and not (type(v) is int or type(v) is str and "." not in v and STRICT.fullmatch(v)):
            return "not_an_integer", f"must be a non-negative integer, got {shown(v)}"
        p = _pair(v)
        if p is None:
            return "not_a_number", f"must be a number or a numeric string, got {shown(v)}"
        if not fits_quantity(*p, max_scale):
            return _unholdable(v, max_scale)
        if p[0] < 0:
            return "must_be_non_negative", f"must be >= 0, got {shown(v)}"
        if kind == "fraction" and (p[0] * 10 ** max(p[1], 0) > 10 ** max(-p[1], 0)):
            return "out_of_range", f"must be between 0 and 1, got {shown(v)}"
        return None
    check.kind, check.max_scale = kind, max_scale
    return check


_nonneg = _quantity("nonneg")
_count = _quantity("count")
_fraction = _quantity("fraction")


def _text(v):
    if type(v) is not str or not v:
        return "not_a_string", f"must be a non-empty string, got {shown(v)}"
    return None


_text.kind = "text"  # the column encoder's vectorized form: a string of length >= 1


def _one_of(allowed):
    def check(v):
        if type(v) is not str or v not in allowed:
            return "invalid_value", f"must be one of {', '.join(sorted(allowed))}, got {shown(v)}"
        return None
    check.kind, check.allowed = "one_of", allowed  # vectorized by the column encoder
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
    "total_flops": _quantity("nonneg", FLOPS_SCALE),
    "job_id": _text,
    "end_reason": _one_of(END_REASONS),
    "operation_type": _one_of(OPERATIONS),
}




def _segment(k: str) -> str:
    """A property name as it appears in a field path: printable, escapes for the rest."""
    return k if k.isprintable() else k.encode("unicode_escape", "backslashreplace").decode("ascii")


_TS_RANGE = "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z"


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
        ms = _ms_of(m, e) if held(e) else None
    elif t is str:
        p = parse_strict(v)
        if p is not None:
            ms = _ms_of(*p) if held(p[1]) else None
        else:
            ms = _iso_ms(v)
            if ms is None:
                return None, Problem(
                    "timestamp", "invalid_format",
                    f"must be Unix seconds or ISO-8601 with an offset, got {shown(v)}")
            if ms == "naive":
                return None, Problem(
                    "timestamp", "invalid_format",
                    f"date-time without a UTC offset is ambiguous, got {shown(v)} (add Z or +hh:mm)")
    else:
        return None, Problem("timestamp", "invalid_format",
                             f"must be a number or a string, got {shown(v)}")
    if ms is None or not 0 <= ms <= MAX_TS_MS:
        return None, Problem("timestamp", "out_of_range", f"{_TS_RANGE}, got {shown(v)}")
    return ms, None


def _ms_of(m: int, e: int) -> int:
    # floor(m * 10**e * 1000) exactly (e is -126..127: bounded work)
    e3 = e + 3
    return m * 10**e3 if e3 >= 0 else m // 10**(-e3)


def _iso_ms(s: str):
    if len(s) > 40 or not s.isascii():
        return None
    try:
        d = datetime.fromisoformat(s.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    if d.tzinfo is None or d.utcoffset() is None:
        return "naive"
    return (d - _EPOCH) // _MS  # floor: 1969-12-31T23:59:59.5Z is -500, not 0


def _bad_char(s: str, pattern) -> str | None:
    """"U+XXXX at position N" for the first character of s matching pattern, else None."""
    m = pattern.search(s)
    return None if m is None else f"U+{ord(m.group()):04X} at position {m.start()}"


def _surrogate_problem(path: str, s: str) -> Problem | None:
    where = None if s.isascii() else _bad_char(s, SURROGATE)
    if where is None:
        return None
    return Problem(path, "invalid_unicode", f"contains a lone surrogate ({where}); text must be valid Unicode")


def _id(obj: dict, name: str, problems: list) -> str | None:
    v = obj.get(name)
    if v is None:
        problems.append(Problem(name, "value_is_mandatory", "is missing"))
    elif type(v) is not str:
        problems.append(Problem(name, "invalid_type", f"must be a string, got {shown(v)}"))
    elif not v or len(v) > MAX_ID_LEN:
        problems.append(Problem(name, "invalid_length", f"must have 1 to {MAX_ID_LEN} characters"))
    elif (where := _bad_char(v, ID_BAD_CHARS)) is not None:
        problems.append(Problem(name, "invalid_characters",
                                f"must not contain control characters or lone surrogates ({where})"))
    else:
        return v
    return None


def number_problem(v) -> tuple[str, str] | None:
    """Why a JSON number (int or float) is refused anywhere in an event, or None."""
    if type(v) is float:
        if not math.isfinite(v):
            return "not_finite", "NaN and Infinity are not allowed"
        if v == 0.0 or 1e-100 < abs(v) < 1e100:  # 17 digits, exponent within -116..100: held
            return None
    elif -I64_MAX <= v <= I64_MAX:
        return None
    if held(from_number(v)[1]):
        return None
    return "out_of_range", (f"number cannot be held exactly (at most 19 significant digits, |digits| <= "
                            f"{I64_MAX}, exponent -126..127), got {shown(v)}; send it as a string to keep it as text")


def _finite_number(v) -> bool:
    t = type(v)
    return t is int or (t is float and math.isfinite(v))


def check_value(path: str, v, depth: int, problems: list) -> None:
    """Generic checks on any value: finite, holdable, valid Unicode, bounded, not too deep."""
    t = type(v)
    if t is str:
        if len(v) > MAX_STRING:
            problems.append(Problem(path, "too_long", f"string longer than {MAX_STRING} characters"))
        elif (p := _surrogate_problem(path, v)) is not None:
            problems.append(p)
    elif t is int or t is float:
        r = number_problem(v)
        if r:
            problems.append(Problem(path, *r))
    elif t is dict or t is list:
        if depth >= MAX_DEPTH:
            problems.append(Problem(path, "too_deep", f"nested deeper than {MAX_DEPTH} levels"))
            return
        if len(v) > MAX_KEYS:
            problems.append(Problem(path, "too_large", f"more than {MAX_KEYS} entries"))
            return
        if t is list:
            for i, x in enumerate(v):
                check_value(f"{path}.{i}", x, depth + 1, problems)
            return
        for k, x in v.items():
            if type(k) is not str:
                problems.append(Problem(path, "invalid_key", "object keys must be strings"))
                return
            sub = f"{path}.{_segment(k)}"
            if len(k) > MAX_ID_LEN:
                problems.append(Problem(sub, "invalid_key", f"name longer than {MAX_ID_LEN} characters"))
            elif (p := _surrogate_problem(sub, k)) is not None:
                problems.append(p)
            else:
                check_value(sub, x, depth + 1, problems)
    elif not (v is None or t is bool):
        problems.append(Problem(path, "invalid_type", f"unsupported value {shown(v)}"))


class Unparsable:
    """Stands for an input record that is not JSON (or not UTF-8): always rejected."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


def dumps_any(obj) -> bytes:
    """Compact JSON of any parsed value (orjson, or the stdlib for integers beyond 64 bits).

    Raises TypeError / ValueError for what JSON cannot hold (lone surrogates,
    NaN in the stdlib fallback, integers beyond Python's str() limit, other
    types, nesting beyond the interpreter's recursion limit).
    """
    try:
        return orjson.dumps(obj)
    except TypeError:
        pass
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except RecursionError:
        raise ValueError("nested too deeply to serialize") from None


def quarantine_bytes(obj) -> bytes:
    """What quarantine keeps of a refused record given without its raw text. Never raises.

    Its compact JSON when it has one; else (lone surrogates, integers beyond
    Python's str() limit, non-JSON types) a best-effort JSON rendering: JSON
    escapes for surrogates, a description for each oversized integer, repr for
    other types.
    """
    try:
        return dumps_any(obj)
    except (TypeError, ValueError):
        pass
    try:
        return json.dumps(_describable(obj), separators=(",", ":"), default=repr).encode()
    except (TypeError, ValueError, RecursionError):
        return orjson.dumps(f"<a {type(obj).__name__} that cannot be shown>")


def _describable(v):
    t = type(v)
    if t is int and v.bit_length() > 128:
        return shown(v)
    if t is dict:
        return {(k if type(k) is str else shown(k)): _describable(x) for k, x in v.items()}
    if t is list or t is tuple:
        return [_describable(x) for x in v]
    return v


def serialized_size(obj) -> int:
    """Bytes of the compact JSON of an event, or -1 if it has none (the checks then say why)."""
    try:
        return len(dumps_any(obj))
    except (TypeError, ValueError):
        return -1


def too_large(size: int) -> Problem:
    return Problem("event", "too_large",
                   f"is {size} bytes serialized; the limit is {MAX_EVENT_BYTES} bytes (64 KiB)")


def check_event(obj, now_ms: int, max_future_ms: int,
                size: int | None = None) -> tuple[Normalized | None, list[Problem]]:
    """Validate one event (a parsed JSON object). The slow, exact path.

    ``size``: bytes of the event's stored payload (its raw text when the caller
    has one); None to measure its compact JSON here.
    """
    if type(obj) is Unparsable:
        return None, [Problem("event", "invalid_json", obj.message)]
    if type(obj) is not dict:
        return None, [Problem("event", "invalid_type", f"must be a JSON object, got {shown(obj)}")]
    if size is None:
        size = serialized_size(obj)
    if size > MAX_EVENT_BYTES:  # first, and alone: nothing else of a huge event is worth reading
        return None, [too_large(size)]
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
        problems.append(Problem("properties", "invalid_type", f"must be an object, got {shown(props)}"))
        props = {}
    elif len(props) > MAX_KEYS:
        problems.append(Problem("properties", "too_large", f"more than {MAX_KEYS} properties"))
    else:
        _check_properties(props, problems)
    ptac = _ptac(obj.get("precise_total_amount_cents"), problems)
    if not TOP_LEVEL.issuperset(obj):
        _check_extra_fields(obj, problems)
    if not problems and size < 0:
        problems.append(Problem("event", "invalid_value", "cannot be serialized as JSON"))
    if problems:
        return None, problems
    return Normalized(txn, sub, code, ts, props, ptac), []


def _check_properties(props: dict, problems: list) -> None:
    for k, v in props.items():
        if type(k) is not str:
            problems.append(Problem("properties", "invalid_key", "property names must be strings"))
            continue
        path = f"properties.{_segment(k)}"
        if len(k) > MAX_ID_LEN:
            problems.append(Problem(path, "invalid_key", f"name longer than {MAX_ID_LEN} characters"))
            continue
        p = _surrogate_problem(path, k)
        if p is not None:
            problems.append(p)
            continue
        n0 = len(problems)
        chk = CANONICAL.get(k)
        if chk is None or not _finite_number(v):  # a canonical quantity has its own, stricter bound
            check_value(path, v, 1, problems)
        if chk is not None and len(problems) == n0 and v is not None:
            r = chk(v)
            if r:
                problems.append(Problem(path, r[0], r[1]))


def _check_extra_fields(obj: dict, problems: list) -> None:
    """Top-level fields gpubill does not use are kept in the payload: they must be clean JSON too."""
    for k, v in obj.items():
        if k in TOP_LEVEL:
            continue
        if type(k) is not str:
            problems.append(Problem("event", "invalid_key", "field names must be strings"))
            continue
        p = _surrogate_problem(_segment(k), k)
        if p is not None:
            problems.append(p)
        else:
            check_value(_segment(k), v, 1, problems)


def _ptac(v, problems):
    if v is None:
        return None
    p = _pair(v)
    if p is None:
        problems.append(Problem("precise_total_amount_cents", "invalid_format",
                                f"must be a decimal string such as \"123.45\", got {shown(v)}"))
        return None
    if not fits_quantity(*p):
        code, message = _unholdable(v)
        problems.append(Problem("precise_total_amount_cents", code, message))
        return None
    return p
