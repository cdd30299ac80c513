"""`gpubill diff`: what a change to the contracts does to every invoice, on stored events.

    gpubill diff --base REV [--head REV] [--contracts DIR] --store DB [--period P ...]
                 [--format text|json|markdown|github] [--max-increase PCT ...] [--detailed-exitcode]
                 [--map FILE]

The contracts directory at REV (read with git, the work tree untouched)
against the work tree (or --head REV), both invoicing the same events of each
period (gpubill.service.diff).  Exit 4 when a gate is exceeded; with
--detailed-exitcode, 2 when anything changed.  With --map (a `gpubill sample
--map-out` file) the store is a sample: both revisions' contracts are copied
and point at the pseudonyms (gpubill.service.sample).
"""

from __future__ import annotations

import argparse
import sys

from gpubill.cli import EXIT_INVALID, EXIT_POLICY, CliError
from gpubill.cli._common import add_store_argument, open_store

HELP = "backtest a change to the contracts: every invoice before and after, on stored events"
FORMATS = ("text", "json", "markdown", "github")
EXIT_CHANGED = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gpubill.service.diff_gates import GATE_NAMES

    p.add_argument("--base", required=True, metavar="REV", help="the git revision to compare with (e.g. origin/main)")
    p.add_argument("--head", metavar="REV", help="the revision to compare (default: the work tree)")
    p.add_argument("--contracts", default=".", metavar="DIR",
                   help="the contracts directory inside the git repository (default: .)")
    add_store_argument(p)
    p.add_argument("--period", action="append", metavar="P",
                   help="a month (2026-10), a range FROM..TO or a date (repeatable; "
                        "default: the latest complete month with events)")
    p.add_argument("--format", choices=FORMATS, default="text")
    for name in GATE_NAMES:
        unit = "AMOUNT" if name.endswith("_amount") else "PCT"
        p.add_argument("--" + name.replace("_", "-"), dest=name, metavar=unit,
                       help="exit 4 when exceeded (also settable in gpubill-diff.toml)")
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 0 when nothing changed, 2 when something did")
    p.add_argument("--map", metavar="FILE",
                   help="the store is a `gpubill sample`: its --map-out file points the contracts at the pseudonyms")


def run(args: argparse.Namespace) -> int:
    from gpubill.service import diff_gates, diff_render
    from gpubill.service.rating import ServiceError
    from gpubill.service.diff import backtest
    from gpubill.service.revisions import run_time
    from gpubill.service.sample import SampleError, read_mapping

    try:
        gates = diff_gates.gates_from(vars(args), args.contracts)
        now = run_time()
        mapping = None if args.map is None else read_mapping(args.map)
    except (diff_gates.GateError, ServiceError, SampleError) as e:
        raise CliError(str(e), EXIT_INVALID) from None
    store = open_store(args, readonly=True)
    try:
        report = backtest(store, args.contracts, args.base, args.head, args.period or (), mapping)
    except ServiceError as e:
        if args.format == "markdown":   # the sticky comment says so instead of keeping the last run's numbers
            _write_markdown(diff_render.failure_markdown(str(e), now))
        raise CliError(str(e), e.code) from None
    finally:
        store.close()
    _print(report, args.format, now)
    exceeded = diff_gates.violations(report, gates)
    for reason in exceeded:
        print(f"gpubill: gate: {reason}", file=sys.stderr)
    if exceeded:
        return EXIT_POLICY
    return EXIT_CHANGED if args.detailed_exitcode and diff_gates.changed(report) else 0


def _print(report, fmt: str, now) -> None:
    from gpubill.service import diff_render

    if fmt == "json":
        import orjson

        sys.stdout.buffer.write(orjson.dumps(diff_render.report_json(report), option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.buffer.flush()
        return
    text = diff_render.render(report, fmt, now)
    if fmt == "markdown":
        _write_markdown(text)
    else:
        sys.stdout.write(text)


def _write_markdown(text: str) -> None:
    """The comment on stdout, and in the job summary when GitHub names one."""
    from gpubill.service import diff_render

    sys.stdout.write(text)
    diff_render.write_step_summary(text)
