"""JSON with positions: where each value of a Lago JSON file starts and ends.

`load(text, path) -> (value, Locator)`. Numbers are read exactly (floats as
`Decimal`, never `float`: Lago tier bounds such as 0.1 must stay 0.1). The
`Locator` maps a JSON path (a tuple of keys and indexes) to the span of its
value, so a diagnostic about `plans[0].charges[2]` points at the line and
column of that charge in the file, with the usual caret.

Invalid JSON raises `InvalidJson` with the 1-based line and column of the
error, from the standard library's own message.
"""

from __future__ import annotations

import bisect
import json
import re
from decimal import Decimal

from gpubill.dsl.ast import Span

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")

JsonPath = tuple  # of str keys and int indexes


class InvalidJson(Exception):
    def __init__(self, message: str, line: int, col: int):
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


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
    try:
        json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as e:
        raise InvalidJson(e.msg, e.lineno, e.colno) from None
    loc = Locator(path, text)
    value, _ = _value(text, _skip(text, 0), (), loc)
    return value, loc


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
        value = Decimal(s) if (m.group(1) or m.group(2)) else int(s)
        i = m.end()
    loc._spans[jpath] = (start, i)
    return value, i
