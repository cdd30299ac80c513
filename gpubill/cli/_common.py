"""Options and helpers shared by several commands."""

from __future__ import annotations

import argparse
import os


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    """`--store PATH` (default $GPUBILL_STORE, then ./gpubill.db); `--events URL` and `--intake URL` (default
    $GPUBILL_EVENTS, $GPUBILL_INTAKE): events in a ClickHouse cluster, written through a Redis Streams intake."""
    parser.add_argument(
        "--store",
        metavar="PATH",
        default=None,
        help="SQLite store file (default: $GPUBILL_STORE, then ./gpubill.db); with --events, the control store"
             " (invoices, audit log, keys, alerts)",
    )
    parser.add_argument("--events", metavar="URL", default=None,
                        help="events in a ClickHouse cluster: clickhouse://HOST:PORT/DB?cluster=NAME"
                             " (default: $GPUBILL_EVENTS; none: in the --store file)")
    parser.add_argument("--intake", metavar="URL", default=None,
                        help="with --events: the Redis Streams intake new events go through, redis://HOST:PORT/DB"
                             " (default: $GPUBILL_INTAKE)")


def add_rating_arguments(parser: argparse.ArgumentParser, period_help: str) -> None:
    """What `rate` and `invoice` both take: the store, the contracts, the period, a customer, the engine."""
    add_store_argument(parser)
    parser.add_argument("--contracts", action="append", metavar="DIR", required=True,
                        help=".bill files or directories (repeatable)")
    parser.add_argument("--period", required=True, help=period_help)
    parser.add_argument("--customer", metavar="ID",
                        help="only this customer (contract name, customer id or subscription id)")
    parser.add_argument("--engine", choices=("fast", "reference"), default="fast",
                        help="fast: numba kernels (default); reference: the plain-Python engine")


def shown(path: str) -> str:
    """A path for output: bytes that are not UTF-8 (a file name from argv) as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def store_path(args: argparse.Namespace) -> str:
    return args.store or os.environ.get("GPUBILL_STORE") or "gpubill.db"


def events_url(args: argparse.Namespace) -> str | None:
    return getattr(args, "events", None) or os.environ.get("GPUBILL_EVENTS") or None


def intake_url(args: argparse.Namespace) -> str | None:
    return getattr(args, "intake", None) or os.environ.get("GPUBILL_INTAKE") or None


def open_store(args: argparse.Namespace, *, create: bool = False, readonly: bool = False, **options):
    """The store named by ``--store`` (its events in the cluster named by ``--events``), or exit 3 with one line.

    ``create``: a missing store is made (commands that write events or keys); otherwise a
    missing store is refused and nothing is created. ``readonly``: the store is only read
    (no migration, no write).
    """
    from gpubill.cli import CliError, EXIT_IO
    from gpubill.service.errors import StoreError, StoreMissing
    from gpubill.service.events import open_event_store

    path = store_path(args)
    try:
        return open_event_store(path, events=events_url(args), intake=intake_url(args), create=create,
                                readonly=readonly, **options)
    except StoreMissing as e:
        raise CliError(f"{e} (ingest events first, or pass --store)", EXIT_IO) from None
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None


def on_store(store, fn, *args):
    """``fn(*args)`` with ``store`` open, closed after; a service or store failure as a CLI error (one line)."""
    from gpubill.cli import CliError, EXIT_IO
    from gpubill.service.errors import StoreError
    from gpubill.service.rating import ServiceError

    try:
        return fn(*args)
    except ServiceError as e:
        raise CliError(str(e), e.code) from None
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None
    finally:
        store.close()


def add_actor_argument(parser: argparse.ArgumentParser) -> None:
    """`--as NAME`: the store's user acting (default $GPUBILL_USER); needed once the store has users."""
    parser.add_argument("--as", dest="as_user", metavar="NAME", default=None,
                        help="act as this user of the store (default: $GPUBILL_USER; "
                             "a store without users: the local admin)")


def actor_of(args: argparse.Namespace, store):
    """The actor a command runs as (``--as``/$GPUBILL_USER), or exit 6 with one line."""
    from gpubill.cli import CliError, EXIT_FORBIDDEN
    from gpubill.service.access import AccessError, local_actor

    try:
        return local_actor(store, args.as_user)
    except AccessError as e:
        raise CliError(str(e), EXIT_FORBIDDEN) from None


TABLE_CELL_CHARS = 80  # a wider cell is clipped in a table (--format json has it whole)


def write_table(headers: tuple, rows: list, file=None) -> None:
    """Rows as left-aligned columns under a header (cells escaped and clipped to TABLE_CELL_CHARS)."""
    import sys

    from gpubill.text import clip, escape

    cells = [[clip(escape(str(c)), TABLE_CELL_CHARS) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    for r in (headers, *cells):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=file or sys.stdout)
