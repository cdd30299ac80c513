"""JSON with positions: where each value of a Lago JSON file starts and ends.

`load(text, path) -> (value, Locator)`. Numbers are read exactly (floats as
`Decimal`, never `float`: Lago tier bounds such as 0.1 must stay 0.1). The
`Locator` maps a JSON path (a tuple of keys and indexes) to the span of its
value, so a diagnostic about `plans[0].charges[2]` points at the line and
column of that charge in the file, with the usual caret.

Invalid JSON raises `InvalidJson` with the 1-based line and column of the
error, from the standard library's own message. So does JSON that nests
deeper than MAX_JSON_DEPTH or holds a number a `.bill` file cannot (more than
MAX_NUMBER_DIGITS digits written out), with the rule `lago-invalid`: both are
checked before anything recursive or an int() conversion runs.
"""

from __future__ import annotations

import bisect
import json
import re
from decimal import Decimal

from gpubill.dsl.ast import Span
from gpubill.dsl.diagnostics import clip
from gpubill.dsl.limits import MAX_JSON_DEPTH, MAX_NUMBER_DIGITS

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")

JsonPath = tuple  # of str keys and int indexes


class InvalidJson(Exception):
    def __init__(self, message: str, line: int, col: int, rule: str = "lago-invalid-json"):
        super().__init__(message)
        self.message, self.line, self.col, self.rule = message, line, col, rule


#: A string (skipped whole) or a bracket.
_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def render_path(path: JsonPath) -> str:
    """`("plans", 0, "charges", 2)` -> `plans[0].charges[2]`; `()` -> `(top level)`."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p):
            out += ("." if out else "") + p
        else:
            out += f"[{json.dumps(p)}]"
    return out or "(top level)"


class Locator:
    """Spans of the values of one JSON file, by JSON path."""

    def __init__(self, path: str, text: str):
        self.path = path
        self._starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
        self._spans: dict[JsonPath, tuple[int, int]] = {}

    def _linecol(self, offset: int) -> tuple[int, int]:
        i = bisect.bisect_right(self._starts, offset) - 1
        return i + 1, offset - self._starts[i] + 1

    def span(self, jpath: JsonPath) -> Span:
        """The span of the value at `jpath`, else of its nearest enclosing value."""
        p = tuple(jpath)
        while p not in self._spans and p:
            p = p[:-1]
        start, end = self._spans.get(p, (0, 1))
        line, col = self._linecol(start)
        end_line, end_col = self._linecol(max(end, start + 1))
        if end_line != line:  # a multi-line object: underline its first line's opening
            end_line, end_col = line, col + 1
        return Span(self.path, line, col, end_line, end_col)


def load(text: str, path: str):
    """Parse `text`; return (value, Locator). Raises InvalidJson."""
    loc = Locator(path, text)
    _check_depth(text, loc)
    try:
        json.loads(text, parse_float=str, parse_int=str)  # validation only: no number is converted
    except json.JSONDecodeError as e:
        raise InvalidJson(e.msg, e.lineno, e.colno) from None
    value, _ = _value(text, _skip(text, 0), (), loc)
    return value, loc


def _check_depth(text: str, loc: Locator) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH, without recursion, at the bracket that goes too deep."""
    depth = 0
    for m in _BRACKET.finditer(text):
        c = m.group(0)
        if c in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                line, col = loc._linecol(m.start())
                raise InvalidJson(f"the JSON nests more than {MAX_JSON_DEPTH} levels deep; Lago objects nest a few",
                                  line, col, rule="lago-invalid")
        elif c in "]}":
            depth -= 1


def _number(s: str, exponent: str | None) -> Decimal | int | None:
    """The value of a JSON number, or None when a `.bill` number could not hold it written out."""
    if exponent is not None and len(exponent) > 6:
        return None
    d = Decimal(s)
    if plain_digits(d) > MAX_NUMBER_DIGITS:
        return None
    return d if ("." in s or exponent is not None) else int(s)


def plain_digits(d: Decimal) -> int:
    """How many digits `d` has written out without an exponent (1e3 -> 1000: 4), computed without writing it."""
    _, digits, exp = d.as_tuple()
    if not isinstance(exp, int) or d.is_zero():
        return 1
    n = len(digits)
    if exp >= 0:
        return n + exp
    return n if n > -exp else 1 - exp


def _skip(text: str, i: int) -> int:
    return _WS.match(text, i).end()


def _value(text: str, i: int, jpath: JsonPath, loc: Locator):
    ch = text[i]
    start = i
    if ch == "{":
        obj: dict = {}
        i = _skip(text, i + 1)
        if text[i] == "}":
            i += 1
        else:
            while True:
                key, i = json.decoder.scanstring(text, i + 1)
                i = _skip(text, i)
                i = _skip(text, i + 1)  # ':'
                obj[key], i = _value(text, i, jpath + (key,), loc)
                i = _skip(text, i)
                if text[i] == "}":
                    i += 1
                    break
                i = _skip(text, i + 1)  # ','
        value = obj
    elif ch == "[":
        arr: list = []
        i = _skip(text, i + 1)
        if text[i] == "]":
            i += 1
        else:
            while True:
                v, i = _value(text, i, jpath + (len(arr),), loc)
                arr.append(v)
                i = _skip(text, i)
                if text[i] == "]":
                    i += 1
                    break
                i = _skip(text, i + 1)
        value = arr
    elif ch == '"':
        value, i = json.decoder.scanstring(text, i + 1)
    elif text.startswith("true", i):
        value, i = True, i + 4
    elif text.startswith("false", i):
        value, i = False, i + 5
    elif text.startswith("null", i):
        value, i = None, i + 4
    else:
        m = _NUMBER.match(text, i)
        if m is None:  # NaN, Infinity: Python's json accepts them, JSON does not
            line, col = loc._linecol(i)
            raise InvalidJson("NaN and Infinity are not valid JSON numbers", line, col)
        s = m.group(0)
        value = _number(s, m.group(2))
        if value is None:
            line, col = loc._linecol(i)
            raise InvalidJson(f"{render_path(jpath)}: the number {clip(s)} has more than {MAX_NUMBER_DIGITS} digits "
                              "written out, more than a .bill number may have", line, col, rule="lago-invalid")
        i = m.end()
    loc._spans[jpath] = (start, i)
    return value, i
