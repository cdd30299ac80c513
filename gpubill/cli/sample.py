"""`gpubill sample`: a pseudonymized sample of a store's usage, for backtests in CI.

    gpubill sample --store DB --out FILE --key-env NAME [--period P] [--customers N]
                   [--fraction F] [--seed S] [--map-out FILE]

The key is read from the environment variable NAME (never from a flag, so that
it stays out of shell history and process lists); without it the command
refuses. FILE is a new store, or JSONL when it ends in `.jsonl`.
"""

from __future__ import annotations

import argparse
import os

from gpubill.cli import CliError, EXIT_IO, EXIT_OK, EXIT_USAGE
from gpubill.cli._common import add_store_argument, open_store, shown
from gpubill.service.errors import StoreError

HELP = "a pseudonymized sample of stored usage, for backtests in CI"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_argument(p)
    p.add_argument("--out", required=True, metavar="FILE", help="the sample: a new store file, or *.jsonl")
    p.add_argument("--key-env", required=True, metavar="NAME",
                   help="the environment variable that holds the pseudonymization key")
    p.add_argument("--period", help="only this period's events (a month or FROM..TO), one day either side")
    p.add_argument("--customers", type=int, metavar="N", help="N subscriptions chosen at random (default: all)")
    p.add_argument("--fraction", type=float, default=1.0, metavar="F",
                   help="keep this share of each subscription's events (default 1)")
    p.add_argument("--seed", type=int, default=0, help="the random seed (default 0)")
    p.add_argument("--map-out", metavar="FILE", help="write real -> pseudonym subscription ids here (JSON)")


def run(args: argparse.Namespace) -> int:
    from gpubill.service.sample import SampleError, mapping_json, sample

    key = os.environ.get(args.key_env, "")
    if not key:
        raise CliError(f"--key-env: the environment variable {args.key_env} is not set or empty", EXIT_USAGE)
    if os.path.exists(args.out):
        raise CliError(f"--out {shown(args.out)} exists: sample into a new file", EXIT_USAGE)
    store = open_store(args, readonly=True)
    try:
        result = sample(store, args.out, key.encode(), period=args.period, customers=args.customers,
                        fraction=args.fraction, seed=args.seed)
        if args.map_out:
            with open(args.map_out, "wb") as f:
                f.write(mapping_json(result.mapping))
    except SampleError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    except (StoreError, OSError) as e:
        raise CliError(str(e), EXIT_IO) from None
    finally:
        store.close()
    print(f"{result.events} events of {result.subscriptions} subscriptions written to {shown(args.out)}")
    return EXIT_OK
