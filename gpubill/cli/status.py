"""`gpubill status`: the store's state in one line each (``--format json``: one object).

The events' watermark (every event id up to it is stored and visible), open rejections, recorded
conflicts; with ``--events`` and ``--intake``, how far the ingest workers are behind: entries read and
not yet stored, entries not yet read, the events they hold, the oldest one's age. Reads only.
"""

from __future__ import annotations

import argparse
import sys

from gpubill.cli import CliError, EXIT_IO, EXIT_OK
from gpubill.cli._common import add_store_argument, open_store

HELP = "the store's state: events watermark, open rejections, conflicts, intake lag"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_argument(p)
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")


def run(args: argparse.Namespace) -> int:
    from gpubill.service.errors import StoreError
    from gpubill.service.events import intake_lag

    store = open_store(args, readonly=True)
    try:
        stats = store.stats()
        lag = intake_lag(store)
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None
    finally:
        store.close()
    out = {"events_watermark": int(stats["events"]), "rejected_open": int(stats["rejected_open"]),
           "conflicts": int(stats["conflicts"])}
    if lag is not None:
        out.update({f"intake_{k}": v for k, v in lag.items()})
    if args.format == "json":
        import orjson
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
        return EXIT_OK
    lines = [f"events watermark: {out['events_watermark']}", f"rejected (open): {out['rejected_open']}",
             f"conflicts: {out['conflicts']}"]
    if lag is not None:
        lines += [f"intake pending entries: {lag['pending']}", f"intake undelivered entries: {lag['undelivered']}",
                  f"intake waiting events: {lag['events']}", f"intake oldest age: {lag['oldest_age_s']:g} s"]
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK
