"""Budget and job-limit alerts: evaluated over the events stored since the last check.

``check`` reads the events stored after the watermark (the last event an
earlier check evaluated) and evaluates, for every contract with a ``budget``
or a ``job limit``:

* its budget in each billing period those events fall in, and in the period
  containing now (an in-advance fee is spent when its period starts): the
  spend is the period's final invoice as ``gpubill invoice`` computes it
  (``invoicing.invoice_chains``), its fees but commitment true-ups, less its
  discounts, before taxes, prepaid credits and credit notes (``spend``); each
  threshold reached fires once per period (``contracts.budget``);
* its job limit against each new event of its subscription: the event's own
  cost is its usage charges priced as if it were the period's only event
  (one engine run for all of them, each event as a subscription of its own,
  less what an empty period's charges come to), never the marginal cost
  among the period's other events, which would take one run per event.

What fires is recorded with its audit entry and webhook deliveries, and the
watermark advanced, in one transaction (``store.alerts.record``): a check
that fails leaves the watermark where it was, and the next one evaluates the
same events again (a threshold that fired is never fired twice).

``Watcher`` runs checks and webhook deliveries in the background of ``gpubill
serve``: at most one check per interval, and only when events arrived (or a
new period began), never on the request path.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from decimal import Decimal

import attrs

from gpubill.contracts import budget as rules
from gpubill.contracts.context import Billing
from gpubill.contracts.lines import sum_amounts
from gpubill.contracts.spread import ZERO
from gpubill.contracts.usage import charge_fees
from gpubill.dsl import ast
from gpubill.dsl.resolve import Catalog
from gpubill.engine.fast.columns import InMemoryColumns
from gpubill.service.invoicing import Read, history, invoice_chains, periods_from, rate_round
from gpubill.service import webhooks
from gpubill.service.rating import Billed, ServiceError, customer_of, load_catalog
from gpubill.store import alerts as records
from gpubill.store.store import now_ms as clock_ms

ENGINE = "fast"
WEBHOOK_TYPE = "alert.fired"
PAGE = 10_000  # events read from the store at a time
DAY_MS = 24 * 3600 * 1000
COMMITMENT = "commitment"  # the fee type of a commitment true-up (contracts.lines.FeeLine)
DEFAULT_INTERVAL = "monthly"  # a plan without `billing` (engine.calendar's default)


@attrs.frozen
class CheckReport:
    """What one check did: the alerts it fired (``store.alerts.Alert`` ids), the
    periods it evaluated, the events it read, and what it could not evaluate."""

    fired: tuple[int, ...]
    periods: int
    events: int
    skipped: tuple[str, ...]


@attrs.frozen
class _Target:
    """One contract's billing period to evaluate, and the new events of its subscription in it."""

    billed: Billed
    events: tuple = ()


def check(store, contract_paths: Sequence[str], *, now_ms: int | None = None) -> CheckReport:
    """Evaluate every budget and job limit over the events stored since the last check; fire what is due."""
    catalog, _ = load_catalog(contract_paths)
    now_ms = clock_ms() if now_ms is None else now_ms
    since, top = records.watermark(store), last_event_id(store)
    watched = [c for c in catalog.contracts.values() if c.budget is not None or c.job_limit is not None]
    targets, skipped, read = [], [], 0
    for c in watched:
        current = next(iter(periods_from(catalog, c, _day_before(now_ms))))
        events = _new_events(store, current.spec.external_id, since, top)
        read += len(events)
        found, why = _targets(catalog, current, events, now_ms)
        targets += found
        skipped += why
    crossings, unrated = _budget_crossings(store, catalog, [t for t in targets if t.billed.contract.budget])
    crossings += _job_crossings(store, catalog, [t for t in targets if t.billed.contract.job_limit and t.events])
    fired = []
    with store.transaction() as db:
        for b, crossing in crossings:
            alert_id = records.record(db, alert_row(b, crossing, now_ms), webhook_type=WEBHOOK_TYPE, at_ms=now_ms)
            if alert_id is not None:
                fired.append(alert_id)
        records.advance(db, top)
    return CheckReport(tuple(fired), len(targets), read, tuple(skipped + unrated))


def _new_events(store, subscription: str, since: int, top: int) -> list:
    """The subscription's events stored after event id ``since`` and up to ``top``, in order."""
    out, after = [], since
    while True:
        page = [e for e in store.list_events(sub=subscription, after_id=after, limit=PAGE) if e.id <= top]
        out += page
        if len(page) < PAGE:
            return out
        after = page[-1].id


def _targets(catalog: Catalog, current: Billed, events: list, now_ms: int) -> tuple[list[_Target], list[str]]:
    """The billing periods of ``current``'s contract to evaluate: the one containing
    now (for a budget) and those its subscription's new ``events`` fall in."""
    c = current.contract
    interval = current.plan.billing.interval if current.plan.billing else DEFAULT_INTERVAL
    if c.budget is not None and c.budget.interval not in (None, interval):
        return [], [f'contract "{c.name.name}": budget {c.budget.interval} on a plan billed {interval}: '
                    "budgets are evaluated per billing period; not evaluated"]
    mine = sorted(events, key=lambda e: e.timestamp_ms)
    out: dict[int, _Target] = {}
    if c.budget is not None:
        b = _containing(catalog, c, now_ms)
        if b is not None:
            out[b.period.from_ms] = _Target(b)
    i = 0
    while i < len(mine):
        b = _containing(catalog, c, mine[i].timestamp_ms)
        j = i + 1
        while b is not None and j < len(mine) and mine[j].timestamp_ms <= b.period.to_ms:
            j += 1
        if b is not None:
            out[b.period.from_ms] = _Target(b, tuple(mine[i:j]))
        i = j
    return list(out.values()), []


def _containing(catalog: Catalog, c: ast.Contract, at_ms: int) -> Billed | None:
    """The contract's billing period containing ``at_ms``, if the contract covers that instant."""
    for b in periods_from(catalog, c, _day_before(at_ms)):
        if b.period.from_ms > at_ms:
            return None
        if at_ms <= b.period.to_ms:
            r = b.resolved
            covered = r.active and (r.started_ms is None or r.started_ms <= at_ms) and (
                r.terminated_ms is None or at_ms <= r.terminated_ms)
            return b if covered else None
    return None


def _day_before(at_ms: int) -> dt.date:
    """A UTC day no later than ``at_ms``'s local day in any timezone."""
    return dt.datetime.fromtimestamp(at_ms / 1000 - DAY_MS / 1000, dt.timezone.utc).date()


# ------------------------------------------------------------------ budgets

def _budget_crossings(store, catalog: Catalog, targets: list[_Target]) -> tuple[list, list[str]]:
    """(Billed, Crossing) for each budget threshold the periods' spend reaches
    that has not fired yet; and the periods that could not be invoiced."""
    chains = [history(catalog, t.billed) + [t.billed] for t in targets]
    by_period, unrated = invoice_chains(store, catalog, chains, ENGINE)
    out = []
    for t in targets:
        b = t.billed
        if id(b) not in by_period:
            continue
        already = records.fired(store, b.spec.external_id, b.period.from_ms, rules.BUDGET)
        out += [(b, x) for x in rules.budget_crossings(b.contract.budget, spend(by_period[id(b)][-1]), already)]
    return out, unrated


def spend(invoice) -> Decimal:
    """What a budget counts: the invoice's fees but commitment true-ups, less its
    discounts (never below zero), before taxes, prepaid credits and credit notes
    (they pay for the spend, they do not undo it).  A true-up bills, at the
    period's end, the part of a commitment usage has not reached: counted now,
    it would put every budget at the commitment on the period's first day."""
    fees = sum_amounts(f for f in invoice.fees if f.fee_type != COMMITMENT)
    return max(ZERO, fees - invoice.coupons_amount)


# ------------------------------------------------------------------ job limits

def _job_crossings(store, catalog: Catalog, targets: list[_Target]) -> list:
    """(Billed, Crossing) for each new event whose own cost exceeds its contract's job limit."""
    out = []
    for t in targets:
        b = t.billed
        already = records.fired(store, b.spec.external_id, b.period.from_ms, rules.JOB_LIMIT)
        todo = [e for e in t.events if e.transaction_id not in already]
        for at in range(0, len(todo), PAGE):  # one engine run per page: memory stays bounded
            for tx, cost in job_costs(catalog, b, todo[at:at + PAGE]):
                crossing = rules.job_crossing(b.contract.job_limit, tx, cost)
                if crossing is not None:
                    out.append((b, crossing))
    return out


def job_costs(catalog: Catalog, b: Billed, events: Sequence) -> list[tuple[str, Decimal]]:
    """(transaction id, cost) of each stored event: its usage charges in ``b``'s
    period as the period's only event, less an empty period's (a spending
    minimum is not the job's).  One engine run: event i is rated as subscription
    ``<id>#i`` (and the empty period as ``<id>#``)."""
    codes = {ch.metric.event_code for ch in b.spec.charges}
    priced = [e for e in events if e.code in codes]
    if not priced:
        return []
    sid = b.spec.external_id
    rows = [{"transaction_id": e.transaction_id, "external_subscription_id": f"{sid}#{i}", "code": e.code,
             "timestamp_ms": e.timestamp_ms, "properties": e.properties, "rowid": e.id,
             "precise_total_amount_cents": e.precise_total_amount_cents} for i, e in enumerate(priced)]
    runs = [Billed(b.resolved, attrs.evolve(b.spec, external_id=f"{sid}#{i}")) for i in range(len(priced) + 1)]
    runs[-1] = Billed(b.resolved, attrs.evolve(b.spec, external_id=f"{sid}#"))
    rated = rate_round(Read(InMemoryColumns.from_events(rows)), runs, ENGINE)
    billing = Billing(b.resolved, catalog)

    def charges(run: Billed) -> Decimal:
        r = rated[id(run)]
        if isinstance(r, str):
            raise ServiceError(r)
        lines, in_advance = r
        # a usage line's fee is its amount (contracts.usage.charge_fees): summed without building 5 000 fee lines
        return sum((ln.amount for ln in lines), ZERO) + sum_amounts(charge_fees(billing, run.spec, [], in_advance))
    empty = charges(runs[-1])
    return [(e.transaction_id, charges(run) - empty) for e, run in zip(priced, runs)]


# ------------------------------------------------------------------ the record

def alert_row(b: Billed, x: rules.Crossing, at_ms: int) -> dict:
    """The ``alerts`` row of a crossing, with the object its webhook and audit entry carry."""
    c = b.contract
    budget = c.budget.amount.value if x.kind == rules.BUDGET else None
    body = {
        **x.as_dict(), "contract": c.name.name, "customer": customer_of(c), "subscription": b.spec.external_id,
        "currency": b.resolved.currency, "period": {"label": b.period.label, "from": _iso(b.period.from_ms),
                                                    "to": _iso(b.period.to_ms)},
        "budget": None if budget is None else str(budget),
        "transaction_id": x.threshold if x.kind == rules.JOB_LIMIT else None, "fired_at": _iso(at_ms),
    }
    return {"subscription": b.spec.external_id, "contract": c.name.name, "customer": customer_of(c),
            "period_from_ms": b.period.from_ms, "kind": x.kind, "threshold": x.threshold,
            "currency": b.resolved.currency, "limit_amount": str(x.limit), "amount": str(x.amount), "body": body}


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def after_ingest(store, contract_paths: Sequence[str]) -> str | None:
    """`gpubill ingest --contracts`: a check once the file is stored; the line to
    show (what fired, or why nothing could be checked), None when nothing fired."""
    try:
        report = check(store, contract_paths)
    except ServiceError as e:
        return f"gpubill: warning: alerts not checked (the events are stored): {e}"
    if not report.fired:
        return None
    return f"gpubill: {len(report.fired)} alerts fired (gpubill alerts)"


def list_alerts(store, *, customer: str | None = None, period: str | None = None) -> list[records.Alert]:
    """The alerts fired, oldest first: of one customer (its id, contract or
    subscription), of the billing periods whose label starts with ``period``."""
    found = records.alerts(store, customer=customer)
    return [a for a in found if period is None or a.body["period"]["label"].startswith(period)]


# ------------------------------------------------------------------ in the background of `serve`

class Watcher:
    """A thread that checks alerts (at most once per ``interval_s``, when
    events arrived since the last check or a day began) and delivers due
    webhooks.  ``on_error`` receives what made a check or delivery fail, once
    until the failure changes or a round succeeds; the thread carries on."""

    def __init__(self, store, contract_paths: Sequence[str], *, interval_s: float, on_error):
        self.store, self.paths, self.interval_s, self.on_error = store, list(contract_paths), interval_s, on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpubill-alerts", daemon=True)
        self._checked: tuple | None = None  # (last event id, UTC day) when the last check began
        self._error: str | None = None  # the last failure reported (each is reported once until it changes)

    def start(self) -> "Watcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            self.tick()
            if self._stop.wait(self.interval_s):
                return

    def tick(self) -> None:
        """One round: a check if anything changed, then a delivery pass."""
        try:
            state = (last_event_id(self.store), clock_ms() // DAY_MS)
            if state != self._checked:
                check(self.store, self.paths)
                self._checked = state
            webhooks.deliver(self.store)
            self._error = None
        except Exception as e:  # noqa: BLE001 - the server keeps serving; the line says what failed
            if str(e) != self._error:
                self._error = str(e)
                self.on_error(f"alerts: {e}")


def watch(store, contract_paths: Sequence[str], interval_s: float, on_error) -> Watcher:
    """Start checking and delivering in the background (``gpubill serve --contracts``)."""
    return Watcher(store, contract_paths, interval_s=interval_s, on_error=on_error).start()


def last_event_id(store) -> int:
    newest = store.list_events(limit=1, newest_first=True)
    return newest[0].id if newest else 0
