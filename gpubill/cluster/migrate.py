"""Move a SQLite store's events into the cluster (`gpubill migrate-events`).

Events keep their ids, so the control store's invoice watermarks keep their
meaning; each page of stored events is validated again from its raw payload
(the same columns as ingestion makes) and written through the cluster's one
write path (``ClickHouseEvents.store_chunk``). Quarantine rows and conflicts
follow under their own ids, their status kept (each kind has its own table;
the intake gives new ids above every id the cluster holds). The watermark
moves to the last event's id at the end.

Idempotent: a second run (after an interruption, say) writes the same rows
with the same ids again, which the cluster keeps once.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import attrs
import numpy as np
import orjson

from gpubill.store import Store
from gpubill.store.encode import payload_of, prepare

from . import schema
from .events import ClickHouseEvents

PAGE = 20_000
_ANY_TIME_MS = 1 << 62  # stored events were accepted once: no future-timestamp bound when they move


@attrs.define
class Moved:
    events: int = 0
    rejected: int = 0
    conflicts: int = 0
    last_id: int = 0


def migrate_events(store: Store, events: ClickHouseEvents, progress: Callable[[Moved], None] = lambda m: None
                   ) -> Moved:
    """ValueError when a stored event no longer validates (the pages before it moved)."""
    moved = Moved()
    after = 0
    while True:
        page = store.list_events(after_id=after, limit=PAGE)
        if not page:
            break
        _move_page(events, page)
        after = page[-1].id
        moved.events += len(page)
        moved.last_id = after
        progress(moved)
    moved.rejected = _move_rejected(store, events)
    moved.conflicts = _move_conflicts(store, events)
    if moved.last_id:
        events.advance_watermark(moved.last_id)
    return moved


def _move_page(events: ClickHouseEvents, page: list) -> None:
    """Store one page of SQLite events under their own ids (grouped by when they were received)."""
    raws = [r.raw.encode() for r in page]
    objs = [orjson.loads(b) for b in raws]
    chunk = prepare(objs, _ANY_TIME_MS, 0, raws)
    if chunk.rejected:
        pos = min(chunk.rejected)
        problem = chunk.rejected[pos][0]
        raise ValueError(f"event {page[pos].id} no longer validates ({problem.text()}); nothing after it moved")
    ids = np.array([r.id for r in page], np.int64)
    received = np.array([r.received_ms for r in page], np.int64)
    events.store_chunk(chunk, payload_of(chunk, raws), {}, "migrated", received, ids)


def _move_rejected(store: Store, events: ClickHouseEvents) -> int:
    """Every quarantine row under its own id (the intake gives new ids above every id the cluster holds)."""
    n, offset = 0, 0
    while True:
        page = store.list_rejected(status=None, limit=PAGE, offset=offset)
        if not page:
            return n
        events.cluster.insert("rejected", schema.REJECTED_COLUMNS, [
            [r.id for r in page], [r.received_ms for r in page], [r.source for r in page],
            [base64.b64encode(r.raw).decode() for r in page], [orjson.dumps(r.reasons).decode() for r in page],
            [r.status for r in page],
            [-1 if r.resolved_event_id is None else r.resolved_event_id for r in page], [0] * len(page)])
        n += len(page)
        offset += len(page)


def _move_conflicts(store: Store, events: ClickHouseEvents) -> int:
    """Every conflict under its own id, with the key of the copy it conflicts with."""
    n, offset = 0, 0
    while True:
        page = store.list_conflicts(limit=PAGE, offset=offset)
        if not page:
            return n
        firsts = {r.id: r for r in store.events_by_id(sorted({row[3] for row in page}))}
        rows = [row for row in page if row[3] in firsts]
        events.cluster.insert("conflicts", schema.CONFLICT_COLUMNS, [
            [row[0] for row in rows], [row[1] for row in rows], [row[2] for row in rows], [row[3] for row in rows],
            [firsts[row[3]].external_subscription_id for row in rows],
            [firsts[row[3]].transaction_id for row in rows], [bytes(row[4]).decode() for row in rows]])
        n += len(rows)
        offset += len(page)
