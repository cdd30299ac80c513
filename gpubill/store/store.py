"""The Store: one SQLite file holding events, quarantine, keys, invoices, audit.

``Store.ingest(events)`` validates, deduplicates and stores events and returns
a ``Receipt``; when it returns, every event it reports as ingested is
committed (durable across a kill -9 of the process; see docs/store.md for
power loss). Large inputs are cut into chunks: the caller's thread validates
chunk k+1 while a writer thread stores chunk k, and the writer commits several
chunks per transaction (group commit); concurrent single-chunk writes (HTTP
requests) are group-committed too. Dedup is exact across processes: see
``keys.py``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Iterator

import numpy as np

from . import audit, payloads, queries
from .collector import rare_collections
from .columns import EventColumns, StringTable, read_columns
from .encode import prepare, payload_of
from .queries import clamp_int64
from .receipt import Receipt
from .roles import Actor, Forbidden
from .schema import StoreError, connect, error_from, reader
from .validate import quarantine_bytes
from .writer import Writer

DEFAULT_CHUNK = 8192
DEFAULT_COMMIT_EVENTS = 65536
GROUP_IDLE_S = 0.5
DEFAULT_MAX_FUTURE_S = 24 * 3600
# SQLite errors about one statement (a constraint, a value it cannot bind), not about the store
_REQUEST_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Store:
    """An open store file. Thread-safe; one write at a time, reads in parallel."""

    def __init__(self, path: str | os.PathLike, *, synchronous: str = "NORMAL",
                 max_future_s: int = DEFAULT_MAX_FUTURE_S, chunk_size: int = DEFAULT_CHUNK,
                 commit_events: int = DEFAULT_COMMIT_EVENTS, readonly: bool = False,
                 create: bool = True):
        """Open the store at ``path``; ``create``: make it if missing (``readonly`` never does).

        Raises StoreError (one line) for anything that is not a usable store; a foreign,
        newer or damaged file is refused before anything writes to it.
        """
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError("synchronous must be NORMAL, FULL or EXTRA")
        self.path = os.fspath(path)
        self.synchronous = synchronous.upper()
        self.max_future_ms = int(max_future_s) * 1000
        self.chunk_size = chunk_size
        self.commit_events = max(1, commit_events)
        self.readonly = readonly
        self._wlock = threading.Lock()
        self._glock = threading.Lock()  # guards _gqueue (chunks waiting for a group commit)
        self._gqueue: list[_Pending] = []
        self._failure: str | None = None  # the last write's error, until a write succeeds
        self._writer = Writer(connect(self.path, synchronous=self.synchronous, readonly=readonly,
                                      create=create))
        self._local = threading.local()
        self._readers: list = []
        self._rlock = threading.Lock()
        self._closed = False
        self.strings = StringTable(self)

    # -- lifecycle ---------------------------------------------------------
    def close(self) -> None:
        """Close the store: the writer once no write is under way, this thread's reader now.

        Another thread's reader may be in the middle of a query, and closing a
        SQLite connection under a running statement crashes the process
        (CPython's sqlite3 reads the closed handle when the step returns). Its
        query is interrupted instead (``sqlite3.OperationalError``); the thread's
        next read closes it and raises StoreError, and one never read again is
        closed when collected.
        """
        self._closed = True
        mine = getattr(self._local, "db", None)
        self._local.db = None
        with self._rlock:
            readers, self._readers = self._readers, []
        for db in readers:
            if db is mine:
                db.close()
            else:
                db.interrupt()
        with self._wlock:
            self._writer.db.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self):
        db = getattr(self._local, "db", None)
        if self._closed:
            if db is not None:
                self._local.db = None
                db.close()
            raise StoreError(f"{self.path}: the store was closed")
        if db is None:
            db = reader(self.path)
            self._local.db = db
            with self._rlock:
                self._readers.append(db)
        return db

    # -- health ------------------------------------------------------------
    def health(self) -> str | None:
        """None while writes work; else why the last write failed (one line), until one succeeds."""
        return self._failure

    def _write_failed(self, e: BaseException) -> BaseException:
        """The error to raise for a failed write; a store error is remembered for ``health``."""
        if not isinstance(e, (StoreError, OSError)) and e.__class__.__module__ != "sqlite3":
            return e  # a bug, not the store's state
        err = error_from(self.path, e)
        if not isinstance(e, _REQUEST_ERRORS):
            self._failure = str(err)
        return err

    def _write_ok(self) -> None:
        self._failure = None

    def _write_sql(self, sql: str, args=()):
        """One statement in its own transaction, under the write lock (quarantine, keys)."""
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        with self._wlock:
            try:
                cur = self._writer.db.execute(sql, args)
            except Exception as e:
                raise self._write_failed(e) from None
        self._write_ok()
        return cur

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One change (an invoice, a credit note, a user, a key) with its audit entry.

        ``BEGIN IMMEDIATE`` under this process's write lock: another process
        changing the store waits for SQLite's lock (the busy timeout), so two
        finalizations never read the same last number. Committed when the
        block ends, rolled back if it raises.
        """
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        with self._wlock:
            db = self._writer.db
            try:
                db.execute("BEGIN IMMEDIATE")
            except Exception as e:
                raise self._write_failed(e) from None
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as e:
                self._writer.rollback()
                raise self._write_failed(e) from None
        self._write_ok()

    def require(self, actor: Actor, permission: str, action: str, object_type: str, object_id: str) -> None:
        """Raise ``Forbidden`` unless the actor may; a refusal is itself written to the audit log."""
        if actor.may(permission):
            return
        with self.transaction() as db:
            audit.append(db, actor, "access.refused", object_type, object_id,
                         {"action": action, "permission": permission, "role": actor.role}, at_ms=now_ms())
        raise Forbidden(actor, permission)

    # -- ingestion ---------------------------------------------------------
    def ingest(self, events: Iterable, *, source: str = "api", raws: list | None = None,
               atomic: bool = False, received_ms: int | None = None) -> Receipt:
        """Validate, deduplicate and store events; one status per event, in order.

        ``events`` are parsed JSON objects (dicts). ``raws``, if given, are the
        events' original JSON texts (bytes), stored as the raw payload instead
        of a re-serialization. ``atomic``: store all or none (an invalid or
        conflicting event aborts the others, which are reported ``aborted``);
        atomic ingestion is limited to one chunk. Rejected events are kept in
        quarantine either way.
        """
        if atomic:
            objs = list(events)
            if len(objs) > self.chunk_size:
                raise ValueError(f"an atomic batch holds at most {self.chunk_size} events")
            return self._write(objs, raws, source, received_ms, atomic=True)
        return Receipt.concat(list(self.ingest_stream(
            _chunks(events, raws, self.chunk_size), source=source, received_ms=received_ms)))

    def ingest_stream(self, chunks: Iterable[tuple[list, list | None]], *, source: str = "api",
                      received_ms: int | None = None) -> Iterator[Receipt]:
        """Ingest ``(objs, raws)`` chunks, pipelined; yield each chunk's receipt once committed.

        The calling thread validates chunk k+1 while a writer thread stores
        chunk k. The writer keeps one transaction open over several chunks
        (group commit: up to ``commit_events`` events, or until no chunk has
        arrived for ``GROUP_IDLE_S``), and a chunk's receipt is yielded only
        after the transaction holding it has committed.
        """
        with rare_collections():  # parsed events are acyclic: young collections are wasted work
            yield from self._stream(chunks, _label(source), received_ms)

    def _stream(self, chunks, source: str, received_ms) -> Iterator[Receipt]:
        it = iter(chunks)
        first = next(it, None)
        if first is None:
            return
        second = next(it, None)
        if second is None:  # one chunk: no thread hop
            yield self._write(first[0], first[1], source, received_ms)
            return
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        todo: queue.Queue = queue.Queue(maxsize=2)
        done: queue.Queue = queue.Queue()
        th = threading.Thread(target=self._group_writer, args=(todo, done, source),
                              name="gpubill-writer", daemon=True)
        th.start()
        finished = False
        _handoff.enter()
        try:
            for objs, raws in _prepend(first, second, it):
                todo.put(self._prepare(objs, raws, received_ms))
                while not done.empty():
                    yield from _receipts(done.get())
            todo.put(_END)
            while True:
                item = done.get()
                if item is _END:
                    break
                yield from _receipts(item)
            finished = True
        finally:
            if not finished:  # the caller stopped early or failed: roll back what is not committed
                todo.put(_ABORT)
            th.join()
            _handoff.exit()

    def _group_writer(self, todo: queue.Queue, done: queue.Queue, source: str) -> None:
        """The writer thread of ``ingest_stream``: stage chunks, commit in groups.

        It outlives any failure: the error is handed to the caller once (``done``), the open
        transaction is rolled back, and the thread keeps taking chunks (dropping them) until
        the caller's ``_END`` or ``_ABORT``, so a caller blocked on a full ``todo`` never hangs.
        """
        group = _Group(self, done)
        failed = False
        item = None
        while True:
            try:
                item = todo.get(timeout=GROUP_IDLE_S if group.locked else None)
            except queue.Empty:
                item = _IDLE
            if item is _END or item is _ABORT:
                break
            if failed:
                continue
            try:
                if item is _IDLE:  # the input stalls: do not hold the write lock meanwhile
                    group.commit()
                else:
                    group.stage(item, source)
                    if group.n >= self.commit_events:
                        group.commit()
            except BaseException as e:
                group.abandon()
                done.put(_Failure(self._write_failed(e)))
                failed = True
        if not failed:
            try:
                if item is _END:
                    group.commit()
                else:
                    group.abandon()
            except BaseException as e:
                group.abandon()
                done.put(_Failure(self._write_failed(e)))
        done.put(_END)

    def _prepare(self, objs, raws, received_ms):
        t = now_ms() if received_ms is None else received_ms
        chunk = prepare(objs, t, self.max_future_ms, raws)
        payload = payload_of(chunk, raws)
        rej = {p: (raws[p] if raws is not None else quarantine_bytes(objs[p])) for p in chunk.rejected}
        return chunk, payload, rej, t

    def _commit(self, chunk, payload, rej, t, source, atomic=False) -> Receipt:
        """Store one prepared chunk; return once its transaction has committed.

        Group commit: chunks submitted by concurrent threads (HTTP requests)
        while another transaction is being written queue up, and the next
        thread to get the write lock stores all of them in one transaction
        (each atomic chunk under its own savepoint), then wakes the others.
        """
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        mine = _Pending((chunk, payload, rej, source, t, atomic))
        with self._glock:
            self._gqueue.append(mine)
        with self._wlock:
            if mine.done:  # a previous leader stored it
                return mine.result()
            with self._glock:
                group, self._gqueue = self._gqueue, []
            w = self._writer
            try:
                w.begin()
                try:
                    for p in group:
                        c, pl, rj, src, tt, at = p.args
                        p.receipt = w.stage(c, pl, rj, src, tt, at)
                    w.commit()
                except BaseException:
                    w.rollback()
                    raise
                self._write_ok()
            except BaseException as e:
                err = self._write_failed(e)
                for p in group:
                    p.error, p.receipt = err, None
            for p in group:
                p.done = True
        return mine.result()

    def _write(self, objs, raws, source, received_ms, atomic=False) -> Receipt:
        chunk, payload, rej, t = self._prepare(objs, raws, received_ms)
        return self._commit(chunk, payload, rej, t, _label(source), atomic)

    def _intern_strings(self, texts: list[str]) -> np.ndarray:
        if self.readonly:  # ids beyond the stored ones, stable for this Store object only
            return self.strings._virtual(texts)
        with self._wlock:
            db = self._writer.db
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    ids = self._writer.intern(texts)
                    db.execute("COMMIT")
                except BaseException:
                    self._writer.rollback()
                    raise
            except Exception as e:
                raise self._write_failed(e) from None
            self._writer.committed()
        self._write_ok()
        return ids

    # -- columnar reads ----------------------------------------------------
    def read_columns(self, since_rowid: int = 0, codes: list[str] | None = None,
                     time_from_ms: int | None = None, time_to_ms: int | None = None,
                     subscriptions: list[str] | None = None) -> EventColumns:
        """Events with rowid > since_rowid as numpy columns (bounds inclusive, UTC ms).

        ``last_rowid`` of the result is what to pass as ``since_rowid`` next
        time to get only the events added since.
        """
        since_rowid = max(0, clamp_int64(since_rowid, "since_rowid"))
        time_from_ms, time_to_ms = (None if t is None else clamp_int64(t, name) for t, name in
                                    ((time_from_ms, "time_from_ms"), (time_to_ms, "time_to_ms")))
        try:
            return read_columns(self, since_rowid, codes, time_from_ms, time_to_ms, subscriptions)
        except sqlite3.Error as e:
            raise error_from(self.path, e) from None

    # -- rows, quarantine, keys (queries.py) ---------------------------------
    def get_events(self, transaction_id: str, external_subscription_id: str | None = None):
        return queries.get_events(self, transaction_id, external_subscription_id)

    def get_event(self, event_id: int):
        return queries.get_event(self, event_id)

    def events_by_id(self, ids) -> list:
        return queries.events_by_id(self, ids)

    def latest_timestamp_ms(self) -> int | None:
        return queries.latest_timestamp_ms(self)

    def event_watermark(self, db=None) -> int:
        """The largest stored event id (``db``: inside that transaction's snapshot)."""
        return payloads.max_id(self._read() if db is None else db)

    def any_event_between(self, time_from_ms: int, time_to_ms: int) -> bool:
        return queries.any_event_between(self, time_from_ms, time_to_ms)

    def list_events(self, **filters):
        return queries.list_events(self, **filters)

    def events_as_dicts(self, codes=None, subscriptions=None, time_from_ms=None, time_to_ms=None):
        """The events ``read_columns`` would select, as Lago-shaped dicts (reference engine)."""
        return queries.events_as_dicts(self, codes, subscriptions, time_from_ms, time_to_ms)

    def count_events(self, **filters) -> int:
        return queries.count_events(self, **filters)

    def list_rejected(self, **kw):
        return queries.list_rejected(self, **kw)

    def get_rejected(self, rid: int):
        return queries.get_rejected(self, rid)

    def resubmit(self, rid: int, event: dict | None = None) -> Receipt:
        return queries.resubmit(self, rid, event)

    def discard_rejected(self, rid: int) -> bool:
        return queries.discard_rejected(self, rid)

    def list_conflicts(self, **kw):
        return queries.list_conflicts(self, **kw)

    def verify_key(self, key: str) -> str | None:
        return queries.verify_key(self, key)

    def list_keys(self):
        return queries.list_keys(self)

    def stats(self) -> dict:
        return queries.stats(self)

    def rebuild_columns(self) -> int:
        """Encode every column block's columns again from its payloads; returns events encoded."""
        from .rebuild import rebuild
        try:
            return rebuild(self)
        except Exception as e:
            raise self._write_failed(e) from None


def _label(source: str) -> str:
    """A batch's source as SQLite can store it (a file name may hold bytes that are not UTF-8)."""
    return str(source).encode("utf-8", "backslashreplace").decode()


def _chunks(events: Iterable, raws, size: int):
    if isinstance(events, list):
        for k in range(0, len(events), size):
            yield events[k:k + size], (raws[k:k + size] if raws is not None else None)
        return
    buf: list = []
    for e in events:
        buf.append(e)
        if len(buf) >= size:
            yield buf, None
            buf = []
    if buf:
        yield buf, None


class _GilHandoff:
    """A shorter GIL switch interval while a pipelined ingestion runs.

    The writer thread releases the GIL for each SQLite step; getting it back
    from the validating thread takes up to ``sys.getswitchinterval()`` (5 ms by
    default), several times per chunk. 0.5 ms while any ``ingest_stream`` runs
    in the process; the previous value comes back after the last one.
    """

    INTERVAL = 0.0005

    def __init__(self):
        self.lock = threading.Lock()
        self.active = 0
        self.saved = None

    def enter(self) -> None:
        with self.lock:
            if self.active == 0:
                self.saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self.saved, self.INTERVAL))
            self.active += 1

    def exit(self) -> None:
        with self.lock:
            self.active -= 1
            if self.active == 0 and self.saved is not None:
                sys.setswitchinterval(self.saved)


_handoff = _GilHandoff()
_END = object()
_ABORT = object()
_IDLE = object()


class _Group:
    """The open transaction of a pipelined ingestion: its staged receipts and the write lock.

    ``commit`` hands the receipts to the caller only once the transaction committed;
    ``abandon`` rolls back and never raises (the error being reported is the first one).
    """

    def __init__(self, store: "Store", done: queue.Queue):
        self.store, self.done = store, done
        self.staged: list[Receipt] = []
        self.n = 0
        self.locked = False

    def stage(self, item, source: str) -> None:
        chunk, payload, rej, t = item
        if not self.locked:
            self.store._wlock.acquire()
            self.locked = True
            self.store._writer.begin()
        self.staged.append(self.store._writer.stage(chunk, payload, rej, source, t))
        self.n += chunk.n_in

    def commit(self) -> None:
        if not self.locked:
            return
        self.store._writer.commit()
        staged = self.staged
        self._release()
        self.store._write_ok()
        self.done.put(staged)

    def abandon(self) -> None:
        if not self.locked:
            return
        try:
            self.store._writer.rollback()
        finally:
            self._release()

    def _release(self) -> None:
        self.staged, self.n, self.locked = [], 0, False
        self.store._wlock.release()


class _Pending:
    """A chunk waiting for a group commit, then its receipt or error."""

    __slots__ = ("args", "done", "receipt", "error")

    def __init__(self, args):
        self.args = args
        self.done = False
        self.receipt = None
        self.error = None

    def result(self) -> Receipt:
        if self.error is not None:
            raise self.error
        return self.receipt


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def _receipts(item):
    if isinstance(item, _Failure):
        raise item.error
    return item


def _prepend(a, b, it):
    yield a
    yield b
    yield from it
