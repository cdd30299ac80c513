"""The reviewer TUI's session: which store, which contracts, who acts, what time it is.

Receives from the shell (``gpubill tui``) a store path, the contract paths, a
user name (``--as``) and optionally a clock and a month; answers a
``ReviewSession`` that the screens' thread workers read through. SQLite
connections belong to one thread, so each worker thread gets its own
read-only store (``reader()``); a review action opens a writable store for
its one change (``writer()``), as the session's actor, so roles and the audit
log apply as on the command line. The contracts are compiled once per
session (``catalog()``), in the first worker that needs them.

The month under review (``period()``) is the one given, else the last month a
pending draft closes (what a reviewer reviews at month end), else the month of
now. An invoice belongs to the month its billing period ends in, and an alert
to the month its period starts in, in any time zone.
The rows the overview, customers and customer screens show are computed here
too (plain attrs rows, never widgets), each with one pass over the store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal

import attrs
import numpy as np

from gpubill.service.access import Actor, local_actor
from gpubill.service.events import Store
from gpubill.service.rating import load_catalog
from gpubill.store import ledger
from gpubill.store.store import now_ms as clock_ms

DAY_MS = 24 * 3600 * 1000
ZERO = Decimal(0)
# A billing period that ends on a day (local time, any zone from UTC-12 to UTC+14) ends between
# 10:00 UTC that day and 12:00 UTC the next: 14 hours before its end is always on that day.
# One that starts on a day starts between 10:00 UTC the day before and 12:00 UTC that day:
# 14 hours after its start is always on that day.
LOCAL_END_SHIFT_MS = 14 * 3600 * 1000


@attrs.frozen
class Period:
    """A calendar month in UTC: ``from_ms`` inclusive, ``to_ms`` exclusive."""

    label: str  # YYYY-MM
    from_ms: int
    to_ms: int

    @property
    def days(self) -> int:
        return (self.to_ms - self.from_ms) // DAY_MS

    def day_of(self, ms: int) -> int:
        return (ms - self.from_ms) // DAY_MS

    def step(self, months: int) -> "Period":
        start = dt.datetime.fromtimestamp(self.from_ms / 1000, dt.timezone.utc)
        index = start.year * 12 + start.month - 1 + months
        return month(f"{index // 12:04d}-{index % 12 + 1:02d}")


def month(label: str) -> Period:
    """The UTC month ``YYYY-MM`` (ValueError for anything else)."""
    start = dt.datetime.strptime(label, "%Y-%m").replace(tzinfo=dt.timezone.utc)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return Period(start.strftime("%Y-%m"), int(start.timestamp() * 1000), int(end.timestamp() * 1000))


def month_of(ms: int) -> Period:
    return month(dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m"))


class ReviewSession:
    """One reviewer's session over one store (see the module's docstring)."""

    def __init__(self, store_path: str, contracts: Sequence[str], actor: Actor, *,
                 now_ms: Callable[[], int] = clock_ms, period: str | None = None):
        self.store_path = str(store_path)
        self.contracts = tuple(str(c) for c in contracts)
        self.actor = actor
        self.now_ms = now_ms
        self._period = month(period) if period else None
        self._local = threading.local()
        self._stores: list[Store] = []
        self._lock = threading.Lock()
        self._catalog = None

    @classmethod
    def open(cls, store_path: str, contracts: Sequence[str], as_user: str | None = None, **options) -> "ReviewSession":
        """A session as ``as_user`` (``local_actor``: AccessError if the store has users and no such one);
        StoreError/StoreMissing when the store cannot be opened."""
        with Store(store_path, readonly=True, create=False) as store:
            actor = local_actor(store, as_user, source="tui")
        return cls(store_path, contracts, actor, **options)

    def reader(self) -> Store:
        """This thread's read-only store (opened on first use, closed by ``close``)."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = Store(self.store_path, readonly=True, create=False)
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    @contextlib.contextmanager
    def writer(self) -> Iterator[Store]:
        """A writable store for one review action, closed after it."""
        with Store(self.store_path, create=False) as store:
            yield store

    def catalog(self):
        """The contracts, compiled once (a ``dsl.resolve.Catalog``)."""
        with self._lock:
            if self._catalog is None:
                self._catalog = load_catalog(self.contracts)[0]
            return self._catalog

    def period(self) -> Period:
        """The month under review (see the module's docstring)."""
        if self._period is None:
            last = self.reader()._read().execute(
                "SELECT max(period_to_ms) FROM invoices WHERE status = 'draft'").fetchone()[0]
            self._period = month_of(last - LOCAL_END_SHIFT_MS if last is not None else self.now_ms())
        return self._period

    def known_period(self) -> Period | None:
        """The month under review if it is known yet (``period()`` reads the store the first time)."""
        return self._period

    def set_period(self, period: Period) -> None:
        self._period = period

    def close(self) -> None:
        with self._lock:
            for store in self._stores:
                store.close()
            self._stores.clear()


# ---------------------------------------------------------------- who is billed where


@attrs.frozen
class Subscriber:
    """A contract's subscription as the screens name it."""

    subscription: str
    contract: str
    customer: str  # external id
    name: str  # display name, else the external id
    entity: str
    currency: str


def directory(session: ReviewSession) -> dict[str, Subscriber]:
    """Every contract's subscription -> who it bills (from the session's contracts)."""
    catalog = session.catalog()
    out = {}
    for c in catalog.contracts.values():
        if c.subscription is None or c.customer is None:
            continue
        plan = catalog.plan_version(c.plan) if c.plan is not None else None
        cur = plan.currency.name if plan is not None and plan.currency is not None else ""
        name = c.customer.display_name.value if c.customer.display_name is not None else c.customer.id.value
        out[c.subscription.value] = Subscriber(c.subscription.value, c.name.name, c.customer.id.value, name,
                                               c.entity.name if c.entity is not None else "", cur)
    return out


# ---------------------------------------------------------------- overview


@attrs.frozen
class EntityTotals:
    """One entity and currency in the month under review."""

    entity: str
    currency: str
    billed: Decimal  # the month's invoices so far, drafts and finalized (voided and replaced ones left out)
    drafts: int
    next_deadline_ms: int | None  # the earliest grace deadline of a draft (finalized then by `finalize --due`)
    finalized: int
    alerts: int
    late: int  # events stored after a finalized invoice of the month, inside its period
    daily: tuple[int, ...]  # events per day of the month


@attrs.frozen
class Overview:
    period: Period
    rows: tuple[EntityTotals, ...]
    rejected: int  # quarantined events waiting for a decision
    as_of_ms: int


def overview(session: ReviewSession) -> Overview:
    """The month under review, per entity and currency: one pass over invoices, alerts and the month's events."""
    store, period, subs = session.reader(), session.period(), directory(session)
    db = store._read()
    invoices = _month_invoices(db, period)
    cols = store.read_columns(time_from_ms=period.from_ms, time_to_ms=period.to_ms - 1)
    keys = {(s.entity, s.currency) for s in subs.values()} | {(r.entity, r.currency) for r in invoices}
    daily = _daily_by(cols, period, {sid: (s.entity, s.currency) for sid, s in subs.items()})
    late = _late_by(store, invoices)
    alerts = _alerts_by(db, period, subs)
    rows = tuple(_entity_totals(key, [r for r in invoices if (r.entity, r.currency) == key],
                                daily.get(key, np.zeros(period.days, np.int64)), late.get(key, 0), alerts.get(key, 0))
                 for key in sorted(keys))
    rejected = db.execute("SELECT count(*) FROM rejected WHERE status = 'open'").fetchone()[0]
    return Overview(period, rows, rejected, session.now_ms())


def _month_invoices(db, period: Period) -> list:
    """The month's invoices, not voided and not replaced by a later one."""
    rows = ledger.list_invoices(db, limit=1 << 30)
    replaced = {r.replaces for r in rows if r.replaces}
    return [r for r in rows if r.status != "voided" and r.id not in replaced
            and period.from_ms <= r.period_to_ms - LOCAL_END_SHIFT_MS < period.to_ms]


def _entity_totals(key, invoices: list, daily, late: int, alerts: int) -> EntityTotals:
    drafts = [r for r in invoices if r.status == "draft"]
    billed = sum((Decimal(r.doc["total_amount"]) for r in invoices), ZERO)
    return EntityTotals(key[0], key[1], billed, len(drafts), min((r.due_ms for r in drafts), default=None),
                        len(invoices) - len(drafts), alerts, late, tuple(int(n) for n in daily))


def _daily_by(cols, period: Period, group_of: dict) -> dict:
    """Events per day of the month for each group of subscriptions (one bincount per group)."""
    out: dict = {}
    day = (cols.timestamp_ms - period.from_ms) // DAY_MS
    for sid, key in group_of.items():
        i = cols.lookup(sid)
        if i < 0:
            continue
        counts = np.bincount(day[cols.subscription == i], minlength=period.days)[:period.days]
        out[key] = out.get(key, 0) + counts
    return out


def _late_by(store, invoices: list) -> dict:
    """Events stored after each finalized subscription invoice was, inside its period; by entity and currency."""
    final = [r for r in invoices if r.status == "finalized" and r.invoice_type == "subscription"]
    if not final:
        return {}
    cols = store.read_columns(since_rowid=min(r.watermark or 0 for r in final),
                              subscriptions=sorted({r.subscription for r in final}))
    out: dict = {}
    for r in final:
        sid = cols.lookup(r.subscription)
        n = int(((cols.subscription == sid) & (cols.rowid > (r.watermark or 0)) & (cols.timestamp_ms >= r.period_from_ms)
                 & (cols.timestamp_ms <= r.period_to_ms)).sum()) if sid >= 0 else 0
        out[(r.entity, r.currency)] = out.get((r.entity, r.currency), 0) + n
    return out


def _alerts_by(db, period: Period, subs: dict) -> dict:
    out: dict = {}
    for sub, cur in db.execute("SELECT subscription, currency FROM alerts WHERE period_from_ms + ? >= ?"
                               " AND period_from_ms + ? < ?", (LOCAL_END_SHIFT_MS, period.from_ms,
                                                                LOCAL_END_SHIFT_MS, period.to_ms)):
        s = subs.get(sub)
        key = (s.entity if s is not None else "", cur)
        out[key] = out.get(key, 0) + 1
    return out


def subscribers(session: ReviewSession) -> list[Subscriber]:
    """Every subscription of the contracts, by customer name."""
    return sorted(directory(session).values(), key=lambda s: (s.name.lower(), s.subscription))


@attrs.frozen
class InvoiceEntry:
    """An invoice as the command palette finds it."""

    id: str
    number: str | None
    customer: str
    period_label: str
    status: str
    total: str
    currency: str


def invoice_index(session: ReviewSession) -> list[InvoiceEntry]:
    """Every stored invoice, newest period first."""
    rows = session.reader()._read().execute(
        "SELECT id, number, customer, period_label, status, body ->> '$.total_amount', currency FROM invoices"
        " ORDER BY period_from_ms DESC, customer").fetchall()
    return [InvoiceEntry(*r) for r in rows]
