"""What a planned GPU job would cost one customer now: `gpubill estimate`, `POST /api/v1/estimate`.

The job is priced where the customer stands in the current billing period:
the period's invoices as ``gpubill invoice`` computes them from the events
stored so far (tiers already climbed, reservation hours already used, the
commitment, coupons and prepaid credits the earlier invoices left) are
compared with the same invoices computed with the job's events added.  The
difference is the job's cost; nothing is written to the store.

The job's events are canonical ``gpu_job`` events (docs/architecture.md,
DESIGN.md): gpu_type, gpu_count, duration_seconds, region,
availability_class, avg_utilization and end_reason "completed", one per
started day of the job (as an agent's heartbeats would send them, each at
the end of its segment), so that no event exceeds a metric's per-event
maximum.  A job that would end after its billing period is refused: the
next period's invoice starts from this one's ledger, which the job changes.

``Estimator`` holds the checked catalog and, per (contract, period), a
``Baseline``: the ledger the earlier periods leave, the period's events as
in-memory columns, its invoices and daily checks, and, on first use, the
exact usage of its events (the reference engine's line usages).  An
estimate aggregates only the job's events, adds their usage to the
baseline's line by line where usage adds up (sum and count charges: exact
rationals) and prices the subscription's lines again with the one
assembler (``engine.pricing.price.assemble``); a line that does not add up
(max, latest, unique or weighted counts; prorated, percentage and
pay-in-advance charges) has the baseline's rows and the job's rated again
by the fast engine from memory.  A baseline is rebuilt when the store holds
an event of the subscription newer than it (``last_rowid``).
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from fractions import Fraction

import attrs
import numpy as np

from gpubill.contracts.context import Billing
from gpubill.contracts.invoice import Invoice, Ledger, opening_ledger
from gpubill.contracts.lines import FeeLine, sum_amounts
from gpubill.contracts.progressive import passed, thresholds_of
from gpubill.contracts.reservation import reserved_units
from gpubill.contracts.spread import ZERO
from gpubill.dsl import ast
from gpubill.dsl.diagnostics import did_you_mean
from gpubill.engine.calendar.coverage import coverage_of
from gpubill.engine.fast.columns import InMemoryColumns
from gpubill.engine.pricing.fees import parts_by_subscription
from gpubill.engine.pricing.money import UNHOLDABLE_EXPONENT, round_amount
from gpubill.engine.pricing.price import assemble
from gpubill.engine.pricing.usage import LineUsage, nd
from gpubill.engine.reference.engine import aggregate_subscription, normalize
from gpubill.engine.spec.program import MoneyRounding, NotRated
from gpubill.contracts.build import progressive_amount
from gpubill.service.invoicing import (
    NOTHING_CARRIED, Carried, Read, as_of, day_ends, history, period_invoices, periods_from, rate_checks, rate_round,
    rate_rounds,
)
from gpubill.service.lifecycle import carried
from gpubill.service.rating import Billed, ServiceError, _customer_keys, customer_of, load_catalog, read_window
from gpubill.store.ledger import ledger_state

GPU_EVENT = "gpu_job"
SEGMENT_MS = 24 * 3600 * 1000  # one event per started day of the job
JOB_DIMENSIONS = ("gpu_type", "region", "availability_class")
OPTION_OF = {"gpu_type": "--gpu", "region": "--region", "availability_class": "--class"}
ENGINE = "fast"
EXIT_USAGE = 2


class NotFound(ServiceError):
    """The subscription, or a charge for the event's code, does not exist (HTTP 404 ``WHAT_not_found``)."""

    def __init__(self, what: str, message: str):
        super().__init__(message, EXIT_USAGE)
        self.what = what


def now_ms() -> int:
    return int(time.time() * 1000)


@attrs.frozen
class Job:
    """A planned job: GPUs of one type for some hours, where and how it runs."""

    gpu_type: str
    gpu_count: Decimal
    hours: Decimal
    region: str | None = None
    availability_class: str | None = None
    utilization: Decimal = Decimal(1)  # avg_utilization: a planned job is assumed busy

    def __attrs_post_init__(self):
        for name, v in (("GPU count", self.gpu_count), ("hours", self.hours)):
            if not v.is_finite() or v <= 0:
                raise ServiceError(f"{name} must be a positive number, got {v}", EXIT_USAGE)
        if self.duration_ms < 1000:
            raise ServiceError(f"hours must be at least one second (1/3600), got {self.hours}", EXIT_USAGE)
        if not self.utilization.is_finite() or not 0 <= self.utilization <= 1:
            raise ServiceError(f"utilization must be between 0 and 1, got {self.utilization}", EXIT_USAGE)

    @property
    def duration_ms(self) -> int:
        return int((self.hours * 3_600_000).to_integral_value())

    def label(self) -> str:
        return f"{_n(self.gpu_count)} × {self.gpu_type} for {_n(self.hours)} h"


def job_events(job: Job, subscription: str, start_ms: int) -> list[dict]:
    """The job's ``gpu_job`` events, one per started day, each at the end of its segment."""
    out, at, end = [], start_ms, start_ms + job.duration_ms
    while at < end:
        to = min(at + SEGMENT_MS, end)
        props = {"gpu_type": job.gpu_type, "gpu_count": _n(job.gpu_count),
                 "duration_seconds": _n(Decimal(to - at) / 1000), "avg_utilization": _n(job.utilization),
                 "end_reason": "completed"}
        props.update({k: getattr(job, k) for k in ("region", "availability_class") if getattr(job, k) is not None})
        out.append({"transaction_id": f"estimate-{start_ms}-{len(out)}", "external_subscription_id": subscription,
                    "code": GPU_EVENT, "timestamp": to // 1000 if to % 1000 == 0 else str(Decimal(to) / 1000),
                    "properties": props})
        at = to
    return out


def _n(d: Decimal) -> str:
    """A decimal as plain text, no exponent, no trailing zeros."""
    return format(d.normalize(), "f")


@attrs.frozen
class LineChange:
    """One invoice line the job adds or changes (None before: a new line)."""

    fee_type: str
    code: str
    description: str
    charge: str | None
    dimensions: tuple
    clause: str | None
    reason: str
    units_before: Decimal | None
    units_after: Decimal | None
    amount_before: Decimal | None
    amount_after: Decimal | None
    taxes_delta: Decimal = ZERO  # the change of the line's (unrounded) taxes
    pay_in_advance: bool = False

    @property
    def amount_delta(self) -> Decimal:
        return (self.amount_after or ZERO) - (self.amount_before or ZERO)


@attrs.frozen
class Totals:
    """What the period's invoices bill (its progressive invoices and its final one)."""

    fees: Decimal
    coupons: Decimal
    sub_total_excluding_taxes: Decimal
    taxes: Decimal
    prepaid_credits: Decimal
    total: Decimal

    @classmethod
    def of(cls, invoices) -> "Totals":
        """``fees``: the final invoice's (it bills the whole period again); the
        rest added up over the period's invoices."""
        def total(name):
            return sum((getattr(i, name) for i in invoices), ZERO)
        return cls(invoices[-1].fees_amount, total("coupons_amount"), total("sub_total_excluding_taxes_amount"),
                   total("taxes_amount"), total("prepaid_credit_amount"), total("total_amount"))


@attrs.frozen
class Estimate:
    job: Job | None  # None: one event (Lago's estimate_fees)
    contract: str
    subscription: str
    currency: str
    period_label: str
    starts_ms: int
    events: tuple
    before: tuple[Invoice, ...]
    after: tuple[Invoice, ...]
    changes: tuple[LineChange, ...]
    reservations_left: tuple  # (gpu type, unit, left before, left after) per reservation

    @property
    def totals_before(self) -> Totals:
        return Totals.of(self.before)

    @property
    def totals_after(self) -> Totals:
        return Totals.of(self.after)

    @property
    def delta(self) -> Totals:
        a, b = self.totals_after, self.totals_before
        return Totals(*(x - y for x, y in zip(attrs.astuple(a), attrs.astuple(b))))


class Estimator:
    """The checked catalog, and the baselines of the periods estimated so far."""

    def __init__(self, store, contract_paths):
        self.store = store
        self.catalog, self.sources = load_catalog(contract_paths)
        self._baselines: dict = {}
        self._periods: dict = {}  # contract name -> its billing periods estimated so far (Billed)
        self._by_key: dict = {}  # contract name, customer id, subscription id -> contracts
        for c in self.catalog.contracts.values():
            for k in _customer_keys(c):
                self._by_key.setdefault(k, []).append(c)

    def contract(self, key: str) -> ast.Contract:
        """The contract named by its name, customer id or subscription id."""
        found = self._by_key.get(key, [])
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(sorted(c.name.name for c in found))
            raise ServiceError(f'"{key}" names several contracts ({names}); name one of them', EXIT_USAGE)
        known = sorted(c.name.name for c in self.catalog.contracts.values())
        hint = "".join(" " + h for h in did_you_mean(key, self._by_key))
        raise ServiceError(f'no contract, customer or subscription "{key}" (contracts: {", ".join(known[:10])}){hint}',
                           EXIT_USAGE)

    def estimate(self, key: str, job: Job, at_ms: int | None = None) -> Estimate:
        """What ``job``, starting at ``at_ms`` (default now), adds to the period's invoices."""
        at_ms = now_ms() if at_ms is None else at_ms
        b = self.check(key, job, at_ms)
        return self._priced(b.contract, b, job, at_ms, job_events(job, b.spec.external_id, at_ms))

    def prepare(self, key: str, at_ms: int | None = None) -> None:
        """Build the baseline of the period containing ``at_ms`` (default now) ahead of a first estimate
        (ServiceError when the contract is not active then)."""
        at_ms = now_ms() if at_ms is None else at_ms
        c = self.contract(key)
        self._baseline(c, self._period(c, at_ms))

    def check(self, key: str, job: Job, at_ms: int) -> Billed:
        """The billing period the job falls in, when the contract can price it
        there (its plan bills GPU jobs of that kind, and the job ends in the period)."""
        c = self.contract(key)
        b = self._period(c, at_ms)
        check_job(self.catalog, b, job)
        end_ms = at_ms + job.duration_ms
        if end_ms > b.period.to_ms:
            raise ServiceError(
                f"the job would end at {_iso(end_ms)}, after the billing period {b.period.label} of contract "
                f'"{c.name.name}" ends ({_iso(b.period.to_ms)}); estimate the part before the period ends '
                f"(at most {_hours_to(at_ms, b.period.to_ms)} h) and the rest with --at in the next period", EXIT_USAGE)
        return b

    def estimate_event(self, subscription: str, event: dict, at_ms: int | None = None) -> Estimate:
        """What one event (Lago's ``estimate_fees``: code and properties) adds
        to the invoices of the period containing ``at_ms`` (default now)."""
        found = [c for c in self.catalog.contracts.values()
                 if c.subscription is not None and c.subscription.value == subscription]
        if not found:
            raise NotFound("subscription", f'no contract bills subscription "{subscription}"')
        at_ms = now_ms() if at_ms is None else at_ms
        c = found[0]
        b = self._period(c, at_ms)
        if event.get("code") not in {ch.metric.event_code for ch in b.spec.charges}:
            raise NotFound("billable_metric", f'no charge of plan "{b.plan.name.name}" reads events "{event.get("code")}"')
        one = {"transaction_id": f"estimate-{at_ms}", "external_subscription_id": subscription, "code": event["code"],
               "timestamp": str(Decimal(at_ms) / 1000), "properties": event.get("properties") or {}}
        if event.get("precise_total_amount_cents") is not None:
            one["precise_total_amount_cents"] = event["precise_total_amount_cents"]
        return self._priced(c, b, None, at_ms, [one])

    def _priced(self, c: ast.Contract, b: Billed, job: Job | None, at_ms: int, events: list[dict]) -> Estimate:
        base = self._baseline(c, b)
        after = base.invoices_with(events)
        return Estimate(job, c.name.name, b.spec.external_id, b.resolved.currency, b.period.label, at_ms, tuple(events),
                        base.invoices, after, changes(base.invoices[-1], after[-1]),
                        reservations_left(base.billing, base.invoices[-1], after[-1]))

    def _period(self, c: ast.Contract, at_ms: int) -> Billed:
        """The contract's billing period containing ``at_ms``, resolved and compiled once."""
        for b in self._periods.get(c.name.name, ()):
            if b.period.from_ms <= at_ms <= b.period.to_ms:
                return self._active(b, at_ms)
        day = dt.datetime.fromtimestamp(at_ms / 1000, dt.timezone.utc).date() - dt.timedelta(days=1)
        for b in periods_from(self.catalog, c, day):
            if b.period.from_ms > at_ms:
                break
            if at_ms <= b.period.to_ms:
                self._periods.setdefault(c.name.name, []).append(b)
                return self._active(b, at_ms)
        raise ServiceError(f'contract "{c.name.name}" is not active at {_iso(at_ms)}', EXIT_USAGE)

    @staticmethod
    def _active(b: Billed, at_ms: int) -> Billed:
        r = b.resolved
        if r.active and (r.started_ms is None or r.started_ms <= at_ms) and (
                r.terminated_ms is None or at_ms <= r.terminated_ms):
            return b
        raise ServiceError(f'contract "{b.contract.name.name}" is not active at {_iso(at_ms)}', EXIT_USAGE)

    def _baseline(self, c: ast.Contract, b: Billed) -> "Baseline":
        key = (c.name.name, b.period.from_ms)
        base = self._baselines.get(key)
        if base is None or base.stale(self.store):
            base = self._baselines[key] = Baseline.build(self.store, self.catalog, b)
        return base


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _hours_to(at_ms: int, to_ms: int) -> str:
    return _n(round_amount(Decimal(to_ms + 1 - at_ms) / 3_600_000, MoneyRounding("ROUND_FLOOR", Decimal("0.01"))))


def check_job(catalog, b: Billed, job: Job) -> None:
    """The plan bills GPU jobs, and the job's GPU type, region and class are values its metrics know."""
    metrics = [catalog.metrics.get(ch.metric.name) for ch in b.plan.charges]
    gpu = [m for m in metrics if m is not None and m.event is not None and m.event.name == GPU_EVENT]
    if not gpu:
        raise ServiceError(f'plan "{b.plan.name.name}" of contract "{b.contract.name.name}" has no charge on GPU jobs '
                           f'(event {GPU_EVENT}): a job adds nothing to its invoice', EXIT_USAGE)
    for name in JOB_DIMENSIONS:
        value = getattr(job, name)
        valid = sorted({v.value for m in gpu for d in m.dimensions if d.name.name == name and d.values
                        for v in d.values})
        if value is not None and valid and value not in valid:
            starts = [v for v in valid if v.lower().startswith(value.lower())]
            hint = f' did you mean "{starts[0]}"?' if len(starts) == 1 else "".join(" " + h for h in did_you_mean(value, valid))
            raise ServiceError(f'{OPTION_OF[name]}: unknown {name} "{value}" (valid: {", ".join(valid)}){hint}',
                               EXIT_USAGE)


@attrs.define
class Baseline:
    """One contract's period as the store holds it: the ledger the earlier
    periods leave, the period's events in memory, and its invoices, priced
    with what the store carries into its draft (``lifecycle.carried``)."""

    catalog: object
    billed: Billed
    billing: Billing
    ledger: Ledger
    columns: InMemoryColumns
    last_rowid: int  # the store's newest event id when the baseline was last known current
    carry: Carried = NOTHING_CARRIED
    stored: tuple = ()  # ``ledger_state`` of its subscription when it was built
    invoices: tuple = ()
    _checks: dict = attrs.field(factory=dict)  # cut -> the baseline's rated usage at that daily check
    _usages: dict = attrs.field(factory=dict)  # cut (None: the period) -> the baseline's exact usage, on first use
    _events: list | None = None  # the baseline's rows as the reference engine reads them, on first use

    @classmethod
    def build(cls, store, catalog, b: Billed) -> "Baseline":
        stored = ledger_state(store._read(), [b.spec.external_id])  # before the reads, as ``seen``
        carry = carried(store, catalog, customer_of(b.contract), engine=ENGINE)
        chain = history(catalog, b)
        ledger = opening_ledger(b.contract, carry.credit_notes.get(b.contract.name.name, ()))
        if chain:
            rated = rate_rounds(store, [chain], ENGINE)
            rated.update(rate_checks(store, catalog, [chain], rated, ENGINE, carry.voided))
            for p in chain:
                if isinstance(rated[id(p)], str):
                    raise ServiceError(rated[id(p)])
                _, ledger = period_invoices(Billing(p.resolved, catalog), p, rated, ledger, carry.lines_into(p),
                                            carry.voided)
        seen = store.stats()["events"]  # before the read: an event stored meanwhile is looked for next time
        cols = store.read_columns(**read_window([b]))
        base = cls(catalog, b, Billing(b.resolved, catalog), ledger, in_memory(cols), seen, carry, stored)
        base.invoices = base.period(base._baseline_rate, np.sort(base.columns.timestamp_ms))
        return base

    def stale(self, store) -> bool:
        """Whether the store holds an event of the subscription newer than the
        baseline (one cheap query when it holds no newer event at all), or its
        stored invoices, a credit note or an alert changed since."""
        if ledger_state(store._read(), [self.billed.spec.external_id]) != self.stored:
            return True
        newest = store.stats()["events"]
        if newest <= self.last_rowid:
            return False
        codes = sorted({ch.metric.event_code for ch in self.billed.spec.charges})
        if store.read_columns(since_rowid=self.last_rowid, codes=codes, subscriptions=[self.billed.spec.external_id]).n:
            return True
        self.last_rowid = newest
        return False

    def invoices_with(self, events: list[dict]) -> tuple[Invoice, ...]:
        """The period's invoices with ``events`` added: each rating (the period's, and
        each daily check's from the first event on) re-prices the lines the events
        change from the baseline's exact usage (``merged``) where they only add to
        sums and counts, else rates the baseline's rows and the events again."""
        first, last = min(_ms(e) for e in events), max(_ms(e) for e in events)
        job = normalize(events)
        jobs: dict = {}  # cut (None: the period) -> the events' exact usage
        appended_cols: list = []

        def rate(cut: int | None):
            if cut is not None and cut < first:
                return self._check(cut)
            b = self.billed if cut is None else as_of(self.billed, cut)
            base = self._usage(cut)
            extra = jobs.get(None) if cut is not None and cut >= last else None
            if extra is None:  # the events' usage up to the cut (after the last one: the period's)
                extra = jobs[cut] = aggregate(b.spec, job)
            result = None if base is False else merged(b.spec, base, extra)
            if result is not None and not result.unrated:
                return _lines_of(result, b.spec.external_id)
            if not appended_cols:
                appended_cols.append(appended(self.columns, events))
            return self._rate_cut(appended_cols[0], cut)
        ts = np.sort(np.concatenate([self.columns.timestamp_ms, np.array([_ms(e) for e in events], np.int64)]))
        return self.period(rate, ts)

    def period(self, rate, ts) -> tuple[Invoice, ...]:
        """The period's invoices from ``rate(None)`` (the period's rated usage) and
        ``rate(cut)`` (a daily check's), over rows with the sorted timestamps ``ts``:
        its final invoice, after the progressive invoices its daily checks issue.
        A check that sees the same rows as the one before reuses its usage, unless
        the usage depends on the cut itself."""
        b, billing = self.billed, self.billing
        rated = {id(b): rate(None)}
        p = thresholds_of(billing.contract, billing.plan)
        if p is not None and passed(p, self.ledger.lifetime_usage, progressive_amount(billing, rated[id(b)][0])):
            prev, rows = None, -1
            for cut in day_ends(billing):
                seen = int(np.searchsorted(ts, cut, side="right"))
                if seen != rows or self.cut_sensitive:
                    prev = rate(cut)
                rows = seen
                rated[(id(b), cut)] = prev
        invoices, _ = period_invoices(billing, b, rated, self.ledger, self.carry.lines_into(b), self.carry.voided)
        return tuple(invoices)

    def _baseline_rate(self, cut: int | None):
        return self._rate_cut(self.columns, None) if cut is None else self._check(cut)

    @property
    def cut_sensitive(self) -> bool:
        """A check's usage depends on its cut, not only on the events before
        it: time-weighted sums and prorated charges divide by the days so far."""
        return any(ch.prorated or ch.metric.aggregation == "weighted_sum" for ch in self.billed.spec.charges)

    def _usage(self, cut: int | None) -> "Aggregated | bool":
        """The baseline's exact usage as the rating at ``cut`` sees it (None: the
        period's rating; False: a value it cannot hold), aggregated once: the
        period's serves a cut after every baseline row when no charge depends
        on the cut itself."""
        rows = self.columns
        if cut is not None and not self.cut_sensitive and (not rows.n or int(rows.timestamp_ms.max()) <= cut):
            cut = None
        if cut not in self._usages:
            if self._events is None:
                self._events = normalize(reference_rows(rows))
            spec = self.billed.spec if cut is None else as_of(self.billed, cut).spec
            self._usages[cut] = aggregate(spec, self._events)
        return self._usages[cut]

    def _check(self, cut: int):
        if cut not in self._checks:
            self._checks[cut] = self._rate_cut(self.columns, cut)
        return self._checks[cut]

    def _rate_cut(self, cols, cut: int | None):
        b = self.billed if cut is None else as_of(self.billed, cut)
        return _rated(rate_round(Read(cols), [b], ENGINE)[id(b)])


def reference_rows(cols: InMemoryColumns) -> list[dict]:
    """The columns' rows as the reference engine reads them: each property as
    its stored string (``in_memory`` loads every property's), and each row's
    precise_total_amount_cents."""
    strings = np.array(list(cols.strings) + [None], dtype=object)  # id -1: missing
    props = [(k, strings[a].tolist()) for k, a in cols._dims.items()]
    subs, codes = strings[cols.subscription].tolist(), strings[cols.code].tolist()
    m, e = cols.precise_total_amount_cents
    cents = [None] * cols.n
    for i in np.flatnonzero(e > UNHOLDABLE_EXPONENT).tolist():
        cents[i] = format(Decimal(int(m[i])).scaleb(int(e[i])), "f")
    return [{"transaction_id": cols.transaction_ids[i], "external_subscription_id": subs[i], "code": codes[i],
             "timestamp_ms": t, "rowid": r, "precise_total_amount_cents": cents[i],
             "properties": {k: vs[i] for k, vs in props if vs[i] is not None}}
            for i, (t, r) in enumerate(zip(cols.timestamp_ms.tolist(), cols.rowid.tolist()))]


def _rated(r):
    if isinstance(r, str):
        raise ServiceError(r)
    return r


def _ms(e: dict) -> int:
    return int(Decimal(str(e["timestamp"])) * 1000)


# ------------------------------------------------------------------ exact usage, added to

ADDITIVE = ("sum", "count")  # aggregations whose usage over two sets of events is the sum of each's


@attrs.frozen
class Aggregated:
    """One subscription's exact usage over some events: the reference engine's
    line usages, dropped-event counts and pay-in-advance sequences (sub index 0)."""

    usages: tuple
    ignored: dict
    advances: dict


def aggregate(spec, events: list[dict]) -> "Aggregated | bool":
    """The exact usage of normalized ``events`` under ``spec`` (False: a value it cannot hold)."""
    by_pair: dict = {}
    for e in events:
        by_pair.setdefault((e["sub"], e["code"]), []).append(e)
    cov = coverage_of(spec)
    if cov.empty:
        return Aggregated((), {}, {})
    try:
        usages, ignored, advances = aggregate_subscription(0, spec, cov, by_pair)
    except NotRated:
        return False
    return Aggregated(tuple(usages), ignored, advances)


def merged(spec, base: Aggregated, extra: "Aggregated | bool"):
    """The rating of the baseline's events and ``extra``'s together, priced from
    their usages added line by line; None when ``extra`` touches a line whose
    usage does not add up (max, latest, unique or weighted counts, prorated,
    percentage or pay-in-advance charges)."""
    if extra is False or extra.advances:
        return None
    usages = {u.key: u for u in base.usages}
    for u in extra.usages:
        ch = spec.charges[u.charge]
        if ch.metric.aggregation not in ADDITIVE or ch.prorated or u.values is not None:
            return None
        old = usages.get(u.key)
        usages[u.key] = u if old is None else _added(old, u)
    ignored = dict(base.ignored)
    for k, n in extra.ignored.items():
        ignored[k] = ignored.get(k, 0) + n
    return assemble([spec], [coverage_of(spec)], list(usages.values()), ignored, base.advances)


def _added(a: LineUsage, b: LineUsage) -> LineUsage:
    reasons: dict = {}
    for k, num, den, count in a.reasons + b.reasons:
        u, c = reasons.get(k, (Fraction(0), 0))
        reasons[k] = (u + Fraction(num, den), c + count)
    return LineUsage(a.sub, a.charge, a.bucket, a.group, a.window, nd(Fraction(*a.full) + Fraction(*b.full)),
                     a.count + b.count, reasons=tuple((k, u.numerator, u.denominator, c) for k, (u, c) in reasons.items()),
                     cents=nd(Fraction(*a.cents) + Fraction(*b.cents)))


def _lines_of(result, subscription: str):
    """A run's (lines, pay-in-advance fees) of one subscription, as ``rate_round`` gives them."""
    return ([ln for ln in result.lines if ln.subscription == subscription],
            parts_by_subscription(result.in_advance).get(subscription, []))


# ------------------------------------------------------------------ columns in memory

def in_memory(cols) -> InMemoryColumns:
    """A read's columns held in memory with their own compact string table
    (every property loaded), so rows can be appended."""
    names = sorted(cols.property_names())
    dims = {k: np.asarray(cols.dim(k), np.int32) for k in names}
    nums = {k: cols.numeric(k) for k in names}
    nums["precise_total_amount_cents"] = cols.precise_total_amount_cents
    ids = [np.asarray(cols.code), np.asarray(cols.subscription)] + list(dims.values())
    used = np.unique(np.concatenate(ids)) if cols.n else np.zeros(0, np.int32)
    used = used[used >= 0]
    strings = cols.strings.decode(used)

    def local(a):
        out = np.searchsorted(used, a).astype(np.int32)
        return np.where(a < 0, -1, out).astype(np.int32)
    txs = cols.transaction_ids_of(cols.rowid.tolist()) if cols.n else []
    return InMemoryColumns(cols.timestamp_ms, cols.rowid, local(np.asarray(cols.code)),
                           local(np.asarray(cols.subscription)), strings,
                           {k: local(a) for k, a in dims.items()}, nums, list(txs))


def appended(base: InMemoryColumns, events: list[dict]) -> InMemoryColumns:
    """``base`` with ``events`` as its last rows (row ids after its own)."""
    top = int(base.rowid.max()) if base.n else 0
    extra = InMemoryColumns.from_events([{**e, "rowid": top + 1 + i} for i, e in enumerate(events)])
    strings = list(base.strings)
    index = {s: i for i, s in enumerate(strings)}
    for s in extra.strings:
        if s not in index:
            index[s] = len(strings)
            strings.append(s)
    remap = np.array([index[s] for s in extra.strings] or [0], np.int32)

    def ids(a):
        return np.where(a < 0, -1, remap[np.maximum(a, 0)]).astype(np.int32)
    names = set(base._dims) | set(extra._dims)
    dims = {k: np.concatenate([base.dim(k), ids(extra.dim(k))]) for k in names}
    nums = {k: tuple(np.concatenate([x, y]) for x, y in zip(base.numeric(k), extra.numeric(k)))
            for k in set(base._nums) | set(extra._nums)}
    return InMemoryColumns(np.concatenate([base.timestamp_ms, extra.timestamp_ms]),
                           np.concatenate([base.rowid, extra.rowid]),
                           np.concatenate([base.code, ids(extra.code)]),
                           np.concatenate([base.subscription, ids(extra.subscription)]),
                           strings, dims, nums, list(base.transaction_ids or []) + list(extra.transaction_ids))


# ------------------------------------------------------------------ what changed

def _line_key(f: FeeLine) -> tuple:
    return (f.fee_type, f.code, f.kind, f.charge, f.dimensions, f.description)


def changes(before: Invoice, after: Invoice) -> tuple[LineChange, ...]:
    """The final invoice's lines the job adds or changes, in the after invoice's order."""
    was: dict = {}
    for i, f in enumerate(before.fees):
        was.setdefault(_line_key(f), []).append(i)
    out = []
    for k, f in enumerate(after.fees):
        olds = was.get(_line_key(f))
        i = olds.pop(0) if olds else None
        old = None if i is None else before.fees[i]
        if old is not None and old.units == f.units and old.amount == f.amount:
            continue
        tax = after.fee_taxes[k] - (ZERO if i is None else before.fee_taxes[i])
        out.append(_change(f, old, f, tax))
    for olds in was.values():  # lines the job removes (a commitment true-up the job fills)
        out.extend(_change(before.fees[i], before.fees[i], None, -before.fee_taxes[i]) for i in olds)
    return tuple(out)


def _change(f: FeeLine, old: FeeLine | None, new: FeeLine | None, taxes: Decimal) -> LineChange:
    return LineChange(f.fee_type, f.code, f.description, f.charge, f.dimensions, f.clause, f.reason,
                      None if old is None else old.units, None if new is None else new.units,
                      None if old is None else old.amount, None if new is None else new.amount, taxes,
                      f.pay_in_advance)


def reservations_left(b: Billing, before: Invoice, after: Invoice) -> tuple:
    """Per reservation: (GPU type, unit, reserved units left before, after)."""
    out = []
    for i, r in enumerate(b.contract.reserves):
        code = f"reservation_{i + 1}_covered"
        total = reserved_units(b, r)
        left = [total + sum_amounts((f for f in inv.fees if f.code == code), "units") for inv in (before, after)]
        out.append((r.gpu_type.value, r.unit.name, *left))
    return tuple(out)


# ------------------------------------------------------------------ the answer

TOTAL_FIELDS = {"fees": "fees_amount", "coupons": "coupons_amount",
                "sub_total_excluding_taxes": "sub_total_excluding_taxes_amount", "taxes": "taxes_amount",
                "prepaid_credits": "prepaid_credit_amount", "total": "total_amount"}


def estimate_json(e: Estimate) -> dict:
    """The estimate as JSON (docs/cli.md, `gpubill estimate`): every amount an exact decimal string."""
    from gpubill.service.invoice_report import amount_text

    cur, j = e.currency, e.job

    def money(d):
        return None if d is None else amount_text(d, cur)

    def totals(t: Totals) -> dict:
        return {name: money(getattr(t, field)) for field, name in TOTAL_FIELDS.items()}
    return {
        "contract": e.contract, "external_subscription_id": e.subscription, "currency": cur,
        "billing_period": e.period_label,
        "job": None if j is None else {
            "gpu_type": j.gpu_type, "gpu_count": _n(j.gpu_count), "hours": _n(j.hours), "region": j.region,
            "availability_class": j.availability_class, "avg_utilization": _n(j.utilization),
            "starts_at": _iso(e.starts_ms), "events": len(e.events)},
        "lines": [{"type": c.fee_type, "code": c.code, "name": c.description, "charge": c.charge,
                   "dimensions": dict(c.dimensions), "clause": c.clause, "reason": c.reason,
                   "units_before": _s(c.units_before), "units_after": _s(c.units_after),
                   "amount_before": money(c.amount_before), "amount_after": money(c.amount_after),
                   "amount_delta": money(c.amount_delta)} for c in e.changes],
        "before": totals(e.totals_before), "after": totals(e.totals_after), "delta": totals(e.delta),
        "invoices_before": len(e.before), "invoices_after": len(e.after),
        "reservations": [{"gpu_type": g, "unit": u, "left_before": _s(a), "left_after": _s(b)}
                         for g, u, a, b in e.reservations_left],
        "summary": summary(e),
    }


def _s(d: Decimal | None) -> str | None:
    return None if d is None else format(d, "f")


def summary(e: Estimate) -> str:
    """One plain paragraph: what the job costs, and why."""
    from gpubill.service.invoice_report import amount_text

    cur, d = e.currency, e.delta

    def m(x: Decimal) -> str:
        return f"{grouped(amount_text(x, cur))} {cur}"
    label = e.job.label() if e.job is not None else f"one {e.events[0]['code']} event"
    parts = [f"{label} ({e.contract}, {e.period_label}): {m(d.sub_total_excluding_taxes)} + tax {m(d.taxes)}"]
    if d.coupons:
        parts.append(f"after {m(d.coupons)} of discounts")
    if d.prepaid_credits:
        parts.append(f"prepaid credits cover {m(d.prepaid_credits)}, so {m(d.total)} more is due")
    else:
        parts.append(f"{m(d.total)} more is due")
    commitment = sum((c.amount_delta for c in e.changes if c.fee_type == "commitment"), ZERO)
    if commitment:
        parts.append(f"the commitment true-up changes by {m(commitment)} (the job counts toward the commitment)")
    for gpu, unit, before, after in e.reservations_left:
        if before != after:
            parts.append(f"{_n(max(after, ZERO))} {unit}s of your {gpu} reservation left after it ({_n(before)} before)")
    if len(e.after) > len(e.before):
        parts.append("it crosses a progressive billing threshold, so part of it is invoiced early")
    return "; ".join(parts) + "."


def grouped(text: str) -> str:
    """An exact amount's text with thousands separators ("1382.40" -> "1,382.40")."""
    return format(Decimal(text), ",f")


def lago_fees(e: Estimate) -> list[dict]:
    """Lago's fee objects (``POST /api/v1/events/estimate_fees``) for the lines the events add or change: each
    fee is the change of its line (amount, units, taxes); nothing is stored, so the ids are null."""
    from gpubill.service.invoice_report import amount_text, cents

    inv, cur = e.after[-1], e.currency
    customer = inv.billing.contract.customer
    out = []
    for c in e.changes:
        taxes = inv.billing.to_minor(c.taxes_delta)
        units = (c.units_after or ZERO) - (c.units_before or ZERO)
        out.append({
            "lago_id": None, "lago_charge_id": None, "lago_charge_filter_id": None, "lago_invoice_id": None,
            "external_subscription_id": e.subscription, "lago_customer_id": None,
            "external_customer_id": customer.id.value if customer is not None else None,
            "amount_cents": cents(c.amount_delta, cur), "precise_amount": amount_text(c.amount_delta, cur),
            "amount_currency": cur, "taxes_amount_cents": cents(taxes, cur), "taxes_precise_amount": _s(c.taxes_delta),
            "total_amount_cents": cents(c.amount_delta + taxes, cur), "total_amount_currency": cur,
            "units": _s(units), "events_count": len(e.events), "pay_in_advance": c.pay_in_advance, "invoiceable": True,
            "from_date": _iso(inv.from_ms), "to_date": _iso(inv.to_ms), "description": c.reason,
            "item": {"type": c.fee_type, "code": c.code, "name": c.description, "invoice_display_name": c.description,
                     "lago_item_id": None, "item_type": "BillableMetric" if c.charge else None,
                     "grouped_by": dict(c.dimensions)},
            "applied_taxes": [],
        })
    return out
