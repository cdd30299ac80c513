"""`gpubill serve`: run the Lago-compatible events API (Starlette + uvicorn).

Binds 127.0.0.1:8080 by default. ``--port 0`` picks a free port; the address
actually bound is printed on stdout as ``listening on http://HOST:PORT`` once
the server accepts connections. ``--contracts DIR`` (repeatable) names the
.bill files the invoice refresh/finalize and estimate calls price with
(without it: $GPUBILL_CONTRACTS, paths separated by the OS path separator).
"""

from __future__ import annotations

import argparse
import socket
import sys

from gpubill.cli import CliError, EXIT_IO, EXIT_OK, _args
from gpubill.cli._common import add_store_argument, store_path
from gpubill.server.protocol import DEFAULT_HEADER_TIMEOUT_S

HELP = "run the Lago-compatible events API"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_argument(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_args.port, default=8080, help="port (default 8080; 0 = any free port)")
    p.add_argument("--batch-limit", type=_args.int_range(1, _args.MAX_BATCH_EVENTS), default=10_000,
                   help=f"most events per batch (default 10000, at most {_args.MAX_BATCH_EVENTS})")
    p.add_argument("--max-body", type=_args.int_range(1, _args.MAX_BODY_MIB), default=32, metavar="MiB",
                   help=f"request size limit (default 32 MiB, at most {_args.MAX_BODY_MIB})")
    p.add_argument("--max-future", type=_args.hours, default=24.0, metavar="HOURS",
                   help="reject timestamps more than HOURS ahead (default 24)")
    p.add_argument("--body-timeout", type=_args.float_range(0.1, _args.MAX_SECONDS), default=60.0,
                   metavar="SECONDS", help="a request body must arrive within SECONDS (default 60), else 408")
    p.add_argument("--header-timeout", type=_args.seconds, default=DEFAULT_HEADER_TIMEOUT_S, metavar="SECONDS",
                   help="a request's headers must arrive within SECONDS of the connection (or of the previous "
                        f"response; default {DEFAULT_HEADER_TIMEOUT_S:g}), else the connection is closed")
    p.add_argument("--synchronous", choices=("normal", "full"), default="normal",
                   help="full: fsync every commit (acknowledged events survive power loss)")
    p.add_argument("--contracts", action="append", metavar="DIR",
                   help=".bill files or directories (repeatable): what invoice refresh/finalize and estimates "
                        "price with; their budgets and job limits are checked, and alert webhooks delivered, "
                        "in the background")
    p.add_argument("--alerts-interval", type=_args.float_range(1, _args.MAX_SECONDS), default=30.0, metavar="SECONDS",
                   help="with --contracts: at most one alerts check per SECONDS (default 30)")


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn, whose accepted connections get TCP_NODELAY.

    asyncio sets TCP_NODELAY on an accepted connection only when the listening
    socket says ``proto == IPPROTO_TCP``; a socket made with the default proto 0
    leaves Nagle's algorithm on, and a kept-alive connection then waits for the
    client's delayed ACK (~40 ms) between a response's header and body writes.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from gpubill.server.app import create_app
    from gpubill.server.protocol import with_header_deadline
    from gpubill.service.errors import StoreError
    from gpubill.service.events import Store

    try:
        store = Store(store_path(args), synchronous=args.synchronous,
                      max_future_s=int(args.max_future * 3600),
                      chunk_size=max(8192, args.batch_limit))
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None
    try:
        sock = listen_socket(args.host, args.port)
    except OSError as e:
        store.close()
        raise CliError(f"cannot listen on {args.host}:{args.port}: {e.strerror}", EXIT_IO) from None
    host, port = sock.getsockname()[:2]
    if not store.list_keys():
        print("gpubill: warning: no API keys yet; create one with `gpubill keys create`", file=sys.stderr)
    app = create_app(store, args.contracts, batch_limit=args.batch_limit, max_body=args.max_body * 1024 * 1024,
                     body_timeout=args.body_timeout)
    # Request threads release the GIL for each SQLite step and must get it back from threads
    # parsing other requests: 0.5 ms instead of Python's 5 ms switch interval.
    sys.setswitchinterval(0.0005)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            http=with_header_deadline(args.header_timeout))
    server = uvicorn.Server(config)

    async def announce():
        sys.stdout.write(f"listening on http://{host}:{port}\n")
        sys.stdout.flush()
    _orig = server.startup

    async def startup(sockets=None):
        await _orig(sockets=sockets)
        await announce()
    server.startup = startup
    watcher = _watch_alerts(store, args) if args.contracts else None
    try:
        server.run(sockets=[sock])
    finally:
        if watcher is not None:
            watcher.stop()
        store.close()
    return EXIT_OK


def _watch_alerts(store, args):
    """Budget and job-limit checks and webhook deliveries in a background thread (gpubill alerts)."""
    from gpubill.service.alerts import watch

    return watch(store, args.contracts, args.alerts_interval, lambda line: print(f"gpubill: {line}", file=sys.stderr))
