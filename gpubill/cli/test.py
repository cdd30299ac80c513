"""`gpubill test [PATH...] [-k TEXT] [--engine fast|reference]`: run the `test` blocks.

Loads and checks the .bill files under the paths (default: `examples`, when
it exists) as `gpubill check` does (an error stops with the diagnostics,
exit 1), invoices each selected test's usage as `gpubill invoice` would
(``gpubill.service.testing``) and prints one line per test, pytest-like;
a failed `expect` shows the expected and actual values and the invoice lines
behind the actual one; a summary line ends the output. Exit 1 on any failure;
exit 0 when every selected test passed; no test selected is exit 1 too (a
`-k` that matches nothing, or paths without tests, would otherwise pass
silently).
"""

from __future__ import annotations

import argparse
import os

from gpubill.cli import EXIT_INVALID, EXIT_IO, EXIT_OK, CliError

HELP = "run the test blocks of .bill files"

DEFAULT_PATH = "examples"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help=f".bill files or directories (default: {DEFAULT_PATH}, when it exists)")
    p.add_argument("-k", dest="keyword", metavar="TEXT",
                   help="only the tests whose name contains TEXT")
    p.add_argument("--engine", choices=("fast", "reference"), default="fast",
                   help="fast: numba kernels (default); reference: the plain-Python engine")


def run(args: argparse.Namespace) -> int:
    from gpubill.service.rating import ServiceError
    from gpubill.service.testing import run_tests

    paths = args.paths or _default_paths()
    for p in paths:
        if not os.path.exists(p):
            raise CliError(f"{p}: no such file or directory", EXIT_IO)
    try:
        outcome = run_tests(paths, args.keyword, args.engine)
    except ServiceError as e:
        raise CliError(str(e), e.code) from None
    for r in outcome.results:
        print(f"{'PASSED' if r.passed else 'FAILED'} {r.location}  \"{r.test.name.value}\"")
        if not r.passed:
            print(_failure(r))
    print(_summary(outcome))
    if not outcome.results:
        return EXIT_INVALID
    return EXIT_INVALID if outcome.failed else EXIT_OK


def _default_paths() -> list[str]:
    if not os.path.isdir(DEFAULT_PATH):
        raise CliError(f"no PATH given and no ./{DEFAULT_PATH} directory: name the .bill files or directories to test",
                       EXIT_IO)
    return [DEFAULT_PATH]


def _summary(outcome) -> str:
    n = len(outcome.results)
    if not n:
        return f"no tests ran in {outcome.seconds:.2f}s"
    parts = [f"{n - outcome.failed} passed"] + ([f"{outcome.failed} failed"] if outcome.failed else [])
    return f"{', '.join(parts)} in {outcome.seconds:.2f}s"


def _failure(r) -> str:
    if r.error is not None:
        return f"    could not be invoiced: {r.error}"
    out = []
    for o in r.outcomes:
        if o.passed:
            continue
        e = o.expect
        money = e.what in ("charge", "total")
        unit = f" {r.invoice.currency}" if money else ""
        target = "" if e.target is None else f" {e.target.name}"
        where = f" where {_condition(e.condition)}" if e.condition is not None else ""
        out.append(f"    {e.span.path}:{e.span.line}: expect {e.what}{target}{where}")
        out.append(f"      expected: {e.value.value:f}{unit}")
        out.append(f"      actual:   {o.actual:f}{unit}")
        out.append(f"      from {len(o.lines)} invoice line(s):" if o.lines else "      from no invoice line")
        out += [_line(f) for f in o.lines]
        if e.what == "total":
            out.append("      " + _totals(r.invoice))
    return "\n".join(out)


def _condition(cond) -> str:
    def values(m) -> str:
        return ", ".join(f'"{v.value}"' for v in m.values)
    return " and ".join(f"{m.key.name} in ({values(m)})" if len(m.values) > 1 else f"{m.key.name} = {values(m)}"
                        for m in cond.matches)


def _totals(inv) -> str:
    return (f"fees {inv.fees_amount:f} - progressive credit {inv.progressive_billing_credit_amount:f}"
            f" - coupons {inv.coupons_amount:f} + taxes {inv.taxes_amount:f} - credit notes {inv.credit_notes_amount:f}"
            f" - prepaid credits {inv.prepaid_credit_amount:f} = total {inv.total_amount:f}")


def _line(f) -> str:
    return (f"        {f.description:<40} units {f.units.normalize():f}  amount {f.amount:f}"
            f"  [{f.fee_type}/{f.kind}]" + (f"  {f.clause}" if f.clause else ""))
