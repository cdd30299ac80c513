"""The control store with its events in the cluster.

``ClusterStore`` is the SQLite ``Store`` (invoices, audit log, keys, users,
alerts: small, transactional, one per deployment) whose event methods, the
``EventStore`` interface, go to ``ClickHouseEvents`` for reads and to the
Redis Streams intake for writes (``intake.py``): the service layer calls the
same methods on either store.
"""

from __future__ import annotations

import os

from gpubill.store import Store, StoreError
from gpubill.store.receipt import Receipt

from gpubill.store.store import DEFAULT_MAX_FUTURE_S

from .events import ClickHouseEvents
from .url import parse_events_url


class ClusterStore(Store):
    def __init__(self, path, events: ClickHouseEvents, intake=None, **options):
        super().__init__(path, **options)
        self.events = events
        self.intake = intake

    def close(self) -> None:
        self.events.close()
        if self.intake is not None:
            self.intake.close()
        super().close()

    def health(self) -> str | None:
        """None while events can be written: the control store's last write worked and the intake answers."""
        if self.intake is not None:
            try:
                self.intake.ping()
            except StoreError as e:
                return str(e)
        return super().health()

    def _intake(self):
        if self.intake is None:
            raise StoreError(f"event store {self.events.url}: events reach the cluster through its intake;"
                             " pass --intake redis://HOST:PORT/DB")
        return self.intake

    # -- writes: through the intake ----------------------------------------------
    def ingest(self, events, *, source: str = "api", raws: list | None = None, atomic: bool = False,
               received_ms: int | None = None) -> Receipt:
        return self._intake().ingest(events, source=source, raws=raws, atomic=atomic, received_ms=received_ms)

    def ingest_stream(self, chunks, *, source: str = "api", received_ms: int | None = None):
        return self._intake().ingest_stream(chunks, source=source, received_ms=received_ms)

    def resubmit(self, rid: int, event: dict | None = None) -> Receipt:
        rec = self.events.get_rejected(rid)
        if rec is None:
            raise KeyError(rid)
        if rec.status != "open":
            raise StoreError(f"rejected event {rid} is already {rec.status}")
        return self._intake().resubmit(rec, event)

    def discard_rejected(self, rid: int) -> bool:
        rec = self.events.get_rejected(rid)
        if rec is None or rec.status != "open":
            return False
        self.events.set_rejected_status(rec, "discarded")
        return True

    def rebuild_columns(self) -> int:
        raise StoreError(f"event store {self.events.url}: the cluster's columns are its tables; nothing to rebuild")

    # -- reads -------------------------------------------------------------------
    def read_columns(self, since_rowid: int = 0, codes=None, time_from_ms=None, time_to_ms=None,
                     subscriptions=None):
        return self.events.read_columns(since_rowid, codes, time_from_ms, time_to_ms, subscriptions)

    def rate_pushed_down(self, specs, window):
        """The fast engine's result for ``specs`` over ``window`` (``read_columns``' arguments), the
        decomposable charges aggregated on the shards (``pushdown.py``)."""
        from .pushdown import rate_pushed_down
        return rate_pushed_down(self.events, specs, window)

    def event_watermark(self, db=None) -> int:
        return self.events.watermark()

    def get_events(self, transaction_id, external_subscription_id=None):
        return self.events.get_events(transaction_id, external_subscription_id)

    def get_event(self, event_id):
        return self.events.get_event(event_id)

    def events_by_id(self, ids):
        return self.events.events_by_id(ids)

    def latest_timestamp_ms(self):
        return self.events.latest_timestamp_ms()

    def any_event_between(self, time_from_ms, time_to_ms):
        return self.events.any_event_between(time_from_ms, time_to_ms)

    def list_events(self, **filters):
        return self.events.list_events(**filters)

    def events_as_dicts(self, codes=None, subscriptions=None, time_from_ms=None, time_to_ms=None):
        return self.events.events_as_dicts(codes, subscriptions, time_from_ms, time_to_ms)

    def count_events(self, **filters):
        return self.events.count_events(**filters)

    def list_rejected(self, **kw):
        return self.events.list_rejected(**kw)

    def get_rejected(self, rid):
        return self.events.get_rejected(rid)

    def list_conflicts(self, **kw):
        return self.events.list_conflicts(**kw)

    def stats(self) -> dict:
        return self.events.stats()


def open_cluster_events(events_url: str, *, create: bool = True) -> ClickHouseEvents:
    """The cluster at ``events_url`` (``create``: its schema created or checked on every shard)."""
    return ClickHouseEvents(parse_events_url(events_url), create=create)


def open_cluster_store(path, events_url: str, intake_url: str | None = None, **options) -> ClusterStore:
    """The control store at ``path`` with its events in the cluster at ``events_url`` (schema created or
    checked on every shard), and its intake at ``intake_url`` when given."""
    options.pop("create", None)  # the control store of a cluster is made on first use
    readonly = options.get("readonly", False)
    if readonly and not os.path.exists(path):
        Store(path, create=True).close()
    events = open_cluster_events(events_url, create=not readonly)
    intake = None
    if intake_url is not None:
        from .intake import Intake
        intake = Intake(intake_url, events, max_future_ms=options.get("max_future_s", DEFAULT_MAX_FUTURE_S) * 1000)
    return ClusterStore(path, events, intake, create=True, **options)
