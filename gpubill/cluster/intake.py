"""The Redis Streams intake in front of the cluster: what ``gpubill serve`` (any number of them) appends to.

Receives chunks of parsed events (with their original texts when the caller has them) and guarantees:

- each chunk is validated here (``encode.prepare``), so a rejected event is answered at once with its
  problems, as the embedded store does;
- the whole chunk then becomes ONE stream entry (``XADD <prefix>:events``) holding every event's text
  (valid or not), the source, the time it was received and the validity window, and the problems of the
  rejected ones; Redis runs with ``appendonly yes`` and ``appendfsync always``, so once XADD has
  answered the entry is on disk, and only then is the receipt returned: valid events ``ACCEPTED``
  (``event_id`` -1: an ingest worker gives the id), rejected ones ``REJECTED`` (no quarantine id yet: the
  worker quarantines them);
- ``atomic``: a batch with an invalid event appends none of its valid events (they are ``ABORTED``);
  its rejected ones are still appended, alone, for quarantine (as the embedded store keeps them).

The entry's texts are length-prefixed, not JSON lines: an original text may hold newlines (a pretty
Lago batch document, a malformed HTTP body kept for quarantine). ``Entry.decode`` gives an ingest
worker (``worker.py``) what it needs to validate the chunk again with the same ``received_ms`` and
window, and so reach the same verdicts.

``lag()`` says how far the workers are behind (for ``/metrics`` and ``gpubill status``). Every Redis
failure is a one-line ``StoreError`` naming the intake.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import attrs
import numpy as np
import orjson

from gpubill.store.encode import payload_of, prepare
from gpubill.store.receipt import ABORTED, ACCEPTED, REJECTED, Receipt
from gpubill.store.schema import StoreError
from gpubill.store.store import DEFAULT_CHUNK, now_ms
from gpubill.store.validate import Problem, Unparsable, check_event, quarantine_bytes

from .url import url_parts

SCHEME = "redis"
DEFAULT_PORT = 6379
DEFAULT_PREFIX = "gpubill"
ENTRY_VERSION = b"1"
CONNECT_TIMEOUT_S = 3
SOCKET_TIMEOUT_S = 30


@attrs.frozen
class IntakeURL:
    host: str
    port: int
    db: int
    prefix: str

    def __str__(self) -> str:
        tail = "" if self.prefix == DEFAULT_PREFIX else f"?prefix={self.prefix}"
        return f"{SCHEME}://{self.host}:{self.port}/{self.db}{tail}"


def parse_intake_url(text: str) -> IntakeURL:
    """``redis://host[:port][/db][?prefix=NAME]`` -> IntakeURL, or StoreError (one line)."""
    form = f"expected {SCHEME}://HOST:PORT/DB[?prefix=NAME]"
    u = url_parts(text, "--intake", SCHEME, DEFAULT_PORT, form, ("prefix",))
    db = u.path or "0"
    if not db.isdigit():
        raise StoreError(f"--intake {text!r}: database {db!r} is not a number; {form}")
    prefix = u.options.get("prefix", DEFAULT_PREFIX)
    if not prefix or any(c in prefix for c in " {}\n"):
        raise StoreError(f"--intake {text!r}: prefix {prefix!r} is not a plain name")
    return IntakeURL(u.host, u.port, int(db), prefix)


class Keys:
    """The intake's Redis keys (``<prefix>:...``)."""

    def __init__(self, prefix: str):
        self.stream = f"{prefix}:events"
        self.group = f"{prefix}:workers"
        self.lock = f"{prefix}:lock"
        self.inflight = f"{prefix}:inflight"
        self.next_id = f"{prefix}:next_id"
        self.waiting = f"{prefix}:waiting_events"


def redis_errors():
    import redis

    return (redis.exceptions.RedisError, OSError)


class IntakeConnection:
    """A Redis client for the intake; ``call(fn, *args)`` turns every failure into one line."""

    def __init__(self, url: str | IntakeURL):
        import redis

        self.url = url if isinstance(url, IntakeURL) else parse_intake_url(url)
        self.keys = Keys(self.url.prefix)
        self.redis = redis.Redis(host=self.url.host, port=self.url.port, db=self.url.db,
                                 socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=SOCKET_TIMEOUT_S)

    def fail(self, e: BaseException) -> StoreError:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        return StoreError(f"intake {self.url}: {text}")

    def call(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except redis_errors() as e:
            raise self.fail(e) from None

    def close(self) -> None:
        try:
            self.redis.close()
        except redis_errors():
            pass


@attrs.frozen
class Entry:
    """One stream entry, decoded: a chunk as the server validated it."""

    entry_id: bytes
    source: str
    received_ms: int
    max_future_ms: int
    raws: list            # bytes per input position
    rejected: dict        # position -> [Problem] (as the server answered)
    resubmit: int | None  # the quarantine row this event resubmits

    @property
    def n(self) -> int:
        return len(self.raws)

    @classmethod
    def decode(cls, entry_id: bytes, fields: dict) -> "Entry":
        lens = [int(x) for x in fields[b"lens"].split(b",")] if fields[b"lens"] else []
        buf = fields[b"raws"]
        ends = np.cumsum(lens).tolist() if lens else []
        raws = [buf[a:b] for a, b in zip([0] + ends[:-1], ends)]
        rejected = {int(p): [Problem(*x) for x in probs]
                    for p, probs in orjson.loads(fields[b"rejected"]).items()}
        rs = fields.get(b"resubmit")
        return cls(entry_id, fields[b"source"].decode(), int(fields[b"received_ms"]),
                   int(fields[b"max_future_ms"]), raws, rejected, int(rs) if rs else None)

    def objects(self) -> list:
        """The parsed events (a rejected position: a placeholder, its problems are ``rejected``'s)."""
        out = []
        for p, raw in enumerate(self.raws):
            if p in self.rejected:
                out.append(Unparsable("rejected when received"))
                continue
            try:
                out.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                import json
                try:
                    out.append(json.loads(raw))  # integers beyond 64 bits
                except ValueError:
                    out.append(Unparsable("not JSON"))
        return out


def encode_entry(raws: list[bytes], rejected: dict, source: str, received_ms: int, max_future_ms: int,
                 resubmit: int | None = None) -> dict:
    fields = {b"v": ENTRY_VERSION, b"source": source.encode("utf-8", "backslashreplace"),
              b"received_ms": str(received_ms).encode(), b"max_future_ms": str(max_future_ms).encode(),
              b"lens": ",".join(str(len(r)) for r in raws).encode(), b"raws": b"".join(raws),
              b"rejected": orjson.dumps({str(p): [[x.field, x.code, x.message] for x in probs]
                                         for p, probs in rejected.items()})}
    if resubmit is not None:
        fields[b"resubmit"] = str(resubmit).encode()
    return fields


class Intake:
    """The intake at ``url`` (``redis://HOST:PORT/DB``) feeding ``events`` (the cluster's event store)."""

    def __init__(self, url: str, events=None, *, max_future_ms: int = 24 * 3600 * 1000,
                 chunk_size: int = DEFAULT_CHUNK):
        self.conn = IntakeConnection(url)
        self.url = self.conn.url
        self.keys = self.conn.keys
        self.events = events
        self.max_future_ms = int(max_future_ms)
        self.chunk_size = chunk_size
        self.conn.call(self.conn.redis.ping)

    def close(self) -> None:
        self.conn.close()

    # -- appending -----------------------------------------------------------
    def ingest(self, events: Iterable, *, source: str = "api", raws: list | None = None, atomic: bool = False,
               received_ms: int | None = None) -> Receipt:
        objs = list(events)
        if atomic:
            return self._chunk(objs, raws, source, received_ms, atomic=True)
        return Receipt.concat(list(self.ingest_stream(
            ((objs[k:k + self.chunk_size], None if raws is None else raws[k:k + self.chunk_size])
             for k in range(0, len(objs), self.chunk_size)), source=source, received_ms=received_ms)))

    def ingest_stream(self, chunks: Iterable, *, source: str = "api",
                      received_ms: int | None = None) -> Iterator[Receipt]:
        for objs, raws in chunks:
            yield self._chunk(list(objs), raws, source, received_ms)

    def resubmit(self, rec, event: dict | None = None) -> Receipt:
        """Queue a quarantined event again, fixed (``event``) or as it was; an ingest worker stores it and
        marks the quarantine row resubmitted. Still invalid: its problems, nothing queued."""
        if event is None:
            try:
                event = orjson.loads(rec.raw)
            except orjson.JSONDecodeError:
                event = None
        t = now_ms()
        _, problems = check_event(event if event is not None else Unparsable("not JSON"), t, self.max_future_ms)
        if problems:
            return Receipt(np.array([REJECTED], np.int8), np.array([-1], np.int64), {0: problems},
                           timestamp_ms=np.array([-1], np.int64), key=np.zeros((1, 2), np.int64))
        return self._chunk([event], None, f"resubmit:{rec.id}", t, resubmit=rec.id)

    def _chunk(self, objs: list, raws, source: str, received_ms, *, atomic: bool = False,
               resubmit: int | None = None) -> Receipt:
        t = now_ms() if received_ms is None else int(received_ms)
        chunk = prepare(objs, t, self.max_future_ms, raws)
        n, good = chunk.n_in, chunk.good
        status = np.full(n, REJECTED, np.int8)
        tsv = np.full(n, -1, np.int64)
        key = np.zeros((n, 2), np.int64)
        tsv[good] = chunk.ts_ms
        key[good, 0], key[good, 1] = chunk.k1, chunk.k2
        texts: list = [None] * n
        for p in chunk.rejected:
            texts[p] = raws[p] if raws is not None else quarantine_bytes(objs[p])
        refused = atomic and bool(chunk.rejected)
        if refused:
            status[good] = ABORTED
            keep = sorted(chunk.rejected)  # quarantined all the same
        else:
            status[good] = ACCEPTED
            buf, lens = payload_of(chunk, raws)
            ends = np.cumsum(lens).tolist()
            for p, a, b in zip(good.tolist(), [0] + ends[:-1], ends):
                texts[p] = buf[a:b]
            keep = range(n)
        rec = Receipt(status, np.full(n, -1, np.int64), dict(chunk.rejected), timestamp_ms=tsv, received_ms=t,
                      key=key)
        if len(keep):
            at = {p: i for i, p in enumerate(keep)}
            fields = encode_entry([texts[p] for p in keep], {at[p]: v for p, v in chunk.rejected.items()},
                                  source, t, self.max_future_ms, resubmit)
            self._append(fields, len(keep))
        return rec

    def _append(self, fields: dict, n: int) -> None:
        """XADD, with the waiting-events count, in one transaction; returns once Redis has it on disk."""
        def go():
            p = self.conn.redis.pipeline(transaction=True)
            p.xadd(self.keys.stream, fields)
            p.incrby(self.keys.waiting, n)
            p.execute()
        self.conn.call(go)

    def ping(self) -> None:
        """StoreError (one line) when Redis does not answer."""
        self.conn.call(self.conn.redis.ping)

    # -- lag -------------------------------------------------------------------
    def lag(self) -> dict:
        """How far the ingest workers are behind: entries delivered and not yet stored (``pending``),
        entries not yet delivered (``undelivered``), the events they hold (``events``), the age in
        seconds of the oldest (``oldest_age_s``, 0 when none)."""
        return intake_lag(self.conn)


def intake_lag(conn: IntakeConnection) -> dict:
    import redis

    r, k = conn.redis, conn.keys

    def go():
        p = r.pipeline(transaction=False)
        p.xlen(k.stream)
        p.get(k.waiting)
        p.xrange(k.stream, "-", "+", count=1)
        length, waiting, first = p.execute()
        try:
            pending = int(r.xpending(k.stream, k.group)["pending"])
        except redis.exceptions.ResponseError:  # no group yet: no worker ever started
            pending = 0
        return length, waiting, first, pending
    length, waiting, first, pending = conn.call(go)
    oldest = 0.0
    if first:
        ms = int(first[0][0].split(b"-")[0])
        oldest = max(0.0, time.time() - ms / 1000)
    return {"pending": pending, "undelivered": max(0, int(length) - pending),
            "events": max(0, int(waiting or 0)), "oldest_age_s": round(oldest, 3)}
