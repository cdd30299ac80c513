"""`gpubill fmt [--check] [--diff] PATH...`: format .bill files canonically.

Without --check, files are rewritten in place (atomically, only when they
change) and nothing is printed. With --check nothing is written: the files
that would change are listed on stdout and the exit code is 1 (with --diff,
a unified diff is printed instead). `-` reads stdin and writes the formatted
text to stdout. A file with syntax errors is never rewritten: its
diagnostics are printed as `gpubill check` prints them, and the exit code is 1.
Like `check`, this imports only the language package.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from pathlib import Path

HELP = "format .bill files canonically"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help=".bill files or directories; - for stdin")
    p.add_argument("--check", action="store_true",
                   help="write nothing; list files that would change and exit 1 if any")
    p.add_argument("--diff", action="store_true", help="with --check (implied): print a unified diff")


def run(args: argparse.Namespace) -> int:
    from gpubill.cli import EXIT_INVALID, EXIT_IO, EXIT_OK, CliError
    from gpubill.dsl.diagnostics import render_text
    from gpubill.dsl.fmt import format_source
    from gpubill.dsl.load import bill_files, read_source

    check = args.check or args.diff
    if "-" in args.paths:
        if len(args.paths) > 1:
            raise CliError("- (stdin) cannot be combined with other paths", 2)
        return _stdin(check, args.diff)

    files, diags = bill_files(args.paths)
    failed = io_error = bool(diags)
    for d in diags:
        sys.stderr.write(render_text([d], {}))
    changed = False
    errors = warnings = 0
    for f in files:
        text, d = read_source(f)
        if d is not None:
            sys.stderr.write(render_text([d], {}))
            io_error = d.rule == "unreadable-file" or io_error
            failed = True
            continue
        formatted, diags = format_source(text, str(f))
        if diags:
            sys.stderr.write(_shown_diagnostics(diags, {str(f): text}))
            errors += sum(d.is_error for d in diags)
            warnings += sum(not d.is_error for d in diags)
        if formatted is None:
            failed = True
            continue
        if formatted == text:
            continue
        changed = True
        if args.diff:
            sys.stdout.write(_diff(text, formatted, _shown(f)))
        elif check:
            print(_shown(f))
        else:
            try:
                _write_atomic(f, formatted)
            except OSError as e:
                raise CliError(f"{f}: cannot write: {e.strerror or e}", EXIT_IO) from None
    if errors or warnings:
        sys.stderr.write(f"{errors} error(s), {warnings} warning(s)\n")
    if io_error:
        return EXIT_IO
    if failed or (check and changed):
        return EXIT_INVALID
    return EXIT_OK


def _stdin(check: bool, diff: bool) -> int:
    from gpubill.dsl.diagnostics import render_text
    from gpubill.dsl.fmt import format_source
    from gpubill.dsl.limits import MAX_SOURCE_BYTES
    from gpubill.dsl.load import decode

    data = sys.stdin.buffer.read(MAX_SOURCE_BYTES + 1)  # never more than the limit in memory
    text, problem = decode(data, "<stdin>")
    if problem is not None:
        sys.stderr.write(render_text([problem], {}))
        return 1
    formatted, diags = format_source(text, "<stdin>")
    if formatted is None:
        sys.stderr.write(_shown_diagnostics(diags, {"<stdin>": text}))
        return 1
    if not check:
        sys.stdout.write(formatted)
        return 0
    if formatted == text:
        return 0
    sys.stdout.write(_diff(text, formatted, "<stdin>") if diff else "<stdin>\n")
    return 1


def _shown_diagnostics(diags, sources) -> str:
    """The first MAX_SHOWN_DIAGNOSTICS of a file's diagnostics as text, and how many more there are."""
    from gpubill.dsl.diagnostics import render_text
    from gpubill.dsl.limits import MAX_SHOWN_DIAGNOSTICS

    text = render_text(diags[:MAX_SHOWN_DIAGNOSTICS], sources)
    more = len(diags) - MAX_SHOWN_DIAGNOSTICS
    return text + (f"... {more} more not shown (gpubill check --format json lists them all)\n" if more > 0 else "")


def _shown(path) -> str:
    """A path as text for stdout: bytes that are not UTF-8 in a file name are shown escaped, never a crash."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def _diff(before: str, after: str, name: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"{name} (original)", tofile=f"{name} (formatted)",
    )
    return "".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines)


def _write_atomic(path: Path, text: str) -> None:
    """Write beside the file, then rename over it: a reader never sees half a file."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
