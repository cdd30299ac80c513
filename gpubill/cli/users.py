"""`gpubill users`: the people who act on a store (`--as NAME`), and their roles.

    gpubill users add NAME --role ROLE        the first user of a store must be an admin
    gpubill users list [--all] [--format table|json]
    gpubill users set-role NAME --role ROLE
    gpubill users remove NAME

Roles: viewer (reads), reviewer (+ refreshes drafts), approver (+ finalizes,
voids, issues credit notes), admin (+ users, keys and roles); writer is a
metering agent's (ingests events). A store without users is in
single-operator mode: every command acts as the local admin. Once it has
users, each change names who makes it (`--as NAME` or $GPUBILL_USER), only an
admin may change users, and each change is in the audit log.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from gpubill.cli import CliError, EXIT_INVALID, EXIT_IO, EXIT_OK, EXIT_USAGE
from gpubill.cli._common import actor_of, add_actor_argument, add_store_argument, open_store, write_table

HELP = "users of a store and their roles (for --as NAME)"
ACTIONS = ("add", "list", "set-role", "remove")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gpubill.service.access import ROLES

    p.add_argument("action", choices=ACTIONS)
    p.add_argument("name", nargs="?", help="the user (add, set-role, remove)")
    p.add_argument("--role", choices=ROLES, help="viewer, writer, reviewer, approver or admin")
    p.add_argument("--all", action="store_true", help="list: removed users too")
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_store_argument(p)
    add_actor_argument(p)


def run(args: argparse.Namespace) -> int:
    """`add` makes a missing store (its first user may come before any event); the others need one."""
    from gpubill.service.access import check_user_name
    from gpubill.service.errors import StoreError

    if args.action != "list":
        if not args.name:
            raise CliError(f"users {args.action} needs a NAME", EXIT_USAGE)
        if args.action in ("add", "set-role") and not args.role:
            raise CliError(f"users {args.action} needs --role", EXIT_USAGE)
        try:
            check_user_name(args.name)
        except ValueError as e:
            raise CliError(str(e), EXIT_USAGE) from None
    store = open_store(args, create=args.action == "add", readonly=args.action == "list")
    try:
        return _list(store, args) if args.action == "list" else _change(store, args)
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None
    finally:
        store.close()


def _change(store, args) -> int:
    from gpubill.service import access

    actor = actor_of(args, store)
    try:
        if args.action == "add":
            user = access.add_user(store, actor, args.name, args.role)
            print(f"added {user.name} ({user.role})", file=sys.stderr)
        elif args.action == "set-role":
            user = access.set_role(store, actor, args.name, args.role)
            print(f"{user.name} is now {user.role}", file=sys.stderr)
        else:
            user = access.remove_user(store, actor, args.name)
            print(f"removed {user.name}", file=sys.stderr)
    except ValueError as e:  # no such user, name taken, the last admin, ...
        raise CliError(str(e), EXIT_INVALID) from None
    return EXIT_OK


def _list(store, args) -> int:
    import orjson

    from gpubill.service.access import list_users

    found = list_users(store, removed=args.all)
    if args.format == "json":
        for u in found:
            sys.stdout.write(orjson.dumps({"name": u.name, "role": u.role, "created_at": _iso(u.created_ms),
                                           "removed_at": u.removed_ms and _iso(u.removed_ms)}).decode() + "\n")
        return EXIT_OK
    write_table(("NAME", "ROLE", "CREATED", "REMOVED"),
                [(u.name, u.role, _iso(u.created_ms), _iso(u.removed_ms) if u.removed_ms else "") for u in found])
    return EXIT_OK


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
