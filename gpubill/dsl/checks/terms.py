"""Commercial terms: progressive billing thresholds, budgets, commitments, policies.

* Progressive billing thresholds are positive and strictly increasing, with
  at most one `every` (recurring) threshold, as in Lago.
* A budget is positive, and its alerts are above 0% and strictly increasing;
  alerts above 100% are allowed (a warning after the budget is spent).
* A job limit is positive.
* `idle hybrid` needs a `minimum`, and only hybrid takes one; a utilization
  or hybrid policy on a plan with no GPU-time charge (GPUs x time, not
  already weighted by avg_utilization) changes nothing, which is warned about.
* A failure policy is given once per kind of failure. `on user failure no
  charge` is allowed but warned about: users then run their failing jobs free.
"""

from __future__ import annotations

from collections.abc import Iterator

from gpubill.dsl import ast, quantities
from gpubill.dsl.checks.common import contract_plan, plans
from gpubill.dsl.diagnostics import Diagnostic, error, warning
from gpubill.dsl.resolve import Catalog


def check_terms(cat: Catalog) -> Iterator[Diagnostic]:
    for plan in plans(cat):
        if plan.progressive is not None:
            yield from _progressive(plan.progressive)
    for c in cat.contracts.values():
        if c.progressive is not None:
            yield from _progressive(c.progressive)
        if c.budget is not None:
            yield from _budget(c.budget)
        if c.job_limit is not None:
            yield from _positive(c.job_limit.amount, "a job limit")
        for cm in c.commits:
            yield from _positive(cm.amount, "a commitment")
        yield from _idle(c.idle)
        yield from _idle_applies(cat, c)
        yield from _failures(c.failure_policies)


def _gpu_time(metric: ast.Metric | None) -> bool:
    """Whether the idle policy reaches this metric (as gpubill.engine.spec.compile applies it)."""
    agg = metric.aggregation if metric is not None else None
    if agg is None or agg.expr is None:
        return False
    dims = dict(quantities.expr_unit(agg.expr).dims)
    props = {p.name for p in quantities.expr_props(agg.expr)}
    return dims.get("gpu") == 1 and dims.get("time") == 1 and "avg_utilization" not in props


def _idle_applies(cat: Catalog, c: ast.Contract) -> Iterator[Diagnostic]:
    if c.idle is None or c.idle.kind == "allocation":
        return
    plan = contract_plan(cat, c)
    if plan is None:
        return
    if not any(_gpu_time(cat.metrics.get(ch.metric.name)) for ch in plan.charges):
        yield warning(
            "idle-not-applicable",
            f'idle {c.idle.kind} billing changes nothing: plan "{plan.name.name}" charges no GPU time',
            c.idle.span,
            hints=("idle policies weigh metrics of gpu_count x duration_seconds by avg_utilization; "
                   "remove the clause or move the contract to a plan that charges GPU time",),
        )


def _positive(a: ast.Amount, what: str) -> Iterator[Diagnostic]:
    if a.value == 0:
        yield error("not-positive", f"{what} must be greater than zero", a.span)


def _progressive(p: ast.Progressive) -> Iterator[Diagnostic]:
    for a in (*p.thresholds, *p.every):
        yield from _positive(a, "a threshold")
    for prev, t in zip(p.thresholds, p.thresholds[1:]):
        if t.value <= prev.value:
            yield error(
                "threshold-order",
                f"threshold {t.text} is not above the one before it ({prev.text})",
                t.span,
                hints=("list thresholds from the smallest to the largest, each once",),
                notes=(("previous threshold", prev.span),),
            )
    for extra in p.every[1:]:
        yield error(
            "threshold-every",
            "progressive billing takes at most one `every` threshold",
            extra.span,
            hints=("keep one `every` threshold; list fixed thresholds without `every`",),
            notes=(("first `every`", p.every[0].span),),
        )


def _budget(b: ast.Budget) -> Iterator[Diagnostic]:
    yield from _positive(b.amount, "a budget")
    for a in b.alerts:
        if a.value <= 0:
            yield error("percent-range", f"an alert at {a.value}% would fire before any spend", a.span,
                        hints=("alerts are above 0%, e.g. 50%, 80%, 100%",))
    for prev, a in zip(b.alerts, b.alerts[1:]):
        if a.value <= prev.value:
            yield error(
                "alert-order",
                f"alert at {a.value}% is not above the one before it ({prev.value}%)",
                a.span,
                hints=("list alerts from the lowest to the highest, each once: alert at 50%, 80%, 100%",),
                notes=(("previous alert", prev.span),),
            )


def _idle(idle: ast.IdlePolicy | None) -> Iterator[Diagnostic]:
    if idle is None:
        return
    if idle.kind == "hybrid" and idle.minimum is None:
        yield error(
            "idle-minimum",
            "hybrid idle billing needs a minimum utilization",
            idle.span,
            hints=("add it: idle hybrid minimum 30%",),
        )
    elif idle.kind != "hybrid" and idle.minimum is not None:
        yield error(
            "idle-minimum",
            f"only hybrid idle billing takes a minimum; {idle.kind} billing has none",
            idle.minimum.span,
            hints=(f"drop `minimum {idle.minimum.value}%`, or use `idle hybrid minimum {idle.minimum.value}%`",),
        )


def _failures(policies: tuple[ast.FailurePolicy, ...]) -> Iterator[Diagnostic]:
    seen: dict[str, ast.FailurePolicy] = {}
    for f in policies:
        if f.kind in seen:
            yield error(
                "duplicate-clause",
                f'"on {f.kind} failure" is given twice in this contract',
                f.span,
                hints=("keep one of them",),
                notes=(("first given", seen[f.kind].span),),
            )
        else:
            seen[f.kind] = f
        if f.kind == "user" and f.action == "no_charge":
            yield warning(
                "user-failure-no-charge",
                "jobs that fail in the user's own code are not charged",
                f.span,
                hints=("usual policy: on user failure charge actual usage (waive infrastructure failures only)",),
            )
