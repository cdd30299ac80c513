"""An ingest worker: moves the intake's stream entries into the cluster, exactly once.

Receives an ``Intake`` (the Redis stream ``<prefix>:events`` that ``gpubill serve`` appends to) and the
cluster's ``ClickHouseEvents``. Any number of workers share the consumer group ``<prefix>:workers``;
each reads entries (``XREADGROUP``; entries a dead worker left idle past ``claim_after_s`` are taken over
with ``XAUTOCLAIM``), merges consecutive entries of one source into chunks of up to ``batch`` events
(one large insert each) and validates them again outside any lock (``_Prepared``: the verdicts the
server answered), then, under the Redis lock ``<prefix>:lock`` (a token,
renewed while held, released by compare-and-delete; it expires ``lock_ttl_s`` after a holder died,
default 10 s: the others wait that long, and nothing else depends on it, since a holder that lost
its lock can neither allocate nor acknowledge, and storing again with the same ids changes nothing):

1. if ``<prefix>:inflight`` exists, the previous holder died mid-write: its entries are stored again
   with THE SAME ids (``store_chunk`` is idempotent with the same ids), the watermark advanced, the
   entries acknowledged and deleted, ``inflight`` dropped;
2. entries already acknowledged (another worker had them) are dropped; ids for the rest are allocated
   by one script that raises ``<prefix>:next_id`` to what the cluster holds, takes ``n`` ids and records
   ``inflight`` (the entries, the first id, ``n``) atomically, and only while the lock is ours;
3. each entry is stored (``store_chunk``), the watermark advanced to the last id, and one script
   (again only while the lock is ours) acknowledges and deletes the entries and drops ``inflight``.

So ids are given in lock order, every id up to the watermark is stored, and a crash at any point is
completed by the next holder with the same ids: nothing acknowledged to a client is lost, nothing is
stored twice. Duplicates and conflicts are decided against what the cluster holds, as in SQLite.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import attrs
import numpy as np

from gpubill.store.collector import rare_collections
from gpubill.store.encode import payload_of, prepare
from gpubill.store.receipt import DUPLICATE, INGESTED, Receipt
from gpubill.store.schema import StoreError

from .intake import Entry, Intake

LOCK_TTL_S = 10.0  # a dead holder's lock blocks the others this long; renewed every tenth of it
BLOCK_MS = 1000
CLAIM_AFTER_S = 30.0
DEFAULT_BATCH = 16384  # events stored as one chunk (and, about, taken under one lock)
MAX_BATCH = 1 << 16  # events of one chunk (its keys go to the dedup lookup as one external table)

_ALLOC = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local n = tonumber(ARGV[2])
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
local floor = tonumber(ARGV[4])
if cur < floor then redis.call('SET', KEYS[2], ARGV[4]) end
local last = redis.call('INCRBY', KEYS[2], n)
local first = last - n + 1
redis.call('HSET', KEYS[3], 'entries', ARGV[3], 'first', first, 'n', n)
return first
"""
_FINISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 4, #ARGV do
  redis.call('XACK', KEYS[2], ARGV[2], ARGV[i])
  redis.call('XDEL', KEYS[2], ARGV[i])
end
redis.call('DECRBY', KEYS[4], ARGV[3])
redis.call('DEL', KEYS[3])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class LostLock(StoreError):
    """The lock expired while this worker held it (another worker completes its entries)."""


class _Stopped(Exception):
    """Asked to stop while waiting for the lock: what was read stays pending (taken up again later)."""


@attrs.define
class Totals:
    entries: int = 0
    counts: dict = attrs.field(factory=lambda: {"ingested": 0, "duplicate": 0, "conflict": 0, "rejected": 0})
    redone: int = 0

    def add(self, rec: Receipt) -> None:
        for k, v in rec.counts().items():
            if k in self.counts:
                self.counts[k] += v

    def line(self, name: str) -> str:
        c = self.counts
        extra = f", {self.redone} entries of a dead worker completed" if self.redone else ""
        return (f"ingest-worker {name}: {self.entries} entries: {c['ingested']} ingested, {c['duplicate']} duplicate,"
                f" {c['conflict']} conflict, {c['rejected']} rejected{extra}")


class _Prepared:
    """Entries of one source, validated again as one chunk (one large insert): ready for ``store_chunk``.

    The chunk is validated at the latest of the entries' ``received_ms`` and the widest of their windows:
    the only check that depends on them is the future bound, which can only widen, so every event the
    server accepted stays valid; the events it rejected carry the server's problems.
    """

    def __init__(self, entries: list[Entry]):
        self.entries = entries
        self.source = entries[0].source
        self.resubmit = entries[0].resubmit if len(entries) == 1 else None
        raws = [r for e in entries for r in e.raws]
        objs = [o for e in entries for o in e.objects()]
        self.n = len(raws)
        self.received = np.repeat(np.array([e.received_ms for e in entries], np.int64), [e.n for e in entries])
        self.chunk = prepare(objs, max(e.received_ms for e in entries), max(e.max_future_ms for e in entries), raws)
        off = 0
        for e in entries:
            for p, probs in e.rejected.items():  # the problems the client was answered with
                self.chunk.rejected[off + p] = probs
            off += e.n
        self.payload = payload_of(self.chunk, raws)
        self.rejected_raw = {p: raws[p] for p in self.chunk.rejected}


def _pieces(e: Entry, limit: int) -> list[Entry]:
    """An entry cut into pieces of at most ``limit`` events (positions keep their ids: a piece is stored
    like a chunk of its own, with the ids of its positions)."""
    if e.n <= limit:
        return [e]
    return [attrs.evolve(e, raws=e.raws[a:a + limit],
                         rejected={p - a: v for p, v in e.rejected.items() if a <= p < a + limit})
            for a in range(0, e.n, limit)]


def _merged(entries: list[Entry], limit: int) -> list[_Prepared]:
    """Consecutive entries of one source merged into chunks of up to ``limit`` events (a larger entry is
    cut; a resubmission stays alone: its quarantine row is resolved from its own receipt)."""
    out, cur, n = [], [], 0
    for e in (piece for whole in entries for piece in _pieces(whole, limit)):
        if cur and (e.source != cur[0].source or e.resubmit is not None or cur[0].resubmit is not None
                    or n + e.n > limit):
            out.append(_Prepared(cur))
            cur, n = [], 0
        cur.append(e)
        n += e.n
    if cur:
        out.append(_Prepared(cur))
    return out


class Worker:
    def __init__(self, intake: Intake, events, *, name: str | None = None, batch: int = DEFAULT_BATCH,
                 claim_after_s: float = CLAIM_AFTER_S, lock_ttl_s: float = LOCK_TTL_S,
                 say: Callable[[str], None] | None = None):
        self.intake, self.events = intake, events
        self.conn, self.keys = intake.conn, intake.keys
        self.r = self.conn.redis
        self.name = name or f"worker-{uuid.uuid4().hex[:8]}"
        self.batch = max(1, min(MAX_BATCH, batch))
        self.claim_after_ms = int(claim_after_s * 1000)
        self.lock_ms = max(100, int(lock_ttl_s * 1000))
        self.say = say or (lambda line: None)
        self.totals = Totals()
        self.stopping = threading.Event()
        self._alloc = self.r.register_script(_ALLOC)
        self._finish = self.r.register_script(_FINISH)
        self._release = self.r.register_script(_RELEASE)
        self._renew = self.r.register_script(_RENEW)
        self._floor: int | None = None
        self._own_pending = True  # first read this consumer's own unacknowledged entries (a restart)
        self._last_claim = 0.0
        self._entry_events = 64.0  # events per entry, on average so far (how many entries make a batch)

    # -- the loop --------------------------------------------------------------
    def run(self, *, drain: bool = False) -> Totals:
        """Process entries until ``stop()`` (or, ``drain``, until the stream is empty and nothing is in flight)."""
        with rare_collections():  # parsed events and their rows are acyclic: young collections are wasted work
            return self._run(drain)

    def _run(self, drain: bool) -> Totals:
        self._group()
        while not self.stopping.is_set():
            entries = self._next()
            try:
                if entries:
                    self._process(entries)
                    continue
                if self._inflight_left():
                    self._process([])
                    continue
            except LostLock as e:
                self.say(str(e))
                continue
            except _Stopped:
                break
            if drain and self._drained():
                break
        self._leave()
        return self.totals

    def _leave(self) -> None:
        """Leave the group when nothing read is left unstored (restarts under random names add up)."""
        import redis

        k = self.keys
        try:
            if not self.r.xpending_range(k.stream, k.group, min="-", max="+", count=1, consumername=self.name):
                self.r.xgroup_delconsumer(k.stream, k.group, self.name)
        except (OSError, redis.exceptions.RedisError):
            pass  # it stays listed; nothing depends on it

    def stop(self) -> None:
        self.stopping.set()

    def _group(self) -> None:
        import redis

        try:
            self.r.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise self.conn.fail(e) from None
        except (redis.exceptions.RedisError, OSError) as e:
            raise self.conn.fail(e) from None

    def _next(self) -> list[tuple[bytes, dict]]:
        """Entries to store: this consumer's own unacknowledged ones first, then idle ones of dead
        consumers, then new ones (up to ``batch`` events' worth; blocks up to a second)."""
        k = self.keys
        count = max(1, min(1000, int(self.batch // self._entry_events)))
        if self._own_pending:
            got = self.conn.call(self.r.xreadgroup, k.group, self.name, {k.stream: "0"}, count=count)
            found = _entries(got)
            if found:
                return found
            self._own_pending = False
        now = time.monotonic()
        if now - self._last_claim > min(5.0, self.claim_after_ms / 2000):
            self._last_claim = now
            got = self.conn.call(self.r.xautoclaim, k.stream, k.group, self.name, self.claim_after_ms,
                                 start_id="0-0", count=count)
            claimed = [(i, f) for i, f in got[1] if f] if got else []
            if claimed:
                return claimed
        got = self.conn.call(self.r.xreadgroup, k.group, self.name, {k.stream: ">"}, count=count, block=BLOCK_MS)
        return _entries(got)

    def _drained(self) -> bool:
        return int(self.conn.call(self.r.xlen, self.keys.stream)) == 0 and not self._inflight_left()

    def _inflight_left(self) -> bool:
        return bool(self.conn.call(self.r.exists, self.keys.inflight)) and not self._locked_by_other()

    def _locked_by_other(self) -> bool:
        return self.conn.call(self.r.exists, self.keys.lock) == 1

    # -- one batch -------------------------------------------------------------
    def _process(self, raw_entries: list) -> None:
        entries = [Entry.decode(i, f) for i, f in raw_entries]
        if entries:
            n = sum(e.n for e in entries) / len(entries)
            self._entry_events = max(1.0, 0.8 * self._entry_events + 0.2 * n)
        prepared = _merged(entries, self.batch)
        token = self._acquire()
        renewer = _Renewer(self, token)
        try:
            self._redo(token)
            self._store(token, entries, prepared)
        finally:
            renewer.stop()
            self.conn.call(self._release, keys=[self.keys.lock], args=[token])

    def _acquire(self) -> str:
        token = uuid.uuid4().hex
        delay = 0.005
        while not self.conn.call(self.r.set, self.keys.lock, token, nx=True, px=self.lock_ms):
            if self.stopping.is_set():
                raise _Stopped
            time.sleep(delay)
            delay = min(0.1, delay * 2)
        return token

    def _redo(self, token: str) -> None:
        """Complete a dead holder's write: its entries again, with its ids."""
        held = self.conn.call(self.r.hgetall, self.keys.inflight)
        if not held:
            return
        ids = held[b"entries"].decode().split(",") if held[b"entries"] else []
        first = int(held[b"first"])
        p = self.r.pipeline(transaction=False)
        for i in ids:
            p.xrange(self.keys.stream, i, i, count=1)
        found = self.conn.call(p.execute)
        entries = [Entry.decode(*got[0]) for got in found if got]
        if len(entries) != len(ids):
            raise StoreError(f"intake {self.intake.url}: entries in flight are gone from the stream"
                             f" ({len(ids) - len(entries)} of {len(ids)}); refusing to guess their ids")
        self._write(token, _merged(entries, self.batch), first)
        self.totals.redone += len(entries)
        self.say(f"ingest-worker {self.name}: completed {len(entries)} entries a dead worker was storing"
                 f" (ids {first}..{first + sum(e.n for e in entries) - 1})")

    def _store(self, token: str, entries: list[Entry], prepared: list[_Prepared]) -> None:
        if not entries:
            return
        p = self.r.pipeline(transaction=False)
        for e in entries:
            p.xrange(self.keys.stream, e.entry_id, e.entry_id, count=1)
        still = self.conn.call(p.execute)
        if not all(still):  # some are gone: another worker had them too (and stored them)
            entries = [e for e, got in zip(entries, still) if got]
            prepared = _merged(entries, self.batch)
        if not entries:
            return
        if self._floor is None:
            self._floor = int(self.events.max_id())
        n = sum(e.n for e in entries)
        ids = ",".join(e.entry_id.decode() for e in entries)
        first = int(self.conn.call(self._alloc, keys=[self.keys.lock, self.keys.next_id, self.keys.inflight],
                                   args=[token, n, ids, self._floor]))
        if first < 0:
            raise LostLock(f"intake {self.intake.url}: lock lost before storing; another worker takes over")
        self._write(token, prepared, first)

    def _write(self, token: str, prepared: list[_Prepared], first: int) -> None:
        at = first
        for x in prepared:
            ids = np.arange(at, at + x.n, dtype=np.int64)
            rec = self.events.store_chunk(x.chunk, x.payload, x.rejected_raw, x.source, x.received, ids)
            if x.resubmit is not None:
                self._resolve(x.resubmit, rec)
            self.totals.add(rec)
            at += x.n
        if at > first:
            self.events.advance_watermark(at - 1)
        acked = list(dict.fromkeys(e.entry_id for x in prepared for e in x.entries))
        done = self.conn.call(self._finish, keys=[self.keys.lock, self.keys.stream, self.keys.inflight,
                                                  self.keys.waiting],
                              args=[token, self.keys.group, at - first, *acked])
        self.totals.entries += len(acked)
        if not done:
            raise LostLock(f"intake {self.intake.url}: lock lost while storing; another worker completes it")

    def _resolve(self, rid: int, rec: Receipt) -> None:
        """A resubmitted quarantine row, stored: marked resubmitted with the stored event's id."""
        if len(rec) and int(rec.status[0]) in (INGESTED, DUPLICATE):
            row = self.events.get_rejected(rid)
            if row is not None and row.status == "open":
                self.events.set_rejected_status(row, "resubmitted", int(rec.event_id[0]))


class _Renewer:
    """Keeps the lock while a batch is written (a ClickHouse insert may take a while)."""

    def __init__(self, worker: Worker, token: str):
        self.worker, self.token = worker, token
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="gpubill-lock-renewer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        w = self.worker
        while not self.done.wait(w.lock_ms / 10000):
            try:
                w._renew(keys=[w.keys.lock], args=[self.token, w.lock_ms])
            except Exception:  # noqa: BLE001 - the next renewal (or the finish script) will tell
                pass

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def _entries(got) -> list[tuple[bytes, dict]]:
    """XREADGROUP's answer as (id, fields) pairs (entries deleted meanwhile come back empty: skipped)."""
    out = []
    for _stream, items in got or []:
        out += [(i, f) for i, f in items if f]
    return out
