"""`gpubill import lago FILE.json... --out DIR`: migrate Lago objects to .bill files.

Reads Lago API JSON (billable metrics, plans, customers, subscriptions; one
object or a list per file, with or without the root key, or list responses)
and writes `metrics.bill`, `plans.bill`, `entities.bill` and
`contracts.bill` under DIR. All or nothing: when any error is found nothing
is written and the command exits 1 (invalid JSON: one line naming
file:line:col). An unreadable file exits 3. Warnings are printed and do not
fail the import. Existing output files are not overwritten without --force.

Goes through `gpubill.service.lago_import`; loads the language and the importer
only: no numba, no store.
"""

from __future__ import annotations

import argparse
import os
import sys

HELP = "import Lago objects into .bill files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="source", metavar="SOURCE", required=True)
    lago = sub.add_parser(
        "lago",
        help="Lago API JSON: billable metrics, plans, customers, subscriptions",
        description="Convert Lago API JSON objects into .bill files (metrics.bill, plans.bill, "
        "entities.bill, contracts.bill). Nothing is written when any error is found.",
    )
    lago.add_argument("files", nargs="+", metavar="FILE.json", help="Lago JSON files (objects, lists or list responses)")
    lago.add_argument("--out", required=True, metavar="DIR", help="directory to write the .bill files into")
    lago.add_argument("--force", action="store_true", help="overwrite .bill files that already exist in DIR")
    lago.add_argument("--format", choices=("text", "json", "github"), default="text",
                      help="how to print diagnostics (default: text)")


def run(args: argparse.Namespace) -> int:
    from gpubill.cli import CliError, EXIT_INVALID, EXIT_IO
    from gpubill.dsl.diagnostics import render_github, render_text, to_json
    from gpubill.service.lago_import import import_lago

    sources: dict[str, str] = {}
    for path in args.files:
        try:
            data = _read(path)
        except OSError as e:
            raise CliError(f"{path}: {e.strerror or e}", EXIT_IO) from None
        try:
            sources[path] = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CliError(f"{path}: the file is not valid UTF-8", EXIT_INVALID) from None

    result = import_lago(sources, args.out)
    diags = list(result.diagnostics)
    if args.format == "json":
        if diags:
            print(to_json(diags), file=sys.stderr)
    elif args.format == "github":
        sys.stderr.write(render_github(diags))
    elif diags:
        # Invalid JSON is one line: no source excerpt for a file that is not JSON.
        shown = {p: t for p, t in sources.items()
                 if not any(d.rule == "lago-invalid-json" and d.span and d.span.path == p for d in diags)}
        sys.stderr.write(render_text(diags, shown))
        if len(diags) > 1:
            errors = sum(d.is_error for d in diags)
            sys.stderr.write(f"{errors} error(s), {len(diags) - errors} warning(s)\n")
    if not result.ok:
        if args.format == "text" and not _only_json_errors(diags):
            sys.stderr.write("gpubill import lago: nothing was written\n")
        return EXIT_INVALID
    if not result.files:
        sys.stderr.write("gpubill import lago: the files hold no Lago objects to import; nothing was written\n")
        return EXIT_INVALID
    existing = [p for p in result.files if os.path.exists(p)]
    if existing and not args.force:
        raise CliError(f"{existing[0]} already exists; pass --force to overwrite the imported files", EXIT_INVALID)
    try:
        os.makedirs(args.out, exist_ok=True)
        for path, text in result.files.items():
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            os.replace(tmp, path)
    except OSError as e:
        raise CliError(f"{args.out}: {e.strerror or e}", EXIT_IO) from None
    for path in result.files:
        print(path)
    return 0


def _read(path: str) -> bytes:
    """The bytes of a regular file of at most MAX_IMPORT_BYTES; OSError with the reason otherwise."""
    import stat

    from gpubill.dsl.limits import MAX_IMPORT_BYTES

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError("not a regular file")
        data = f.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise OSError(f"the file is larger than {MAX_IMPORT_BYTES // 2**20} MiB, the most `gpubill import lago` reads")
    return data


def _only_json_errors(diags) -> bool:
    return all(d.rule == "lago-invalid-json" for d in diags if d.is_error)
