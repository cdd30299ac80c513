"""The reviewer TUI under load: every screen opening and every query, through the app under Pilot.

    .venv/bin/python bench/tui.py                          # 10 000 subscriptions, 500 000 events
    .venv/bin/python bench/tui.py --subscriptions 2000     # fewer
    .venv/bin/python bench/tui.py --quick                  # a smoke run: 48 subscriptions, 5 000 events

The goal (issue 13): on a store grown to 10 000 subscriptions, every screen
opens and every query answers in <= 100 ms (p95), measured through the app.

The store is bench/invoice.py's: a billing repository of ``--subscriptions``
copies of the example contracts (each its own customer and subscription,
every term kept) and a month (``--period``) of demo events for them
(``--events``), made once in ``--dir`` and reused; then its drafts are stored
(``lifecycle.refresh`` as of the 6th of the next month: drafts, progressive
invoices, finalization left to the reviewer), so that the screens show costs.

Measured, ``--repeat`` times each, in one ``ReviewApp`` run headless under
Pilot at 120x40, after one untimed round (the contracts compiled, the
month's columns read once; both are the session's, kept while it lasts):

* the queries alone, in the bench's thread: ``overview``, ``customers``,
  ``customer_detail`` (each as a screen's worker runs it);
* each screen opening: from the key press (or the drill-in) until every
  worker is done and the screen has drawn: the five top screens (``1``-``5``),
  a customer (Enter on the customers table) and its tabs, an invoice
  (Enter on the customer's invoices), and back (Esc);
* the customers table's filter (one key typed into `/`) and sort (``s``).

Prints p50, p95 and the largest of each, and the one-time costs (contracts
compiled, first read of the month). It is a benchmark, not a test: nothing
is asserted; tests/test_bench_tui.py runs ``--quick``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from invoice import build_repo, make_store  # noqa: E402

from textual import events  # noqa: E402
from textual.worker import WorkerCancelled, WorkerFailed  # noqa: E402

from gpubill.service import lifecycle  # noqa: E402
from gpubill.service.access import Actor  # noqa: E402
from gpubill.service.events import Store  # noqa: E402
from gpubill.service.review import ReviewSession, customer_detail, customers, overview  # noqa: E402
from gpubill.tui.app import ReviewApp  # noqa: E402

GOAL_MS = 100.0
SIZE = (120, 40)
ADMIN = Actor("bench", "admin")


def utc_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)


def review_day(period: str) -> int:
    """The 6th of the month after ``period``, 09:30 UTC: the month's drafts are stored and pending."""
    first = dt.date.fromisoformat(period + "-01")
    return utc_ms((first + dt.timedelta(days=32)).replace(day=6)) + (9 * 60 + 30) * 60_000


def prepare(args) -> tuple[Path, Path]:
    """The repository and the store with its drafts (made once in ``args.dir``, reused)."""
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    repo = work / f"repo-{args.subscriptions}"
    db = work / f"tui-{args.subscriptions}x{args.events}-{args.period}.db"
    if not db.exists():
        build_repo(repo, args.subscriptions)
        partial = db.with_suffix(".events")
        if not partial.exists():
            make_store(partial, repo, args.period, args.events)
        t = time.perf_counter()
        with Store(partial) as store:
            r = lifecycle.refresh(store, [str(repo)], ADMIN, args.period, now_ms=review_day(args.period))
        print(f"stored {len(r.invoices):,} drafts and invoices in {time.perf_counter() - t:.1f} s")
        partial.rename(db)
    elif not repo.exists():
        build_repo(repo, args.subscriptions)
    return repo, db


class Timings(dict):
    """name -> list of milliseconds."""

    def add(self, name: str, ms: float) -> None:
        self.setdefault(name, []).append(ms)


def timed(timings: Timings, name: str, fn):
    t = time.perf_counter()
    out = fn()
    timings.add(name, (time.perf_counter() - t) * 1000)
    return out


MESSAGE_ROUNDS = 6  # rounds of "every message queued so far handled" after a key
CHARACTERS = {"slash": "/", "enter": "\r", "tab": "\t"}  # keys by name that type a character


async def settle(pilot) -> None:
    """Until the workers of the screen on top are done (its rows shown: a worker hands them over and waits)
    and the messages they and the keys caused are handled: a key's consequences take a few rounds of
    messages (a key, the table's selection, the screen's handler, the new screen mounting). Pilot's own
    ``press``/``pause`` wait for the process to look idle instead (sleeps of at least 100 ms here), which
    would be measured too; workers of screens below (a backtest on the diff screen) are not the top's."""
    app = pilot.app
    for _ in range(MESSAGE_ROUNDS):
        await pilot._wait_for_screen()
        for w in [w for w in app.workers if w.state.name in ("PENDING", "RUNNING") and _on_top(app, w)]:
            with contextlib.suppress(WorkerCancelled, WorkerFailed):  # a newer one replaced it; a failure shows
                await w.wait()


def _on_top(app, worker) -> bool:
    node = worker.node
    return node is app.screen or getattr(node, "screen", None) is app.screen


async def step(timings: Timings | None, name: str, pilot, *keys: str) -> None:
    """Send ``keys`` as the terminal would, then wait until the app has settled; the time under ``name``."""
    app = pilot.app
    print(f"· {name}: {' '.join(keys)} on {app.screen}", file=sys.stderr, flush=True)
    t = time.perf_counter()
    for key in keys:
        event = events.Key(key, key if len(key) == 1 else CHARACTERS.get(key))
        event.set_sender(app)
        app._driver.send_message(event)
        await settle(pilot)
    if timings is not None:
        timings.add(name, (time.perf_counter() - t) * 1000)


async def round_of(pilot, timings: Timings | None, session: ReviewSession, sub: str) -> None:
    """One pass over every query and screen (``timings`` None: an untimed warm-up)."""
    t = timings if timings is not None else Timings()
    timed(t, "query: overview", lambda: overview(session))
    timed(t, "query: customers", lambda: customers(session))
    timed(t, "query: customer_detail", lambda: customer_detail(session, sub))
    await step(timings, "a key bound to nothing (the floor)", pilot, "f12")
    for key, name in (("2", "customers"), ("3", "invoices"), ("4", "quarantine & alerts"), ("5", "diff"),
                      ("1", "overview")):
        await step(timings, f"open: {name} ({key})", pilot, key)
    await step(timings, "open: customers (2)", pilot, "2")
    await step(timings, "customers: filter, first key", pilot, "slash", "c")
    await step(timings, "customers: filter, next key", pilot, "u")
    await step(timings, "customers: clear filter (esc)", pilot, "escape")
    await step(timings, "customers: sort (s)", pilot, "s")
    await step(timings, "open: customer (enter)", pilot, "enter")
    await step(timings, "customer: invoices tab", pilot, "tab", "right")
    await step(timings, "open: invoice (enter)", pilot, "tab", "enter")
    await step(timings, "back (esc)", pilot, "escape")
    await step(timings, "back (esc)", pilot, "escape")
    await step(timings, "open: overview (1)", pilot, "1")


async def run(session: ReviewSession, repeat: int) -> tuple[Timings, dict]:
    once: dict = {}
    t = time.perf_counter()
    session.catalog()
    once["compile the contracts (once per session)"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    session.month_columns()
    once["read the month's events (again only when events arrive)"] = (time.perf_counter() - t) * 1000
    subs = sorted(r.who.subscription for r in customers(session) if r.cost is not None)
    sub = subs[len(subs) // 2] if subs else customers(session)[0].who.subscription
    app = ReviewApp(session)
    timings = Timings()
    async with app.run_test(size=SIZE) as pilot:
        t = time.perf_counter()
        await settle(pilot)
        once["first screen drawn"] = (time.perf_counter() - t) * 1000
        await round_of(pilot, None, session, sub)
        for _ in range(repeat):
            await round_of(pilot, timings, session, sub)
    return timings, once


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def report(timings: Timings, once: dict, n_subs: int, n_events: int) -> bool:
    print(f"reviewer TUI, {n_subs:,} subscriptions, {n_events:,} events; milliseconds")
    for name, ms in once.items():
        print(f"  {name:<58} {ms:9.1f}")
    print(f"  {'':<42} {'runs':>5} {'p50':>8} {'p95':>8} {'max':>8}  goal p95 <= {GOAL_MS:.0f}")
    ok = True
    for name, ms in timings.items():
        within = p95(ms) <= GOAL_MS
        ok &= within
        print(f"  {name:<42} {len(ms):5d} {statistics.median(ms):8.1f} {p95(ms):8.1f} {max(ms):8.1f}"
              f"  {'ok' if within else 'OVER'}")
    print(f"every screen and query within the goal: {'yes' if ok else 'no'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscriptions", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--period", default="2026-10")
    ap.add_argument("--repeat", type=int, default=20, help="timed rounds")
    ap.add_argument("--dir", default="/tmp/bench_tui", help="the repository and the store (made once, reused)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 48 subscriptions, 5 000 events, 2 rounds")
    args = ap.parse_args()
    if args.quick:
        args.subscriptions, args.events, args.repeat = 48, 5_000, 2
    repo, db = prepare(args)
    session = ReviewSession(str(db), [str(repo)], ADMIN, now_ms=lambda: review_day(args.period), period=args.period)
    try:
        timings, once = asyncio.run(run(session, args.repeat))
    finally:
        session.close()
    report(timings, once, args.subscriptions, args.events)
    return 0


if __name__ == "__main__":
    sys.exit(main())
