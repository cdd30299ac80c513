"""`gpubill check PATH...`: validate .bill files; silent and exit 0 when clean.

Diagnostics go to stderr as text (file:line:col, the source line, a caret,
hints), or, asked for with `--format`, as JSON or GitHub annotations on
stdout, where a program or the Actions runner reads them. Exit 1 on an error
(or on a warning with -W), 3 when a path does not exist.

Never imports numba, numpy or the store: only the language package.
"""

from __future__ import annotations

import argparse
import os
import sys

HELP = "validate .bill files (silent when clean)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help=".bill files or directories")
    p.add_argument("--format", choices=("text", "json", "github"), default="text",
                   help="text on stderr (default), or json / github annotations on stdout")
    p.add_argument("--warnings-as-errors", "-W", action="store_true",
                   help="exit 1 on warnings too")
    p.add_argument("--today", type=_date, default=None, metavar="DATE",
                   help="the date the notice-period rule counts from (default: today, UTC)")


def _date(text: str):
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from gpubill.cli import EXIT_INVALID, EXIT_IO, EXIT_OK, CliError
    from gpubill.dsl.check import check_paths
    from gpubill.dsl.diagnostics import render_github, render_text, to_json
    from gpubill.dsl.limits import MAX_SHOWN_DIAGNOSTICS

    for p in args.paths:
        if not os.path.exists(p):
            raise CliError(f"{p}: no such file or directory", EXIT_IO)
    import datetime as dt

    today = args.today or dt.datetime.now(dt.timezone.utc).date()
    _, sources, diags = check_paths(args.paths, today)
    if args.format == "json":
        if diags:
            sys.stdout.write(to_json(diags) + "\n")
    elif args.format == "github":
        sys.stdout.write(render_github(diags))
    elif diags:
        sys.stderr.write(render_text(diags[:MAX_SHOWN_DIAGNOSTICS], sources))
        if len(diags) > MAX_SHOWN_DIAGNOSTICS:
            sys.stderr.write(f"... {len(diags) - MAX_SHOWN_DIAGNOSTICS} more not shown "
                             "(gpubill check --format json lists them all)\n")
        errors = sum(d.is_error for d in diags)
        warnings = len(diags) - errors
        sys.stderr.write(f"{errors} error(s), {warnings} warning(s)\n")
    if any(d.rule in IO_RULES for d in diags):
        return EXIT_IO
    failed = any(d.is_error for d in diags) or (args.warnings_as_errors and diags)
    return EXIT_INVALID if failed else EXIT_OK


#: Diagnostics about a path rather than its text: exit 3, as documented for I/O errors.
IO_RULES = frozenset({"no-such-file", "unreadable-file"})
