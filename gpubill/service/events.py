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

Imports the store, never the engine: ``gpubill ingest``, ``events`` and
``serve`` load no numba.
"""

from __future__ import annotations

import gc
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from gpubill.store import STATUS_NAMES, Receipt, Store
from gpubill.store.formats import MAX_LINE, FormatError, read_events, sniff
from gpubill.store.receipt import CONFLICT, REJECTED
from gpubill.store.validate import Unparsable, parse_timestamp

__all__ = ["Store", "Receipt", "FormatError", "MAX_LINE", "STATUS_NAMES", "CONFLICT", "REJECTED",
           "Unparsable", "parse_timestamp", "INPUT_FORMATS", "input_format", "ingest_file", "rare_collections"]

#: the formats ``ingest_file`` reads
INPUT_FORMATS = ("jsonl", "csv", "lago")
SNIFF_BYTES = 4096  # how much of an unnamed input is looked at to tell its format
INGEST_GC_GEN0 = 100_000  # allocations between young collections while a file is ingested (Python's: 700)


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

    with rare_collections():
        receipts = store.ingest_stream(chunks(), source=source)
        try:
            for rec in receipts:
                yield rec, wheres.popleft()
        finally:
            receipts.close()


@contextmanager
def rare_collections():
    """Run the cyclic garbage collector rarely meanwhile (a file's ingestion, a server's life);
    its thresholds come back after.

    Parsed events are dicts, lists and strings without cycles, freed by their
    reference counts, but each one counts towards the next collection: at
    Python's 700 allocations a chunk of 8192 events triggered ~35 young
    collections and, through them, full passes over every live object (the
    chunks in flight included): about half of reading a JSONL file and a
    tenth of validating it (measured on bench/ingest.py's events).
    """
    with _GC.lock:
        if not _GC.running:
            _GC.saved = gc.get_threshold()
            gc.set_threshold(max(_GC.saved[0], INGEST_GC_GEN0), *_GC.saved[1:])
        _GC.running += 1
    try:
        yield
    finally:
        with _GC.lock:
            _GC.running -= 1
            if not _GC.running:  # the last ingestion running gives the thresholds back
                gc.set_threshold(*_GC.saved)


class _GC:
    """The collector's thresholds as they were before the ingestions now running began."""

    lock = threading.Lock()
    running = 0
    saved: tuple = ()
