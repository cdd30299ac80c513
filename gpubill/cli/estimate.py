"""`gpubill estimate`: what a planned GPU job would cost a customer now.

    gpubill estimate --store DB --contracts DIR --contract C --gpu H100-SXM --count 8 --hours 72
                     [--region R] [--class on_demand|spot|reserved] [--utilization U] [--at TIME]
                     [--format table|json]

The period's invoices from the events stored so far against the same with
the job's events added (gpubill.service.estimate); nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation

from gpubill.cli import EXIT_USAGE, CliError
from gpubill.cli._common import add_store_argument, open_store

HELP = "what a planned GPU job would cost a customer now"


def _decimal(text: str) -> Decimal:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not d.is_finite():
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return d


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_argument(p)
    p.add_argument("--contracts", action="append", metavar="DIR", required=True,
                   help=".bill files or directories (repeatable)")
    p.add_argument("--contract", required=True, metavar="ID", help="contract name, customer id or subscription id")
    p.add_argument("--gpu", required=True, metavar="TYPE", help="GPU type, e.g. H100-SXM")
    p.add_argument("--count", required=True, type=_decimal, help="GPUs (fractions allowed)")
    p.add_argument("--hours", required=True, type=_decimal, help="how long the job runs")
    p.add_argument("--region", help="region the job runs in")
    p.add_argument("--class", dest="availability_class", metavar="CLASS",
                   help="availability class (on_demand, spot, reserved)")
    p.add_argument("--utilization", type=_decimal, default=Decimal(1),
                   help="expected average GPU utilization, 0 to 1 (default 1: busy throughout)")
    p.add_argument("--at", metavar="TIME", help="when the job starts: Unix seconds or ISO-8601 with an offset "
                                                "(default now); its billing period is the one estimated")
    p.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    import orjson

    from gpubill.service.estimate import Estimator, Job, estimate_json
    from gpubill.service.events import parse_timestamp
    from gpubill.service.rating import ServiceError

    at_ms = None
    if args.at is not None:
        at_ms, problem = parse_timestamp(args.at, 0)
        if problem:
            raise CliError(f"--at: {problem.message}", EXIT_USAGE)
    store = open_store(args, readonly=True)
    try:
        job = Job(args.gpu, args.count, args.hours, args.region, args.availability_class, args.utilization)
        e = Estimator(store, args.contracts).estimate(args.contract, job, at_ms)
    except ServiceError as err:
        raise CliError(str(err), err.code) from None
    finally:
        store.close()
    doc = estimate_json(e)
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.buffer.flush()
    else:
        _table(doc)
    return 0


def _table(doc: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from gpubill import text

    console = Console(file=sys.stdout, highlight=False, soft_wrap=False,
                      width=None if sys.stdout.isatty() else 160)
    cur = doc["currency"]
    t = Table(title=escape(f"estimate · {doc['contract']} · {doc['billing_period']} · {cur}"), title_justify="left")
    for col, just in (("line", "left"), ("units before", "right"), ("units after", "right"),
                      ("amount before", "right"), ("amount after", "right"), ("change", "right"), ("clause", "left")):
        t.add_column(col, justify=just)
    for ln in doc["lines"]:
        t.add_row(escape(text.escape(ln["name"])), ln["units_before"] or "-", ln["units_after"] or "-",
                  ln["amount_before"] or "-", ln["amount_after"] or "-", ln["amount_delta"], escape(ln["clause"] or ""))
    for name, label in (("sub_total_excluding_taxes_amount", "subtotal excl. taxes"), ("taxes_amount", "taxes"),
                        ("prepaid_credit_amount", "prepaid credits"), ("total_amount", "total due")):
        t.add_row(label, "", "", doc["before"][name], doc["after"][name], doc["delta"][name], "")
    console.print(t)
    console.print(escape(doc["summary"]))
