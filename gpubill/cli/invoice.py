"""`gpubill invoice`: draft invoices for a period, every contract term applied.

    gpubill invoice --store DB --contracts DIR --period 2026-10 [--customer ID]
                    [--progressive] [--format table|json|csv] [--engine fast|reference]

The JSON document is documented in docs/invoice-json.md and is stable.
"""

from __future__ import annotations

import argparse
import sys

from gpubill.cli import EXIT_INVALID, CliError
from gpubill.cli._common import add_rating_arguments, open_store

HELP = "draft invoices for a period: every contract term applied"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_rating_arguments(p, "a month (2026-10) or an inclusive range FROM..TO: every billing period that ends in "
                            "it; or a date: each subscription's billing period containing it")
    p.add_argument("--progressive", action="store_true",
                   help="also list the period's progressive invoices (usage thresholds crossed so far)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")


def run(args: argparse.Namespace) -> int:
    """The invoices on stdout; a contract that could not be invoiced is one
    line on stderr each, and the exit code is then 1."""
    import orjson

    from gpubill.service.invoice_report import report_csv, report_json, report_table
    from gpubill.service.invoicing import invoice_catalog
    from gpubill.service.lifecycle import carried
    from gpubill.service.rating import ServiceError, load_catalog

    store = open_store(args, readonly=True)
    try:
        catalog, sources = load_catalog(args.contracts)
        carry = carried(store, catalog, args.customer, engine=args.engine)  # what a stored draft is priced with
        report = invoice_catalog(store, catalog, args.period, args.customer, args.engine, args.progressive, carry,
                                 sources)
    except ServiceError as e:
        raise CliError(str(e), e.code) from None
    finally:
        store.close()
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(report_json(report), option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.buffer.flush()
    elif args.format == "csv":
        report_csv(report, sys.stdout)
    else:
        report_table(report, file=sys.stdout)
    if report.no_period_ends:
        sys.stdout.flush()
        print(f"gpubill: no billing period of {_some(report.no_period_ends)} ends in {args.period}: "
              "nothing to invoice for them (a date invoices the period that contains it)", file=sys.stderr)
    if report.unrated:
        sys.stdout.flush()
        for reason in report.unrated:
            print(f"gpubill: error: {reason}", file=sys.stderr)
        return EXIT_INVALID
    return 0


SHOWN_NAMES = 5


def _some(names: tuple) -> str:
    """Up to five names, then how many more."""
    more = len(names) - SHOWN_NAMES
    return ", ".join(names[:SHOWN_NAMES]) + (f" and {more} more contracts" if more > 0 else "")
