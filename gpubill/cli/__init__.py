"""The `gpubill` command.

Each subcommand lives in its own module under ``gpubill.cli`` and is imported
only when it runs, so ``gpubill check`` never pays for numba, numpy or the
HTTP stack. A command module defines::

    HELP = "one line"
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

Exit codes (also in ``gpubill --help`` and docs/cli.md):
0 ok, 1 invalid input or failed check, 2 usage error, 3 I/O or store error,
4 policy gate failed, 6 access refused, 70 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# numpy asks the kernel for huge pages on large arrays; compacting memory for
# them cost 2-6 s of system time per 10 M-event rate run (bench/rate.py,
# bench/invoice.py: best of 3, 10.4 s -> 9.3 s).  Set before numpy loads.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_IO = 3
EXIT_POLICY = 4
EXIT_FORBIDDEN = 6  # the acting user or key may not do this, or no known user was named (--as)
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70

#: command name -> (module, one-line help). Modules are imported lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("gpubill.cli.check", "validate .bill files (silent when clean)"),
    "fmt": ("gpubill.cli.fmt", "format .bill files canonically"),
    "ingest": ("gpubill.cli.ingest", "ingest events from JSONL, CSV or Lago batch JSON"),
    "events": ("gpubill.cli.events", "list, show and re-submit events; quarantine"),
    "keys": ("gpubill.cli.keys", "manage API keys for `gpubill serve`"),
    "serve": ("gpubill.cli.serve", "run the Lago-compatible events API"),
    "ingest-worker": ("gpubill.cli.ingest_worker", "move a cluster's Redis Streams intake into its ClickHouse event store"),
    "status": ("gpubill.cli.status", "the store's state: events watermark, open rejections, conflicts, intake lag"),
    "rate": ("gpubill.cli.rate", "rate a period of events against contracts"),
    "invoice": ("gpubill.cli.invoice", "draft invoices for a period: every contract term applied"),
    "invoices": ("gpubill.cli.invoices", "stored invoices: list, show, refresh drafts, finalize, void, export"),
    "credit-note": ("gpubill.cli.credit_note", "credit a finalized invoice (credit, refund or offset), or list credit notes"),
    "estimate": ("gpubill.cli.estimate", "what a planned GPU job would cost a customer now"),
    "alerts": ("gpubill.cli.alerts", "budget and job-limit alerts: list, check, deliver webhooks"),
    "portal": ("gpubill.cli.portal", "links to a customer's portal on `gpubill serve`: make, revoke, list, visits, open"),
    "tui": ("gpubill.cli.tui", "the reviewer terminal UI: usage, credits and draft invoices, explained down to the event"),
    "test": ("gpubill.cli.test", "run the test blocks of .bill files"),
    "diff": ("gpubill.cli.diff", "backtest a change to the contracts: every invoice before and after, on stored events"),
    "sample": ("gpubill.cli.sample", "a pseudonymized sample of stored usage, for backtests in CI"),
    "import": ("gpubill.cli.importer", "import Lago objects into .bill files"),
    "users": ("gpubill.cli.users", "users of a store and their roles (for --as NAME)"),
    "audit": ("gpubill.cli.audit", "read, verify and checkpoint the hash-chained audit log"),
    "demo": ("gpubill.cli.demo", "generate, ingest and rate a realistic month"),
    "migrate-events": ("gpubill.cli.migrate_events",
                       "move a SQLite store's events into a ClickHouse cluster (ids kept; the file stays the control store)"),
    "agent": ("gpubill.cli.agent", "the metering agent on a GPU node: exec, run, status"),
}

EPILOG = """exit codes:
  0    ok
  1    invalid input or failed check
  2    usage error
  3    I/O or store error
  4    policy gate failed
  6    access refused (the role may not do this; --as names no user of the store)
  70   internal error (a bug: GPUBILL_DEBUG=1 shows the traceback)
  130  interrupted
"""


class CliError(Exception):
    """A user-facing error: one line on stderr and an exit code, no traceback."""

    def __init__(self, message: str, code: int = EXIT_INVALID):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line on stderr (no usage block), exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"gpubill: error: {message} (see `{self.prog} --help`)\n")


def build_parser(load_commands: str | None = None) -> argparse.ArgumentParser:
    from gpubill import __version__

    parser = _Parser(
        prog="gpubill",
        description="Pricing as code for GPU compute.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gpubill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        # Only the command that runs has its module imported.
        if load_commands == name:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_module=mod)
    return parser


def _command_name(argv: list[str]) -> str | None:
    for a in argv:
        if a in COMMANDS:
            return a
        if not a.startswith("-"):
            return None
    return None


def _refused(e: Exception) -> bool:
    """Whether ``e`` is a role's refusal (imported only when a command failed)."""
    from gpubill.service.access import Forbidden

    return isinstance(e, Forbidden)


def _store_failed(e: Exception) -> bool:
    """Whether ``e`` is the store failing mid-command (a disk, a cluster shard): one line, exit 3."""
    from gpubill.service.errors import StoreError

    return isinstance(e, StoreError)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = _command_name(argv)
    parser = build_parser(load_commands=name)
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        code = args._module.run(args)
    except CliError as e:
        print(f"gpubill: error: {e}", file=sys.stderr)
        code = e.code
    except KeyboardInterrupt:
        print("gpubill: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        code = EXIT_OK
    except Exception as e:  # a refusal (Forbidden, from any command), the store failing, or a bug
        if _refused(e):
            print(f"gpubill: error: {e}", file=sys.stderr)
            code = EXIT_FORBIDDEN
        elif _store_failed(e):
            print(f"gpubill: error: {e}", file=sys.stderr)
            code = EXIT_IO
        elif os.environ.get("GPUBILL_DEBUG"):
            raise
        else:
            print(f"gpubill: internal error: {type(e).__name__}: {e} (set GPUBILL_DEBUG=1 for the traceback)",
                  file=sys.stderr)
            code = EXIT_INTERNAL
    return code
