"""`test` blocks: what they feed in (usage) and what they expect.

* `expect charge NAME` and `expect units NAME` name a charge of the tested
  contract's plan; `expect total` names none; `expect events` may name one.
* A usage line's event code should be read by some metric (else it is
  ignored: a warning); canonical properties get values of their type
  (gpu_count=8, gpu_type="H100-SXM") and, where the set is fixed, one of its
  values; `at` lies inside the test's period (a warning), or before it for
  events that recurring metrics carry over from earlier periods.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

from gpubill.dsl import ast, units
from gpubill.dsl.checks.common import UTC, contract_plan, instant
from gpubill.dsl.diagnostics import Diagnostic, did_you_mean, error, warning
from gpubill.dsl.resolve import Catalog, unknown

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def check_testcases(cat: Catalog) -> Iterator[Diagnostic]:
    codes = {m.event.name for m in cat.metrics.values() if m.event is not None}
    # Events before the period still count for recurring metrics (and weighted sums' levels).
    carried = {
        m.event.name for m in cat.metrics.values()
        if m.event is not None and (m.recurring or (m.aggregation and m.aggregation.kind == "weighted_sum"))
    }
    for t in cat.tests:
        c = cat.contracts.get(t.contract.name) if t.contract else None
        plan = contract_plan(cat, c) if c else None
        keys = {ch.key for ch in plan.charges} if plan else None
        for e in t.expects:
            yield from _expect(e, keys)
        bounds = _bounds(t.period)
        # a contract invoiced from its start bills usage before the test's period on its earlier invoices
        since = (instant(c.starts) or dt.datetime.min.replace(tzinfo=UTC)) if (
            c is not None and plan is not None and ast.carries_across_invoices(c, plan)) else None
        for u in t.usages:
            yield from _usage(u, codes, carried, bounds, t.period, since)


def _expect(e: ast.Expect, keys: set[str] | None) -> Iterator[Diagnostic]:
    if e.what in ("charge", "units") and e.target is None:
        yield error(
            "expect-target",
            f"`expect {e.what}` needs the name of a charge",
            e.span,
            hints=(f"write: expect {e.what} NAME = ...",) + ((f"charges: {', '.join(sorted(keys))}",) if keys else ()),
        )
    elif e.what == "total" and e.target is not None:
        yield error(
            "expect-target",
            "`expect total` is the whole invoice; it takes no charge name",
            e.target.span,
            hints=(f"write `expect charge {e.target.name} = ...` to check one charge",),
        )
    elif e.target is not None and keys is not None and e.target.name not in keys:
        yield unknown("charge", e.target, keys)


def _bounds(p: ast.TestPeriod | None) -> tuple[dt.datetime, dt.datetime] | None:
    if p is None:
        return None
    m = _MONTH.match(p.text)
    if m:
        y, mo = int(m.group(1)), int(m.group(2))
        if not 1 <= mo <= 12:
            return None
        start = dt.datetime(y, mo, 1, tzinfo=UTC)
        end = dt.datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=UTC)
        return start, end
    a = instant(p.start)
    if a is None:
        return None
    if p.end is None:
        return None  # one date: the subscription's billing period containing it (depends on the plan)
    b = instant(p.end)
    if b is not None and not isinstance(p.end.value, dt.datetime):
        b += dt.timedelta(days=1)  # an end date is inclusive: its whole day, as `gpubill rate --period`
    return (a, b) if b is not None else None


def _usage(u: ast.Usage, codes: set[str], carried: set[str], bounds, period,
           since: dt.datetime | None = None) -> Iterator[Diagnostic]:
    """``since``: usage from then on, before the period, is billed on the contract's earlier invoices."""
    if u.code.name not in codes:
        yield warning(
            "unused-event",
            f'no metric reads events "{u.code.name}": this usage is ignored',
            u.code.span,
            hints=did_you_mean(u.code.name, codes) or ((f"metrics read: {', '.join(sorted(codes))}",) if codes else ()),
        )
    for p in u.props:
        name = p.name.name
        if name in units.NUMERIC_PROPERTIES and not isinstance(p.value, ast.Number):
            yield error(
                "property-type", f"{name} is a number", p.value.span,
                hints=(f"write it without quotes: {name}={p.value.value}",),
            )
        elif name in units.STRING_PROPERTIES and not isinstance(p.value, ast.Str):
            yield error(
                "property-type", f"{name} is a string", p.value.span,
                hints=(f'quote it: {name}="{p.value.text}"',),
            )
        elif name in units.CANONICAL_VALUES and isinstance(p.value, ast.Str):
            allowed = units.CANONICAL_VALUES[name]
            if p.value.value not in allowed:
                yield error(
                    "unknown-value",
                    f'"{p.value.value}" is not a value of {name}',
                    p.value.span,
                    hints=did_you_mean(p.value.value, allowed) + (f"{name} is one of: {', '.join(allowed)}",),
                )
    at = instant(u.at)
    if at is None or bounds is None:
        return
    earlier_billed = since is not None and at >= since
    if at >= bounds[1] or (at < bounds[0] and u.code.name not in carried and not earlier_billed):
        yield warning(
            "usage-outside-period",
            f"this usage at {u.at.text} falls outside the test period {period.text}",
            u.at.span,
            hints=("it will not be billed in this period; move it into the period",),
            notes=(("test period", period.span),),
        )
