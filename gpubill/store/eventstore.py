"""The event-store interface the service layer uses.

Two implementations: the SQLite ``Store`` (the embedded default: events and
the control data in one file) and the cluster's ``ClusterStore``
(``gpubill.cluster.store``: the same control store, events in a sharded
ClickHouse behind a Redis Streams intake). Services take a store and call
only these for events; nothing above the store reads event tables itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from .receipt import Receipt


class EventStore(Protocol):
    # -- ingestion: validate, dedup on (subscription, transaction id), quarantine --------------
    def ingest(self, events: Iterable, *, source: str = "api", raws: list | None = None,
               atomic: bool = False, received_ms: int | None = None) -> Receipt: ...

    def ingest_stream(self, chunks: Iterable[tuple[list, list | None]], *, source: str = "api",
                      received_ms: int | None = None) -> Iterator[Receipt]: ...

    # -- column reads for a period and a set of subscriptions (the engine) ---------------------
    def read_columns(self, since_rowid: int = 0, codes: list[str] | None = None,
                     time_from_ms: int | None = None, time_to_ms: int | None = None,
                     subscriptions: list[str] | None = None): ...

    def event_watermark(self, db=None) -> int:
        """Every event with an id up to this is stored and visible to reads (an invoice's watermark)."""

    def latest_timestamp_ms(self) -> int | None: ...

    def any_event_between(self, time_from_ms: int, time_to_ms: int) -> bool: ...

    # -- rows, a page at a time (explain, the TUI, the HTTP listing, the CLI) ------------------
    def get_events(self, transaction_id: str, external_subscription_id: str | None = None) -> list: ...

    def get_event(self, event_id: int): ...

    def events_by_id(self, ids) -> list: ...

    def list_events(self, **filters) -> list: ...

    def count_events(self, **filters) -> int: ...

    def events_as_dicts(self, codes=None, subscriptions=None, time_from_ms=None, time_to_ms=None) -> list: ...

    # -- quarantine and conflicts --------------------------------------------------------------
    def list_rejected(self, **kw) -> list: ...

    def get_rejected(self, rid: int): ...

    def resubmit(self, rid: int, event: dict | None = None) -> Receipt: ...

    def discard_rejected(self, rid: int) -> bool: ...

    def list_conflicts(self, **kw) -> list: ...

    def stats(self) -> dict: ...
