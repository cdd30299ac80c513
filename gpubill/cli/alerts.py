"""`gpubill alerts`: budget and job-limit alerts, their webhooks, and the checks that fire them.

    gpubill alerts [list] [--customer C] [--period P] [--format table|json]
    gpubill alerts check --contracts DIR [--format table|json]
    gpubill alerts deliver [--timeout S] [--retry-now]
    gpubill alerts webhook add URL --secret-env NAME | webhook list | webhook remove URL

`check` evaluates the events stored since the last check (`gpubill ingest
--contracts` and `gpubill serve --contracts` run it too) and fires what is
due; `deliver` makes one pass over the webhook outbox (for cron).  Exit 0;
`deliver` exits 1 when a delivery failed for good in this pass.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections import Counter

from gpubill.cli import EXIT_INVALID, EXIT_OK, CliError
from gpubill.cli._common import actor_of, add_actor_argument, add_store_argument, on_store, open_store

HELP = "budget and job-limit alerts: list, check, deliver webhooks"
ACTIONS = ("list", "check", "deliver", "webhook")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gpubill.cli import _args

    p.add_argument("action", nargs="?", choices=ACTIONS, default="list", help="what to do (default: list)")
    p.add_argument("args", nargs="*", metavar="ARG", help="webhook: add URL | list | remove URL")
    add_store_argument(p)
    add_actor_argument(p)
    p.add_argument("--contracts", action="append", metavar="DIR", help="check: .bill files or directories")
    p.add_argument("--customer", metavar="ID", help="list: one customer (customer id, contract or subscription)")
    p.add_argument("--period", metavar="P", help="list: the billing periods whose label starts with P (e.g. 2026-10)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--secret-env", metavar="NAME",
                   help="webhook add: the environment variable holding the signing secret")
    p.add_argument("--timeout", type=_args.float_range(0.1, _args.MAX_SECONDS), default=10.0, metavar="SECONDS",
                   help="deliver: seconds to wait for each receiver (default 10)")
    p.add_argument("--retry-now", action="store_true",
                   help="deliver: also the pending deliveries whose next retry is not due yet")


def run(args: argparse.Namespace) -> int:
    if args.action != "webhook" and args.args:
        raise CliError(f"{args.action} takes no argument {args.args[0]!r}", 2)
    store = open_store(args, create=False)
    return on_store(store, _ACT[args.action], store, args)


def _list(store, args) -> int:
    from gpubill.service.alerts import list_alerts

    rows = [_shown(a) for a in list_alerts(store, customer=args.customer, period=args.period)]
    if args.format == "json":
        _json(rows)
    else:
        _table([_for_table(r) for r in rows], ("id", "fired_at", "customer", "period", "kind", "threshold", "amount",
                                               "limit", "percent", "webhooks"), "no alerts")
    return EXIT_OK


def _shown(a) -> dict:
    """An alert as a JSON row: amounts as decimal strings, with the currency apart."""
    return {"id": a.id, "fired_at": _iso(a.fired_ms), "customer": a.customer, "contract": a.contract,
            "subscription": a.subscription, "period": a.body["period"]["label"], "kind": a.kind,
            "threshold": a.threshold, "currency": a.currency, "amount": a.amount, "limit": a.limit_amount,
            "percent": a.body["percent"], "transaction_id": a.body.get("transaction_id"),
            "webhooks": list(a.deliveries)}


def _for_table(row: dict) -> dict:
    return {**row, "amount": f"{row['amount']} {row['currency']}", "limit": f"{row['limit']} {row['currency']}",
            "percent": f"{row['percent']}%",
            "webhooks": ", ".join(f"{n} {s}" for s, n in sorted(Counter(d["status"] for d in row["webhooks"]).items()))
            or "-"}


def _check(store, args) -> int:
    from gpubill.service.alerts import check, list_alerts

    if not args.contracts:
        raise CliError("check needs --contracts DIR (the .bill files whose budgets and job limits to evaluate)", 2)
    report = check(store, args.contracts)
    fired = set(report.fired)
    rows = [_shown(a) for a in list_alerts(store) if a.id in fired]
    for line in report.skipped:
        print(f"gpubill: warning: {line}", file=sys.stderr)
    if args.format == "json":
        _json({"events": report.events, "periods": report.periods, "fired": rows, "skipped": list(report.skipped)})
    else:
        print(f"{report.events} new events, {report.periods} billing periods evaluated, {len(rows)} alerts fired")
        if rows:
            _table([_for_table(r) for r in rows], ("id", "customer", "period", "kind", "threshold", "amount", "limit",
                                                   "percent"), "")
    return EXIT_OK


def _deliver(store, args) -> int:
    from gpubill.service.webhooks import deliver

    done = deliver(store, timeout_s=args.timeout, retry_now=args.retry_now)
    print(f"{done.delivered} delivered, {done.retried} to retry, {done.failed} failed")
    return EXIT_INVALID if done.failed else EXIT_OK


def _webhook(store, args) -> int:
    from gpubill.service import webhooks

    what, rest = (args.args[0], args.args[1:]) if args.args else ("list", [])
    if what == "list" and not rest:
        rows = [{"url": e.url, "secret_env": e.secret_env, "added": _iso(e.created_ms)}
                for e in webhooks.endpoints(store)]
        if args.format == "json":
            _json(rows)
        else:
            _table(rows, ("url", "secret_env", "added"), "no webhooks (gpubill alerts webhook add URL --secret-env NAME)")
        return EXIT_OK
    if what not in ("add", "remove") or len(rest) != 1:
        raise CliError("webhook: expected `add URL --secret-env NAME`, `list` or `remove URL`", 2)
    actor = actor_of(args, store)
    if what == "add":
        if not args.secret_env:
            raise CliError("webhook add needs --secret-env NAME (the environment variable holding the secret)", 2)
        new = webhooks.add_endpoint(store, actor, rest[0], args.secret_env)
        print(f"{'added' if new else 'updated'} {rest[0]} (signed with ${args.secret_env})")
        return EXIT_OK
    if not webhooks.remove_endpoint(store, actor, rest[0]):
        raise CliError(f"no webhook {rest[0]!r} (gpubill alerts webhook list)", EXIT_INVALID)
    print(f"removed {rest[0]}")
    return EXIT_OK


_ACT = {"list": _list, "check": _check, "deliver": _deliver, "webhook": _webhook}


def _json(obj) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.buffer.flush()


def _table(rows: list[dict], columns: tuple, empty: str) -> None:
    if not rows:
        if empty:
            print(empty)
        return
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths)).rstrip())


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
