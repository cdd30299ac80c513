"""`gpubill audit`: the hash-chained log of every change to a store.

    gpubill audit log [--action A] [--object ID] [--after SEQ] [--limit N] [--format table|json]
    gpubill audit verify [--checkpoint FILE]
    gpubill audit checkpoint [-o FILE]

`log` lists entries oldest first (`--action invoice` matches `invoice.*`).
`verify` recomputes every link and checks the stored checkpoints, the
finalized invoices' entries and, with `--checkpoint`, that the log still
extends a checkpoint note kept elsewhere: exit 0 when it holds, 1 with the
first bad entry and why on one line. `checkpoint` records the log's size and
Merkle root and prints the note (C2SP form) or writes it to FILE: keep it
outside the store (a git repository, a ticket) to catch a removed tail later.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

import orjson

from gpubill.cli import CliError, EXIT_INVALID, EXIT_IO, EXIT_OK
from gpubill.cli._common import add_store_argument, open_store, shown, write_table

HELP = "read, verify and checkpoint the hash-chained audit log"
ACTIONS = ("log", "verify", "checkpoint")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gpubill.cli import _args

    p.add_argument("action", choices=ACTIONS)
    add_store_argument(p)
    p.add_argument("--action", dest="only_action", metavar="A", help="log: only this action (or A.*)")
    p.add_argument("--object", metavar="ID", help="log: only entries about this object")
    p.add_argument("--after", type=_args.offset, default=0, metavar="SEQ", help="log: entries after SEQ")
    p.add_argument("--limit", type=_args.rows, default=100, help="log: at most N entries (default 100)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--checkpoint", metavar="FILE", help="verify: a checkpoint note the log must still extend")
    p.add_argument("-o", "--output", metavar="FILE", help="checkpoint: write the note to FILE")


def run(args: argparse.Namespace) -> int:
    """`log` and `verify` only read the store; `checkpoint` records one row. None creates a store."""
    from gpubill.service.errors import StoreError

    note = _read_note(args.checkpoint) if args.checkpoint else None
    store = open_store(args, readonly=args.action != "checkpoint")
    try:
        if args.action == "log":
            return _log(store, args)
        if args.action == "verify":
            return _verify(store, note, args.checkpoint)
        return _checkpoint(store, args.output)
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None
    finally:
        store.close()


def _log(store, args) -> int:
    from gpubill.service.access import audit_entries

    found = audit_entries(store, after=args.after, limit=args.limit, action=args.only_action,
                          object_id=args.object)
    if args.format == "json":
        for e in found:
            sys.stdout.write(orjson.dumps(e.as_dict()).decode() + "\n")
        return EXIT_OK
    write_table(("SEQ", "AT", "ACTOR", "ACTION", "OBJECT", "DETAILS"),
                [(e.seq, _iso(e.at_ms), e.actor, e.action, f"{e.object_type} {e.object_id}", _details(e))
                 for e in found])
    return EXIT_OK


def _details(e) -> str:
    text = orjson.dumps(e.payload, option=orjson.OPT_SORT_KEYS).decode()
    return f"{text} ({e.reason})" if e.reason else text


def _verify(store, note: str | None, note_path: str | None) -> int:
    from gpubill.service.access import verify_audit

    try:
        v = verify_audit(store, note)
    except ValueError as e:  # the note is not a checkpoint note
        raise CliError(f"{shown(note_path)}: {e}", EXIT_INVALID) from None
    if not v.ok:
        print(f"gpubill: audit log broken at entry {v.first_bad}: {v.problem}", file=sys.stderr)
        return EXIT_INVALID
    print(f"audit log ok: {v.size} entries, head {v.head.hex()}")
    return EXIT_OK


def _checkpoint(store, output: str | None) -> int:
    from gpubill.service.access import checkpoint_audit

    note = checkpoint_audit(store)
    if output is None:
        sys.stdout.write(note)
        return EXIT_OK
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(note)
    except OSError as e:
        raise CliError(f"{shown(output)}: {e.strerror}", EXIT_IO) from None
    return EXIT_OK


def _read_note(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(4096)
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"{shown(path)}: cannot read the checkpoint note: {getattr(e, 'strerror', None) or e}",
                       EXIT_IO) from None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
