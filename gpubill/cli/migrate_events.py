"""`gpubill migrate-events --store DB --events URL`: move a SQLite store's events into a ClickHouse cluster.

Events keep their ids (the store's invoices keep their watermarks), quarantine
and conflicts follow, and the file stays the control store: afterwards run
every command with ``--store DB --events URL``. Re-running is safe (the
cluster keeps each row once). Exit 0; 3 when the store or the cluster fails.
"""

from __future__ import annotations

import argparse
import json
import sys

from gpubill.cli import CliError, EXIT_IO, EXIT_USAGE
from gpubill.cli._common import events_url, shown, store_path

HELP = "move a SQLite store's events into a ClickHouse cluster (ids kept; the file stays the control store)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="PATH", default=None,
                   help="the SQLite store to move (default: $GPUBILL_STORE, then ./gpubill.db)")
    p.add_argument("--events", metavar="URL", default=None,
                   help="the cluster: clickhouse://HOST:PORT/DB?cluster=NAME (default: $GPUBILL_EVENTS)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="summary format")


def run(args: argparse.Namespace) -> int:
    from gpubill.service.errors import StoreError
    from gpubill.service.events import migrate_events

    url = events_url(args)
    if url is None:
        raise CliError("migrate-events needs --events clickhouse://HOST:PORT/DB?cluster=NAME", EXIT_USAGE)
    path = store_path(args)
    tty = sys.stderr.isatty()

    def progress(moved) -> None:
        if tty:
            print(f"\r{moved.events} events moved", end="", file=sys.stderr, flush=True)

    try:
        moved = migrate_events(path, url, progress)
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None
    finally:
        if tty:
            print(file=sys.stderr)
    if args.format == "json":
        print(json.dumps({"events": moved.events, "rejected": moved.rejected, "conflicts": moved.conflicts,
                          "watermark": moved.last_id}))
    else:
        print(f"moved {moved.events} events (watermark {moved.last_id}), {moved.rejected} quarantined and "
              f"{moved.conflicts} conflicts from {shown(path)} into {url}")
    return 0
