"""`gpubill portal`: links to a customer's portal on `gpubill serve`.

    gpubill portal link --customer C --contracts DIR [--expires 30d] [--url BASE]   prints the link (stdout)
    gpubill portal revoke --link ID                   the link opens nothing from now on
    gpubill portal list [--customer C]                links: id, customer, expiry, state, visits, last visit
    gpubill portal visits [--link ID] [--limit N]     the latest visits, newest first
    gpubill portal open --customer C --contracts DIR [--port P]   a link for a day, and `gpubill serve` behind it

A link shows one customer's data (docs/portal.md) until it expires or is
revoked. Making and revoking one needs the ``share`` permission (approver
or admin: ``--as`` once the store has users) and is written to the audit log;
the link's token is printed once and never stored. ``--url`` is where
customers reach `gpubill serve` (default $GPUBILL_PORTAL_URL, else
http://127.0.0.1:8080).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone

from gpubill.cli import CliError, EXIT_FORBIDDEN, EXIT_INVALID, EXIT_OK, EXIT_USAGE, _args
from gpubill.cli._common import (
    actor_of, add_actor_argument, add_store_argument, on_store, open_store, store_path, write_table,
)

HELP = "links to a customer's portal on `gpubill serve`: make, revoke, list, visits, open"
ACTIONS = ("link", "revoke", "list", "visits", "open")
OPEN_EXPIRY = "1d"  # `portal open`: a link for the session at hand


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS)
    add_store_argument(p)
    p.add_argument("--customer", help="the customer (its id, or its contract's name)")
    p.add_argument("--contracts", action="append", metavar="DIR",
                   help=".bill files or directories (repeatable): the customer must be one a contract bills")
    p.add_argument("--expires", default=None, metavar="DURATION",
                   help="how long the link works: 30d, 12h, 90m (default 30d; `open`: 1d)")
    p.add_argument("--url", default=None, metavar="BASE",
                   help="where customers reach `gpubill serve` (default $GPUBILL_PORTAL_URL, else http://127.0.0.1:8080)")
    p.add_argument("--link", metavar="ID", help="a link's id (revoke; visits of one link)")
    p.add_argument("--limit", type=_args.int_range(1, 100_000), default=50, help="visits: how many (default 50)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--host", default="127.0.0.1", help="open: address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_args.port, default=8080, help="open: port (default 8080; 0 = any free port)")
    add_actor_argument(p)


def run(args: argparse.Namespace) -> int:
    _check(args)
    if args.action == "open":
        return _open(args)
    store = open_store(args, create=args.action == "link", readonly=args.action in ("list", "visits"))
    return on_store(store, {"link": _link, "revoke": _revoke, "list": _list, "visits": _visits}[args.action],
                    args, store)


def _check(args: argparse.Namespace) -> None:
    if args.action in ("link", "open"):
        if not args.customer or not args.contracts:
            raise CliError(f"portal {args.action} needs --customer and --contracts", EXIT_USAGE)
    elif args.action == "revoke" and not args.link:
        raise CliError("portal revoke needs --link ID (gpubill portal list)", EXIT_USAGE)


def _expires_in(args: argparse.Namespace) -> int:
    from gpubill.service.portal.links import DEFAULT_EXPIRY, expiry_ms
    from gpubill.service.rating import ServiceError

    try:
        return expiry_ms(args.expires or (OPEN_EXPIRY if args.action == "open" else DEFAULT_EXPIRY))
    except ServiceError as e:
        raise CliError(f"--expires: {e}", EXIT_USAGE) from None


def _base_url(args: argparse.Namespace) -> str:
    from gpubill.service.portal.links import DEFAULT_URL, PORTAL_URL_ENV

    base = args.url or os.environ.get(PORTAL_URL_ENV) or DEFAULT_URL
    if not base.startswith(("http://", "https://")):
        raise CliError(f"--url must start with http:// or https://, got {base!r}", EXIT_USAGE)
    return base


def _make(args: argparse.Namespace, store):
    """(the link, its token), made by the acting user."""
    from gpubill.service.access import Forbidden
    from gpubill.service.estimate import now_ms
    from gpubill.service.portal.links import create_link

    expires_in = _expires_in(args)
    try:
        return create_link(store, args.contracts, actor_of(args, store), args.customer, expires_in, now_ms=now_ms())
    except Forbidden as e:
        raise CliError(str(e), EXIT_FORBIDDEN) from None


def _link(args: argparse.Namespace, store) -> int:
    from gpubill.service.portal.links import link_url

    base = _base_url(args)
    link, token = _make(args, store)
    url = link_url(base, token)
    if args.format == "json":
        import orjson
        sys.stdout.write(orjson.dumps({"id": link.id, "customer": link.customer, "url": url,
                                       "expires_at": _iso(link.expires_ms)}).decode() + "\n")
    else:
        sys.stdout.write(url + "\n")
        print(f"gpubill: link {link.id} to the portal of {link.customer}, until {_iso(link.expires_ms)}; "
              f"revoke it with `gpubill portal revoke --link {link.id}`", file=sys.stderr)
    return EXIT_OK


def _revoke(args: argparse.Namespace, store) -> int:
    from gpubill.service.access import Forbidden
    from gpubill.service.portal.links import revoke_link

    try:
        link = revoke_link(store, actor_of(args, store), args.link)
    except Forbidden as e:
        raise CliError(str(e), EXIT_FORBIDDEN) from None
    if link is None:
        raise CliError(f"no link {args.link!r} that is not revoked already (gpubill portal list)", EXIT_INVALID)
    print(f"gpubill: link {link.id} to the portal of {link.customer} revoked", file=sys.stderr)
    return EXIT_OK


def _state(link, at_ms: int) -> str:
    return link.refusal(at_ms) or "active"


def _list(args: argparse.Namespace, store) -> int:
    from gpubill.service.estimate import now_ms
    from gpubill.service.portal.links import list_links

    now = now_ms()
    rows = [(u.link.id, u.link.customer, _iso(u.link.expires_ms), _state(u.link, now), u.visits,
             _iso(u.last_visit_ms) if u.last_visit_ms else "—", u.link.created_by)
            for u in list_links(store, args.customer)]
    headers = ("id", "customer", "expires", "state", "visits", "last visit", "made by")
    _emit(args, headers, rows)
    return EXIT_OK


def _visits(args: argparse.Namespace, store) -> int:
    from gpubill.service.portal.links import link_visits

    rows = [(v.link_id, _iso(v.at_ms), v.method, v.path, v.status, v.peer or "")
            for v in link_visits(store, args.link, args.limit)]
    _emit(args, ("link", "at", "method", "path", "status", "from"), rows)
    return EXIT_OK


def _emit(args: argparse.Namespace, headers: tuple, rows: list) -> None:
    if args.format == "json":
        import orjson
        for r in rows:
            sys.stdout.write(orjson.dumps(dict(zip(headers, r))).decode() + "\n")
    else:
        write_table(headers, rows)


def _open(args: argparse.Namespace) -> int:
    """A link for a day on a server started here: `portal link` and `serve` in one command."""
    from gpubill.cli import serve
    from gpubill.service.portal.links import link_url
    from gpubill.service.rating import ServiceError

    p = argparse.ArgumentParser()
    serve.add_arguments(p)
    argv = ["--store", store_path(args), "--host", args.host, "--port", str(args.port)]
    server = p.parse_args(argv + [a for c in args.contracts for a in ("--contracts", c)])
    server.events, server.intake = args.events, args.intake
    serve.check_limits(server)
    store = serve.open_serving_store(server)
    try:
        link, token = _make(args, store)
    except ServiceError as e:
        store.close()
        raise CliError(str(e), e.code) from None
    except BaseException:
        store.close()
        raise
    return serve.serve(server, store, also=lambda base: f"portal of {link.customer}: {link_url(base, token)}\n")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
