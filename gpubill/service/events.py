"""The event log as the shell uses it: open a store, ingest event files, read events back.

Receives what the shell has in hand (a store path and options, a byte stream
and its name, a time option's text) from ``gpubill ingest``, ``gpubill events``,
``gpubill serve``, ``gpubill demo`` and the HTTP API, and guarantees that the
shell needs nothing from ``gpubill.store`` itself: the store's modules can be
rearranged behind this one surface (``tests/test_layers.py`` holds the shell
to it).

The store handle. ``Store`` is re-exported on purpose: it is the handle the
shell opens (``Store(path, create=..., readonly=...)``) and hands to the use
cases (``service.rating.rate_period``, ``service.demo.run_demo``, the server's
app factory), and its public methods are the event log's queries:
``list_events``, ``count_events``, ``get_events``, ``get_event``,
``list_rejected``, ``get_rejected``, ``resubmit``, ``discard_rejected``,
``list_conflicts``, ``health``; the API keys are in ``service.keys``. Each
raises ``StoreError`` (``service.errors``) when the store fails. They return
plain records and receipts (values); wrapping each method in a function of the
same name here would add names and no meaning.

Event files. ``input_format`` names the format a stream is read in (as given,
else from the file name, else sniffed from its first bytes); ``ingest_file``
reads it in chunks and ingests them pipelined, yielding each chunk's receipt
once committed, together with where each of its events came from (a line
number in JSONL and CSV, an index in a Lago batch document).

Values the shell checks or builds: ``parse_timestamp`` (the timestamp forms
and range the store accepts: Unix seconds or ISO-8601 with an offset),
``Unparsable`` (a payload that is not an event: ingesting it keeps the raw
bytes in quarantine), the receipt statuses (``REJECTED``, ``CONFLICT``,
``STATUS_NAMES``) and ``MAX_LINE`` (the most bytes one event may take).

The cluster (``gpubill.cluster``: events in ClickHouse behind a Redis Streams
intake, docs/scale-out.md) is opened through ``open_event_store`` (``--events``,
``--intake``) and reached through ``migrate_events``, ``ingest_worker`` and
``intake_lag``; its modules (and clickhouse-driver, redis) load only then.

Imports the store, never the engine: ``gpubill ingest``, ``events`` and
``serve`` load no numba.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from gpubill.store import STATUS_NAMES, Receipt, Store, StoreError
from gpubill.store.collector import rare_collections
from gpubill.store.formats import MAX_LINE, FormatError, read_events, sniff
from gpubill.store.receipt import ACCEPTED, CONFLICT, REJECTED
from gpubill.store.validate import Unparsable, parse_timestamp

__all__ = ["Store", "open_event_store", "Receipt", "FormatError", "MAX_LINE", "STATUS_NAMES", "CONFLICT", "REJECTED",
           "ACCEPTED", "Unparsable", "parse_timestamp", "INPUT_FORMATS", "input_format", "ingest_file",
           "rare_collections", "ingest_worker", "intake_lag", "migrate_events"]


def open_event_store(path: str, *, events: str | None = None, intake: str | None = None, **options) -> Store:
    """The store at ``path``; with ``events`` (``clickhouse://host:port/db?cluster=NAME``) its events are in
    that cluster (``gpubill.cluster``), written through the Redis Streams ``intake`` (``redis://host:port/db``)
    when one is given. Raises StoreError (one line) when either cannot be used."""
    if events is None:
        if intake is not None:
            raise StoreError("--intake needs --events: the intake feeds a cluster event store")
        return Store(path, **options)
    from gpubill.cluster.store import open_cluster_store  # clickhouse-driver and redis load only for a cluster
    return open_cluster_store(path, events, intake, **options)


#: the formats ``ingest_file`` reads
INPUT_FORMATS = ("jsonl", "csv", "lago")
SNIFF_BYTES = 4096  # how much of an unnamed input is looked at to tell its format


def input_format(stream, name: str | None, fmt: str = "auto") -> str:
    """The format to read ``stream`` in: ``fmt`` itself unless it is "auto"; else from the
    file ``name`` (None: stdin, no name), else from the stream's first bytes (peeked, not
    consumed; a stream that cannot peek is read as CSV)."""
    if fmt != "auto":
        return fmt
    head = stream.peek(SNIFF_BYTES)[:SNIFF_BYTES] if hasattr(stream, "peek") else b""
    return sniff(head, name)


def ingest_file(store: Store, stream, fmt: str, chunk: int, source: str) -> Iterator[tuple[Receipt, list]]:
    """Read ``stream`` in ``fmt``, ``chunk`` events at a time, and ingest it into ``store``.

    Yields ``(receipt, where)`` per chunk once the transaction holding it has
    committed: what is yielded is stored for good. ``where[i]`` says where the
    chunk's event ``i`` came from. Ends early with ``FormatError`` (the input
    cannot be read as ``fmt``), ``OSError`` (reading it failed) or ``StoreError``;
    closing the generator early rolls back what is not committed.
    """
    wheres: deque = deque()

    def chunks():
        for objs, raws, where in read_events(stream, fmt, chunk):
            wheres.append(where)
            yield objs, raws

    receipts = store.ingest_stream(chunks(), source=source)  # (the collector runs rarely meanwhile)
    try:
        for rec in receipts:
            yield rec, wheres.popleft()
    finally:
        receipts.close()


def migrate_events(path: str, events_url: str, progress=lambda moved: None):
    """Move the events of the SQLite store at ``path`` into the cluster at ``events_url`` (ids kept, quarantine
    and conflicts with them); the file stays the control store. Returns ``Moved`` (counts, last id)."""
    from gpubill.cluster.store import open_cluster_events
    from gpubill.cluster.migrate import migrate_events as move

    store = Store(path, readonly=True, create=False)
    try:
        events = open_cluster_events(events_url)
        try:
            return move(store, events, progress)
        finally:
            events.close()
    finally:
        store.close()


# -- the cluster's intake (gpubill.cluster: loaded only for a cluster) --------------------------


def ingest_worker(store, *, name: str | None = None, batch: int | None = None, claim_after_s: float | None = None,
                  lock_ttl_s: float | None = None, say=None):
    """An ingest worker (``gpubill ingest-worker``) moving ``store``'s intake into its cluster: call
    ``run(drain=...)`` (returns its totals, ``.line(name)``), ``stop()`` from a signal handler.
    StoreError when ``store`` has no intake (opened without --events and --intake)."""
    if getattr(store, "intake", None) is None:
        raise StoreError("ingest-worker needs --events clickhouse://... and --intake redis://...")
    from gpubill.cluster.worker import CLAIM_AFTER_S, DEFAULT_BATCH, LOCK_TTL_S, Worker
    return Worker(store.intake, store.events, name=name, batch=batch or DEFAULT_BATCH,
                  claim_after_s=CLAIM_AFTER_S if claim_after_s is None else claim_after_s,
                  lock_ttl_s=LOCK_TTL_S if lock_ttl_s is None else lock_ttl_s, say=say)


def intake_lag(store) -> dict | None:
    """How far the ingest workers are behind ``store``'s intake (pending and undelivered entries, waiting
    events, the oldest one's age in seconds), or None for a store without an intake."""
    intake = getattr(store, "intake", None)
    return None if intake is None else intake.lag()
