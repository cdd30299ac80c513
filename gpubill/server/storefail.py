"""Store failures as HTTP answers: 507 when the disk is full, 503 for other store I/O.

The client gets one line (no path, no traceback) and can retry later; nothing
of its request was stored.
"""

from __future__ import annotations

from gpubill.service.errors import FULL, store_failure


class StoreFailure(Exception):
    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def failure_of(e: BaseException, writing: bool) -> StoreFailure | None:
    """The answer for a store failure, or None when ``e`` is not one (a bug: let it be a 500).

    What counts as a store failure, and as a full disk, is ``service.errors.store_failure``'s call.
    """
    kind = store_failure(e)
    if kind is None:
        return None
    after = "; nothing was stored" if writing else ""
    if kind == FULL:
        return StoreFailure(507, f"Insufficient Storage: the event store's disk is full{after}", "store_full")
    return StoreFailure(503, f"Service Unavailable: the event store failed (I/O){after}; retry later",
                        "store_unavailable")
