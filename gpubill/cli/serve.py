"""`gpubill serve`: run the Lago-compatible events API (Starlette + uvicorn).

Binds 127.0.0.1:8080 by default. ``--port 0`` picks a free port; the address
actually bound is printed on stdout as ``listening on http://HOST:PORT`` once
the server accepts connections. ``--contracts DIR`` (repeatable) names the
.bill files the invoice refresh/finalize and estimate calls price with
(without it: $GPUBILL_CONTRACTS, paths separated by the OS path separator).

``--workers N`` runs N server processes on the one listening socket and the
one store: the parent opens (and migrates) the store, binds the socket, forks
the workers, prints the address once every worker accepts connections, and
stops them on SIGTERM or SIGINT (or stops them all, exit 3, when one dies).
A worker whose parent is gone (kill -9) finishes its requests and exits.
Dedup stays exact across them: it is decided under SQLite's write lock
(docs/store.md, Idempotency).

``--events URL --intake URL``: the events go to a ClickHouse cluster through a
Redis Streams intake; a valid event is acknowledged (202, ``accepted``) once
the intake has it on disk, and ``gpubill ingest-worker`` stores it. Any number
of servers may share one intake.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import traceback

from gpubill.cli import CliError, EXIT_IO, EXIT_OK, EXIT_USAGE, _args
from gpubill.cli._common import add_store_argument, events_url, intake_url, store_path
from gpubill.server.protocol import DEFAULT_HEADER_TIMEOUT_S
from gpubill.service.events import rare_collections

HELP = "run the Lago-compatible events API"
MAX_WORKERS = 64
MAX_PENDING_EVENTS = 100 * _args.MAX_BATCH_EVENTS


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
    p.add_argument("--max-pending", type=_args.int_range(1, MAX_PENDING_EVENTS), default=None, metavar="EVENTS",
                   help="most events of admitted requests waiting for the writer, per worker (default 8 x "
                        "--batch-limit, at least --batch-limit); a request past it is answered 429 with "
                        "Retry-After and stores nothing")
    p.add_argument("--workers", type=_args.int_range(1, MAX_WORKERS), default=1, metavar="N",
                   help=f"server processes on the one port and store (default 1, at most {MAX_WORKERS})")
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
    check_limits(args)
    return serve(args, open_serving_store(args))


def check_limits(args: argparse.Namespace) -> None:
    """``--max-pending`` (its default set) holds a batch; checked before the store is opened."""
    from gpubill.server.app import PENDING_BATCHES

    if args.max_pending is None:
        args.max_pending = PENDING_BATCHES * args.batch_limit
    if args.max_pending < args.batch_limit:
        raise CliError(f"--max-pending ({args.max_pending}) must hold one batch: at least --batch-limit "
                       f"({args.batch_limit})", EXIT_USAGE)


def serve(args: argparse.Namespace, store, also=None) -> int:
    """Serve ``store`` (``open_serving_store``, after ``check_limits``; closed here) as ``args`` say;
    ``also(base_url)``: more lines to print once listening (`gpubill portal open`: the portal's link)."""
    try:
        sock = listen_socket(args.host, args.port)
    except OSError as e:
        store.close()
        raise CliError(f"cannot listen on {args.host}:{args.port}: {e.strerror}", EXIT_IO) from None
    host, port = sock.getsockname()[:2]
    if not store.list_keys() and also is None:
        print("gpubill: warning: no API keys yet; create one with `gpubill keys create`", file=sys.stderr)
    base = f"http://{host}:{port}"
    address = f"listening on {base}\n" + (also(base) if also is not None else "")
    if args.workers == 1:
        return _serve(args, store, sock, lambda server: _say(address), alerts=True)
    store.close()  # each worker opens its own; none is open across the fork
    return _supervise(args, sock, address)


def open_serving_store(args: argparse.Namespace):
    """The store `gpubill serve` serves, as ``args`` say (CliError, exit 3, when it cannot be opened)."""
    from gpubill.service.errors import StoreError
    from gpubill.service.events import open_event_store

    try:
        return open_event_store(store_path(args), events=events_url(args), intake=intake_url(args),
                                synchronous=args.synchronous, max_future_s=int(args.max_future * 3600),
                                chunk_size=max(8192, args.batch_limit))
    except StoreError as e:
        raise CliError(str(e), EXIT_IO) from None


def _say(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


def _serve(args: argparse.Namespace, store, sock: socket.socket, on_ready, alerts: bool) -> int:
    """Serve on ``sock`` until stopped; ``on_ready(server)`` once connections are accepted."""
    import uvicorn

    from gpubill.server.app import create_app
    from gpubill.server.protocol import with_header_deadline

    app = create_app(store, args.contracts, batch_limit=args.batch_limit, max_body=args.max_body * 1024 * 1024,
                     body_timeout=args.body_timeout, max_pending=args.max_pending)
    # Request threads release the GIL for each SQLite step and must get it back from threads
    # parsing other requests: 0.5 ms instead of Python's 5 ms switch interval.
    sys.setswitchinterval(0.0005)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            http=with_header_deadline(args.header_timeout))
    server = uvicorn.Server(config)
    _orig = server.startup

    async def startup(sockets=None):
        await _orig(sockets=sockets)
        on_ready(server)
    server.startup = startup
    watcher = _watch_alerts(store, args) if args.contracts and alerts else None
    try:
        with rare_collections():  # each request parses thousands of acyclic events
            server.run(sockets=[sock])
    finally:
        if watcher is not None:
            watcher.stop()
        store.close()
    return EXIT_OK


def _supervise(args: argparse.Namespace, sock: socket.socket, address: str) -> int:
    """Fork ``args.workers`` servers on ``sock``; announce ``address`` once all are ready; wait for them."""
    ready_r, ready_w = os.pipe()  # each worker writes one byte when it accepts connections, then closes it
    alive_r, alive_w = os.pipe()  # the workers' end reads EOF once the parent is gone
    workers = set()
    for i in range(args.workers):
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            os.close(alive_w)
            os._exit(_worker(args, sock, ready_w, alive_r, alerts=i == 0))
        workers.add(pid)
    for fd in (ready_w, alive_r):
        os.close(fd)
    sock.close()
    with os.fdopen(ready_r, "rb") as ready:
        started = len(ready.read())
    if started < args.workers:
        _stop(workers)
        raise CliError(f"{args.workers - started} of {args.workers} server workers did not start", EXIT_IO)
    _say(address)
    return _wait(workers)


def _worker(args: argparse.Namespace, sock: socket.socket, ready_w: int, alive_r: int, alerts: bool) -> int:
    """One forked server process; its exit status (it never returns into the parent's CLI)."""
    def ready(server) -> None:
        import asyncio

        loop = asyncio.get_running_loop()

        def parent_gone() -> None:
            loop.remove_reader(alive_r)
            server.should_exit = True
        loop.add_reader(alive_r, parent_gone)
        os.write(ready_w, b".")
        os.close(ready_w)
    try:
        return _serve(args, open_serving_store(args), sock, ready, alerts)
    except CliError as e:
        print(f"gpubill: error: {e}", file=sys.stderr)
        return e.code
    except BaseException:
        traceback.print_exc()
        return EXIT_IO


def _wait(workers: set) -> int:
    """Wait for the workers: SIGTERM or SIGINT stops them all; so does one that exits unasked (exit 3)."""
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        _stop(workers)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = EXIT_OK
    while workers:
        pid, status = os.wait()
        workers.discard(pid)
        if not stopping:
            print(f"gpubill: error: server worker {pid} exited ({_ended(status)}); stopping the others",
                  file=sys.stderr)
            stopping, code = True, EXIT_IO
            _stop(workers)
    return code


def _stop(workers: set) -> None:
    for pid in workers:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"status {os.waitstatus_to_exitcode(status)}"


def _watch_alerts(store, args):
    """Budget and job-limit checks and webhook deliveries in a background thread (gpubill alerts)."""
    from gpubill.service.alerts import watch

    return watch(store, args.contracts, args.alerts_interval, lambda line: print(f"gpubill: {line}", file=sys.stderr))
