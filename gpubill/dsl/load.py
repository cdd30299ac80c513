"""Read `.bill` files from paths: the one place in `dsl` that touches the disk."""

from __future__ import annotations

from pathlib import Path

from gpubill.dsl import ast
from gpubill.dsl.diagnostics import Diagnostic, error
from gpubill.dsl.parse import parse


def bill_files(paths: list[str]) -> tuple[list[Path], list[Diagnostic]]:
    """Every `.bill` file under the paths, in a stable order."""
    found: list[Path] = []
    diags: list[Diagnostic] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found.extend(sorted(f for f in path.rglob("*.bill") if f.is_file()))
        elif path.is_file():
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
    try:
        data = path.read_bytes()
    except OSError as e:
        return None, error("unreadable-file", f"{path}: {e.strerror or e}", None)
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        span = ast.Span(str(path), line, col, line, col + 1)
        return None, error("invalid-utf8", "the file is not valid UTF-8", span, hints=("save the file as UTF-8",))


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
