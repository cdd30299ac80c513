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
from collections.abc import Iterable, Mapping

import attrs

from gpubill.dsl.ast import Span

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
    return Diagnostic(ERROR, rule, message, span, tuple(hints), tuple(notes))


def warning(rule: str, message: str, span: Span | None, *, hints=(), notes=()) -> Diagnostic:
    return Diagnostic(WARNING, rule, message, span, tuple(hints), tuple(notes))


def did_you_mean(name: str, candidates: Iterable[str]) -> tuple[str, ...]:
    """A hint naming the closest known name, or nothing."""
    cands = sorted(set(candidates))
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
    out = []
    for d in diags:
        out.append(_render_one(d, sources))
    return "\n".join(out)


def _render_one(d: Diagnostic, sources: Mapping[str, str]) -> str:
    s = d.span
    where = f"{s.path}:{s.line}:{s.col}: " if s else ""
    lines = [f"{where}{d.severity}[{d.rule}]: {d.message}"]
    text = sources.get(s.path) if s else None
    if s and text is not None:
        src_lines = text.splitlines()
        if 1 <= s.line <= len(src_lines):
            src = src_lines[s.line - 1].expandtabs(1)
            num = str(s.line)
            pad = " " * len(num)
            end = s.end_col if s.end_line == s.line else len(src) + 1
            width = max(1, end - s.col)
            lines.append(f"{pad} |")
            lines.append(f"{num} | {src}")
            lines.append(f"{pad} | {' ' * (s.col - 1)}{'^' * width}")
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

    def esc(v: str) -> str:
        return v.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    out = []
    for d in diags:
        s = d.span
        level = "error" if d.is_error else "warning"
        msg = d.message + "".join(f" (hint: {h})" for h in d.hints)
        if s:
            props = f"file={s.path},line={s.line},col={s.col},endLine={s.end_line},endColumn={s.end_col},title={d.rule}"
        else:
            props = f"title={d.rule}"
        out.append(f"::{level} {props}::{esc(msg)}")
    return "\n".join(out) + ("\n" if out else "")
