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


def store_path(args: argparse.Namespace) -> str:
    return args.store or os.environ.get("GPUBILL_STORE") or "gpubill.db"
