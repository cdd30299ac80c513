"""`gpubill tui`: the reviewer terminal UI over a store and its contracts.

    gpubill tui --store DB --contracts DIR [--as USER] [--period YYYY-MM] [--diff FILE]

Opens on the overview of the month under review (the last month a draft
closes, else this month; --period names another). Keys: ? lists them all.
--diff FILE: the Diff screen (key 5) opens a `gpubill diff --format json` result.
"""

from __future__ import annotations

import argparse
import os

from gpubill.cli import EXIT_FORBIDDEN, EXIT_IO, EXIT_USAGE, CliError
from gpubill.cli._common import add_actor_argument, add_store_argument, events_url, intake_url, store_path

HELP = "the reviewer terminal UI: usage, credits and draft invoices, explained down to the event"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_argument(p)
    p.add_argument("--contracts", action="append", metavar="DIR", required=True,
                   help=".bill files or directories (repeatable)")
    add_actor_argument(p)
    p.add_argument("--period", metavar="YYYY-MM", help="the month to open on (default: the last month a draft closes)")
    p.add_argument("--diff", metavar="FILE", help="a `gpubill diff --format json` result for the Diff screen (key 5)")
    p.add_argument("--diff-base", metavar="REV", help="or the Diff screen backtests the contracts at git revision REV "
                                                      "against the work tree (or --diff-head), as `gpubill diff` does")
    p.add_argument("--diff-head", metavar="REV", help="the revision --diff-base is compared with (default: the work tree)")


def run(args: argparse.Namespace) -> int:
    from gpubill.service.access import AccessError
    from gpubill.service.errors import StoreError
    from gpubill.service.review import ReviewSession, month

    for path in args.contracts:  # before the screen opens; what the contracts say is checked in it, off the UI thread
        if not os.path.exists(path):
            raise CliError(f"{path}: no such file or directory", EXIT_IO)
    if args.diff_head is not None and args.diff_base is None:
        raise CliError("--diff-head needs --diff-base (the revision it is compared with)", EXIT_USAGE)
    if args.diff is not None and args.diff_base is not None:
        raise CliError("--diff FILE or --diff-base REV: one diff at a time", EXIT_USAGE)
    if args.period is not None:
        try:
            month(args.period)
        except ValueError:
            raise CliError(f"--period {args.period!r}: a month is YYYY-MM", EXIT_USAGE) from None
    try:
        session = ReviewSession.open(store_path(args), args.contracts, args.as_user, period=args.period,
                                     events=events_url(args), intake=intake_url(args))
    except AccessError as e:
        raise CliError(str(e), EXIT_FORBIDDEN) from None
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None
    from gpubill.tui.app import ReviewApp

    revisions = None if args.diff_base is None else (args.diff_base, args.diff_head)
    ReviewApp(session, diff_path=args.diff, diff_revisions=revisions).run()
    return 0
