"""`gpubill keys`: API keys for `gpubill serve`.

    gpubill keys create --name N --role ROLE [--as USER]   prints the key once (stdout)
    gpubill keys list                                      names, roles, prefixes
    gpubill keys revoke --name N [--as USER]

Only a SHA-256 hash of each key is stored. A key acts with its role
(``gpubill users``): a writer (a metering agent) posts and reads events, a
viewer only reads, a reviewer, approver or admin may also do what that role
may on the invoices. Creating and revoking a key needs an admin (``--as``,
once the store has users) and is written to the audit log (name, role and
prefix; never the key).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from gpubill.cli import CliError, EXIT_INVALID, EXIT_IO, EXIT_OK, EXIT_USAGE
from gpubill.cli._common import actor_of, add_actor_argument, add_store_argument, open_store

HELP = "manage API keys for `gpubill serve`"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gpubill.service.access import ROLES

    p.add_argument("action", choices=("create", "list", "revoke"))
    add_store_argument(p)
    p.add_argument("--name", help="key name (unique)")
    p.add_argument("--role", choices=ROLES, help="viewer (reads), writer (a metering agent: posts events), reviewer, approver or admin")
    p.add_argument("--format", choices=("text", "json"), default="text")
    add_actor_argument(p)


def run(args: argparse.Namespace) -> int:
    """`create` makes a missing store (a server's keys may come before its events); `list` and
    `revoke` refuse a missing store (exit 3) and create nothing."""
    from gpubill.service import access
    from gpubill.service.errors import StoreError
    from gpubill.service.keys import check_key_name

    if args.action == "create":
        if not args.name or not args.role:
            raise CliError("keys create needs --name and --role", EXIT_USAGE)
        try:
            check_key_name(args.name)
        except ValueError as e:
            raise CliError(f"--name: {e}", EXIT_USAGE) from None
    elif args.action == "revoke" and not args.name:
        raise CliError("keys revoke needs --name", EXIT_USAGE)
    store = open_store(args, create=args.action == "create", readonly=args.action == "list")
    try:
        if args.action == "create":
            try:
                key = access.create_key(store, actor_of(args, store), args.name, args.role)
            except ValueError as e:  # the name is taken
                raise CliError(str(e), EXIT_INVALID) from None
            sys.stdout.write(key + "\n")
            if sys.stderr.isatty():
                print("gpubill: store this key now; it cannot be shown again", file=sys.stderr)
        elif args.action == "list":
            import orjson
            for name, role, prefix, created, revoked in store.list_keys():
                when = datetime.fromtimestamp(created / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                if args.format == "json":
                    sys.stdout.write(orjson.dumps({"name": name, "role": role, "prefix": prefix,
                                                   "created_ms": created, "revoked": revoked is not None}
                                                  ).decode() + "\n")
                else:
                    sys.stdout.write(f"{name}\t{role}\t{prefix}…\t{when}" + ("\trevoked" if revoked else "") + "\n")
        else:
            if not access.revoke_key(store, actor_of(args, store), args.name):
                raise CliError(f"no active key named {args.name!r}", EXIT_INVALID)
        return EXIT_OK
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None
    finally:
        store.close()
