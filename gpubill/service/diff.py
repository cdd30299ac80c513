"""`gpubill diff`'s report: what two revisions of the contract repository do to
the same stored events' invoices (issue 12).

The data model is shared: the renderers (gpubill/service/diff_render.py), the
gates and the CLI read these names.  Amounts are the invoices' rounded
Decimals; None marks a line or an invoice that one side does not have.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal

import attrs

from gpubill.contracts.invoice import PROGRESSIVE_BILLING
from gpubill.dsl import ast
from gpubill.dsl.fmt import format_document
from gpubill.dsl.resolve import Catalog
from gpubill.engine.calendar.period import parse_period_arg
from gpubill.store.roles import Actor
from gpubill.engine.pricing.money import round_amount
from gpubill.engine.spec.program import MoneyRounding
from gpubill.engine.spec.compile import CompileError
from gpubill.engine.spec.subscription import version_on
from gpubill.service.invoicing import invoice_catalog, period_days
from gpubill.service.lifecycle import list_invoices
from gpubill.service.notice import notice_violations
from gpubill.service.rating import ServiceError, billed_subscriptions, customer_of, load_catalog, read_window
from gpubill.service.revisions import WORK_TREE, Revision, at_revision, copied, run_time, temporary_dir, work_tree
from gpubill.service.sample import pseudonymize_contracts, without_contracts

# Percentages are shown to two places; computed in a local context (never
# the ambient one).
PCT_QUANTUM = Decimal("0.01")
_PCT_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)

CHANGE_KINDS = ("metric", "plan", "version", "contract", "entity")
CHANGE_WHATS = ("added", "removed", "changed")


def _amount(d: Decimal | None) -> Decimal:
    """An amount, 0 where one side has none (a zero keeps its places: `or` would drop them)."""
    return Decimal(0) if d is None else d


def _delta(before: Decimal | None, after: Decimal | None) -> Decimal:
    return _amount(after) - _amount(before)


def percent_change(before: Decimal | None, after: Decimal | None) -> Decimal | None:
    """The change relative to |before|, in percent (a credit line going to
    nothing is +100 %); None when before is 0/None."""
    if not before:
        return None
    ratio = _PCT_CONTEXT.divide(_PCT_CONTEXT.multiply(_delta(before, after), Decimal(100)), abs(before))
    return round_amount(ratio, MoneyRounding(decimal.ROUND_HALF_EVEN, PCT_QUANTUM))


class _Moved:
    """``delta`` and ``pct`` of a ``before`` / ``after`` pair (either may be None: absent on that side)."""

    __slots__ = ()

    @property
    def delta(self) -> Decimal:
        return _delta(self.before, self.after)

    @property
    def pct(self) -> Decimal | None:
        return percent_change(self.before, self.after)


@attrs.frozen
class LineDelta(_Moved):
    """One invoice line identity (fee type, code, charge, dimensions) of one invoice."""
    name: str
    key: tuple
    before: Decimal | None          # rounded amount; None: absent on that side
    after: Decimal | None
    clause_before: str | None       # file:line:col
    clause_after: str | None


@attrs.frozen
class CustomerDelta(_Moved):
    """One contract's invoice(s) of one period; totals are sub_total_excluding_taxes."""
    customer: str
    contract: str
    currency: str
    period: str
    before: Decimal | None
    after: Decimal | None
    lines: tuple[LineDelta, ...]    # only the lines that changed


@attrs.frozen
class Change:
    """What changed between the two revisions' catalogs."""
    kind: str                       # one of CHANGE_KINDS
    name: str
    what: str                       # one of CHANGE_WHATS
    clauses: tuple[str, ...]        # head file:line:col of changed clauses (base's for removed)
    customers: tuple[str, ...]      # the contracts it reaches


@attrs.frozen
class DiffReport:
    base: str
    head: str
    periods: tuple[str, ...]
    customers: tuple[CustomerDelta, ...]   # every contract invoiced in either, by |delta| desc
    changes: tuple[Change, ...]
    finalized: tuple[tuple[str, str, Decimal, Decimal], ...]  # (number, customer, stored, head total)
    unrated: tuple[str, ...]               # contracts either revision could not invoice, with why
    notices: tuple[str, ...] = ()          # notice-period violations (file:line:col: message)

    def totals(self) -> dict[str, tuple[Decimal, Decimal]]:
        """currency -> (before, after) over every customer and period."""
        sums: dict[str, tuple[Decimal, Decimal]] = {}
        for c in self.customers:
            before, after = sums.get(c.currency, (Decimal(0), Decimal(0)))
            sums[c.currency] = (before + _amount(c.before), after + _amount(c.after))
        return dict(sorted(sums.items()))


# ------------------------------------------------------------------ the backtest

DIFF_ACTOR = Actor("diff", "viewer")


class ReadOnce:
    """The store for both revisions of a diff, its events read once: every
    read_columns answer is kept; the first read from the store also covers
    the window ``cover`` names (the second revision's); once ``second`` is
    set, a read whose window lies inside kept ones is served from the
    smallest of them (the fast engine takes only its subscriptions' rows in
    its window, like invoicing.Read)."""

    def __init__(self, store):
        self._store = store
        self._reads: list[tuple[dict, object]] = []
        self._cover: dict | None = None
        self.second = False

    def cover(self, window: dict) -> None:
        """The next read from the store also reads ``window``."""
        self._cover = window

    def read_columns(self, **window):
        for kept, columns in self._reads:
            if kept == window:
                return columns
        held = [columns for kept, columns in self._reads if self.second and _holds(kept, window)]
        if held:  # the fewest rows: the engine goes over every row it is given, once per run
            return min(held, key=lambda columns: columns.n)
        if self._cover is not None:
            window, self._cover = _union(window, self._cover), None
        columns = self._store.read_columns(**window)
        self._reads.append((window, columns))
        return columns

    def __getattr__(self, name):
        return getattr(self._store, name)


def _holds(kept: dict, window: dict) -> bool:
    """Whether a read of ``kept`` (rating.read_window's keys) holds every event a read of ``window`` would."""
    def inside(part, whole) -> bool:
        return whole is None or (part is not None and set(part) <= set(whole))

    lo, hi = window["time_from_ms"], window["time_to_ms"]
    return (inside(window["codes"], kept["codes"]) and inside(window["subscriptions"], kept["subscriptions"])
            and (kept["time_from_ms"] is None or (lo is not None and lo >= kept["time_from_ms"]))
            and (kept["time_to_ms"] is None or (hi is not None and hi <= kept["time_to_ms"])))


def _union(a: dict, b: dict) -> dict:
    """One window holding both."""
    def merged(x, y):
        return None if x is None or y is None else sorted(set(x) | set(y))

    def bound(x, y, pick):
        return None if x is None or y is None else pick(x, y)

    return {"codes": merged(a["codes"], b["codes"]), "subscriptions": merged(a["subscriptions"], b["subscriptions"]),
            "time_from_ms": bound(a["time_from_ms"], b["time_from_ms"], min),
            "time_to_ms": bound(a["time_to_ms"], b["time_to_ms"], max)}


def diff_revisions(store, base: Revision, head: Revision, periods: Sequence[str] = ()) -> DiffReport:
    """Invoice the store's events of each period with both revisions'
    contracts and compare.  The events are read once (ReadOnce); a contract
    whose invoicing inputs are the same in both revisions is invoiced once,
    its invoices standing for both sides: only the contracts a change
    reaches (``reached_contracts``) are invoiced at head.  A customer's
    period is every invoice it bills: its progressive invoices and its final
    one (which credits them), so a change is measured on the whole period."""
    before, after = _catalog(base), _catalog(head)
    periods = tuple(periods) or (latest_complete_month(store),)
    for p in periods:
        _require_events(store, p)
    reached = reached_contracts(before, after)
    events = ReadOnce(store)
    customers, unrated, base_invoices, head_invoices = [], [], [], []
    for p in periods:
        b, h = _both_sides(events, before, after, reached, p)
        customers += _customers(p, b.invoices, h.invoices, base, head)
        unrated += [f"{base.name}: {base.relative(u)}" for u in b.unrated]
        unrated += [f"{head.name}: {head.relative(u)}" for u in h.unrated]
        base_invoices += b.invoices
        head_invoices += h.invoices
    customers.sort(key=lambda c: (-abs(c.delta), c.contract, c.period))
    notices = tuple(head.relative(v) for v in notice_violations(before, after, head.day))
    return DiffReport(base.name, head.name, periods, tuple(customers),
                      catalog_changes(before, after, base, head),
                      finalized_changed(store, base_invoices, head_invoices), tuple(unrated), notices)


def backtest(store, contracts: str, base: str, head: str | None = None, periods: Sequence[str] = (),
             mapping: dict[str, str] | None = None) -> DiffReport:
    """``diff_revisions`` of the contracts directory at git revision ``base``
    against ``head`` (None: the work tree), each read into a temporary
    directory.  With a sample's ``mapping`` (real subscription id ->
    pseudonym), on copies of the contracts that name its pseudonyms, the
    contracts whose subscription is not in the sample left out."""
    with temporary_dir() as base_dir, temporary_dir() as head_dir:
        old = at_revision(base, contracts, base_dir)
        new = work_tree(contracts) if head is None else at_revision(head, contracts, head_dir)
        if mapping is None:
            return diff_revisions(store, old, new, periods)
        if new.name == WORK_TREE:
            new = copied(new, head_dir)
        left_out = pseudonymize_contracts(old.contracts, mapping) | pseudonymize_contracts(new.contracts, mapping)
        return without_contracts(diff_revisions(store, old, new, periods), left_out)


def _both_sides(events: ReadOnce, before: Catalog, after: Catalog, reached: set[str], period: str):
    """The period's invoice reports with each catalog: the base's in full;
    the head's of the contracts a change reaches and of those the base could
    not invoice, the base's invoices standing for every other contract."""
    billed = billed_subscriptions(_part(after, reached), period, handover=True)
    if billed:
        events.cover(read_window(billed))
    events.second = False
    b = invoice_catalog(events, before, period, progressive=True)
    events.second = True
    again = reached | set(b.left_out)
    h = invoice_catalog(events, _part(after, again), period, progressive=True)
    kept = tuple(i for i in b.invoices if i.billing.contract.name.name not in again)
    return b, attrs.evolve(h, invoices=kept + h.invoices)


def _part(catalog: Catalog, names: set[str]) -> Catalog:
    """The catalog with only the named contracts."""
    return attrs.evolve(catalog, contracts={n: c for n, c in catalog.contracts.items() if n in names})


def reached_contracts(before: Catalog, after: Catalog) -> set[str]:
    """The contracts whose invoicing inputs differ between the two catalogs
    in canonical form (the contract, every version of its plan, the metrics
    their charges use, its entity; or that one side lacks), and those that
    bill a subscription one of them bills (they are rated together)."""
    canonical = _canonical_once()
    reached = {n for n in before.contracts.keys() | after.contracts.keys()
               if _inputs(before, n, canonical) != _inputs(after, n, canonical)}
    subscriptions = {c.subscription.value for n in reached for c in _contracts(n, before, after)
                     if c.subscription is not None}
    return reached | {n for n in before.contracts.keys() | after.contracts.keys()
                      for c in _contracts(n, before, after)
                      if c.subscription is not None and c.subscription.value in subscriptions}


def _contracts(name: str, *catalogs: Catalog) -> list[ast.Contract]:
    return [cat.contracts[name] for cat in catalogs if name in cat.contracts]


def _inputs(catalog: Catalog, name: str, canonical) -> tuple | None:
    """What invoicing contract ``name`` reads from the catalog, in canonical form; None when it has no such contract."""
    c = catalog.contracts.get(name)
    if c is None:
        return None
    versions = catalog.plans.get(c.plan.name.name, ()) if c.plan is not None else ()
    metrics = sorted({ch.metric.name for p in versions for ch in p.charges})
    entity = catalog.entities.get(c.entity.name) if c.entity is not None else None
    return (canonical(c), tuple(map(canonical, versions)),
            tuple((m, canonical(catalog.metrics.get(m))) for m in metrics), canonical(entity))


def _canonical_once():
    """_canonical, each block formatted once (the plans, metrics and entities many contracts share)."""
    memo: dict[int, str] = {}

    def canonical(block) -> str | None:
        if block is None:
            return None
        if id(block) not in memo:
            memo[id(block)] = _canonical(block)
        return memo[id(block)]
    return canonical


def _catalog(rev: Revision) -> Catalog:
    try:
        return load_catalog([rev.contracts])[0]
    except ServiceError as e:
        raise ServiceError(f"{rev.name}: {rev.relative(str(e))}", e.code) from None


def latest_complete_month(store, now: dt.datetime | None = None) -> str:
    """The month of the latest stored event when it has ended, else the month before it."""
    latest = store.latest_timestamp_ms()
    if latest is None:
        raise ServiceError("the store holds no events: nothing to invoice (pass --store)", code=1)
    day = dt.datetime.fromtimestamp(latest / 1000, dt.timezone.utc).date()
    today = (now or run_time()).date()
    first = day.replace(day=1)
    if (first.year, first.month) == (today.year, today.month):
        first = (first - dt.timedelta(days=1)).replace(day=1)
    return f"{first.year:04d}-{first.month:02d}"


def _require_events(store, period: str) -> None:
    try:
        kind, value = parse_period_arg(period)
    except ValueError as e:
        raise ServiceError(f"--period: {e}", code=2) from None
    first, last = period_days(kind, (value, value) if kind == "date" else value)
    lo = int(dt.datetime.combine(first, dt.time(), dt.timezone.utc).timestamp() * 1000)
    hi = int(dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.timezone.utc).timestamp() * 1000)
    # one event is enough: the walk stops at the first
    if not store.any_event_between(lo, hi):
        raise ServiceError(f"the store holds no events in {period}: nothing to compare", code=1)


# ------------------------------------------------------------------ invoices

def _customers(period: str, before, after, base: Revision, head: Revision) -> list[CustomerDelta]:
    by_contract: dict[str, list[list]] = {}
    for side, invoices in enumerate((before, after)):
        for inv in invoices:
            by_contract.setdefault(inv.billing.contract.name.name, [[], []])[side].append(inv)
    return [_customer(period, name, b, a, base, head) for name, (b, a) in sorted(by_contract.items())]


def _customer(period: str, contract: str, before: list, after: list, base: Revision, head: Revision) -> CustomerDelta:
    """The totals of all the period's invoices; the lines of its final ones, which bill the whole period
    (a progressive invoice bills the period so far, cut on a day a price change may move)."""
    some = (after or before)[0]
    lines = _line_deltas(_lines(_finals(before)), _lines(_finals(after)), base, head)
    return CustomerDelta(_customer_id(some), contract, some.currency, period,
                         _subtotal(before), _subtotal(after), lines)


def _finals(invoices: list) -> list:
    return [i for i in invoices if i.invoice_type != PROGRESSIVE_BILLING]


def _customer_id(inv) -> str:
    return customer_of(inv.billing.contract)


def _subtotal(invoices: list) -> Decimal | None:
    if not invoices:
        return None
    return sum((i.sub_total_excluding_taxes_amount for i in invoices), Decimal(0))


def _lines(invoices: list) -> dict:
    """(period start, invoice type, line identity, occurrence) -> its fee line."""
    out: dict = {}
    seen: Counter = Counter()
    for inv in invoices:
        for f in inv.fees:
            ident = (inv.from_ms, inv.invoice_type, f.fee_type, f.code, f.kind, f.charge, f.dimensions, f.description)
            out[(*ident, seen[ident])] = f
            seen[ident] += 1
    return out


def _line_deltas(before: dict, after: dict, base: Revision, head: Revision) -> tuple[LineDelta, ...]:
    out = []
    for key in [*before, *(k for k in after if k not in before)]:
        old, new = before.get(key), after.get(key)
        if old is not None and new is not None and old.amount == new.amount:
            continue
        some = new or old
        out.append(LineDelta(some.description, key,
                             None if old is None else old.amount, None if new is None else new.amount,
                             _clause(old, base), _clause(new, head)))
    return tuple(out)


def _clause(f, rev: Revision) -> str | None:
    return None if f is None or f.clause is None else rev.relative(f.clause)


def finalized_changed(store, base_invoices: list, head_invoices: list) -> tuple[tuple[str, str, Decimal, Decimal], ...]:
    """Finalized invoices the change alters: their base and head totals
    (taxes included: what a credit note gives back) differ.  Each with its
    stored total and that total moved by the change; what else moved since it
    was finalized (late events) is not the change's doing, and not listed."""
    def totals(invoices: list) -> dict:
        return {(i.billing.contract.name.name, i.invoice_type, i.from_ms, i.to_ms): i.total_amount for i in invoices}

    base, head = totals(base_invoices), totals(head_invoices)
    out = []
    for row in list_invoices(store, DIFF_ACTOR, status="finalized"):
        key = (row.contract, row.invoice_type, row.period_from_ms, row.period_to_ms)
        if key in base and key in head and base[key] != head[key]:
            stored = Decimal(row.doc["total_amount"])
            out.append((row.number, row.customer, stored, stored + head[key] - base[key]))
    return tuple(out)


# ------------------------------------------------------------------ catalog changes

def catalog_changes(before: Catalog, after: Catalog, base: Revision, head: Revision) -> tuple[Change, ...]:
    """Metrics, plans and their versions, contracts and entities that differ
    in canonical form, each with its changed clauses and the contracts it reaches."""
    out: list[Change] = []
    for kind, old, new in (("metric", before.metrics, after.metrics), ("entity", before.entities, after.entities),
                           ("contract", before.contracts, after.contracts)):
        out += _block_changes(kind, old, new, before, after, base, head)
    for name in sorted(before.plans.keys() | after.plans.keys()):
        out += _plan_changes(name, before.plans.get(name, ()), after.plans.get(name, ()), before, after, base, head)
    return tuple(out)


def _plan_changes(name: str, old: tuple, new: tuple, before: Catalog, after: Catalog,
                  base: Revision, head: Revision) -> list[Change]:
    """A plan added, removed or changed as a whole when unversioned; else per version (PLAN@ID)."""
    def by_version(plans: tuple) -> dict:
        return {(f"{name}@{p.version.id}" if p.version else name): p for p in plans}

    a, b = by_version(old), by_version(new)
    if not old or not new or a.keys() == b.keys() == {name}:
        return _block_changes("plan", {name: old[0]} if old else {}, {name: new[0]} if new else {},
                              before, after, base, head)
    return _block_changes("version", a, b, before, after, base, head)


def _block_changes(kind, old: dict, new: dict, before: Catalog, after: Catalog,
                   base: Revision, head: Revision) -> list[Change]:
    out = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        if a is not None and b is not None and _canonical(a) == _canonical(b):
            continue
        what = "added" if a is None else "removed" if b is None else "changed"
        clauses = (_span(a, base),) if b is None else (_span(b, head),) if a is None else \
            tuple(_span(c, head) for c in _changed_clauses(a, b))
        reach = sorted(set(_reaches(kind, name, before)) | set(_reaches(kind, name, after)))
        out.append(Change(kind, name, what, clauses, tuple(reach)))
    return out


def _canonical(block) -> str:
    return format_document(ast.Document("", (block,)))


def _changed_clauses(old, new) -> list:
    """The head's clauses (elements of a block's lists, or its single-valued
    parts) that the base does not have in the same form; the block itself
    when only something was removed."""
    out = []
    for field in attrs.fields(type(new)):
        if field.name == "span":
            continue
        a, b = getattr(old, field.name), getattr(new, field.name)
        if isinstance(b, tuple):
            out += [c for c in b if c not in a]
        elif a != b:
            out.append(b if getattr(b, "span", None) is not None else new)
    return out or [new]


def _span(node, rev: Revision) -> str:
    span = getattr(node, "span", None)
    return "" if span is None else rev.relative(str(span))


def _reaches(kind: str, name: str, catalog: Catalog) -> list[str]:
    """The contracts a block of this kind and name (a version's: PLAN@ID)
    reaches in this catalog: a version reaches the contracts that pin it or none."""
    contracts = catalog.contracts.values()
    if kind == "contract":
        return [name] if name in catalog.contracts else []
    if kind == "entity":
        return [c.name.name for c in contracts if c.entity is not None and c.entity.name == name]
    if kind in ("plan", "version"):
        plan, _, version = name.partition("@")
        return [c.name.name for c in contracts if c.plan is not None and c.plan.name.name == plan
                and (not version or _may_follow(catalog, c, version))]
    return [c.name.name for c in contracts if c.plan is not None and _uses(catalog.plan_version(c.plan), name)]


def _may_follow(catalog: Catalog, c: ast.Contract, version: str) -> bool:
    """Whether plan version ``version`` may price contract ``c``: it pins that version; or it pins none and
    is free to follow new versions; or, under a commitment, keeps that one (its start day's: version_on)."""
    if c.plan.version is not None:
        return c.plan.version == version
    if not ast.under_commitment(c):
        return True
    try:
        kept = version_on(catalog, c, dt.date.min)  # the day is the contract's start day under a commitment
    except CompileError:
        return True  # no version prices it yet in this catalog: any may come to
    return kept.version is not None and kept.version.id == version


def _uses(plan: ast.Plan | None, metric: str) -> bool:
    return plan is not None and any(ch.metric.name == metric for ch in plan.charges)
