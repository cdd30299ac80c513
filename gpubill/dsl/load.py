"""Read `.bill` files from paths: the one place in `dsl` that touches the disk."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gpubill.dsl import ast, source
from gpubill.dsl.diagnostics import Diagnostic, error
from gpubill.dsl.limits import MAX_SOURCE_BYTES
from gpubill.dsl.parse import parse


def bill_files(paths: list[str]) -> tuple[list[Path], list[Diagnostic]]:
    """Every `.bill` file under the paths, in a stable order."""
    found: list[Path] = []
    diags: list[Diagnostic] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found.extend(sorted(f for f in path.rglob("*.bill") if f.is_file()))
        elif path.exists():  # a file, or something read_source refuses with a reason
            found.append(path)
        else:
            diags.append(error("no-such-file", f"{p}: no such file or directory", None))
    seen = set()
    unique = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, diags


def read_source(path: Path) -> tuple[str | None, Diagnostic | None]:
    """The text of a `.bill` file, or the diagnostic that says why it cannot be had.

    A path that is not a regular file (a FIFO would block forever) or is larger
    than MAX_SOURCE_BYTES is refused unread, as `unreadable-file`.
    """
    try:
        data = _read_bounded(path)
    except OSError as e:
        return None, error("unreadable-file", f"{path}: {e.strerror or e}", None)
    except _Refused as e:
        return None, error("unreadable-file", f"{path}: {e}", None)
    return decode(data, str(path))


def decode(data: bytes, path: str) -> tuple[str | None, Diagnostic | None]:
    """UTF-8 text (a BOM is dropped later, with the line ends), or `invalid-utf8` at the first bad byte."""
    if len(data) > MAX_SOURCE_BYTES:
        return None, error("unreadable-file", f"{path}: {too_large(len(data))}", None)
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as e:
        line, col = source.line_col(data, e.start)
        span = ast.Span(path, line, col, line, col + 1)
        return None, error("invalid-utf8", "the file is not valid UTF-8", span, hints=("save the file as UTF-8",))


def too_large(size: int) -> str:
    limit = f"{MAX_SOURCE_BYTES / 2**20:g} MiB"
    return f"the file is {size / 2**20:.1f} MiB; a .bill file may be at most {limit} (split it into several files)"


class _Refused(Exception):
    pass


def _read_bounded(path: Path) -> bytes:
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Refused("not a regular file")
        if st.st_size > MAX_SOURCE_BYTES:
            raise _Refused(too_large(st.st_size))
        data = fh.read(MAX_SOURCE_BYTES + 1)  # the file may have grown since
    if len(data) > MAX_SOURCE_BYTES:
        raise _Refused(too_large(max(len(data), st.st_size)))
    return data


def load_paths(paths: list[str]) -> tuple[list[ast.Document], dict[str, str], list[Diagnostic]]:
    """Parse every `.bill` file under the paths: (documents, sources by path, diagnostics)."""
    files, diags = bill_files(paths)
    docs: list[ast.Document] = []
    sources: dict[str, str] = {}
    for f in files:
        text, d = read_source(f)
        if d is not None:
            diags.append(d)
            continue
        sources[str(f)] = text
        doc, ds = parse(text, str(f))
        docs.append(doc)
        diags.extend(ds)
    return docs, sources, diags
