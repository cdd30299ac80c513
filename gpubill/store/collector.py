"""The cyclic garbage collector, run rarely while events are parsed and ingested
(``Store.ingest_stream``, each ``gpubill serve`` worker)."""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

RARE_GEN0 = 100_000  # allocations between young collections while events are ingested (Python's: 700)


@contextmanager
def rare_collections():
    """Run the cyclic garbage collector rarely meanwhile (an ingestion, a server's life); its
    thresholds come back after.

    Parsed events are dicts, lists and strings without cycles, freed by their
    reference counts, but each one counts towards the next collection: at
    Python's 700 allocations a chunk of 8192 events triggered ~35 young
    collections and, through them, full passes over every live object (the
    chunks in flight included): about half of reading a JSONL file and a
    tenth of validating it (measured on bench/ingest.py's events); Store.ingest from dicts
    +10 %.
    """
    with _GC.lock:
        if not _GC.running:
            _GC.saved = gc.get_threshold()
            gc.set_threshold(max(_GC.saved[0], RARE_GEN0), *_GC.saved[1:])
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
