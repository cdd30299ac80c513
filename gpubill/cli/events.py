"""`gpubill events`: list, show and re-submit events; the quarantine.

    gpubill events [list] [--code C] [--subscription S] [--from T] [--to T] [--limit N]
    gpubill events show TRANSACTION_ID [--subscription S]
    gpubill events rejected [--all]            quarantined events (open ones by default)
    gpubill events rejected ID                 one quarantined event: raw payload and reasons
    gpubill events resubmit ID [--file FIXED.json|-]   re-submit (fixed) a quarantined event
    gpubill events discard ID                  close a quarantined event without storing it
    gpubill events conflicts                   events that reused a key with other content

Times (--from/--to) are Unix seconds or ISO-8601 with an offset; both bounds
are inclusive. ``--format json`` prints JSON lines (one object per event).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

import orjson

from gpubill.cli import CliError, EXIT_INVALID, EXIT_IO, EXIT_OK, EXIT_USAGE
from gpubill.cli._common import add_store_argument, open_store
from gpubill.service.errors import StoreError
from gpubill.service.events import MAX_LINE, parse_timestamp
from gpubill.text import shown

HELP = "list, show and re-submit events; quarantine"
ACTIONS = ("list", "show", "rejected", "resubmit", "discard", "conflicts")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gpubill.cli import _args

    p.add_argument("action", nargs="?", default="list", choices=ACTIONS, help="what to do (default: list)")
    p.add_argument("target", nargs="?", help="transaction id (show) or quarantine id")
    add_store_argument(p)
    p.add_argument("--code", help="only events with this code")
    p.add_argument("--subscription", help="only events of this external_subscription_id")
    p.add_argument("--from", dest="time_from", metavar="TIME", help="timestamp lower bound (inclusive)")
    p.add_argument("--to", dest="time_to", metavar="TIME", help="timestamp upper bound (inclusive)")
    p.add_argument("--limit", type=_args.rows, default=100, help="at most N rows (default 100)")
    p.add_argument("--offset", type=_args.offset, default=0, help="skip N rows")
    p.add_argument("--all", action="store_true", help="rejected: include resubmitted and discarded")
    p.add_argument("--file", help="resubmit: the fixed event (JSON object, or - for stdin)")
    p.add_argument("--format", choices=("text", "json"), default="text")


def _time(s: str | None, opt: str) -> int | None:
    if s is None:
        return None
    ms, problem = parse_timestamp(s, 0)
    if problem:
        raise CliError(f"{opt}: {problem.message}", EXIT_USAGE)
    return ms


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


#: actions that change the store; the others only read it (no migration, no write)
WRITING = ("resubmit", "discard")


def run(args: argparse.Namespace) -> int:
    """Every action needs an existing store: a missing one is refused (exit 3), never created."""
    store = open_store(args, readonly=args.action not in WRITING)
    try:
        return _ACT[args.action](store, args)
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None
    except ValueError as e:  # an argument the store refuses (a negative limit, ...)
        raise CliError(str(e), EXIT_USAGE) from None
    finally:
        store.close()


def _event_json(e) -> dict:
    return {"id": e.id, "transaction_id": e.transaction_id,
            "external_subscription_id": e.external_subscription_id, "code": e.code,
            "timestamp": _iso(e.timestamp_ms), "properties": e.properties,
            "precise_total_amount_cents": e.precise_total_amount_cents,
            "received_at": _iso(e.received_ms)}


def _out(obj) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")


def _list(store, args) -> int:
    if args.target:
        raise CliError("list takes no argument (did you mean `events show`?)", EXIT_USAGE)
    rows = store.list_events(code=args.code, sub=args.subscription,
                             time_from_ms=_time(args.time_from, "--from"),
                             time_to_ms=_time(args.time_to, "--to"), limit=args.limit, offset=args.offset)
    for e in rows:
        if args.format == "json":
            _out(_event_json(e))
        else:
            props = " ".join(f"{_cell(k)}={_cell(v)}" for k, v in e.properties.items())
            sys.stdout.write(f"{e.id}\t{_iso(e.timestamp_ms)}\t{e.external_subscription_id}\t{e.code}\t"
                             f"{e.transaction_id}\t{props}\n")
    return EXIT_OK


def _show(store, args) -> int:
    if not args.target:
        raise CliError("show needs a transaction id", EXIT_USAGE)
    rows = store.get_events(args.target, args.subscription)
    if not rows:
        raise CliError(f"no event with transaction_id {shown(args.target, 80)}", EXIT_INVALID)
    for e in rows:
        if args.format == "json":
            _out({**_event_json(e), "raw": orjson.loads(e.raw)})
        else:
            sys.stdout.write(orjson.dumps({**_event_json(e), "raw": orjson.loads(e.raw)},
                                          option=orjson.OPT_INDENT_2).decode() + "\n")
    return EXIT_OK


def _cell(v) -> str:
    """A value for one tab-separated text line: a tab, newline or other control character in
    stored text is shown escaped (``\\t``), never raw; non-strings as compact JSON."""
    if not isinstance(v, str):
        try:
            return orjson.dumps(v).decode()
        except TypeError:
            v = str(v)
    if v.isprintable():
        return v
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in v)


def _rejected_json(r) -> dict:
    try:
        raw = orjson.loads(r.raw)
    except orjson.JSONDecodeError:
        raw = r.raw.decode("utf-8", "replace")
    return {"id": r.id, "received_at": _iso(r.received_ms), "source": r.source, "status": r.status,
            "reasons": r.reasons, "raw": raw, "resolved_event_id": r.resolved_event_id}


def _rejected(store, args) -> int:
    if args.target:
        r = store.get_rejected(_id(args.target))
        if r is None:
            raise CliError(f"no quarantined event {args.target}", EXIT_INVALID)
        opt = 0 if args.format == "json" else orjson.OPT_INDENT_2
        sys.stdout.write(orjson.dumps(_rejected_json(r), option=opt).decode() + "\n")
        return EXIT_OK
    for r in store.list_rejected(status=None if args.all else "open", limit=args.limit, offset=args.offset):
        if args.format == "json":
            _out(_rejected_json(r))
        else:
            why = "; ".join(f"{p['field']}: {p['message']}" for p in r.reasons)
            sys.stdout.write(f"{r.id}\t{_iso(r.received_ms)}\t{r.status}\t{_cell(r.source)}\t{_cell(why)}\n")
    return EXIT_OK


def _id(s: str) -> int:
    """A quarantine id as typed: ASCII digits, optionally signed (out of range: no such id)."""
    body = s[1:] if s[:1] in "+-" else s
    if not (body.isascii() and body.isdigit()) or len(body) > 40:
        raise CliError(f"expected a quarantine id (a number), got {shown(s, 80)}", EXIT_USAGE)
    return int(s)


def _resubmit(store, args) -> int:
    if not args.target:
        raise CliError("resubmit needs a quarantine id", EXIT_USAGE)
    event = None
    if args.file:
        try:
            data = _read_file(args.file)
        except OSError as e:
            raise CliError(f"{args.file}: {e.strerror or e}", EXIT_IO) from None
        if len(data) > MAX_LINE:
            raise CliError(f"{args.file}: larger than {MAX_LINE} bytes; one event is much smaller", EXIT_INVALID)
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise CliError(f"{args.file}: malformed JSON: {e}", EXIT_INVALID) from None
        if isinstance(event, dict) and isinstance(event.get("event"), dict):
            event = event["event"]
        if event is None:  # the store would take None for "as it was"
            raise CliError(f"{args.file}: expected the fixed event (a JSON object), got null", EXIT_INVALID)
    qid = _id(args.target)
    try:
        rec = store.resubmit(qid, event)
    except KeyError:
        raise CliError(f"no quarantined event {args.target}", EXIT_INVALID) from None
    r = rec.result(0)
    if args.format == "json":
        _out({"quarantine_id": qid, "status": r.status, "event_id": r.event_id,
              "reasons": [p.text() for p in r.problems]})
    else:
        sys.stdout.write(f"{args.target}: {r.status}" + (f" as event {r.event_id}" if r.event_id else "") + "\n")
    if r.status in ("ingested", "duplicate", "accepted"):  # accepted: a cluster's intake has it
        return EXIT_OK
    for p in r.problems:
        print(f"gpubill: error: {p.text()}", file=sys.stderr)
    if r.status == "conflict":
        print(f"gpubill: error: conflicts with stored event {r.event_id}", file=sys.stderr)
    return EXIT_INVALID


def _read_file(path: str) -> bytes:
    """The file's bytes (``-``: stdin), at most one byte past MAX_LINE."""
    if path == "-":
        return sys.stdin.buffer.read(MAX_LINE + 1)
    with open(path, "rb") as f:
        return f.read(MAX_LINE + 1)


def _discard(store, args) -> int:
    if not args.target:
        raise CliError("discard needs a quarantine id", EXIT_USAGE)
    if not store.discard_rejected(_id(args.target)):
        raise CliError(f"no open quarantined event {args.target}", EXIT_INVALID)
    return EXIT_OK


def _conflicts(store, args) -> int:
    for cid, received, source, event_id, raw in store.list_conflicts(limit=args.limit, offset=args.offset):
        if args.format == "json":
            _out({"id": cid, "received_at": _iso(received), "source": source, "event_id": event_id,
                  "raw": orjson.loads(raw)})
        else:
            sys.stdout.write(f"{cid}\t{_iso(received)}\t{source}\tkept event {event_id}\t{bytes(raw).decode()}\n")
    return EXIT_OK


_ACT = {"list": _list, "show": _show, "rejected": _rejected, "resubmit": _resubmit,
        "discard": _discard, "conflicts": _conflicts}
