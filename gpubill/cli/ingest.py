"""`gpubill ingest FILE|-`: stream events from JSONL, CSV or Lago batch JSON into the store.

Reads, validates and inserts in chunks (transactions group several), so memory
stays bounded on any input size. Shows
a progress bar on a terminal, nothing when piped. stdout gets the summary
(``--format json`` for programs); stderr one line per rejected or
conflicting event (``FILE:LINE: field: reason``). Exit 1 if any event was
rejected or conflicted (everything valid is still stored), 3 on store or I/O
errors.
"""

from __future__ import annotations

import argparse
import os
import sys

from gpubill.cli import CliError, EXIT_INVALID, EXIT_IO, EXIT_OK, EXIT_USAGE
from gpubill.cli._common import add_store_argument, open_store, shown

HELP = "ingest events from JSONL, CSV or Lago batch JSON"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gpubill.cli import _args
    from gpubill.service.events import INPUT_FORMATS

    p.add_argument("file", metavar="FILE", help="input file, or - for stdin")
    add_store_argument(p)
    p.add_argument("--input-format", choices=("auto", *INPUT_FORMATS), default="auto",
                   help="input format (default: from the file name, else sniffed)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="summary format")
    p.add_argument("--max-future", type=_args.hours, default=24.0, metavar="HOURS",
                   help="reject timestamps more than HOURS after now (default 24)")
    p.add_argument("--chunk", type=_args.int_range(1, _args.MAX_CHUNK), default=8192,
                   help="events validated and inserted together (default 8192); transactions group "
                        "chunks up to 65536 events")
    p.add_argument("--synchronous", choices=("normal", "full"), default="normal",
                   help="full: fsync every commit (survives power loss)")
    p.add_argument("--quiet", action="store_true", help="no per-event diagnostics")
    p.add_argument("--contracts", action="append", metavar="DIR",
                   help="then check these .bill files' budgets and job limits (gpubill alerts)")


def run(args: argparse.Namespace) -> int:
    from gpubill.service.errors import StoreError
    from gpubill.service.events import FormatError, ingest_file, input_format

    if args.chunk < 1:
        raise CliError("--chunk must be at least 1", EXIT_USAGE)
    name = "<stdin>" if args.file == "-" else shown(args.file)
    try:
        stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    except OSError as e:
        raise CliError(f"{name}: {e.strerror}", EXIT_IO) from None
    try:
        size = os.fstat(stream.fileno()).st_size if args.file != "-" else 0
    except (OSError, ValueError):
        size = 0
    fmt = input_format(stream, None if args.file == "-" else args.file, args.input_format)
    store = open_store(args, create=True, synchronous=args.synchronous,
                       max_future_s=int(args.max_future * 3600), chunk_size=args.chunk)
    counts = {"ingested": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
    progress = _Progress(size, enabled=sys.stderr.isatty() and args.format == "text")
    try:
        for rec, where in ingest_file(store, stream, fmt, args.chunk, source=f"cli:{os.path.basename(name)}"):
            for k, v in rec.counts().items():
                if k in counts or k == "accepted":  # accepted: queued in a cluster's intake
                    counts[k] = counts.get(k, 0) + v
            if not args.quiet:
                for r in rec.not_ok():
                    progress.print(_diagnostic(name, fmt, where[r.index], r))
            progress.advance(len(rec), stream)
        if args.contracts:
            from gpubill.service.alerts import after_ingest
            note = after_ingest(store, args.contracts)
            if note:
                progress.print(note)
    except FormatError as e:
        raise CliError(f"{name}: {e}", EXIT_INVALID) from None
    except StoreError as e:
        raise CliError(f"{e}; {_acknowledged(counts)}", EXIT_IO) from None
    except OSError as e:
        raise CliError(f"{name}: {e.strerror or e}", EXIT_IO) from None
    finally:
        progress.close()
        store.close()
    if args.format == "json":
        import orjson
        sys.stdout.write(orjson.dumps({"file": name, "format": fmt, **counts}).decode() + "\n")
    elif "accepted" in counts:  # a cluster's intake: the ingest workers store them and decide duplicates
        sys.stdout.write(f"{name}: {counts['accepted']} accepted into the intake, {counts['rejected']} rejected\n")
    else:
        sys.stdout.write(f"{name}: {counts['ingested']} ingested, {counts['duplicate']} duplicate, "
                         f"{counts['conflict']} conflict, {counts['rejected']} rejected\n")
    return EXIT_INVALID if counts["rejected"] or counts["conflict"] else EXIT_OK


def _acknowledged(counts: dict) -> str:
    """What was done before a store error: the chunks acknowledged so far are stored for good."""
    n = sum(counts.values())
    if not n:
        return "no event of this input was stored"
    if "accepted" in counts:  # a cluster's intake: on disk in Redis, stored by the ingest workers
        return (f"the first {n} events of this input were handled before it and are in the intake "
                "(ingesting the same input again is safe: the workers count them as duplicates)")
    return (f"the first {n} events of this input were handled before it and are stored "
            "(ingesting the same input again is safe: they count as duplicates)")


def _diagnostic(name, fmt, where, r) -> str:
    loc = f"{name}:{where}" if fmt in ("jsonl", "csv") else f"{name}: event {where}"
    if r.status == "rejected":
        why = "; ".join(p.text() for p in r.problems)
        held = "quarantined by an ingest worker" if r.quarantine_id is None else f"quarantine id {r.quarantine_id}"
        return f"{loc}: rejected: {why} ({held})"
    return f"{loc}: conflict: same transaction_id and subscription as event {r.event_id} " \
           f"with different content; the first copy is kept"


class _Progress:
    """A rich progress bar on a terminal; silent otherwise."""

    def __init__(self, total_bytes: int, enabled: bool):
        self.bar = None
        self.count = 0
        if enabled:
            from rich.progress import (BarColumn, Progress, TextColumn, TimeRemainingColumn)
            self.bar = Progress(TextColumn("ingesting"), BarColumn(),
                                TextColumn("{task.fields[events]} events"), TimeRemainingColumn(),
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task("ingest", total=total_bytes or None, events=0)

    def advance(self, n: int, stream) -> None:
        self.count += n
        if self.bar is not None:
            try:
                pos = stream.tell()
            except (OSError, ValueError):
                pos = None
            self.bar.update(self.task, completed=pos, events=self.count)

    def print(self, line: str) -> None:
        if self.bar is not None:
            self.bar.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
