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
import gc
import threading
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal

import attrs
import numpy as np

from gpubill.service.access import Actor, local_actor
from gpubill.service.events import Store, open_event_store
from gpubill.service.rating import load_catalog
from gpubill.store import ledger
from gpubill.store.store import now_ms as clock_ms

DAY_MS = 24 * 3600 * 1000
ZERO = Decimal(0)
PER_PERIOD = ("period", "month")  # a commitment counted against one monthly invoice
# A billing period that ends on a day (local time, any zone from UTC-12 to UTC+14) ends between
# 10:00 UTC that day and 12:00 UTC the next: 14 hours before its end is always on that day.
# One that starts on a day starts between 10:00 UTC the day before and 12:00 UTC that day:
# 14 hours after its start is always on that day.
LOCAL_END_SHIFT_MS = 14 * 3600 * 1000


@attrs.frozen
class Month:
    """A calendar month in UTC: ``from_ms`` inclusive, ``to_ms`` exclusive."""

    label: str  # YYYY-MM
    from_ms: int
    to_ms: int

    @property
    def days(self) -> int:
        return (self.to_ms - self.from_ms) // DAY_MS

    def day_of(self, ms: int) -> int:
        return (ms - self.from_ms) // DAY_MS

    def step(self, months: int) -> "Month":
        start = dt.datetime.fromtimestamp(self.from_ms / 1000, dt.timezone.utc)
        index = start.year * 12 + start.month - 1 + months
        return month(f"{index // 12:04d}-{index % 12 + 1:02d}")


def month(label: str) -> Month:
    """The UTC month ``YYYY-MM`` (ValueError for anything else)."""
    start = dt.datetime.strptime(label, "%Y-%m").replace(tzinfo=dt.timezone.utc)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return Month(start.strftime("%Y-%m"), int(start.timestamp() * 1000), int(end.timestamp() * 1000))


def month_of(ms: int) -> Month:
    return month(dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m"))


# What changes in the control store, for what the screens show: invoices (a new one, a new revision,
# finalized, voided), alerts, credit notes and their uses (events: the store's event watermark). Reads no
# invoice document.
_INVOICES_STATE = """SELECT count(*) || ' ' || total(revision) || ' ' || coalesce(max(finalized_ms), 0) || ' '
       || coalesce(max(voided_ms), 0) FROM invoices"""
_STORE_STATE = f"""
SELECT ({_INVOICES_STATE}),
       (SELECT coalesce(max(id), 0) FROM alerts),
       (SELECT count(*) || ' ' || coalesce(max(voided_ms), 0) FROM credit_notes),
       (SELECT count(*) FROM credit_note_uses)
"""


class ReviewSession:
    """One reviewer's session over one store (see the module's docstring)."""

    def __init__(self, store_path: str, contracts: Sequence[str], actor: Actor, *,
                 now_ms: Callable[[], int] = clock_ms, period: str | None = None, events: str | None = None,
                 intake: str | None = None):
        self.store_path = str(store_path)
        self.contracts = tuple(str(c) for c in contracts)
        self.actor = actor
        self.now_ms = now_ms
        self._period = month(period) if period else None
        self._events = {"events": events, "intake": intake}  # the cluster the events are in (None: the file)
        self._local = threading.local()
        self._stores: list[Store] = []
        self._lock = threading.Lock()
        self._kept: dict = {}  # name -> what ``kept`` computed
        self._computed: dict = {}  # name -> (what it was computed from, value): see ``unless_changed``

    @classmethod
    def open(cls, store_path: str, contracts: Sequence[str], as_user: str | None = None, **options) -> "ReviewSession":
        """A session as ``as_user`` (``local_actor``: AccessError if the store has users and no such one);
        StoreError/StoreMissing when the store cannot be opened."""
        with open_event_store(store_path, readonly=True, create=False, events=options.get("events"),
                              intake=options.get("intake")) as store:
            actor = local_actor(store, as_user, source="tui")
        return cls(store_path, contracts, actor, **options)

    def reader(self) -> Store:
        """This thread's read-only store (opened on first use, closed by ``close``)."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = open_event_store(self.store_path, readonly=True, create=False, **self._events)
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    @contextlib.contextmanager
    def writer(self) -> Iterator[Store]:
        """A writable store for one review action, closed after it."""
        with open_event_store(self.store_path, create=False, **self._events) as store:
            yield store

    def catalog(self):
        """The contracts, compiled once (a ``dsl.resolve.Catalog``)."""
        return self.loaded()[0]

    def loaded(self) -> tuple:
        """``load_catalog(contracts)`` once per session: (the catalog, its sources by path)."""
        return self.kept("catalog and sources", self._compile)

    def _compile(self) -> tuple:
        loaded = load_catalog(self.contracts)
        # 10 000 contracts are millions of objects that live as long as the session: out of the collector's
        # sight (the parse's garbage collected first), its full passes stop pausing the screen for seconds.
        gc.collect()
        gc.freeze()
        return loaded

    def kept(self, name: str, compute: Callable):
        """``compute()``, once per session: what depends on the contracts only."""
        with self._lock:
            if name not in self._kept:
                self._kept[name] = compute()
            return self._kept[name]

    def period(self) -> Month:
        """The month under review (see the module's docstring)."""
        if self._period is None:
            last = self.reader()._read().execute(
                "SELECT max(period_to_ms) FROM invoices WHERE status = 'draft'").fetchone()[0]
            self._period = month_of(last - LOCAL_END_SHIFT_MS if last is not None else self.now_ms())
        return self._period

    def month_columns(self):
        """The month's events as columns, read again only when events were stored since (or the month changed)."""
        period = self.period()
        top = self.reader().event_watermark()
        return self.fresh("columns", (period, top),
                          lambda: self.reader().read_columns(time_from_ms=period.from_ms, time_to_ms=period.to_ms - 1))

    def month_invoices(self) -> list:
        """The month's invoices (``MonthInvoice``), read again only when an invoice changed."""
        state = self.reader()._read().execute(_INVOICES_STATE).fetchone()[0]
        return self.fresh("invoices", (self.period(), state),
                          lambda: _month_invoices(self.reader()._read(), self.period()))

    def unless_changed(self, name: str, compute: Callable):
        """``compute()``, again only when the month under review or the store changed since (events,
        invoices and their revisions, alerts, credit notes; one query says)."""
        state = (self.reader().event_watermark(), *self.reader()._read().execute(_STORE_STATE).fetchone())
        return self.fresh(name, (self.period(), state), compute)

    def fresh(self, name: str, key, compute: Callable):
        """The value computed under ``name`` if it was computed from ``key``, else ``compute()`` (then kept)."""
        with self._lock:
            hit = self._computed.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = compute()
        with self._lock:
            self._computed[name] = (key, value)
        return value

    def known_period(self) -> Month | None:
        """The month under review if it is known yet (``period()`` reads the store the first time)."""
        return self._period

    def set_period(self, period: Month) -> None:
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
    commitment: Decimal | None  # the minimum commitment of a period (a monthly one), if any
    budget: Decimal | None


def directory(session: ReviewSession) -> dict[str, Subscriber]:
    """Every contract's subscription -> who it bills (from the session's contracts, once per session)."""
    catalog = session.catalog()
    return session.kept("directory", lambda: _directory(catalog))


def _directory(catalog) -> dict[str, Subscriber]:
    out = {}
    for c in catalog.contracts.values():
        if c.subscription is None or c.customer is None:
            continue
        plan = catalog.plan_version(c.plan) if c.plan is not None else None
        cur = plan.currency.name if plan is not None and plan.currency is not None else ""
        name = c.customer.display_name.value if c.customer.display_name is not None else c.customer.id.value
        commit = next((m.amount.value for m in c.commits if (m.per or "period") in PER_PERIOD), None)
        out[c.subscription.value] = Subscriber(c.subscription.value, c.name.name, c.customer.id.value, name,
                                               c.entity.name if c.entity is not None else "", cur, commit,
                                               c.budget.amount.value if c.budget is not None else None)
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
    period: Month
    rows: tuple[EntityTotals, ...]
    rejected: int  # quarantined events waiting for a decision
    as_of_ms: int


def overview(session: ReviewSession) -> Overview:
    """The month under review, per entity and currency: one pass over invoices, alerts and the month's events
    (again only when the store changed)."""
    rows = session.unless_changed("overview", lambda: _entity_rows(session))
    rejected = session.reader().stats()["rejected_open"]
    return Overview(session.period(), rows, rejected, session.now_ms())


def _entity_rows(session: ReviewSession) -> tuple[EntityTotals, ...]:
    store, period, subs = session.reader(), session.period(), directory(session)
    db = store._read()
    invoices = session.month_invoices()
    keys = {(s.entity, s.currency) for s in subs.values()} | {(r.entity, r.currency) for r in invoices}
    daily = _daily_by(session.month_columns(), period, {sid: (s.entity, s.currency) for sid, s in subs.items()})
    late = _late_by(store, invoices)
    alerts = _alerts_by(db, period, subs)
    return tuple(_entity_totals(key, [r for r in invoices if (r.entity, r.currency) == key],
                                daily.get(key, np.zeros(period.days, np.int64)), late.get(key, 0), alerts.get(key, 0))
                 for key in sorted(keys))


@attrs.frozen
class MonthInvoice:
    """What the overview and the customers read of an invoice (its document's totals, read by SQLite)."""

    id: str
    entity: str
    currency: str
    subscription: str
    invoice_type: str
    status: str
    due_ms: int
    period_from_ms: int
    period_to_ms: int
    watermark: int | None
    total: Decimal
    spend: Decimal  # what a budget counts: fees but commitment true-ups, less discounts (as ``alerts.spend``)


# The month's invoices, not voided and not replaced by a later one; a document's totals as SQLite reads them
# (text, so the amounts stay exact), the commitment true-ups' amounts space-separated.
_MONTH_INVOICES = """
SELECT id, entity, currency, subscription, invoice_type, status, due_ms, period_from_ms, period_to_ms, watermark,
       body ->> '$.total_amount', body ->> '$.fees_amount', body ->> '$.coupons_amount',
       (SELECT group_concat(f.value ->> '$.amount', ' ') FROM json_each(body, '$.fees') f
         WHERE f.value ->> '$.item.type' = 'commitment')
  FROM invoices
 WHERE status != 'voided' AND period_to_ms - ? >= ? AND period_to_ms - ? < ?
   AND id NOT IN (SELECT replaces FROM invoices WHERE replaces IS NOT NULL)
 ORDER BY period_from_ms, contract, invoice_type DESC, created_ms
"""


def _month_invoices(db, period: Month) -> list[MonthInvoice]:
    out = []
    for *head, total, fees, coupons, commitments in db.execute(
            _MONTH_INVOICES, (LOCAL_END_SHIFT_MS, period.from_ms, LOCAL_END_SHIFT_MS, period.to_ms)):
        trued_up = sum((Decimal(a) for a in (commitments or "").split()), ZERO)
        out.append(MonthInvoice(*head, Decimal(total), max(ZERO, Decimal(fees) - trued_up - Decimal(coupons))))
    return out


def _entity_totals(key, invoices: list, daily, late: int, alerts: int) -> EntityTotals:
    drafts = [r for r in invoices if r.status == "draft"]
    billed = sum((r.total for r in invoices), ZERO)
    return EntityTotals(key[0], key[1], billed, len(drafts), min((r.due_ms for r in drafts), default=None),
                        len(invoices) - len(drafts), alerts, late, tuple(int(n) for n in daily))


def _daily_by(cols, period: Month, group_of: dict) -> dict:
    """Events per day of the month for each group of subscriptions (one bincount for all of them)."""
    groups = sorted(set(group_of.values()))
    position = {key: i for i, key in enumerate(groups)}
    g = _table(cols, {sub: position[key] for sub, key in group_of.items()})[cols.subscription]
    ok = g >= 0
    day = (cols.timestamp_ms[ok] - period.from_ms) // DAY_MS
    counts = np.bincount(g[ok] * period.days + day, minlength=len(groups) * period.days)
    return {key: counts[i * period.days:(i + 1) * period.days] for i, key in enumerate(groups)}


def _table(cols, index_of: dict[str, int]) -> np.ndarray:
    """A lookup from the columns' subscription ids to ``index_of[subscription]`` (-1: none)."""
    table = np.full(int(cols.subscription.max()) + 1 if cols.n else 1, -1, np.int64)
    for sub, i in index_of.items():
        sid = cols.lookup(sub)
        if 0 <= sid < table.size:
            table[sid] = i
    return table


def _late_by(store, invoices: list) -> dict:
    """Events stored after each finalized subscription invoice was, inside its period; by entity and currency.
    One column read; each round takes one invoice of each subscription (most have one in a month)."""
    final = [r for r in invoices if r.status == "finalized" and r.invoice_type == "subscription"]
    if not final:
        return {}
    cols = store.read_columns(since_rowid=min(r.watermark or 0 for r in final),
                              subscriptions=sorted({r.subscription for r in final}))
    out: dict = {}
    rounds: list[dict] = []
    for i, r in enumerate(final):
        free = next((d for d in rounds if r.subscription not in d), None)
        if free is None:
            free = {}
            rounds.append(free)
        free[r.subscription] = i
    mark = np.array([r.watermark or 0 for r in final] + [0], np.int64)
    start = np.array([r.period_from_ms for r in final] + [0], np.int64)
    end = np.array([r.period_to_ms for r in final] + [-1], np.int64)
    for one_each in rounds:
        i = _table(cols, one_each)[cols.subscription]
        late = (i >= 0) & (cols.rowid > mark[i]) & (cols.timestamp_ms >= start[i]) & (cols.timestamp_ms <= end[i])
        for j, n in enumerate(np.bincount(i[late], minlength=len(final)).tolist()):
            if n:
                key = (final[j].entity, final[j].currency)
                out[key] = out.get(key, 0) + n
    return out


def _alerts_by(db, period: Month, subs: dict) -> dict:
    out: dict = {}
    for sub, cur in db.execute(_MONTH_ALERTS.format(what="subscription, currency"), _month_args(period)):
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


# ---------------------------------------------------------------- customers

GPU_HOURS = ("duration_seconds", "gpu_count", "gpu_type")  # what an event's GPU-hours are read from


@attrs.frozen
class CustomerRow:
    """One subscription in the month under review."""

    who: Subscriber
    events: int
    gpu_hours: tuple[tuple[str, float], ...]  # (GPU type, GPU-hours), most first: usage, not money
    cost: Decimal | None  # the month's invoices so far (None: no invoice stored for the month yet)
    commitment_pct: Decimal | None  # spend over the period's minimum commitment, in %
    budget_pct: Decimal | None  # spend over the budget, in %
    credit_notes_left: Decimal  # credit left on the customer's credit notes, for later invoices
    alerts: int

    @property
    def gpu_hours_total(self) -> float:
        return sum(h for _, h in self.gpu_hours)


def customers(session: ReviewSession) -> list[CustomerRow]:
    """Every subscription of the contracts in the month under review: one column read and one pass over
    the month's invoices, alerts and credit notes (never a query per customer; again only when the store
    changed)."""
    return session.unless_changed("customers", lambda: _customers(session))


def _customers(session: ReviewSession) -> list[CustomerRow]:
    store, period, subs = session.reader(), session.period(), directory(session)
    db = store._read()
    cols = session.month_columns()
    events = _events_by_subscription(cols)
    hours = _gpu_hours(cols)
    invoices: dict[str, list] = {}
    for r in session.month_invoices():
        invoices.setdefault(r.subscription, []).append(r)
    alerts: dict[str, int] = {}
    for (sub,) in db.execute(_MONTH_ALERTS.format(what="subscription"), _month_args(period)):
        alerts[sub] = alerts.get(sub, 0) + 1
    notes = credit_notes_left(db)
    return [_customer_row(s, events.get(sid, 0), hours.get(sid, ()), invoices.get(sid, []),
                          notes.get((s.customer, s.currency), ZERO), alerts.get(sid, 0))
            for sid, s in subs.items()]


_MONTH_ALERTS = "SELECT {what} FROM alerts WHERE period_from_ms + ? >= ? AND period_from_ms + ? < ?"


def _month_args(period: Month) -> tuple:
    return LOCAL_END_SHIFT_MS, period.from_ms, LOCAL_END_SHIFT_MS, period.to_ms


def _customer_row(s: Subscriber, events: int, hours, invoices: list, notes: Decimal, alerts: int) -> CustomerRow:
    cost = sum((r.total for r in invoices), ZERO) if invoices else None
    final = [r for r in invoices if r.invoice_type == "subscription"]
    spent = final[-1].spend if final else None
    return CustomerRow(s, events, hours, cost, _pct(spent, s.commitment), _pct(spent, s.budget), notes, alerts)


def _pct(part: Decimal | None, whole: Decimal | None) -> Decimal | None:
    return None if part is None or not whole else part * 100 / whole


def credit_notes_left(db) -> dict[tuple[str, str], Decimal]:
    """(customer, currency) -> credit left on its credit notes (credits, not refunds; voided ones left out)."""
    uses = ledger.credit_uses(db)
    out: dict = {}
    for note, customer, currency, total in db.execute(
            "SELECT id, customer, currency, total FROM credit_notes WHERE kind = 'credit' AND voided_ms IS NULL"):
        out[(customer, currency)] = out.get((customer, currency), ZERO) + Decimal(total) - uses.get(note, ZERO)
    return out


def _events_by_subscription(cols) -> dict[str, int]:
    counts = np.bincount(cols.subscription) if cols.n else np.zeros(0, np.int64)
    return {cols.strings[int(i)]: int(counts[i]) for i in np.flatnonzero(counts)}


def event_gpu_hours(cols) -> tuple[np.ndarray, np.ndarray] | None:
    """(which events say their duration, GPU count and type (a mask); those events' GPU-hours: duration_seconds *
    gpu_count / 3600, floats: usage, not money); None when no event can (no such properties)."""
    if cols.n == 0 or not set(GPU_HOURS) <= set(cols.property_names()):
        return None
    (dm, de), (gm, ge), gpu = cols.numeric("duration_seconds"), cols.numeric("gpu_count"), cols.dim("gpu_type")
    ok = (de > -127) & (ge > -127) & (gpu >= 0)
    return ok, dm[ok] * 10.0 ** de[ok] * gm[ok] * 10.0 ** ge[ok] / 3600


def _gpu_hours(cols) -> dict[str, tuple]:
    """subscription -> ((GPU type, GPU-hours), ...) of its events that say their duration, GPU count and type."""
    found = event_gpu_hours(cols)
    if found is None:
        return {}
    (ok, hours), gpu = found, cols.dim("gpu_type")
    width = int(gpu.max()) + 1
    pair = cols.subscription[ok].astype(np.int64) * width + gpu[ok]
    keys, where = np.unique(pair, return_inverse=True)
    sums = np.bincount(where, weights=hours, minlength=keys.size)
    out: dict[str, list] = {}
    for key, h in zip(keys.tolist(), sums.tolist()):
        out.setdefault(cols.strings[key // width], []).append((cols.strings[key % width], h))
    return {sub: tuple(sorted(v, key=lambda p: -p[1])) for sub, v in out.items()}


# ---------------------------------------------------------------- one customer


@attrs.frozen
class Line:
    """A line of the month's current invoice."""

    name: str
    units: str
    amount: Decimal
    clause: str | None  # file:line:col of the clause that priced it
    event_code: str | None  # the events its charge meters (None: a fee, a reservation)


@attrs.frozen
class InvoiceSummary:
    id: str
    number: str | None
    invoice_type: str
    period_label: str
    status: str
    total: Decimal
    currency: str
    due_ms: int  # a draft: when its grace ends
    revision: int
    replaces: str | None


@attrs.frozen
class NoteSummary:
    id: str
    number: str
    invoice_id: str
    kind: str
    total: Decimal
    left: Decimal  # credit left for later invoices (a credit), else 0
    created_ms: int
    currency: str


@attrs.frozen
class CreditTerm:
    """A prepaid credit of the contract, and what the stored invoices used of it."""

    amount: Decimal
    kind: str  # granted | paid
    expires: str | None
    scope: str | None
    used: Decimal  # on the stored invoices (not voided, not replaced)

    @property
    def left(self) -> Decimal:
        """What is left of it for later invoices (an expired credit still shows what it had left)."""
        return max(self.amount - self.used, ZERO)


@attrs.frozen
class CustomerDetail:
    who: Subscriber
    period: Month
    plan: str  # name@version
    current: InvoiceSummary | None  # the month's subscription invoice (a draft while under review)
    lines: tuple[Line, ...]
    daily: dict  # event code -> events per day of the month (the "" key: all of them)
    invoices: tuple[InvoiceSummary, ...]  # every stored invoice of the subscription, newest first
    notes: tuple[NoteSummary, ...]
    credits: tuple[CreditTerm, ...]
    terms: tuple[str, ...]  # one line per term in effect: commitment, reservation, thresholds, budget, policies
    source: str  # the contract's block as written
    source_at: str  # file:line


class UnknownSubscription(ValueError):
    """No contract of the session bills this subscription."""


def customer_detail(session: ReviewSession, subscription: str) -> CustomerDetail:
    """One subscription in the month under review (UnknownSubscription when the contracts have none)."""
    subs = directory(session)
    if subscription not in subs:
        raise UnknownSubscription(f"no contract bills subscription {subscription!r}")
    who, period, catalog = subs[subscription], session.period(), session.catalog()
    contract = catalog.contracts[who.contract]
    plan = catalog.plan_version(contract.plan) if contract.plan is not None else None
    db = session.reader()._read()
    rows = ledger.list_invoices(db, contract=who.contract, limit=1 << 30)
    month = {r.id for r in session.month_invoices() if r.subscription == subscription}
    current = next((r for r in reversed(rows) if r.id in month and r.invoice_type == "subscription"), None)
    events_of = _event_codes(catalog, plan)
    lines = tuple(_line(f, events_of) for f in current.doc["fees"]) if current is not None else ()
    live = [r for r in rows if r.status != "voided" and r.id not in {x.replaces for x in rows}]
    return CustomerDetail(
        who, period, _plan_label(plan), _summary(current) if current is not None else None, lines,
        _daily_by_code(session.month_columns(), period, subscription),
        tuple(_summary(r) for r in sorted(rows, key=lambda r: (r.period_from_ms, r.created_ms), reverse=True)),
        _notes(db, [r.id for r in rows]), _credits(contract, live), contract_terms(contract),
        *_source(contract))


def _plan_label(plan) -> str:
    if plan is None:
        return "—"
    return plan.name.name + (f"@{plan.version.id}" if plan.version is not None else "")


def _event_codes(catalog, plan) -> dict[str, str]:
    """charge key -> the event code its metric reads."""
    if plan is None:
        return {}
    out = {}
    for c in plan.charges:
        metric = catalog.metrics.get(c.metric.name)
        if metric is not None and metric.event is not None:
            out[c.key] = metric.event.name
    return out


def _line(fee: dict, events_of: dict) -> Line:
    charge = fee["item"].get("charge")
    return Line(fee["item"]["name"], fee.get("units", ""), Decimal(fee["amount"]), fee.get("clause"),
                events_of.get(charge) if charge else None)


def _summary(r) -> InvoiceSummary:
    return InvoiceSummary(r.id, r.number, r.invoice_type, r.period_label, r.status, Decimal(r.doc["total_amount"]),
                          r.currency, r.due_ms, r.revision, r.replaces)


def _daily_by_code(cols, period: Month, subscription: str) -> dict:
    sid = cols.lookup(subscription)
    if sid < 0:
        return {"": (0,) * period.days}
    mine = cols.subscription == sid
    day, code = (cols.timestamp_ms[mine] - period.from_ms) // DAY_MS, cols.code[mine]
    out = {"": tuple(np.bincount(day, minlength=period.days)[:period.days].tolist())}
    for c in np.unique(code).tolist():
        out[cols.strings[c]] = tuple(np.bincount(day[code == c], minlength=period.days)[:period.days].tolist())
    return out


def _notes(db, invoice_ids: list[str]) -> tuple[NoteSummary, ...]:
    if not invoice_ids:
        return ()
    marks = ", ".join("?" * len(invoice_ids))
    rows = db.execute("SELECT id, number, invoice_id, kind, total, voided_ms, created_ms, currency FROM credit_notes"
                      f" WHERE invoice_id IN ({marks}) ORDER BY created_ms DESC", invoice_ids).fetchall()
    uses = ledger.credit_uses(db, [r[0] for r in rows])
    return tuple(NoteSummary(i, num, inv, kind, Decimal(total),
                             Decimal(total) - uses.get(i, ZERO) if kind == "credit" and voided is None else ZERO,
                             ms, cur)
                 for i, num, inv, kind, total, voided, ms, cur in rows)


def _credits(contract, invoices: list) -> tuple[CreditTerm, ...]:
    used: dict[str, Decimal] = {}
    for r in invoices:
        for c in r.doc.get("credits", ()):
            if c["item"]["type"] == "wallet":
                used[c["item"]["code"]] = used.get(c["item"]["code"], ZERO) + Decimal(c["amount"])
    return tuple(CreditTerm(c.amount.value, c.kind or "paid", str(c.expires.value) if c.expires is not None else None,
                            c.scope.name if c.scope is not None else None, used.get(f"credit_{i + 1}", ZERO))
                 for i, c in enumerate(contract.credits))


# The terms a reviewer checks, in the order shown: (label, the contract's field).
TERMS = (("commitment", "commits"), ("reservation", "reserves"), ("credit", "credits"), ("discount", "discounts"),
         ("progressive billing", "progressive"), ("budget", "budget"), ("job limit", "job_limit"),
         ("late events", "late_events"), ("failures", "failure_policies"), ("preemption", "preemption"),
         ("idle", "idle"), ("invoice grace", "invoice_grace"), ("notice", "notice"))


def contract_terms(contract) -> tuple[str, ...]:
    """``label: the clause as written`` for every term the contract sets (none: "—")."""
    out = []
    for label, field in TERMS:
        value = getattr(contract, field)
        for node in (value if isinstance(value, tuple) else (value,) if value is not None else ()):
            out.append(f"{label}: {_written(node.span)}")
    return tuple(out)


def _written(span) -> str:
    if span is None:
        return "(no source)"
    return _lines(span.path)[span.line - 1].strip()


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def _source(contract) -> tuple[str, str]:
    span = contract.span
    if span is None:
        return "", ""
    return "\n".join(_lines(span.path)[span.line - 1:span.end_line]), f"{span.path}:{span.line}"
