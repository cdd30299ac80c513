"""Run the `test` blocks of .bill files: the use case behind `gpubill test`.

A test block lists usage and states what the invoice must show
(docs/language.md, Tests).  Each test is run as `gpubill invoice` would bill
its contract: the contract's subscription for the test's period is resolved
and compiled, the usage lines become events held in memory
(``EventsInMemory``, read through the same two calls as the event store), and
the invoice is computed by the same code (``service.invoicing``: the earlier
periods of a contract whose terms carry across invoices, then this one).

What each `expect` measures, on that invoice:

| expect | actual value |
| --- | --- |
| ``charge NAME [where C]`` | the rounded amounts of the ``charge`` fee lines of charge NAME (usage lines, pay-in-advance fees, the spending-minimum true-up): before discounts, credits and taxes; policy credits and reservation coverage are other lines |
| ``units NAME [where C]`` | the units of its usage and pay-in-advance lines (not prorated) |
| ``events NAME [where C]`` | the events those lines counted |
| ``total`` | the invoice's ``total_amount`` (after discounts, taxes and prepaid credits) |

``where C`` keeps the lines whose filter or group values include C's
values, key by key; a line of the default bucket (and the true-up line) has
none, so it is only reached without ``where``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal

import attrs

from gpubill.contracts.invoice import Invoice
from gpubill.contracts.lines import FeeLine
from gpubill.dsl import ast
from gpubill.dsl.resolve import Catalog
from gpubill.engine.calendar.period import start_of, to_ms
from gpubill.engine.fast.columns import InMemoryColumns
from gpubill.engine.spec.compile import CompileError, compile_subscription
from gpubill.engine.spec.subscription import resolve_subscription
from gpubill.service.invoicing import history, invoice_chains, periods_to_invoice
from gpubill.service.rating import Billed, ServiceError, load_catalog
from gpubill.store.job_reason import resolve_in_dicts

#: The fee lines whose units and events an `expect units|events` counts (a true-up line has neither).
COUNTED_KINDS = ("usage", "in_advance")


class EventsInMemory:
    """Events held in memory, read as the event store is read by the rating
    code: ``read_columns`` (the fast engine's columns) and
    ``events_as_dicts`` (the reference engine's dicts), with the same
    selection (codes, subscriptions, inclusive time bounds)."""

    def __init__(self, events: Sequence[dict]):
        self._events = [dict(e, rowid=i + 1) for i, e in enumerate(events)]

    def _selected(self, codes, subscriptions, time_from_ms, time_to_ms, since_rowid=0) -> list[dict]:
        """Copies of the selected events, each job's segments given its end reason as the store's reads do."""
        out = [dict(e, properties=dict(e["properties"])) for e in self._events
               if e["rowid"] > since_rowid
               and (codes is None or e["code"] in codes)
               and (subscriptions is None or e["external_subscription_id"] in subscriptions)
               and (time_from_ms is None or e["timestamp_ms"] >= time_from_ms)
               and (time_to_ms is None or e["timestamp_ms"] <= time_to_ms)]
        resolve_in_dicts(out)
        return out

    def read_columns(self, since_rowid: int = 0, codes: list[str] | None = None,
                     time_from_ms: int | None = None, time_to_ms: int | None = None,
                     subscriptions: list[str] | None = None) -> InMemoryColumns:
        return InMemoryColumns.from_events(self._selected(codes, subscriptions, time_from_ms, time_to_ms, since_rowid))

    def events_as_dicts(self, codes=None, subscriptions=None, time_from_ms=None, time_to_ms=None) -> list[dict]:
        return self._selected(codes, subscriptions, time_from_ms, time_to_ms)


@attrs.frozen
class Outcome:
    """One `expect` clause: the value it states, the value the invoice shows, and the lines behind it."""

    expect: ast.Expect
    actual: Decimal
    lines: tuple[FeeLine, ...]

    @property
    def passed(self) -> bool:
        return self.actual == self.expect.value.value


@attrs.frozen
class TestResult:
    """One test block run: its outcomes and the invoice they were measured on,
    or why it could not be run (``error``)."""

    test: ast.TestBlock
    outcomes: tuple[Outcome, ...] = ()
    error: str | None = None
    invoice: Invoice | None = attrs.field(default=None, eq=False, repr=False)

    __test__ = False  # not a pytest class

    @property
    def passed(self) -> bool:
        return self.error is None and all(o.passed for o in self.outcomes)

    @property
    def location(self) -> str:
        span = self.test.span
        return f"{span.path}:{span.line}" if span is not None else "?"


@attrs.frozen
class TestRun:
    results: tuple[TestResult, ...]
    seconds: float

    __test__ = False  # not a pytest class

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results)


def run_tests(paths: Sequence[str], keyword: str | None = None, engine: str = "fast") -> TestRun:
    """Load and check the .bill files under ``paths`` (an error raises
    ``ServiceError`` with the diagnostics) and run the test blocks whose
    name contains ``keyword``, in file order."""
    started = time.perf_counter()
    catalog, _ = load_catalog(paths)
    selected = [t for t in catalog.tests if keyword is None or keyword in t.name.value]
    results = tuple(run_test(catalog, t, engine) for t in selected)
    return TestRun(results, time.perf_counter() - started)


def run_test(catalog: Catalog, t: ast.TestBlock, engine: str = "fast") -> TestResult:
    """Invoice the test's usage for its contract and period; measure each `expect` on the invoice."""
    try:
        kind, value = period_args(t)
        resolved = resolve_subscription(catalog, catalog.contracts[t.contract.name], (kind, value))
        if not resolved.active:
            return TestResult(t, error=f'contract "{t.contract.name}" is not active in the test\'s period {t.period.text}')
        periods = periods_to_invoice(catalog, Billed(resolved, compile_subscription(catalog, resolved)), kind, value)
        if len(periods) != 1:
            return TestResult(t, error=f'the test\'s period {t.period.text} is not one billing period of contract '
                                       f'"{t.contract.name}" ({len(periods)} of its periods end in it): name one '
                                       "billing period, as a month or as the range of its days")
        billed = periods[0]
        resolved = billed.resolved
        chain = history(catalog, billed) + [billed]
    except (CompileError, ServiceError, ValueError) as e:
        return TestResult(t, error=str(e))
    source = EventsInMemory(usage_events(t, resolved.timezone, resolved.period.from_ms, billed.spec.external_id))
    try:
        by_period, unrated = invoice_chains(source, catalog, [chain], engine)
    except ServiceError as e:
        return TestResult(t, error=str(e))
    if unrated:
        return TestResult(t, error=unrated[0])
    invoice = by_period[id(billed)][-1]  # the period's final invoice
    outcomes = tuple(measure(invoice, e) for e in t.expects)
    return TestResult(t, outcomes, invoice=invoice)


def period_args(t: ast.TestBlock):
    """The test's period in the form ``resolve_subscription`` takes."""
    p = t.period
    if p.start is None:  # a month
        y, m = (int(x) for x in p.text.split("-"))
        return "month", (y, m)
    if p.end is None:
        return "date", p.start.value
    return "range", (p.start.value, p.end.value)


def usage_events(t: ast.TestBlock, tz: str, default_ms: int, subscription: str) -> list[dict]:
    """The test's usage lines as Lago-shaped events of the subscription (an
    event without `at` is at the period's start; `times N` gives N events
    with distinct transaction ids)."""
    events = []
    for ui, u in enumerate(t.usages):
        props, cents = {}, None
        for up in u.props:
            value = up.value.value if isinstance(up.value, ast.Str) else format(up.value.value, "f")
            if up.name.name == "precise_total_amount_cents":
                cents = value
            else:
                props[up.name.name] = value
        ts = to_ms(start_of(u.at.value, tz)) if u.at is not None else default_ms
        for k in range(int(u.times.value) if u.times else 1):
            events.append({"transaction_id": f"u{ui}-{k}", "external_subscription_id": subscription,
                           "code": u.code.name, "timestamp_ms": ts, "properties": dict(props),
                           "precise_total_amount_cents": cents})
    return events


def measure(invoice, e: ast.Expect) -> Outcome:
    """The invoice's value for one `expect`, and the fee lines it adds up."""
    if e.what == "total":
        return Outcome(e, invoice.total_amount, tuple(invoice.fees))
    lines = tuple(f for f in invoice.fees if f.fee_type == "charge" and f.charge == e.target.name
                  and (e.what == "charge" or f.kind in COUNTED_KINDS) and matches(e.condition, f.dimensions))
    field = {"charge": "amount", "units": "units", "events": "events_count"}[e.what]
    return Outcome(e, sum((Decimal(getattr(f, field)) for f in lines), Decimal(0)), lines)


def matches(cond: ast.Condition | None, dimensions: tuple) -> bool:
    """Whether a line's filter or group values include every key of the condition
    (a filter listing several values for a key shows them joined by ``|``)."""
    if cond is None:
        return True
    dims = {k: set(v.split("|")) for k, v in dimensions}
    return all(dims.get(m.key.name, set()) & {v.value for v in m.values} for m in cond.matches)
