"""One contract's subscription in one billing period, resolved once.

`resolve_subscription(catalog, contract, period_text) -> Resolved` decides,
once, what the calendar decides about a subscription: the plan version that
prices it, its timezone, its billing period and the instants it starts and
ends. Compile, rating, explain, the demo and the tests take these as values
from here; nothing downstream decides them again.

The rule (docs/language.md, Plan versions): a contract that pins a version
is billed by it. A contract under a commitment (a `commit` or `reserve`
term) that pins none is billed, for its whole term, by the version in effect
on its start day, even past that version's `to` date: the commitment keeps
its prices. Otherwise a contract is billed by the version in effect on the
*deciding day*: the version with the latest `effective` date on or before
that day, unless its `to` date (the last day it is in effect) is before the
day: then no version is, a CompileError that says why. The deciding day is
the first day of the period on which the subscription is billed, that is the
period's first day, or the contract's start date when the contract starts
inside the period (Lago bills a subscription by the plan it has when it
starts), or the contract's last day when it ended before the period. Days are
local to the subscription's timezone: the contract's, else the version's,
else its entity's, else UTC.

A version shapes the period it is decided on (its billing interval, anchor
and timezone), so the decision is a fixed point: a first guess from the day
the `--period` names (or the contract's start, when later), the period that
guess bills, and the version in effect on that period's deciding day; when
that is another version, once more with it. Two versions that each send the
decision to the other (monthly and quarterly billing around the change, say)
are an error, never a silent choice. Pure: no clock, no I/O.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import attrs

from gpubill.dsl import ast
from gpubill.dsl.resolve import Catalog
from gpubill.engine.calendar.period import Period, parse_period_arg, resolve_period, start_of, to_ms
from gpubill.engine.spec.compile import DEFAULT_CURRENCY, CompileError, when_ms


@attrs.frozen
class Resolved:
    """A contract's subscription in one period, with everything the calendar decides."""

    contract: ast.Contract
    plan: ast.Plan  # the version in effect
    timezone: str
    period: Period
    started_ms: int | None  # the contract's first instant
    terminated_ms: int | None  # its last instant (inclusive)
    decided_on: dt.date  # the local day whose version is in effect

    @property
    def currency(self) -> str:
        return self.plan.currency.name if self.plan.currency else DEFAULT_CURRENCY

    @property
    def active(self) -> bool:
        """The contract covers at least one instant of the period."""
        starts_after = self.started_ms is not None and self.started_ms > self.period.to_ms
        ended_before = self.terminated_ms is not None and self.terminated_ms < self.period.from_ms
        return not (starts_after or ended_before)


class OfResolved:
    """What the calendar decided about a subscription, read through
    ``self.resolved`` (a ``Resolved``): for the classes that carry one."""

    @property
    def contract(self) -> ast.Contract:
        return self.resolved.contract

    @property
    def plan(self) -> ast.Plan:
        """The plan version that prices the subscription (the one ``Resolved`` decided)."""
        return self.resolved.plan

    @property
    def period(self) -> Period:
        return self.resolved.period

    @property
    def timezone(self) -> str:
        return self.resolved.timezone

    @property
    def currency(self) -> str:
        return self.resolved.currency


PeriodArg = tuple  # a classified `--period`: ("month" | "date" | "range", value), as parse_period_arg returns


def resolve_subscription(catalog: Catalog, contract: ast.Contract, period: str | PeriodArg) -> Resolved:
    """The subscription of `contract` in the period `period` names: a
    `--period` text, or its classified form (a test block's period).

    Raises ValueError for a malformed period, CompileError for a contract no
    version can bill in that period."""
    kind, value = parse_period_arg(period) if isinstance(period, str) else period
    guess_day = _named_day(kind, value)
    start, end = _day(contract.starts), _day(contract.ends)
    day = max(guess_day, start) if start else guess_day
    guess = version_on(catalog, contract, min(day, end) if end else day)
    first = _billed_by(catalog, contract, kind, value, guess)
    if first.plan is guess:
        return first
    second = _billed_by(catalog, contract, kind, value, first.plan)
    if second.plan is first.plan:
        return second
    raise CompileError(
        f'plan "{guess.name.name}": versions {_version_id(guess)} and {_version_id(first.plan)} bill '
        f"different periods around {_named_day(kind, value)}, so neither is in effect on the other's first day; "
        "name the period as a month or a date range, or pin a version in the contract")


def _billed_by(catalog: Catalog, contract: ast.Contract, kind: str, value, plan: ast.Plan) -> Resolved:
    """The period `plan` would bill, holding the version in effect on that period's deciding day."""
    tz = timezone_of(catalog, contract, plan)
    started, terminated = contract_bounds(contract, tz)
    billing = plan.billing
    interval = billing.interval if billing else "monthly"
    anchor = (billing.anchor or "calendar") if billing else "calendar"
    period = resolve_period(kind, value, interval, anchor, tz, _day(contract.starts))
    first_billed_ms = period.from_ms if started is None else max(period.from_ms, started)
    if terminated is not None:
        first_billed_ms = min(first_billed_ms, terminated)  # ended before the period: its last day decides
    day = _local_date(first_billed_ms, tz)
    return Resolved(contract, version_on(catalog, contract, day), tz, period, started, terminated, day)


def version_on(catalog: Catalog, contract: ast.Contract, day: dt.date) -> ast.Plan:
    """The plan version that prices `contract` on local day `day`: the pinned one; under a commitment,
    the one in effect on the contract's start day; else the latest in effect on `day`."""
    ref = contract.plan
    if ref is None:
        raise CompileError(f'contract "{contract.name.name}" names no plan')
    versions = catalog.plans.get(ref.name.name)
    if not versions:
        raise CompileError(f'unknown plan "{ref.name.name}"')
    if ref.version is not None:
        plan = catalog.plan_version(ref)
        if plan is None:
            raise CompileError(f'plan "{ref.name.name}" has no version {ref.version}')
        return plan
    committed_on = _day(contract.starts) if ast.under_commitment(contract) else None
    day = committed_on or day
    started = [v for v in versions if _starts_by(v, day)]
    if not started:
        first = min(versions, key=_effective_from)
        raise CompileError(f'no version of plan "{ref.name.name}" is in effect on {day}: '
                           f"its first version takes effect on {first.version.effective_from.text}")
    latest = max(started, key=lambda v: (_effective_from(v) or dt.date.min))
    if _ended_before(latest, day):
        raise CompileError(f'no version of plan "{ref.name.name}" is in effect on {day}: version '
                           f"{latest.version.id} is in effect only to {latest.version.effective_to.text} and no later "
                           "version takes effect by then; add a version for these days, or end the contract")
    return latest


def _starts_by(plan: ast.Plan, day: dt.date) -> bool:
    start = _effective_from(plan)
    return start is None or start <= day


def _ended_before(plan: ast.Plan, day: dt.date) -> bool:
    """`effective ... to TO`: TO is the last day the version is in effect (inclusive, like `ends`)."""
    last = _day(plan.version.effective_to) if plan.version is not None else None
    return last is not None and last < day


def _effective_from(plan: ast.Plan) -> dt.date | None:
    return _day(plan.version.effective_from) if plan.version is not None else None


def _day(when: ast.When | None) -> dt.date | None:
    """The date a `When` names (a date-time's own date); None when absent or invalid."""
    if when is None or when.value is None:
        return None
    return when.value.date() if isinstance(when.value, dt.datetime) else when.value


def _version_id(plan: ast.Plan) -> str:
    return str(plan.version.id) if plan.version is not None else "(unversioned)"


def timezone_of(catalog: Catalog, contract: ast.Contract, plan: ast.Plan) -> str:
    """The contract's timezone, else the plan version's, else its entity's, else UTC."""
    if contract.timezone is not None:
        return contract.timezone.value
    if plan.timezone is not None:
        return plan.timezone.value
    ent = catalog.entities.get(contract.entity.name) if contract.entity else None
    if ent is not None and ent.timezone is not None:
        return ent.timezone.value
    return "UTC"


def contract_bounds(contract: ast.Contract, tz: str) -> tuple[int | None, int | None]:
    """The contract's first and last instants (ends is inclusive: a date means its whole day)."""
    start = when_ms(contract.starts, tz) if contract.starts is not None else None
    end = None
    if contract.ends is not None and contract.ends.value is not None:
        v = contract.ends.value
        if isinstance(v, dt.datetime):
            end = to_ms(v)
        else:
            end = to_ms(start_of(v + dt.timedelta(days=1), tz)) - 1
    return start, end


def _named_day(kind: str, value) -> dt.date:
    """The day a classified `--period` names: a month's first, the date, a range's start."""
    if kind == "month":
        return dt.date(value[0], value[1], 1)
    day = value if kind == "date" else value[0]
    return day.date() if isinstance(day, dt.datetime) else day


def _local_date(ms: int, tz: str) -> dt.date:
    return dt.datetime.fromtimestamp(ms // 1000, ZoneInfo(tz)).date()
