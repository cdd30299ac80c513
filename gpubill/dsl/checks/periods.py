"""Dates that must come in order: windows, plan versions, contract terms.

* `ends` is not before `starts`; a credit does not expire before its contract
  starts; a window and a test period end after they start; a version's
  `effective ... to` (its last day, inclusive) is not before its `effective`
  date (rule `date-order`).
* The price windows of one charge do not overlap, hold one price each (not a
  `by` table), and should lie inside the plan version's effective range.
* Plan versions do not overlap in time; a contract starts when its plan (or
  the version it pins) is in effect, and a contract on the version in effect
  finds one on every day of its term (no gap, no last version's `to` date
  before the contract ends).
* Two contracts that bill one subscription do not overlap in time: on a day
  both cover, its events would be billed twice (rule `subscription-overlap`).

Dates without a time are compared as midnight UTC: good enough to order them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from gpubill.dsl import ast
from gpubill.dsl.checks.common import end_instant, instant, version_ranges
from gpubill.dsl.diagnostics import Diagnostic, error, warning
from gpubill.dsl.resolve import Catalog


def check_periods(cat: Catalog) -> Iterator[Diagnostic]:
    for versions in cat.plans.values():
        yield from _versions(versions)
        ranges = version_ranges(versions)
        for p in versions:
            for ch in p.charges:
                yield from _windows(p, ch, ranges[id(p)])
    for c in cat.contracts.values():
        yield from _contract(cat, c)
    yield from _shared_subscriptions(cat.contracts.values())
    for t in cat.tests:
        if t.period is not None and t.period.start is not None and t.period.end is not None:
            yield from _order(t.period.start, t.period.end, "the test period", strict=True)


def _order(start: ast.When, end: ast.When, what: str, strict: bool, start_word="starts") -> Iterator[Diagnostic]:
    """`strict`: the end is exclusive and must be after the start; else the end is
    inclusive (a date means its whole day) and must not be before the start."""
    a, b = instant(start), instant(end)
    if a is None or b is None:
        return
    if strict and b <= a or not strict and end_instant(end) <= a:
        yield error(
            "date-order",
            f"{what} ends ({end.text}) {'before' if b < a or not strict else 'when'} it {start_word} ({start.text})",
            end.span,
            hints=(f"the end must come after {start.text}",),
            notes=(("start", start.span),),
        )


def _versions(versions: tuple[ast.Plan, ...]) -> Iterator[Diagnostic]:
    for p in versions:
        v = p.version
        if v is not None and v.effective_from is not None and v.effective_to is not None:
            yield from _order(v.effective_from, v.effective_to, f"version {v.id}", strict=False, start_word="takes effect")
    if len(versions) < 2:
        return
    bare = [p for p in versions if p.version is None]
    if bare:
        yield error(
            "version-overlap",
            f'plan "{bare[0].name.name}" is defined both without a version and with versions',
            bare[0].name.span,
            hints=("give this block a version: plan NAME version 1 effective DATE { ... }",),
            notes=tuple(("version " + p.version.id, p.version.span) for p in versions if p.version),
        )
        return
    ranges = version_ranges(versions)
    ordered = sorted(versions, key=lambda p: (ranges[id(p)][0] is not None, ranges[id(p)][0] or 0))
    for a, b in zip(ordered, ordered[1:]):
        (a_from, a_to), (b_from, _) = ranges[id(a)], ranges[id(b)]
        same_start = a_from == b_from  # both None: both in effect from the beginning
        if same_start or (a_to is not None and b_from is not None and a_to > b_from):
            yield error(
                "version-overlap",
                f'versions {a.version.id} and {b.version.id} of plan "{b.name.name}" are in effect at the same time',
                b.version.span,
                hints=(
                    "give each version its own `effective` date; a version ends when the next takes effect"
                    if same_start
                    else f"end version {a.version.id} by {b.version.effective_from.text}",
                ),
                notes=((f"version {a.version.id}", a.version.span),),
            )


def _windows(plan: ast.Plan, ch: ast.Charge, rng) -> Iterator[Diagnostic]:
    spans = []
    for w in ch.windows:
        if isinstance(w.price, ast.PriceTable):
            yield error(
                "window-table",
                "a price window takes one price, not a `by` table",
                w.price.span,
                hints=("give the window one price, e.g. 1.20 per hour, and a filter for the rest",),
            )
        a, b = instant(w.start), instant(w.end)
        yield from _order(w.start, w.end, "this window", strict=True)
        if a is None or b is None or b <= a:
            continue
        for (pa, pb, pw) in spans:
            if a < pb and pa < b:
                yield error(
                    "window-overlap",
                    f"window {w.start.text} .. {w.end.text} overlaps window {pw.start.text} .. {pw.end.text}",
                    w.start.span,
                    hints=(f"start this window at {pw.end.text} or later",) if a >= pa else ("make the windows disjoint",),
                    notes=(("other window", pw.span),),
                )
                break
        spans.append((a, b, w))
        v_from, v_to = rng
        if plan.version is not None and ((v_from is not None and b <= v_from) or (v_to is not None and a >= v_to)):
            yield warning(
                "window-outside-version",
                f"window {w.start.text} .. {w.end.text} lies outside the dates version {plan.version.id} is in effect",
                w.start.span,
                hints=("this price can never apply; move the window into a version in effect at that time",),
                notes=((f"version {plan.version.id}", plan.version.span),),
            )


def _contract(cat: Catalog, c: ast.Contract) -> Iterator[Diagnostic]:
    if c.starts is not None and c.ends is not None:
        yield from _order(c.starts, c.ends, "the contract", strict=False)
    start = instant(c.starts)
    for cr in c.credits:
        if cr.expires is not None and start is not None:
            t = end_instant(cr.expires)
            if t is not None and t <= start:
                yield error(
                    "date-order",
                    f"the credit expires ({cr.expires.text}) before the contract starts ({c.starts.text})",
                    cr.expires.span,
                    hints=("a credit that expires before it can be used is worth nothing",),
                    notes=(("contract start", c.starts.span),),
                )
    if c.plan is None or start is None:
        return
    versions = cat.plans.get(c.plan.name.name, ())
    if not versions:
        return
    ranges = version_ranges(versions)
    if c.plan.version is not None:
        pinned = cat.plan_version(c.plan)
        if pinned is None:
            return
        v_from, v_to = ranges[id(pinned)]
        if v_from is not None and start < v_from:
            yield _not_effective(c, pinned, f"version {pinned.version.id} takes effect on {pinned.version.effective_from.text}")
        elif pinned.version.effective_to is not None and v_to is not None and start >= v_to:
            yield _not_effective(c, pinned, f"version {pinned.version.id} ended on {pinned.version.effective_to.text}")
        return
    froms = [ranges[id(p)][0] for p in versions]
    if froms and all(f is not None for f in froms) and start < min(froms):
        first = min(versions, key=lambda p: ranges[id(p)][0])
        yield _not_effective(c, first, f"its first version takes effect on {first.version.effective_from.text}")
    elif ast.under_commitment(c) or c.ends is None or end_instant(c.ends) is not None:
        gap = _first_uncovered(ranges.values(), start, _priced_until(c, start))
        if gap is not None:
            last = max((p for p in versions if ranges[id(p)][1] is not None and ranges[id(p)][1] <= gap),
                       key=lambda p: ranges[id(p)][1])
            yield _runs_past(c, last, gap)


def _priced_until(c: ast.Contract, start: dt.datetime) -> dt.datetime | None:
    """The end of the days a version must cover: the term's, or only the start day's instant for a contract
    under a commitment, which keeps that day's version for its whole term (engine/spec/subscription.version_on)."""
    return start + dt.timedelta(microseconds=1) if ast.under_commitment(c) else end_instant(c.ends)


def _first_uncovered(ranges, start: dt.datetime, end: dt.datetime | None) -> dt.datetime | None:
    """The first instant of [start, end) (end None: no end) that no [from, to) range covers."""
    cursor = start
    for lo, hi in sorted(ranges, key=lambda r: (r[0] is not None, r[0] or start)):
        if lo is not None and lo > cursor:
            break
        if hi is None:
            return None
        cursor = max(cursor, hi)
    return cursor if end is None or cursor < end else None


def _runs_past(c: ast.Contract, ended: ast.Plan, gap: dt.datetime) -> Diagnostic:
    day = gap.date().isoformat() if gap.time() == dt.time(0) else gap.isoformat()
    until = f"until {c.ends.text}" if c.ends is not None else "with no end"
    return error(
        "plan-not-effective",
        f'plan "{ended.name.name}" has no version in effect from {day}, but the contract runs {until}',
        c.plan.span,
        hints=(f"add a version effective {day}, or end the contract before {day}",),
        notes=((f"version {ended.version.id}, in effect to {ended.version.effective_to.text}"
                if ended.version.effective_to is not None else f"version {ended.version.id}", ended.version.span),),
    )


def _not_effective(c: ast.Contract, plan: ast.Plan, why: str) -> Diagnostic:
    return error(
        "plan-not-effective",
        f'the contract starts on {c.starts.text}, but plan "{plan.name.name}" is not in effect then: {why}',
        c.starts.span,
        hints=("start the contract later, or pin a version in effect on its start date",),
        notes=(("plan version", plan.version.span if plan.version else plan.name.span),),
    )


def _shared_subscriptions(contracts) -> Iterator[Diagnostic]:
    """The contract that starts later (of two on one day, the later in the source) is the one shown."""
    by_subscription: dict[str, list[ast.Contract]] = {}
    for c in contracts:
        if c.subscription is not None and instant(c.starts) is not None and (c.ends is None or end_instant(c.ends)):
            by_subscription.setdefault(c.subscription.value, []).append(c)
    for terms in by_subscription.values():
        terms.sort(key=lambda c: (instant(c.starts), *((c.span.path, c.span.line, c.span.col) if c.span else ())))
        for i, c in enumerate(terms):
            first = next((a for a in terms[:i] if a.ends is None or end_instant(a.ends) > instant(c.starts)), None)
            if first is not None:
                yield _overlap(first, c)


def _overlap(first: ast.Contract, second: ast.Contract) -> Diagnostic:
    term = f"from {first.starts.text}" + (f" to {first.ends.text}" if first.ends else " (no end)")
    return error(
        "subscription-overlap",
        f'contracts "{first.name.name}" and "{second.name.name}" both bill subscription '
        f'"{second.subscription.value}" on {second.starts.text}: its events would be billed twice',
        second.subscription.span,
        hints=(f'end contract "{first.name.name}" before {second.starts.text}, or give this contract its own '
               "subscription id",),
        notes=((f'contract "{first.name.name}" bills it {term}', first.subscription.span),),
    )
