"""`gpubill serve`: run the Lago-compatible events API (Starlette + uvicorn).

Binds 127.0.0.1:8080 by default. ``--port 0`` picks a free port; the address
actually bound is printed on stdout as ``listening on http://HOST:PORT`` once
the server accepts connections.
"""

from __future__ import annotations

import argparse
import socket
import sys

from gpubill.cli import CliError, EXIT_IO, EXIT_OK, EXIT_USAGE
from gpubill.cli._common import add_store_argument, store_path

HELP = "run the Lago-compatible events API"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_store_argument(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free port)")
    p.add_argument("--batch-limit", type=int, default=10_000, help="most events per batch (default 10000)")
    p.add_argument("--max-body", type=int, default=32, metavar="MiB", help="request size limit (default 32 MiB)")
    p.add_argument("--max-future", type=float, default=24.0, metavar="HOURS",
                   help="reject timestamps more than HOURS ahead (default 24)")
    p.add_argument("--synchronous", choices=("normal", "full"), default="normal",
                   help="full: fsync every commit (acknowledged events survive power loss)")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from gpubill.server.app import create_app
    from gpubill.store import Store, StoreError

    if not 0 <= args.port <= 65535:
        raise CliError("--port must be 0..65535", EXIT_USAGE)
    try:
        store = Store(store_path(args), synchronous=args.synchronous,
                      max_future_s=int(args.max_future * 3600),
                      chunk_size=max(8192, args.batch_limit))
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None
    try:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as e:
        store.close()
        raise CliError(f"cannot listen on {args.host}:{args.port}: {e.strerror}", EXIT_IO) from None
    host, port = sock.getsockname()[:2]
    if not store.list_keys():
        print("gpubill: warning: no API keys yet; create one with `gpubill keys create`", file=sys.stderr)
    app = create_app(store, batch_limit=args.batch_limit, max_body=args.max_body * 1024 * 1024)
    # Request threads release the GIL for each SQLite step and must get it back from threads
    # parsing other requests: 0.5 ms instead of Python's 5 ms switch interval.
    sys.setswitchinterval(0.0005)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)

    async def announce():
        sys.stdout.write(f"listening on http://{host}:{port}\n")
        sys.stdout.flush()
    _orig = server.startup

    async def startup(sockets=None):
        await _orig(sockets=sockets)
        await announce()
    server.startup = startup
    try:
        server.run(sockets=[sock])
    finally:
        store.close()
    return EXIT_OK
