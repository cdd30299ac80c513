"""Rate a period: contracts (.bill files) + the event store -> rated lines.

The one use case behind `gpubill rate` and `gpubill demo`: load and check the
catalog, resolve each contract's subscription once (its plan version,
timezone and billing period: `gpubill.engine.spec.subscription`), compile it into
the engine's program, read the period's events from the store as columns,
and run the engine (numba by default, the reference engine on request).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import attrs

from gpubill.dsl import ast
from gpubill.dsl.check import check_paths
from gpubill.dsl.diagnostics import render_text
from gpubill.dsl.resolve import Catalog
from gpubill.engine.calendar import period as cal
from gpubill.engine.spec.compile import CompileError, compile_subscription
from gpubill.engine.pricing.fees import totals as fee_totals
from gpubill.engine.spec.program import RateResult, SubscriptionSpec, Unrated
from gpubill.engine.spec.subscription import OfResolved, Resolved, resolve_subscription


class ServiceError(Exception):
    """A failure to show the user as it is; `code` is the CLI exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@attrs.frozen
class Billed(OfResolved):
    """One contract's subscription in one period, resolved once and compiled, ready to rate."""

    resolved: Resolved
    spec: SubscriptionSpec


@attrs.frozen
class RateReport:
    billed: tuple[Billed, ...]
    result: RateResult
    catalog: Catalog
    sources: dict
    traces: dict = attrs.field(factory=dict)  # subscription id -> {LineRef: [EventRef]} (explain only)

    def rated(self) -> list[Billed]:
        """The subscriptions with lines in the result (not left out)."""
        left_out = {u.subscription for u in self.result.unrated}
        return [b for b in self.billed if b.spec.external_id not in left_out]

    def unrated(self) -> list[tuple[Billed, Unrated]]:
        """The subscriptions left out of the run, each with why."""
        by_id = {b.spec.external_id: b for b in self.billed}
        return [(by_id[u.subscription], u) for u in self.result.unrated]


def unrated_text(billed: Billed, u: Unrated) -> str:
    """One line: which subscription was left out, whose, where and why."""
    c = billed.contract
    who = f'customer "{c.customer.id.value}", ' if c.customer is not None else ""
    where = f"charge {u.charge_id} (metric {u.metric})" if u.charge_id else "its charges"
    return f'subscription "{u.subscription}" ({who}contract "{c.name.name}") not rated: {where}: {u.reason}'


def load_catalog(paths: Sequence[str]) -> tuple[Catalog, dict[str, str]]:
    """Load and check the .bill files; any error stops here with the diagnostics."""
    catalog, sources, diags = check_paths(list(paths))
    errors = [d for d in diags if d.is_error]
    missing = [d for d in errors if d.rule in ("no-such-file", "unreadable-file")]
    if missing and len(missing) == len(errors):  # nothing to check: an I/O problem, not a contract error
        raise ServiceError("; ".join(d.message for d in missing), code=3)
    if errors:
        raise ServiceError(
            render_text(errors, sources).rstrip() + f"\n{len(errors)} error(s) in the contracts; run `gpubill check`",
            code=1,
        )
    return catalog, sources


def billed_subscriptions(catalog: Catalog, period_text: str, customer: str | None = None,
                         handover: bool = False) -> list[Billed]:
    """Every contract active in the period (optionally one customer's),
    compiled.  ``handover``: two contracts may bill one subscription in the
    period when their terms do not overlap (a plan change: one ends, the
    next starts); the caller then rates them apart."""
    try:
        kind, value = cal.parse_period_arg(period_text)
        if kind == "range":
            cal.resolve_period(kind, value, "monthly", "calendar", "UTC", None)  # the range itself is valid
    except ValueError as e:
        raise ServiceError(f"--period: {e}", code=2) from None
    out: list[Billed] = []
    for name in sorted(catalog.contracts):
        c = catalog.contracts[name]
        if customer is not None and customer not in _customer_keys(c):
            continue
        try:
            resolved = resolve_subscription(catalog, c, period_text)
            if not resolved.active:
                continue
            spec = compile_subscription(catalog, resolved)
        except (CompileError, ValueError) as e:
            raise ServiceError(f'contract "{name}": {e}') from None
        out.append(Billed(resolved, spec))
    _one_contract_per_subscription(out, period_text, handover)
    if customer is not None and not out:
        known = sorted({k for c in catalog.contracts.values() for k in _customer_keys(c)})
        raise ServiceError(f'no contract of customer "{customer}" is active in {period_text} (known: {", ".join(known[:10])})')
    return out


def _one_contract_per_subscription(billed: list[Billed], period_text: str, handover: bool = False) -> None:
    """Two contracts billing one subscription in one period would bill its
    events twice, unless (``handover``) their terms do not overlap."""
    seen: dict[str, Billed] = {}
    for b in billed:
        sid, name = b.spec.external_id, b.contract.name.name
        if sid in seen and not (handover and _apart(seen[sid], b)):
            raise ServiceError(f'contracts "{seen[sid].contract.name.name}" and "{name}" both bill subscription "{sid}" in '
                               f"{period_text}: {_twice_hint(handover)}")
        seen[sid] = b


def _twice_hint(handover: bool) -> str:
    if handover:  # the terms overlap
        return "their terms overlap, so its events would be billed twice; end one before the other starts"
    return ("its lines would mix; rate each contract apart (--customer CONTRACT), or invoice the period "
            "(gpubill invoice bills a plan change in the middle of a period)")


def _apart(a: Billed, b: Billed) -> bool:
    """The two contracts' terms do not overlap."""
    first, second = sorted((a, b), key=lambda x: x.resolved.started_ms or 0)
    end = first.resolved.terminated_ms
    return end is not None and second.resolved.started_ms is not None and end < second.resolved.started_ms


def customer_of(c: ast.Contract) -> str:
    """The customer a contract bills: its ``customer "id"``, else the contract's name."""
    return c.customer.id.value if c.customer is not None else c.name.name


def _customer_keys(c: ast.Contract) -> set[str]:
    keys = {c.name.name}
    if c.customer is not None:
        keys.add(c.customer.id.value)
    if c.subscription is not None:
        keys.add(c.subscription.value)
    return keys


def read_window(billed: Sequence[Billed]) -> dict:
    """What to read from the store: codes, subscriptions and the time range."""
    codes, subs = set(), set()
    lo, hi, recurring = None, None, False
    for b in billed:
        subs.add(b.spec.external_id)
        lo = b.period.from_ms if lo is None else min(lo, b.period.from_ms)
        hi = b.period.to_ms if hi is None else max(hi, b.period.to_ms)
        for ch in b.spec.charges:
            codes.add(ch.metric.event_code)
            recurring |= ch.metric.recurring
    return {
        "codes": sorted(codes),
        "subscriptions": sorted(subs),
        "time_from_ms": None if recurring else lo,
        "time_to_ms": hi,
    }


def rate_billed(store, billed: Sequence[Billed], engine: str = "fast") -> RateResult:
    """Run the engine over the store's events for these subscriptions.  A
    subscription that cannot be rated is in ``RateResult.unrated``; the
    others are rated."""
    from gpubill.engine.pricing.money import EngineError

    specs = [b.spec for b in billed]
    if not specs:
        return RateResult(lines=(), in_advance=())
    window = read_window(billed)
    try:
        if engine == "reference":
            from gpubill.engine.reference.engine import rate_reference

            return rate_reference(specs, reference_events(store, window))
        if hasattr(store, "rate_pushed_down"):  # a cluster store: the shards aggregate (gpubill.cluster.pushdown)
            return store.rate_pushed_down(specs, window)
        from gpubill.engine.fast.rate import rate

        return rate(specs, compact_read(store.read_columns(**window)))
    except EngineError as e:  # a program the engine cannot run at all
        raise ServiceError(f"cannot rate exactly: {e}") from None


def compact_read(cols):
    """A read renumbered to its own strings when it is small against the store's string table (one
    customer's period in a large store: ``CompactColumns``), else the read itself."""
    from gpubill.engine.fast.columns import CompactColumns, worth_compacting

    return CompactColumns(cols) if worth_compacting(cols) else cols


def reference_events(store, window: dict) -> list[dict]:
    """The store's events as the reference engine reads them: every property
    value as the string the store's columns hold for it (what the fast
    engine compares), a JSON number through its shortest decimal form."""
    events = store.events_as_dicts(**window)
    for e in events:
        props = e["properties"]
        for k, v in props.items():
            if type(v) in (float, dict, list):
                props[k] = property_text(v)
        e["precise_total_amount_cents"] = _cents_text(e["precise_total_amount_cents"])
    return events


def property_text(v) -> str:
    """The store's string form of a JSON float, object or array property."""
    from gpubill.numbers import format_decimal, from_number, held
    from gpubill.store.validate import dumps_any

    if type(v) is float:
        m, e = from_number(v)
        return format_decimal(m, e) if held(e) else repr(v)
    return dumps_any(v).decode()


def _cents_text(text: str | None) -> str | None:
    """precise_total_amount_cents as text: a JSON number comes back from
    SQLite as Python's str() of it ("1e+16"); the store held its exact
    decimal, so read it the same way."""
    from gpubill.numbers import STRICT

    if text is None or STRICT.fullmatch(text):
        return text
    try:
        return property_text(float(text))
    except ValueError:
        return text


def trace_billed(store, billed: Sequence[Billed]) -> dict:
    """For explain: each line's events (transaction ids), per subscription."""
    from gpubill.engine.reference.trace import trace

    out = {}
    for b in billed:
        out[b.spec.external_id] = trace(b.spec, reference_events(store, read_window([b])))
    return out


def rate_period(store, contract_paths: Sequence[str], period_text: str, customer: str | None = None,
                engine: str = "fast", explain: bool = False) -> RateReport:
    catalog, sources = load_catalog(contract_paths)
    billed = billed_subscriptions(catalog, period_text, customer)
    result = rate_billed(store, billed, engine)
    traces = trace_billed(store, billed) if explain else {}
    return RateReport(tuple(billed), result, catalog, sources, traces)


def totals(report: RateReport) -> dict[str, Decimal]:
    """Sum of rounded line amounts per rated subscription (in-advance fees included)."""
    out: dict[str, Decimal] = {b.spec.external_id: Decimal(0) for b in report.rated()}
    for line in report.result.lines:
        out[line.subscription] = out.get(line.subscription, Decimal(0)) + line.amount
    for sid, amount in fee_totals(report.result.in_advance).items():
        out[sid] = out.get(sid, Decimal(0)) + amount
    return out
