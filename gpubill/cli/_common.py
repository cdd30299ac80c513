"""Options and helpers shared by several commands."""

from __future__ import annotations

import argparse
import os


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    """`--store PATH`: defaults to $GPUBILL_STORE, then ./gpubill.db."""
    parser.add_argument(
        "--store",
        metavar="PATH",
        default=None,
        help="SQLite store file (default: $GPUBILL_STORE, then ./gpubill.db)",
    )


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


def open_store(args: argparse.Namespace, *, create: bool = False, readonly: bool = False, **options):
    """The store named by ``--store``, or exit 3 with one line.

    ``create``: a missing store is made (commands that write events or keys); otherwise a
    missing store is refused and nothing is created. ``readonly``: the store is only read
    (no migration, no write).
    """
    from gpubill.cli import CliError, EXIT_IO
    from gpubill.service.errors import StoreError, StoreMissing
    from gpubill.service.events import Store

    path = store_path(args)
    try:
        return Store(path, create=create, readonly=readonly, **options)
    except StoreMissing as e:
        raise CliError(f"{e} (ingest events first, or pass --store)", EXIT_IO) from None
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None
