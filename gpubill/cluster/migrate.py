"""Move a SQLite store's events into the cluster (`gpubill migrate-events`).

Events keep their ids, so the control store's invoice watermarks keep their
meaning. They are read as the store's columns (validated and encoded when
they were ingested, so the cluster gets the very values the SQLite store
rates) with their payloads, a page at a time, and inserted without a dedup
lookup: the store holds each key once. Quarantine rows and conflicts
follow under their own ids, their status kept (each kind has its own table;
the intake gives new ids above every id the cluster holds). The watermark
moves to the last event's id at the end.

Idempotent: a second run (after an interruption, say) writes the same rows
with the same ids again, which the cluster keeps once. Meant for a cluster
whose intake has not taken events yet (an event the intake stored under
another id would be a second copy of its key, the smaller id kept).
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import attrs
import numpy as np
import orjson

from gpubill.store import Store
from gpubill.store.collector import rare_collections

from . import rows, schema
from .events import ClickHouseEvents

PAGE = 50_000
SOURCE = "migrated"


@attrs.define
class Moved:
    events: int = 0
    rejected: int = 0
    conflicts: int = 0
    last_id: int = 0


def migrate_events(store: Store, events: ClickHouseEvents, progress: Callable[[Moved], None] = lambda m: None
                   ) -> Moved:
    """Every event of ``store`` into the cluster, then its quarantine and conflicts, then the watermark."""
    with rare_collections():  # a page's rows are millions of acyclic lists: young collections are wasted work
        return _migrate(store, events, progress)


def _migrate(store: Store, events: ClickHouseEvents, progress: Callable[[Moved], None]) -> Moved:
    cols = store.read_columns()  # every stored event, in id order
    forms = {name: cols.stored_forms(name) for name in cols.property_names()}
    moved = Moved()
    for lo in range(0, cols.n, PAGE):
        page = slice(lo, min(lo + PAGE, cols.n))
        events.cluster.insert("events", schema.EVENT_COLUMNS, _page_rows(store, cols, forms, page))
        moved.events = page.stop
        moved.last_id = int(cols.rowid[page.stop - 1])
        progress(moved)
    moved.rejected = _move_rejected(store, events)
    moved.conflicts = _move_conflicts(store, events)
    if moved.last_id:
        events.advance_watermark(moved.last_id)
    return moved


def _page_rows(store: Store, cols, forms: dict, page: slice) -> list[list]:
    """The cluster's columns of one page of stored events: their columns as stored (validated when they
    were ingested), their payloads and when they were received."""
    ids = cols.rowid[page]
    records = store.events_by_id(ids)
    n = len(records)
    props = ((name, sid[page], cols.strings.decode, m[page], e[page]) for name, (sid, m, e) in forms.items())
    ptac_m, ptac_e = cols.precise_total_amount_cents
    return rows.columns(ids, [r.external_subscription_id for r in records], [r.transaction_id for r in records],
                        [r.code for r in records], cols.timestamp_ms[page], (ptac_m[page], ptac_e[page]),
                        rows.property_arrays(n, props), [r.raw for r in records],
                        np.array([r.received_ms for r in records], np.int64), SOURCE)


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
