"""Budgets and per-job limits: which alerts an amount fires.  Pure.

Receives a contract's ``budget AMOUNT, alert at P%, ...`` with what the
period has spent so far and the thresholds that already fired this period,
or its ``job limit AMOUNT`` with one job's cost; returns the alerts to fire
now, lowest threshold first.  A budget without ``alert at`` fires at 100 %.
A threshold fires when the spend reaches it (spend >= budget × P / 100); a
job limit when a job's cost exceeds it.  Amounts are compared exactly (no
rounding: the limit at P % is the exact product).
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

import attrs

from gpubill.dsl import ast
from gpubill.engine.pricing.money import round_amount
from gpubill.engine.spec.program import MoneyRounding

BUDGET = "budget"
JOB_LIMIT = "job_limit"
DEFAULT_ALERTS = (Decimal(100),)
HUNDRED = Decimal(100)
PERCENT_QUANTUM = Decimal("0.01")  # how the share of the budget at firing is shown


@attrs.frozen
class Crossing:
    """One alert to fire: ``threshold`` is ``"80%"`` for a budget, the job
    event's transaction id for a job limit; ``limit`` the amount it was
    compared with, ``amount`` the spend (or the job's cost) that fired it."""

    kind: str
    threshold: str
    limit: Decimal
    amount: Decimal
    percent: Decimal  # amount as a percentage of the budget (of the job limit), floored to 0.01

    def as_dict(self) -> dict:
        return {"kind": self.kind, "threshold": self.threshold, "limit": str(self.limit),
                "amount": str(self.amount), "percent": str(self.percent)}


def percents(budget: ast.Budget) -> tuple[Decimal, ...]:
    """The budget's alert percentages, in order (100 % when it names none)."""
    return tuple(a.value for a in budget.alerts) or DEFAULT_ALERTS


def threshold_label(percent: Decimal) -> str:
    """How a budget threshold is named: ``50%``, ``12.5%``."""
    return f"{_plain(percent)}%"


def budget_crossings(budget: ast.Budget, spend: Decimal, fired: frozenset[str] = frozenset()) -> list[Crossing]:
    """The thresholds ``spend`` reaches that have not fired yet, lowest first."""
    total = budget.amount.value
    out = []
    for p in percents(budget):
        label = threshold_label(p)
        limit = total * p / HUNDRED
        if spend >= limit and label not in fired:
            out.append(Crossing(BUDGET, label, limit, spend, share(spend, total)))
    return out


def job_crossing(limit: ast.JobLimit, transaction_id: str, cost: Decimal) -> Crossing | None:
    """The alert a job whose own cost is ``cost`` fires, if it exceeds the limit."""
    if cost <= limit.amount.value:
        return None
    return Crossing(JOB_LIMIT, transaction_id, limit.amount.value, cost, share(cost, limit.amount.value))


def share(amount: Decimal, of: Decimal) -> Decimal:
    """``amount`` as a percentage of ``of``, floored to 0.01 (never shown as reached before it is)."""
    return round_amount(amount * HUNDRED / of, MoneyRounding(ROUND_FLOOR, PERCENT_QUANTUM))


def _plain(d: Decimal) -> str:
    return format(d.normalize(), "f")
