"""The customer portal under load: page times through a real `gpubill serve` on a store of 10 000 subscriptions.

    .venv/bin/python bench/portal.py                        # 10 000 subscriptions, 500 000 events
    .venv/bin/python bench/portal.py --subscriptions 2000   # fewer
    .venv/bin/python bench/portal.py --quick                # a smoke run: 48 subscriptions, 5 000 events

The goal (issue 16): p95 page time <= 100 ms on the demo store grown to
10 000 subscriptions.

The store is bench/tui.py's (made once in ``--dir`` and reused): a billing
repository of ``--subscriptions`` copies of the example contracts, each its
own customer, a month (``--period``, default last month) of demo events for
them, and that month's drafts stored. A real `gpubill serve --contracts`
serves it on 127.0.0.1; ``--customers`` of them get a portal link (made in
the store before the server starts, as an operator would have made them),
and the bench waits until the server has prepared those customers' pages
(compiling the contracts, then each one's usage and standing: its /metrics
say when; the time is printed).

Each customer's visit, in order, over one kept-alive HTTP connection (as a
browser): the usage page (the period containing now), the month's usage
(``?period=``), the invoices, the newest invoice itemized, its PDF, its
first usage line explained down to its events (the first page of them), the
alerts, the estimate form, an estimate, then ``--refreshes`` live refreshes
of the usage page (what the page's script does every 2 s). Each request's
time is from sending it to the whole body read. Printed per page: p50,
p95, max; the first view of each page per customer (``cold``: what the
server had not computed yet) and the others (``warm``) apart, and all of
them together against the goal. A second pass then ingests one event for
each customer and times how long until the usage page shows it. It is a
benchmark, not a test: nothing is asserted (tests/test_bench_portal.py runs
``--quick``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tui import prepare  # noqa: E402

from gpubill.service.access import Actor  # noqa: E402
from gpubill.service.events import Store  # noqa: E402
from gpubill.service.portal.links import create_links, link_url  # noqa: E402

GOAL_MS = 100.0
ADMIN = Actor("bench", "admin")
DAY_MS = 86_400_000
ESTIMATE = {"gpu_type": "H100-SXM", "count": "8", "hours": "24"}


def last_month() -> str:
    first = dt.date.today().replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def serve(db: Path, repo: Path) -> tuple[subprocess.Popen, str]:
    """A real `gpubill serve` on a free port: (the process, its base URL) once it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "gpubill", "serve", "--store", str(db), "--contracts", str(repo),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT, env={**os.environ, "NO_COLOR": "1"})
    line = proc.stdout.readline()
    m = re.search(r"listening on (http://\S+)", line)
    if m is None:
        proc.kill()
        raise SystemExit(f"gpubill serve did not start: {line!r}")
    return proc, m.group(1)


def wait_prepared(url: str) -> int:
    """Wait until the server has prepared the pages of the customers holding a link (its /metrics say so)."""
    while True:
        text = httpx.get(url + "/metrics").text
        if re.search(r"^gpubill_portal_preparing 0", text, re.M):
            m = re.search(r"^gpubill_portal_prepared_customers (\d+)", text, re.M)
            return int(m.group(1)) if m else 0
        time.sleep(0.5)


def links(db: Path, repo: Path, customers: list[str]) -> dict[str, str]:
    """customer -> its link's token (made as `gpubill portal link` makes them: the customers checked in the contracts)."""
    now = int(time.time() * 1000)
    with Store(db) as store:
        made = create_links(store, [str(repo)], ADMIN, customers, 7 * DAY_MS, now_ms=now)
    return {link.customer: token for link, token in made}


class Timings(dict):
    """page -> (cold ms list, warm ms list)."""

    def add(self, page: str, ms: float, cold: bool) -> None:
        self.setdefault(page, ([], []))[0 if cold else 1].append(ms)


def get(client: httpx.Client, url: str, timings: Timings, page: str, cold: bool, **params) -> httpx.Response:
    t = time.perf_counter()
    r = client.get(url, params=params or None)
    timings.add(page, (time.perf_counter() - t) * 1000, cold)
    if r.status_code != 200 and not (page == "estimate" and r.status_code == 422):  # a plan that meters no GPU job
        raise SystemExit(f"{page}: {r.status_code} for {url}: {r.text[:300]}")
    return r


def visit(client: httpx.Client, base: str, period: str, refreshes: int, timings: Timings) -> None:
    """One customer's visit (see the module's docstring)."""
    get(client, base, timings, "usage (now)", True)
    get(client, base, timings, "usage (month)", True, period=period)
    listing = get(client, base + "invoices", timings, "invoices", True).text
    number = next((n for n in re.findall(r'href="[^"]*/invoices/([^"/]+)">', listing) if n != "current"), None)
    if number is not None:
        page = get(client, f"{base}invoices/{number}", timings, "invoice", True).text
        get(client, f"{base}invoices/{number}/pdf", timings, "invoice pdf", True)
        usage = re.search(r'<tr class="usage"><th scope="row"><a href="[^"]*/(invoices/[^"]+/lines/\d+)"', page)
        if usage is not None:
            get(client, base + usage.group(1), timings, "invoice line", True)
    get(client, base + "alerts", timings, "alerts", True)
    get(client, base + "estimate", timings, "estimate form", True)
    get(client, base + "estimate", timings, "estimate", True, **ESTIMATE)
    for _ in range(refreshes):
        get(client, base, timings, "usage (now)", False)
    get(client, base + "invoices", timings, "invoices", False)
    get(client, base, timings, "usage (month)", False, period=period)
    get(client, base + "estimate", timings, "estimate", False, **ESTIMATE)


def pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report(timings: Timings) -> None:
    print(f"{'page':16s} {'cold n':>6s} {'p50':>8s} {'p95':>8s} {'max':>8s}   {'warm n':>6s} {'p50':>7s} "
          f"{'p95':>7s} {'max':>7s}")
    every: list[float] = []
    for page, (cold, warm) in timings.items():
        every += cold + warm
        c = f"{len(cold):6d} {pct(cold, 50):8.1f} {pct(cold, 95):8.1f} {max(cold):8.1f}" if cold else " " * 33
        w = f"{len(warm):6d} {pct(warm, 50):7.1f} {pct(warm, 95):7.1f} {max(warm):7.1f}" if warm else ""
        print(f"{page:16s} {c}   {w}")
    p95 = pct(every, 95)
    print(f"all pages: {len(every)} requests, p50 {pct(every, 50):.1f} ms, p95 {p95:.1f} ms "
          f"(goal {GOAL_MS:.0f} ms: {p95 / GOAL_MS:.2f} x)")


def freshness(client: httpx.Client, db: Path, bases: dict[str, str], subscription_of: dict[str, str]) -> list[float]:
    """Per customer: ms from an event's ingest (committed) until its usage page's event count shows it."""
    out = []
    with Store(db) as store:
        for i, (customer, base) in enumerate(bases.items()):
            before = _events_shown(client.get(base).text)
            now = int(time.time() * 1000)
            store.ingest([{"transaction_id": f"bench-portal-{now}-{i}", "external_subscription_id":
                           subscription_of[customer], "code": "gpu_job", "timestamp": now // 1000,
                           "properties": {"gpu_type": "H100-SXM", "gpu_count": "1", "duration_seconds": "60",
                                          "avg_utilization": "1", "end_reason": "completed"}}])
            t = time.perf_counter()
            while _events_shown(client.get(base).text) == before and time.perf_counter() - t < 30:
                time.sleep(0.05)
            out.append((time.perf_counter() - t) * 1000)
    return out


def _events_shown(html: str) -> str:
    m = re.search(r'id="event-count">([^<]*)<', html)
    return m.group(1) if m else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscriptions", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--period", default=last_month(), help="the month of events (default: last month)")
    ap.add_argument("--customers", type=int, default=40, help="customers given a link and visiting")
    ap.add_argument("--refreshes", type=int, default=10, help="live refreshes of the usage page per visit")
    ap.add_argument("--dir", default="/tmp/bench_portal", help="the repository and the store (made once, reused)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 48 subscriptions, 5 000 events, 3 customers")
    args = ap.parse_args()
    if args.quick:
        args.subscriptions, args.events, args.customers, args.refreshes = 48, 5_000, 3, 2
    repo, db = prepare(args)
    step = max(1, args.subscriptions // args.customers)
    customers = [f"cust_{i:05d}" for i in range(0, args.subscriptions, step)][:args.customers]
    tokens = links(db, repo, customers)
    t = time.perf_counter()
    proc, url = serve(db, repo)
    print(f"gpubill serve up in {time.perf_counter() - t:.1f} s on {url}; {len(customers)} customers")
    prepared = wait_prepared(url)
    print(f"the portal prepared {prepared} customers' pages in {time.perf_counter() - t:.1f} s from the start")
    try:
        timings = Timings()
        bases = {c: link_url(url, tok) for c, tok in tokens.items()}
        with httpx.Client(timeout=120) as client:
            t = time.perf_counter()
            for c in customers:
                visit(client, bases[c], args.period, args.refreshes, timings)
            print(f"{len(customers)} visits in {time.perf_counter() - t:.1f} s")
            report(timings)
            subs = {c: "sub_" + c[len("cust_"):] for c in customers}
            waits = freshness(client, db, bases, subs)
        print(f"new event shown on the usage page after: p50 {pct(waits, 50):.0f} ms, max {max(waits):.0f} ms "
              f"(goal: within 5 s)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
