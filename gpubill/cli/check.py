"""`gpubill check PATH...`: validate .bill files; silent and exit 0 when clean.

Never imports numba, numpy or the store: only the language package.
"""

from __future__ import annotations

import argparse
import sys

HELP = "validate .bill files (silent when clean)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help=".bill files or directories")
    p.add_argument("--format", choices=("text", "json", "github"), default="text",
                   help="how to print diagnostics (default: text)")
    p.add_argument("--warnings-as-errors", "-W", action="store_true",
                   help="exit 1 on warnings too")


def run(args: argparse.Namespace) -> int:
    from gpubill.dsl.check import check_paths
    from gpubill.dsl.diagnostics import render_github, render_text, to_json

    _, sources, diags = check_paths(args.paths)
    if args.format == "json":
        if diags:
            print(to_json(diags), file=sys.stderr)
    elif args.format == "github":
        sys.stderr.write(render_github(diags))
    elif diags:
        sys.stderr.write(render_text(diags, sources))
        errors = sum(d.is_error for d in diags)
        warnings = len(diags) - errors
        sys.stderr.write(f"{errors} error(s), {warnings} warning(s)\n")
    failed = any(d.is_error for d in diags) or (args.warnings_as_errors and diags)
    return 1 if failed else 0
