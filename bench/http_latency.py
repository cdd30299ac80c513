"""HTTP latency: a kept-alive connection vs a fresh connection per request.

    .venv/bin/python bench/http_latency.py                 # 500 requests per case
    .venv/bin/python bench/http_latency.py --requests 2000

Starts a real ``gpubill serve`` on a free port of 127.0.0.1 (a store in a
temporary folder, one writer key) and times, with the standard library's
``http.client`` (what lago-python-client's stack does on the wire):

- ``GET /healthz`` and ``POST /api/v1/events`` (one event each) on one
  kept-alive connection;
- the same requests, each on a new connection.

It prints p50 / p90 / p99 in milliseconds per case and the keep-alive/fresh
ratio of the p50s. Before the listening socket was made with
``IPPROTO_TCP`` (so asyncio sets TCP_NODELAY on accepted connections), the
kept-alive p50 was ~44 ms against ~0.6 ms fresh: Nagle's algorithm held the
response body until the client's delayed ACK of the header. It is a benchmark,
not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time

import orjson

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_server(folder: str) -> tuple[subprocess.Popen, int, str]:
    store = os.path.join(folder, "s.db")
    cli = [sys.executable, "-m", "gpubill"]
    key = subprocess.run([*cli, "keys", "create", "--name", "w", "--role", "writer", "--store", store],
                         capture_output=True, check=True, cwd=ROOT).stdout.decode().strip()
    proc = subprocess.Popen([*cli, "serve", "--store", store, "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    line = proc.stdout.readline().decode()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1]), key


def requests(kind: str, key: str):
    """(method, path, body, headers) for request i of a kind."""
    if kind == "healthz":
        return lambda i: ("GET", "/healthz", None, {})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(i: int):
        ev = {"transaction_id": f"lat-{kind}-{i}-{time.monotonic_ns()}", "external_subscription_id": "sub_1",
              "code": "gpu_job", "timestamp": 1_735_689_600, "properties": {"gpu_count": 8}}
        return "POST", "/api/v1/events", orjson.dumps({"event": ev}), headers
    return post


def timed(port: int, make, n: int, keep_alive: bool) -> list[float]:
    out = []
    conn = http.client.HTTPConnection("127.0.0.1", port) if keep_alive else None
    for i in range(n):
        method, path, body, headers = make(i)
        t = time.perf_counter()
        c = conn or http.client.HTTPConnection("127.0.0.1", port)
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        r.read()
        if conn is None:
            c.close()
        out.append(time.perf_counter() - t)
        if r.status != 200:
            raise SystemExit(f"{method} {path}: {r.status}")
    if conn:
        conn.close()
    return out


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1] * 1000 if q < 100 else max(xs) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500, help="requests per case (default 500)")
    n = ap.parse_args().requests
    with tempfile.TemporaryDirectory() as folder:
        proc, port, key = start_server(folder)
        try:
            print(f"{'case':<28}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}")
            for kind in ("healthz", "create"):
                make = requests(kind, key)
                timed(port, make, 20, True)       # warm up
                p50 = {}
                for keep in (True, False):
                    xs = timed(port, make, n, keep)
                    p50[keep] = statistics.median(xs) * 1000
                    label = f"{kind} {'kept-alive' if keep else 'fresh'}"
                    print(f"{label:<28}{p50[keep]:>9.3f}{pct(xs, 90):>9.3f}{pct(xs, 99):>9.3f}")
                print(f"{kind}: kept-alive / fresh p50 = {p50[True] / p50[False]:.2f}")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
