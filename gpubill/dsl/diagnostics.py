"""Diagnostics as values, and their three renderings (text, json, github).

Every diagnostic names a stable kebab-case rule id (documented with a bad and
a good example in docs/diagnostics.md), a span, a message in the user's words,
and optional hints and notes. The text form follows rustc:

    contracts/acme.bill:8:10: error[tier-overlap]: tier 900..5000 overlaps tier 0..1000
       |
     8 |     900 to 5000 at 2.10
       |     ^^^^^^^^^^^
       = hint: start this tier at 1001
       = note: previous tier at contracts/acme.bill:7:5
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping

import attrs

from gpubill.dsl import source
from gpubill.dsl.ast import Span
from gpubill.dsl.limits import QUOTED_CHARS, SHOWN_COLUMNS
from gpubill.text import UNPRINTABLE, escape
from gpubill.text import clip as text_clip

ERROR = "error"
WARNING = "warning"


@attrs.frozen
class Diagnostic:
    severity: str  # error | warning
    rule: str
    message: str
    span: Span | None
    hints: tuple[str, ...] = ()
    notes: tuple[tuple[str, Span | None], ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR


def error(rule: str, message: str, span: Span | None, *, hints=(), notes=()) -> Diagnostic:
    return Diagnostic(ERROR, rule, bounded(message), span, tuple(map(bounded, hints)), tuple(notes))


def warning(rule: str, message: str, span: Span | None, *, hints=(), notes=()) -> Diagnostic:
    return Diagnostic(WARNING, rule, bounded(message), span, tuple(map(bounded, hints)), tuple(notes))


# ---------------------------------------------------------------- bounded text

#: A message or hint longer than this is cut (after its quoted parts are).
MAX_MESSAGE_CHARS = 500
_LONG_QUOTE = re.compile('"([^"\n]{%d,})"' % (QUOTED_CHARS + 1))


def clip(text: str, limit: int = QUOTED_CHARS) -> str:
    """`text`, or its first `limit` (default QUOTED_CHARS) characters and "…"."""
    return text_clip(text, limit)


def quote(text: str) -> str:
    """Source text quoted in a message: escaped, cut to QUOTED_CHARS, in double quotes."""
    return '"' + escape(clip(text)) + '"'


def bounded(text: str) -> str:
    """A message or hint with every long quoted part cut, control characters escaped, and a length bound."""
    if len(text) > QUOTED_CHARS:
        text = _LONG_QUOTE.sub(lambda m: '"' + clip(m.group(1)) + '"', text)
    return clip(escape(text), MAX_MESSAGE_CHARS)


#: Names longer than this are not compared for "did you mean" (difflib is quadratic).
_SUGGEST_CHARS = 100


def did_you_mean(name: str, candidates: Iterable[str]) -> tuple[str, ...]:
    """A hint naming the closest known name, or nothing (never for names too long to be typos)."""
    if len(name) > _SUGGEST_CHARS:
        return ()
    cands = sorted(c for c in set(candidates) if len(c) <= _SUGGEST_CHARS)
    close = difflib.get_close_matches(name, cands, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in cands}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return (f'did you mean "{close[0]}"?',) if close else ()


def dedupe(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """The diagnostics in order, each (rule, message, span) once."""
    seen, out = set(), []
    for d in diags:
        key = (d.rule, d.message, d.span)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def sort_key(d: Diagnostic):
    s = d.span
    return (s.path, s.line, s.col, d.rule) if s else ("", 0, 0, d.rule)


def render_text(diags: Iterable[Diagnostic], sources: Mapping[str, str]) -> str:
    lines: dict[str, list[str]] = {}  # each source split once, however many diagnostics it has
    out = []
    for d in diags:
        out.append(_render_one(d, sources, lines))
    return "\n".join(out)


def _render_one(d: Diagnostic, sources: Mapping[str, str], cache: dict[str, list[str]]) -> str:
    s = d.span
    where = f"{s.path}:{s.line}:{s.col}: " if s else ""
    lines = [f"{where}{d.severity}[{d.rule}]: {d.message}"]
    text = sources.get(s.path) if s else None
    if s and text is not None:
        if s.path not in cache:
            cache[s.path] = source.lines(text)
        src_lines = cache[s.path]
        if 1 <= s.line <= len(src_lines):
            line = src_lines[s.line - 1]
            end = s.end_col if s.end_line == s.line else len(line) + 1
            shown, caret = _window(line, s.col - 1, max(end - 1, s.col))
            num = str(s.line)
            pad = " " * len(num)
            lines.append(f"{pad} |")
            lines.append(f"{num} | {shown}".rstrip())
            lines.append(f"{pad} | {caret}")
            for h in d.hints:
                lines.append(f"{pad} = hint: {h}")
            for note, at in d.notes:
                lines.append(f"{pad} = note: {note}" + (f" at {at}" if at else ""))
            return "\n".join(lines) + "\n"
    for h in d.hints:
        lines.append(f"  = hint: {h}")
    for note, at in d.notes:
        lines.append(f"  = note: {note}" + (f" at {at}" if at else ""))
    return "\n".join(lines) + "\n"


TAB_WIDTH = 4
CUT = "…"


def _window(line: str, start: int, stop: int) -> tuple[str, str]:
    """The part of `line` shown under a diagnostic, and the caret line under it.

    `start`..`stop` are the 0-based character indexes the caret covers (stop
    exclusive, possibly one past the end of the line). A line longer than
    SHOWN_COLUMNS characters is cut to a window around `start`, marked with
    "…". Tabs are widened to the next multiple of TAB_WIDTH and control
    characters shown as "\ufffd", and the caret follows the widths.
    """
    lo, hi = 0, len(line)
    if hi > SHOWN_COLUMNS:
        lo = max(0, min(start - SHOWN_COLUMNS // 3, hi - SHOWN_COLUMNS))
        hi = lo + SHOWN_COLUMNS
    shown = [CUT] if lo else []
    indent = len(shown)
    col = 0  # display columns of the window so far; tab stops count from its start
    cols = []  # cols[i - lo]: where character i starts, "…" included
    for ch in line[lo:hi]:
        cols.append(indent + col)
        text, width = _shown_char(ch, col)
        shown.append(text)
        col += width
    col += indent
    cols.append(col)
    if hi < len(line):
        shown.append(CUT)
    first = cols[min(start, hi) - lo]
    if stop <= hi:
        last, cut = cols[stop - lo], ""
    elif hi == len(line):
        last, cut = col + (stop - max(start, hi)), ""
    else:
        last, cut = col, CUT
    return "".join(shown), " " * first + "^" * max(1, last - first) + cut


def _shown_char(ch: str, col: int) -> tuple[str, int]:
    """How one character is shown at display column `col`, and how many columns it takes."""
    if ch == "\t":
        n = TAB_WIDTH - col % TAB_WIDTH
        return " " * n, n
    if not ch.isprintable() or UNPRINTABLE.match(ch):
        return "\ufffd", 1
    if unicodedata.combining(ch):
        return ch, 0
    return ch, 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def to_json(diags: Iterable[Diagnostic]) -> str:
    items = []
    for d in diags:
        s = d.span
        items.append(
            {
                "severity": d.severity,
                "rule": d.rule,
                "message": d.message,
                "path": s.path if s else None,
                "line": s.line if s else None,
                "col": s.col if s else None,
                "end_line": s.end_line if s else None,
                "end_col": s.end_col if s else None,
                "hints": list(d.hints),
                "notes": [{"note": n, "at": str(a) if a else None} for n, a in d.notes],
            }
        )
    return json.dumps(items, indent=2)


def render_github(diags: Iterable[Diagnostic]) -> str:
    """GitHub Actions workflow commands: annotations on the PR's diff."""
    out = []
    for d in diags:
        s = d.span
        level = "error" if d.is_error else "warning"
        msg = d.message + "".join(f" (hint: {h})" for h in d.hints)
        if s:
            props = (f"file={_gh_prop(s.path)},line={s.line},col={s.col},endLine={s.end_line},"
                     f"endColumn={s.end_col},title={d.rule}")
        else:
            props = f"title={d.rule}"
        out.append(f"::{level} {props}::{_gh_data(msg)}")
    return "\n".join(out) + ("\n" if out else "")


def _gh_data(v: str) -> str:
    v = v.encode("utf-8", "backslashreplace").decode("utf-8")  # a file name's undecodable bytes
    return v.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(v: str) -> str:
    return _gh_data(v).replace(":", "%3A").replace(",", "%2C")
