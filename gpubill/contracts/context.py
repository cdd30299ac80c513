"""What one invoice knows about its contract and period, decided once.

``Billing`` wraps the engine's ``Resolved`` (the contract's subscription in
one billing period: plan version, timezone, period, first and last instants)
with what the terms need beside it: the billing entity, the days of the
period and the days the contract covers of it (local days, Lago's proration
base), and the currency's minor unit.  Pure: no clock, no I/O.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import attrs

from gpubill.dsl import ast
from gpubill.dsl.currencies import quantum
from gpubill.dsl.resolve import Catalog
from gpubill.engine.pricing.money import round_amount
from gpubill.engine.spec.program import MoneyRounding
from gpubill.engine.spec.subscription import OfResolved, Resolved

ROUND_HALF_UP = "ROUND_HALF_UP"


def local_date(ms: int, tz: str) -> dt.date:
    """The local calendar day of a UTC instant."""
    return dt.datetime.fromtimestamp(ms // 1000, ZoneInfo(tz)).date()


@attrs.frozen
class Billing(OfResolved):
    """One contract's subscription in one billing period, with its entity and days."""

    resolved: Resolved
    catalog: Catalog

    @property
    def entity(self) -> ast.Entity | None:
        ref = self.contract.entity
        return self.catalog.entities.get(ref.name) if ref is not None else None

    @property
    def minor(self) -> MoneyRounding:
        """Half up to the currency's minor unit: Lago's rounding of every amount
        that is not a usage line (fees, true-ups, coupons, taxes, credits)."""
        return MoneyRounding(ROUND_HALF_UP, quantum(self.currency))

    def to_minor(self, value: Decimal) -> Decimal:
        return round_amount(value, self.minor)

    # ------------------------------------------------------------ days

    @property
    def first_day(self) -> dt.date:
        return local_date(self.period.from_ms, self.timezone)

    @property
    def last_day(self) -> dt.date:
        return local_date(self.period.to_ms, self.timezone)

    @property
    def period_days(self) -> int:
        """Calendar days of the full period (Lago's days in period)."""
        return (self.last_day - self.first_day).days + 1

    @property
    def covered_from_ms(self) -> int:
        s = self.resolved.started_ms
        return self.period.from_ms if s is None else max(self.period.from_ms, s)

    @property
    def covered_to_ms(self) -> int:
        t = self.resolved.terminated_ms
        return self.period.to_ms if t is None else min(self.period.to_ms, t)

    @property
    def covered_days(self) -> int:
        """Local days the contract covers of the period, its first and last day included."""
        if self.covered_to_ms < self.covered_from_ms:
            return 0
        return (local_date(self.covered_to_ms, self.timezone) - local_date(self.covered_from_ms, self.timezone)).days + 1

    @property
    def terminates(self) -> bool:
        """The contract's last day falls inside this period (a termination invoice)."""
        t = self.resolved.terminated_ms
        return t is not None and self.period.from_ms <= t < self.period.to_ms

    @property
    def is_last(self) -> bool:
        """This is the last period of the term (the contract ends in it)."""
        t = self.resolved.terminated_ms
        return t is not None and self.period.from_ms <= t <= self.period.to_ms

    @property
    def subscription_id(self) -> str:
        return self.contract.subscription.value

    def clause(self, node) -> str | None:
        """file:line:col of a clause, for a line's explanation."""
        span = getattr(node, "span", None)
        return str(span) if span is not None else None
