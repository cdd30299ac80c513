"""Values kept between the portal's requests, recomputed when what they depend on changed.

``KeptValues.get(key, subscriptions, compute, ledger=...)`` answers
``compute()``'s value, kept with what it was computed from: the newest event
id known not to concern ``subscriptions`` and, for a value that reads the
stored invoices (``ledger``), their state: each stored invoice of those
subscriptions (id, revision, status: a new draft, revision, finalization or
void), the newest alert, credit note and credit note use (``ledger.ledger_state``:
index lookups only, never a scan of the stored documents). A request whose
value is unchanged costs the store's event watermark and that query (and,
when events of other subscriptions arrived, one small column read of the
events stored since: none of ``subscriptions``'s, so the kept value is still
current).

A changed value is recomputed in the background (a small thread pool, one
recomputation per key at a time). A request meanwhile gets the kept value
if it is younger than ``stale_ms`` (by the portal's clock: its computation
began less than that ago, so it misses only events stored since), and waits
for the recomputation otherwise, or when nothing is kept yet. So a page
shows every event the store acknowledged more than ``stale_ms`` before
(plus one recomputation), and a page that asks again every second or two
while events arrive never waits for a recomputation.

At most ``most`` values are kept (the least recently asked for goes first):
a store of 10 000 customers visiting a few past months each would otherwise
keep every page they ever saw.

``bill_files_stamp`` says when the .bill files changed (what the compiled
contracts depend on).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import attrs

from gpubill.store.ledger import ledger_state

STALE_MS = 2500  # a changed value younger than this is answered while it is recomputed: with pages asking
# every 2 s (portal.js), an event shows within two asks (4 s) plus a recomputation, and no ask waits
WORKERS = 2  # recomputations at a time
MOST_KEPT = 20_000  # values (a few KB each): every customer's pages of this month and a past one, at 10 000


@attrs.define
class _Kept:
    state: tuple  # ledger_state when it was computed (a value that reads no stored invoice: ())
    watermark: int  # the newest event id known not to concern it
    value: object
    computed_ms: int  # when its computation began (by the portal's clock): it misses no event stored before


class KeptValues:
    """Values by key over one store (see the module's docstring). Thread-safe."""

    def __init__(self, store, now_ms: Callable[[], int], stale_ms: int = STALE_MS, most: int = MOST_KEPT):
        self.store, self.now_ms, self.stale_ms, self.most = store, now_ms, stale_ms, most
        self._lock = threading.Lock()
        self._kept: OrderedDict = OrderedDict()  # least recently asked for first
        self._jobs: dict = {}  # key -> the Future of its recomputation
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="gpubill-portal")

    def get(self, key, subscriptions: Sequence[str], compute: Callable, *, ledger: bool = False):
        top, state = self.state(subscriptions, ledger)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
        if kept is not None and kept.state == state and (
                kept.watermark == top or not self._touched(subscriptions, kept.watermark)):
            with self._lock:
                kept.watermark = max(kept.watermark, top)
            return kept.value
        job = self._recompute(key, lambda: self._compute(key, compute, subscriptions, ledger))
        if kept is None or self.now_ms() - kept.computed_ms >= self.stale_ms:
            return job.result()
        return kept.value  # younger than stale_ms: the recomputation is for the next request

    def settle(self) -> None:
        """Wait for the recomputations under way."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.exception()

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def state(self, subscriptions: Sequence[str], ledger: bool) -> tuple[int, tuple]:
        """(the store's event watermark, ``ledger_state`` of ``subscriptions`` when ``ledger``, else ())."""
        top = self.store.event_watermark()
        if not ledger:
            return top, ()
        return top, ledger_state(self.store._read(), subscriptions)

    def _touched(self, subscriptions: Sequence[str], since: int) -> bool:
        """Whether the store holds an event of ``subscriptions`` stored after event id ``since``."""
        return bool(subscriptions) and self.store.read_columns(since_rowid=since,
                                                               subscriptions=sorted(subscriptions)).n > 0

    def _recompute(self, key, run: Callable) -> Future:
        with self._lock:
            job = self._jobs.get(key)
            if job is None or job.done():
                job = self._jobs[key] = self._pool.submit(run)
            return job

    def _compute(self, key, compute: Callable, subscriptions: Sequence[str], ledger: bool):
        # what it depends on, before computing: what is stored meanwhile is looked for next time
        (top, state), at = self.state(subscriptions, ledger), self.now_ms()
        value = compute()
        with self._lock:
            self._kept[key] = _Kept(state, top, value, at)
            self._kept.move_to_end(key)
            while len(self._kept) > self.most:
                self._kept.popitem(last=False)
        return value


def bill_files_stamp(paths: Sequence[str]) -> tuple:
    """(path, mtime_ns, size) of every .bill file under ``paths`` (files or folders)."""
    out = []
    for p in paths:
        found = [p] if os.path.isfile(p) else [os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs
                                               if f.endswith(".bill")]
        for f in found:
            try:
                st = os.stat(f)
            except FileNotFoundError:  # removed meanwhile: the next look sees the change
                continue
            out.append((f, st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))
