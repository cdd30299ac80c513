"""`gpubill demo`: generate, ingest, rate and invoice a realistic month, then summarize it.

Runs on the embedded SQLite default in a local folder (./gpubill-demo): the
store, and the invoices and credit notes exported as PDF, UBL and JSON in
./gpubill-demo/invoices.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from pathlib import Path

from gpubill.cli import CliError

HELP = "generate, ingest, rate and invoice a realistic month"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gpubill.cli import _args

    p.add_argument("--contracts", default=None, metavar="DIR",
                   help="the billing repository to use (default: ./examples)")
    p.add_argument("--dir", default="gpubill-demo", metavar="DIR", help="where the demo store goes (default: ./gpubill-demo)")
    p.add_argument("--events", type=_args.int_range(1, _args.MAX_DEMO_EVENTS), default=100_000,
                   help="how many events to generate (default: 100000)")
    p.add_argument("--period", default=None, help="the month to bill (default: last month)")
    p.add_argument("--seed", type=_args.int_range(0, _args.MAX_SEED), default=2026, help="random seed (default: 2026)")
    p.add_argument("--no-invoices", action="store_true", help="stop after rating: store no invoice (events only)")


def run(args: argparse.Namespace) -> int:
    from gpubill.service.demo import run_demo, summary_rows
    from gpubill.service.rating import ServiceError, unrated_text
    from gpubill.service.events import Store

    contracts = args.contracts or "examples"
    if not Path(contracts).exists():
        raise CliError(f"{contracts}: no billing repository here (run from the gpubill checkout, or pass --contracts)", 3)
    tty = sys.stderr.isatty()

    def progress(msg: str) -> None:
        if tty:
            print(f"· {msg}", file=sys.stderr)

    try:
        result = run_demo(contracts, args.dir, args.events, args.period, args.seed, Store, progress,
                          invoices=not args.no_invoices)
    except ServiceError as e:
        raise CliError(str(e), e.code) from None
    _print(result, summary_rows(result), contracts)
    if result.billing is not None:
        from gpubill.cli.demo_view import print_billing
        print_billing(result, contracts)
    left_out = result.final.unrated()
    for b, u in left_out:
        print(f"gpubill: error: {unrated_text(b, u)}", file=sys.stderr)
    return 1 if left_out else 0


def _print(result, rows, contracts: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    console.print(
        f"[b]gpubill demo[/b] · period {result.period} · store {result.store_path}\n"
        f"events: {result.ingested:,} stored ({result.late:,} of them late), {result.duplicates:,} duplicates ignored, "
        f"{result.conflicts} conflicting re-sends refused, {result.rejected} malformed in quarantine"
    )
    t = Table(title=f"Usage charges per customer, {result.period}", title_justify="left")
    for col, just in (("customer", "left"), ("plan", "left"), ("events", "right"), ("draft", "right"),
                      ("late", "right"), ("total", "right"), ("biggest line: units x unit price = amount", "left")):
        t.add_column(col, justify=just)
    by_cur: dict[str, Decimal] = {}
    for r in rows:
        t.add_row(escape(r["customer"]), escape(r["plan"]), f"{r['events']:,}", f"{r['draft']:,.2f}", f"{r['late']:+,.2f}",
                  f"{r['total']:,.2f} {r['currency']}", escape(r["top_line"]))
        by_cur[r["currency"]] = by_cur.get(r["currency"], Decimal(0)) + r["total"]
    console.print(t)
    console.print("totals: " + ", ".join(f"{v:,.2f} {k}" for k, v in sorted(by_cur.items())))
    secs = ", ".join(f"{k} {v:.2f}s" for k, v in result.seconds.items())
    console.print(f"[dim]time: {secs}[/dim]")
    console.print(
        "[dim]Each total is the sum of rated lines, each line rounded once by its plan's rule. "
        "Where a number comes from:[/dim]\n"
        f"  gpubill rate --store {result.store_path} --contracts {contracts} --period {result.period} "
        f"--customer {rows[0]['contract'] if rows else 'NAME'} --explain\n"
        f"  gpubill events rejected --store {result.store_path}\n"
        "[dim]What each customer owes, every contract term applied (fees, commitments, reservations, "
        "discounts, taxes, credits):[/dim]\n"
        f"  gpubill invoice --store {result.store_path} --contracts {contracts} --period {result.period}"
    )
