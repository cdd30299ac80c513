"""Store failures as HTTP answers: 507 when the disk is full, 503 for other store I/O.

The client gets one line (no path, no traceback) and can retry later; nothing
of its request was stored.
"""

from __future__ import annotations

import errno
import sqlite3

from gpubill.store import StoreError

SQLITE_FULL = 13


class StoreFailure(Exception):
    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def is_full(e: BaseException) -> bool:
    """A StoreError says so itself (``StoreFull.full``); a raw sqlite3 or OS error by its code."""
    if isinstance(e, StoreError):
        return bool(getattr(e, "full", False))
    return ((getattr(e, "sqlite_errorcode", None) or 0) & 0xFF) == SQLITE_FULL or \
        getattr(e, "errno", None) == errno.ENOSPC


def failure_of(e: BaseException, writing: bool) -> StoreFailure | None:
    """The answer for a store failure, or None when ``e`` is not one (a bug: let it be a 500)."""
    if not isinstance(e, (StoreError, sqlite3.Error, OSError)):
        return None
    after = "; nothing was stored" if writing else ""
    if is_full(e):
        return StoreFailure(507, f"Insufficient Storage: the event store's disk is full{after}", "store_full")
    return StoreFailure(503, f"Service Unavailable: the event store failed (I/O){after}; retry later",
                        "store_unavailable")
