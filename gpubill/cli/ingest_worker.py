"""`gpubill ingest-worker`: move a cluster's intake (Redis Streams) into its ClickHouse event store.

Runs until SIGTERM or SIGINT (it finishes the batch it is storing, releases the lock and exits 0), or,
with ``--drain``, until the stream has nothing pending or new. Any number of workers may run against one
intake; a worker killed at any point loses nothing: the next lock holder completes its write with the
same ids (gpubill/cluster/worker.py). On exit, stdout gets one summary line (``--format json``: an
object): entries and events stored, duplicates, conflicts, rejections quarantined. Exit 3 when Redis or
ClickHouse cannot be reached (one line).
"""

from __future__ import annotations

import argparse
import signal
import sys

from gpubill.cli import CliError, EXIT_IO, EXIT_OK, EXIT_USAGE, _args
from gpubill.cli._common import add_store_argument, events_url, intake_url, open_store

HELP = "move a cluster's Redis Streams intake into its ClickHouse event store"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_argument(p)
    p.add_argument("--name", default=None, help="this worker's consumer name (default: random); a worker restarted"
                                                " under its old name first completes what it had read")
    p.add_argument("--batch", type=_args.int_range(1, 65536), default=16384, metavar="EVENTS",
                   help="events stored as one chunk, one insert (default 16384, at most 65536); consecutive"
                        " entries of one source are merged, a larger one cut")
    p.add_argument("--claim-after", type=_args.float_range(0.1, _args.MAX_SECONDS), default=30.0,
                   metavar="SECONDS", help="take over entries another worker read and left unstored this long"
                                           " (default 30: that worker is dead)")
    p.add_argument("--lock-ttl", type=_args.float_range(0.5, 3600), default=10.0, metavar="SECONDS",
                   help="the write lock lapses this long after its holder died (default 10; renewed while held)")
    p.add_argument("--drain", action="store_true", help="exit 0 once the stream has nothing pending or new")
    p.add_argument("--format", choices=("text", "json"), default="text", help="summary format")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from gpubill.service.errors import StoreError
    from gpubill.service.events import ingest_worker

    if events_url(args) is None or intake_url(args) is None:
        raise CliError("ingest-worker needs --events clickhouse://HOST:PORT/DB?cluster=NAME and"
                       " --intake redis://HOST:PORT/DB (or $GPUBILL_EVENTS, $GPUBILL_INTAKE)", EXIT_USAGE)
    store = open_store(args, create=True)
    say = None if args.quiet else (lambda line: print(f"gpubill: {line}", file=sys.stderr, flush=True))
    try:
        worker = ingest_worker(store, name=args.name, batch=args.batch, claim_after_s=args.claim_after,
                               lock_ttl_s=args.lock_ttl, say=say)

        def stop(signum, frame):
            worker.stop()
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            totals = worker.run(drain=args.drain)
        except StoreError as e:
            raise CliError(f"{e}; {worker.totals.line(worker.name)}", EXIT_IO) from None
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None
    finally:
        store.close()
    if args.format == "json":
        import orjson
        sys.stdout.write(orjson.dumps({"worker": worker.name, "entries": totals.entries, **totals.counts,
                                       "completed_for_dead_workers": totals.redone}).decode() + "\n")
    else:
        sys.stdout.write(totals.line(worker.name) + "\n")
    return EXIT_OK
