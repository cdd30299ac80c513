"""Notice periods: an on-demand price rise is announced before it takes effect.

A plan version raises a price when any price of a charge outside a `during`
window (its default price, a `where` filter's, its minimum spend) is higher
than the same price of the version before it (same charge, same filter, same
place in the price: table row, tier, fee). Spot prices (`during` windows) are
exempt; a price whose shape changed (a standard price become tiers) is not
compared. The rise must take effect at least the notice period after it is
introduced: 30 days unless the plan, or a contract it reaches, says
`notice N days` (the longest of those applies). A new version reaches the
contracts that pin no version and are under no commitment: a contract under a
commitment keeps the version in effect on its start day (under_commitment).

A price raised in place, inside a version the base has with the same id and
`effective` date (or inside an unversioned plan), is a retroactive rise when
that version is in effect, or takes effect, before its notice period ends: it
is flagged at the charge's clause with the earliest day a new version with
that price may take effect.

`gpubill diff` measures the notice from the head commit's date
(gpubill.service.notice); `gpubill check` checks the clause's unit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import attrs

from gpubill.dsl import ast, units
from gpubill.dsl.ast import under_commitment
from gpubill.dsl.diagnostics import Diagnostic, error, warning
from gpubill.dsl.resolve import Catalog

DEFAULT_NOTICE_DAYS = 30
DAY = units.lookup("day")


@attrs.frozen
class Violation:
    """A price rise that takes effect sooner than its notice period allows."""

    plan: ast.Plan
    raised: tuple[ast.Charge, ...]  # the charges whose price rises
    notice_days: int
    introduced: dt.date
    earliest: dt.date  # the first day it may take effect
    in_place: bool = False  # raised inside a version that already existed

    @property
    def span(self) -> ast.Span | None:
        if self.in_place:
            return self.raised[0].span
        return self.plan.version.effective_from.span  # a compared new version has an `effective` date

    def message(self) -> str:
        charges = ", ".join(_charge_key(c) for c in self.raised)
        if self.in_place:
            since = _from(self.plan)
            effect = ("it is in effect already" if since is None or since <= self.introduced
                      else f"it takes effect {since.isoformat()}")
            return (f"{_version_name(self.plan)} raises the price of {charges} in place, a retroactive rise: "
                    f"{effect}, introduced {self.introduced.isoformat()}")
        return (
            f"{_version_name(self.plan)} raises the price of {charges} with less than {self.notice_days} days' "
            f"notice: it takes effect {_from(self.plan).isoformat()}, introduced {self.introduced.isoformat()}"
        )

    def hint(self) -> str:
        if self.in_place:
            return (f"keep this price and add a new version with the new one, effective "
                    f"{self.earliest.isoformat()} or later")
        return f"take effect on {self.earliest.isoformat()} or later"


def check_notice(cat: Catalog) -> Iterator[Diagnostic]:
    for block in [*(p for vs in cat.plans.values() for p in vs), *cat.contracts.values()]:
        if block.notice is not None and notice_days(block.notice) is None:
            yield error(
                "unit-mismatch", "a notice period is a whole number of days", block.notice.span,
                hints=("write it in days, e.g. notice 30 days",),
            )


def check_notice_period(cat: Catalog, today: dt.date) -> Iterator[Diagnostic]:
    """`gpubill check`'s view: a version not yet in effect is introduced today (the versions already in
    effect are the base); a price rise among them that takes effect within its notice period is flagged."""
    base = attrs.evolve(cat, plans={name: tuple(p for p in vs if _from(p) is None or _from(p) <= today)
                                    for name, vs in cat.plans.items()})
    for v in violations(cat, today, base):
        yield warning("notice-period", v.message(), v.span, hints=(v.hint(),))


def violations(cat: Catalog, introduced: dt.date, base: Catalog) -> Iterator[Violation]:
    """Price rises of `cat`, new or changed since `base`, introduced on `introduced`, that take effect too soon:
    a new version (or one whose `effective` date moved) against the version before it, a version the base
    has on the same day against itself there."""
    for name, versions in cat.plans.items():
        before = {_version_id(p): p for p in base.plans.get(name, ())}
        ordered = sorted((p for p in versions if _from(p) is not None), key=_from)
        previous = dict(zip(map(id, ordered[1:]), ordered))
        for p in versions:
            old = before.get(_version_id(p))
            if old is not None and _from(old) == _from(p):
                if old != p:
                    yield from _too_soon(old, p, _required_days(cat, p, _billed_by(p)), introduced, in_place=True)
            elif id(p) in previous:
                yield from _too_soon(previous[id(p)], p, _required_days(cat, p, _follows_versions), introduced)


def _too_soon(prev: ast.Plan, p: ast.Plan, days: int, introduced: dt.date, in_place: bool = False):
    raised = raised_charges(prev, p)
    earliest = introduced + dt.timedelta(days=days)
    since = _from(p)
    if raised and (since is None or since < earliest):
        yield Violation(p, raised, days, introduced, earliest, in_place)


def _version_id(p: ast.Plan) -> str | None:
    return p.version.id if p.version is not None else None


def raised_charges(prev: ast.Plan, p: ast.Plan) -> tuple[ast.Charge, ...]:
    """The charges of `p` with an on-demand price higher than in `prev`."""
    before = {_charge_key(c): _prices(c) for c in prev.charges}
    out = []
    for c in p.charges:
        old = before.get(_charge_key(c))
        if old is not None and any(k in old and v > old[k] for k, v in _prices(c).items()):
            out.append(c)
    return tuple(out)


def notice_days(q: ast.Quantity) -> int | None:
    """A notice period in whole days, or None when it is not one."""
    u = units.lookup(q.unit)
    if u is None or not u.compatible(DAY):
        return None
    days = q.value * u.scale / DAY.scale
    return int(days) if days == days.to_integral_value() and days >= 0 else None


def _required_days(cat: Catalog, p: ast.Plan, reached) -> int:
    """The longest notice owed: the plan's (else 30 days), or that of a contract on its plan that
    `reached(contract)` says the change reaches."""
    own = _days(p.notice)
    days = own if own is not None else DEFAULT_NOTICE_DAYS
    for c in cat.contracts.values():
        if c.plan is not None and c.plan.name.name == p.name.name and reached(c):
            days = max(days, _days(c.notice) or 0)
    return days


def _follows_versions(c: ast.Contract) -> bool:
    """A new version reaches a contract that pins none and is under no commitment."""
    return c.plan.version is None and not under_commitment(c)


def _billed_by(p: ast.Plan):
    """A change inside version `p` reaches every contract on its plan that pins no other version."""
    return lambda c: c.plan.version in (None, _version_id(p))


def _version_name(p: ast.Plan) -> str:
    return f"plan {p.name.name}" + (f" version {p.version.id}" if p.version is not None else "")


def _days(q: ast.Quantity | None) -> int | None:
    return notice_days(q) if q is not None else None


def _from(p: ast.Plan) -> dt.date | None:
    v = p.version
    value = v.effective_from.value if v and v.effective_from else None
    return value.date() if isinstance(value, dt.datetime) else value


def _charge_key(c: ast.Charge) -> str:
    return (c.label or c.metric).name


def _prices(c: ast.Charge) -> dict[tuple, Decimal]:
    """Every number of the charge's on-demand prices, by where it is written."""
    out = dict(_numbers(("price",), c.price))
    for f in c.filters:
        out.update(_numbers(("where", f.condition), f.price))
    if c.minimum_spend is not None:
        out[("minimum",)] = c.minimum_spend.value
    return out


def _numbers(path: tuple, node) -> Iterator[tuple[tuple, Decimal]]:
    if isinstance(node, tuple):
        for i, x in enumerate(node):
            key = x.value.value if isinstance(x, ast.TableRow) else i  # a table row by its value
            yield from _numbers((*path, key), x)
        return
    if not attrs.has(type(node)):
        if isinstance(node, Decimal):
            yield path, node
        return
    for f in attrs.fields(type(node)):
        if f.name not in ("span", "text"):
            yield from _numbers((*path, type(node).__name__, f.name), getattr(node, f.name))
