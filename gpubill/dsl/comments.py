"""Find the `# ...` comments of a `.bill` source, which the parser drops.

`scan(text)` returns every comment with its 1-based line and column, whether
it stands alone on its line or trails code, and whether a blank line sits
just before or after it. Strings are skipped, so a `#` inside `"..."` is not
a comment. `fmt` attaches the comments to the printed lines by position.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Comment:
    line: int
    col: int
    text: str  # from the `#` to the end of the line, trailing blanks removed
    standalone: bool  # nothing but blanks before it on its line
    blank_before: bool = False
    blank_after: bool = False


def scan(text: str) -> list[Comment]:
    """Every comment in `text`, in source order. Never raises."""
    lines = text.split("\n")
    out: list[Comment] = []
    for i, raw in enumerate(lines):
        j = _comment_start(raw)
        if j is None:
            continue
        standalone = raw[:j].strip() == ""
        out.append(
            Comment(
                line=i + 1,
                col=j + 1,
                text=raw[j:].rstrip(),
                standalone=standalone,
                blank_before=i > 0 and lines[i - 1].strip() == "",
                blank_after=i + 1 < len(lines) and lines[i + 1].strip() == "",
            )
        )
    return out


def _comment_start(line: str) -> int | None:
    """Index of the `#` that starts a comment on this line, skipping strings."""
    j, n = 0, len(line)
    while j < n:
        ch = line[j]
        if ch == '"':  # a string runs to its closing quote (no newlines inside)
            j += 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            j += 1
        elif ch == "#":
            return j
        else:
            j += 1
    return None
