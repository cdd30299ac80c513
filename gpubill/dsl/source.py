"""Source text as the parser and the diagnostics see it: one notion of lines and columns.

`normalize(text)` drops a leading byte-order mark and turns CRLF and lone CR
line ends into LF, so that a file saved on any system has the same lines for
the parser, the comment scanner, the formatter and the caret under a
diagnostic. A line is what lies between two LFs; a column counts characters
(a tab is one column; it is only widened when a line is shown).
"""

from __future__ import annotations

BOM = "\ufeff"


def normalize(text: str) -> str:
    if text.startswith(BOM):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def lines(text: str) -> list[str]:
    """The lines of a source, numbered from 1 as `lines(text)[n - 1]` (LF only, like the parser)."""
    return normalize(text).split("\n")


def line_col(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of a byte offset in undecoded source (CRLF and CR end lines too)."""
    head = data[:offset]
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    head = head.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    start = head.rfind(b"\n") + 1
    col = len(head[start:].decode("utf-8", "replace")) + 1
    return head.count(b"\n") + 1, col
