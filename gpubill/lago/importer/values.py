"""Lago values -> `.bill` tokens: names, exact decimals, money from cents, strings.

Pure helpers. Every function either returns the exact token text or raises
`BadValue` with a message in the user's words; nothing is rounded.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal, InvalidOperation

from gpubill.dsl.currencies import MINOR_UNITS, minor_unit  # noqa: F401
from gpubill.lago.importer.jsonpos import plain_digits
from gpubill.dsl.limits import MAX_NUMBER_DIGITS

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


#: Currencies whose minor unit is not a power of ten: cents cannot be mapped exactly.
NON_DECIMAL = frozenset({"MGA", "MRU"})
CURRENCY_RE = re.compile(r"[A-Z]{3}")


class BadValue(Exception):
    """A Lago value that cannot become an exact `.bill` token."""


class Namer:
    """Deterministic `.bill` names for Lago codes, unique per kind.

    A code that is already a valid name is kept; otherwise every invalid
    character becomes `_`, and a leading digit gets the kind as prefix
    (`5eb0-...` -> `sub_5eb0_...`). Two codes that sanitize to the same
    name get `_2`, `_3`, ... in the order they were first seen.
    """

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.by_code: dict[str, str] = {}
        self.taken: set[str] = set()

    def __call__(self, code: str) -> str:
        if code not in self.by_code:
            self.by_code[code] = self.fresh(code)
        return self.by_code[code]

    def fresh(self, wanted: str) -> str:
        """A new unique name derived from `wanted` (not remembered as a code)."""
        base = re.sub(r"[^A-Za-z0-9_]", "_", wanted) or self.prefix
        if not NAME_RE.fullmatch(base):
            base = f"{self.prefix}_{base}"
        name, n = base, 1
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name


def is_name(s) -> bool:
    return isinstance(s, str) and NAME_RE.fullmatch(s) is not None


def decimal(v, what: str, *, allow_negative: bool = False) -> Decimal:
    """An exact Decimal from a Lago decimal string (or a JSON number)."""
    if isinstance(v, bool) or v is None:
        raise BadValue(f"{what} must be a decimal string like \"0.5\", not {_show(v)}")
    if isinstance(v, (int, Decimal)):
        d = Decimal(v)
    elif isinstance(v, str):
        if not re.fullmatch(r"\s*-?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?\s*", v):
            raise BadValue(f"{what} must be a decimal string like \"0.5\", not {_show(v)}")
        try:
            d = Decimal(v.strip())
        except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
            raise BadValue(f"{what} is not a decimal: {_show(v)}") from None
    else:
        raise BadValue(f"{what} must be a decimal string, not {_show(v)}")
    if d < 0 and not allow_negative:
        raise BadValue(f"{what} is negative ({_show(v)}); Lago rejects negative prices")
    return _fits(d, what)


def _fits(d: Decimal, what: str) -> Decimal:
    """`d`, when a `.bill` number can hold it written out (checked before anything writes it out)."""
    if plain_digits(d) > MAX_NUMBER_DIGITS:
        raise BadValue(f"{what} has more than {MAX_NUMBER_DIGITS} digits written out, "
                       "more than a .bill number may have")
    return d


def integer(v, what: str) -> int:
    d = decimal(v, what)
    if d != d.to_integral_value():
        raise BadValue(f"{what} must be a whole number, not {_show(v)}")
    return int(d)


def num(d: Decimal) -> str:
    """A Decimal as a `.bill` number: plain digits, never an exponent."""
    s = format(d, "f")
    return s[1:] if s.startswith("-") and d == 0 else s


def currency(code, what: str = "currency") -> str:
    if not isinstance(code, str) or not CURRENCY_RE.fullmatch(code):
        raise BadValue(f"{what} must be a 3-letter ISO 4217 code like \"USD\", not {_show(code)}")
    if code in NON_DECIMAL:
        raise BadValue(f"{code}'s minor unit is not a power of ten; its cents cannot be converted exactly")
    return code


def cents(v, cur: str, what: str) -> Decimal:
    """`amount_cents` -> an exact amount in the currency's major unit (1234 USD -> 12.34)."""
    n = integer(v, what)
    return _fits(Decimal(n).scaleb(-minor_unit(cur)), what)


#: What a `.bill` string cannot hold: control characters but a tab, and lone surrogates.
_NOT_IN_STRING = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


def string(s: str) -> str:
    """A `.bill` string literal."""
    s = writable(s)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def writable(s: str) -> str:
    """`s`, when a `.bill` string can hold it; `BadValue` saying why not otherwise."""
    problem = unwritable(s)
    if problem:
        raise BadValue(f"{_show(s)} {problem}")
    return s


def unwritable(s: str) -> str | None:
    """Why a `.bill` string cannot hold `s` (as the end of a sentence naming it), or None."""
    if "\n" in s or "\r" in s:
        return "contains a line break, which a .bill string cannot hold"
    if _NOT_IN_STRING.search(s):
        return "contains a control character or a lone surrogate, which a .bill string cannot hold"
    return None


def instant(v, what: str) -> str:
    """A Lago ISO-8601 timestamp -> a `.bill` date-time with its offset, same instant."""
    if not isinstance(v, str):
        raise BadValue(f"{what} must be an ISO-8601 date-time string, not {_show(v)}")
    try:
        t = dt.datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadValue(f"{what} is not an ISO-8601 date-time: {_show(v)}") from None
    if t.tzinfo is None:  # Lago stores and returns UTC
        t = t.replace(tzinfo=dt.timezone.utc)
    t = t.astimezone(dt.timezone.utc)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += "." + f"{t.microsecond:06d}".rstrip("0")
    return text + "Z"


def timezone(v, what: str) -> str:
    """An IANA timezone name, when the system's database knows it."""
    if not isinstance(v, str) or not v:
        raise BadValue(f"{what} must be an IANA timezone name like \"Europe/Paris\", not {_show(v)}")
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: a name too long
        raise BadValue(f"unknown timezone {_show(v)}") from None
    return writable(v)


def comment(s) -> str:
    """Text safe inside a `#` comment (one line)."""
    text = re.sub(r"[\r\n]+", " ", str(s)).strip()
    return _NOT_IN_STRING.sub("\ufffd", text)  # never a NUL or an unencodable surrogate in the file


def _show(v) -> str:
    if isinstance(v, str):
        return '"' + v + '"'
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return "an object" if isinstance(v, dict) else "a list"
    return str(v)
