"""`gpubill rate`: rated lines per subscription for a period.

    gpubill rate --store DB --contracts DIR --period 2026-10 [--customer ID]
                 [--format table|json] [--explain] [--engine fast|reference]

The JSON output is documented in docs/rate-json.md and is stable.
"""

from __future__ import annotations

import argparse
import sys

from gpubill.cli import EXIT_INVALID, EXIT_IO, CliError
from gpubill.cli._common import events_url, add_rating_arguments, store_path

HELP = "rate a period of events against contracts"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_rating_arguments(p, "a month (2026-10), a date (each subscription's billing period containing it), "
                            "or an inclusive range FROM..TO of dates or date-times")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--explain", action="store_true",
                   help="show where each line comes from: its events, the clause that priced it, tiers, rounding "
                        "(best with --customer: events are traced in Python)")


def run(args: argparse.Namespace) -> int:
    """The report on stdout; a subscription left out of it (a value that
    cannot be held, an amount that cannot be priced exactly) is one line on
    stderr each, and the exit code is then 1."""
    from gpubill.service.rating import ServiceError, rate_period, unrated_text
    from gpubill.service.report import report_table, write_report_json

    store = _open_store(args)
    try:
        report = rate_period(store, args.contracts, args.period, args.customer, args.engine, explain=args.explain)
    except ServiceError as e:
        raise CliError(str(e), e.code) from None
    finally:
        store.close()
    if args.format == "json":
        sys.stdout.flush()
        write_report_json(report, sys.stdout.buffer, explain=args.explain)
        sys.stdout.buffer.write(b"\n")
        sys.stdout.buffer.flush()
    else:
        report_table(report, explain=args.explain, file=sys.stdout)
    left_out = report.unrated()
    if left_out:
        sys.stdout.flush()
        for b, u in left_out:
            print(f"gpubill: error: {unrated_text(b, u)}", file=sys.stderr)
        return EXIT_INVALID
    return 0


def _open_store(args: argparse.Namespace):
    import os

    from gpubill.service.errors import StoreError
    from gpubill.service.events import open_event_store

    path, events = store_path(args), events_url(args)
    if events is None and not os.path.exists(path):
        raise CliError(f"{path}: no such store (ingest events first, or pass --store)", EXIT_IO)
    try:
        return open_event_store(path, events=events, readonly=True)
    except StoreError as e:
        msg = str(e)
        raise CliError(msg if msg.startswith(path) else f"{path}: {msg}", EXIT_IO) from None
