"""Store failures as the shell sees them, decided once.

Receives an exception raised by a store call (a method of the handle that
``gpubill.service.events`` hands out) and says what it means: ``StoreError``
is the store's own one-line failure (the path and what is wrong), re-exported
here so that the shell names it without importing ``gpubill.store``;
``StoreMissing`` is the one raised when no store exists where one was to be
opened without creating it.

``store_failure(e)`` classifies any exception met around a store call:
``FULL`` (the disk is full: the write was rolled back, nothing of it was
stored), ``UNAVAILABLE`` (any other store or I/O failure: retry later), or
None (not a store failure: a bug, to be reported as one). The command line
shows a store failure as one line and exit 3; the HTTP API answers 507 for
``FULL`` and 503 for ``UNAVAILABLE`` (``gpubill.server.storefail``).

Imports the store, never the engine.
"""

from __future__ import annotations

import errno
import sqlite3

from gpubill.store import StoreError, StoreMissing
from gpubill.store.schema import SQLITE_FULL

__all__ = ["StoreError", "StoreMissing", "FULL", "UNAVAILABLE", "store_failure"]

FULL = "full"
UNAVAILABLE = "unavailable"


def store_failure(e: BaseException) -> str | None:
    """``FULL``, ``UNAVAILABLE``, or None when ``e`` is not a store failure.

    A ``StoreError`` says itself whether the disk was full (``StoreFull.full``); a raw
    sqlite3 or OS error that escaped a store call is read by its code (an extended SQLite
    code's low byte is its primary code).
    """
    if not isinstance(e, (StoreError, sqlite3.Error, OSError)):
        return None
    return FULL if _is_full(e) else UNAVAILABLE


def _is_full(e: BaseException) -> bool:
    if isinstance(e, StoreError):
        return bool(getattr(e, "full", False))
    return ((getattr(e, "sqlite_errorcode", None) or 0) & 0xFF) == SQLITE_FULL or \
        getattr(e, "errno", None) == errno.ENOSPC
