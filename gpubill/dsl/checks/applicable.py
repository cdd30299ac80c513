"""Contract terms that no invoice could apply: caught here, so that invoicing never meets them.

A contract is billed by every plan version in effect on a day of its term
(the pinned one, if it pins one), and each term must make sense on each:

* A reservation needs a charge on its metric in every such version
  (`reserve-not-charged`; the version a contract is checked against is
  reported by gpubill.dsl.checks.references), a charge that prices its GPU
  type (not only a `by gpu_type` table's unpriced default bucket), and a
  rate per unit of GPU time: it bills COUNT GPUs for every hour of the period.
* A commitment needs fees to count towards it (a plan `fee` or a charge); a
  commitment per term, or one trued up at term end, needs the contract's
  `ends`; a window shorter than the billing period cannot be settled, and
  `true-up each period` cannot settle a window longer than the period.

A GPU type or rate the metric cannot see at all is reported by the filters and
quantities checks (`unknown-value`, `unknown-dimension`, `unit-mismatch`);
amounts in another currency by the currencies check (`currency-mismatch`);
a `for CHARGE` naming no charge by the references check (`unknown-charge`).
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

from gpubill.dsl import ast, units
from gpubill.dsl.checks.common import (
    charge_prices, contract_plan, dimensions, end_instant, instant, metric_unit, version_ranges,
)
from gpubill.dsl.diagnostics import Diagnostic, did_you_mean, error
from gpubill.dsl.resolve import Catalog

GPU_TYPE = "gpu_type"

#: Length in months of a billing interval and of a commitment window (a term is longer than any).
INTERVAL_MONTHS = {"weekly": Fraction(1, 4), "monthly": Fraction(1), "quarterly": Fraction(3), "yearly": Fraction(12)}
WINDOW_MONTHS = {"month": Fraction(1), "quarter": Fraction(3), "year": Fraction(12), "term": Fraction(10**9)}


def check_applicable(cat: Catalog) -> Iterator[Diagnostic]:
    for c in cat.contracts.values():
        versions = billed_versions(cat, c)
        for r in c.reserves:
            yield from _reservation(cat, c, r, versions)
        for cm in c.commits:
            yield from _commitment(c, cm, versions)


def billed_versions(cat: Catalog, c: ast.Contract) -> tuple[ast.Plan, ...]:
    """The plan versions a contract can be billed by: the pinned one, else every
    version in effect on some day of its term (all of them if the term is unknown)."""
    if c.plan is None:
        return ()
    if c.plan.version is not None:
        pinned = cat.plan_version(c.plan)
        return (pinned,) if pinned is not None else ()
    versions = tuple(cat.plans.get(c.plan.name.name, ()))
    start, end = instant(c.starts), end_instant(c.ends)
    ranges = version_ranges(versions)

    def in_term(p: ast.Plan) -> bool:
        v_from, v_to = ranges[id(p)]
        return (start is None or v_to is None or start < v_to) and (end is None or v_from is None or v_from < end)

    return tuple(p for p in versions if in_term(p))


def _version_name(p: ast.Plan) -> str:
    return f'plan "{p.name.name}"' + (f" version {p.version.id}" if p.version else "")


def _version_note(p: ast.Plan) -> tuple[str, ast.Span | None]:
    return ("plan version", p.version.span) if p.version else ("plan", p.name.span)


# ---------------------------------------------------------------- reservations


def _reservation(cat: Catalog, c: ast.Contract, r: ast.Reserve, versions) -> Iterator[Diagnostic]:
    m = cat.metrics.get(r.metric.name)
    if m is None:  # unknown-metric
        return
    checked = contract_plan(cat, c)
    if checked is None or not any(ch.metric.name == r.metric.name for ch in checked.charges):
        return  # reserve-not-charged (the references check) comes first
    yield from _reserve_unit(m, r)
    for p in versions:
        charges = [ch for ch in p.charges if ch.metric.name == r.metric.name]
        if not charges:
            yield _not_charged(r, p)
            return
        if _sees_gpu_type(m, r) and not _priced(c, charges, r.gpu_type.value):
            yield _unpriced_gpu_type(r, p, charges)
            return


def _reserve_unit(m: ast.Metric, r: ast.Reserve) -> Iterator[Diagnostic]:
    mu, ru = metric_unit(m), units.lookup(r.unit.name)
    if mu is None or ru is None or not ru.compatible(mu):  # unknown-unit or unit-mismatch says it
        return
    if ru.hard_dims != (("time", 1),):
        yield error(
            "reserve-unit",
            f"a reservation is priced per GPU-hour (a unit of time), not per {r.unit.name}",
            r.unit.span,
            hints=(
                f'a reservation bills {r.count.text} GPUs for every hour of the period; reserve on a metric of '
                "GPU time (sum gpu_count * duration_seconds) at a price per GPU-hour",
            ),
            notes=(("metric", m.name.span),),
        )


def _not_charged(r: ast.Reserve, p: ast.Plan) -> Diagnostic:
    return error(
        "reserve-not-charged",
        f'{_version_name(p)}, which bills part of this contract\'s term, has no charge on metric "{r.metric.name}"',
        r.metric.span,
        hints=(f'add a charge on {r.metric.name} to that version, or pin a version that has one: plan NAME version ID',),
        notes=(_version_note(p),),
    )


def _sees_gpu_type(m: ast.Metric, r: ast.Reserve) -> bool:
    """Whether the metric can carry the reserved GPU type (else the filters check reports it)."""
    d = dimensions(m).get(GPU_TYPE)
    return d is not None and (d.values is None or r.gpu_type.value in {v.value for v in d.values})


def _admits(price: ast.Price, gpu_type: str) -> bool:
    """Whether a price gives the GPU type a price: a `by gpu_type` table only its rows."""
    if isinstance(price, ast.PriceTable) and price.dimension.name == GPU_TYPE:
        return any(row.value.value == gpu_type for row in price.rows)
    return True


def _matches(cond: ast.Condition | None, gpu_type: str) -> bool:
    if cond is None:
        return True
    return all(gpu_type in {v.value for v in m.values} for m in cond.matches if m.key.name == GPU_TYPE)


def _priced(c: ast.Contract, charges: list[ast.Charge], gpu_type: str) -> bool:
    """Whether some bucket of the charges prices usage of the GPU type: a default bucket or
    window whose price admits it, or a filter or override of the contract whose condition and
    price do (an unconditional override that is not a table prices every type)."""
    keys = {ch.key for ch in charges}
    plain = [ch.price for ch in charges] + [w.price for ch in charges for w in ch.windows]
    filtered = [(f.condition, f.price) for ch in charges for f in ch.filters]
    filtered += [(o.condition, o.price) for o in c.overrides if o.charge.name in keys]
    return any(_admits(price, gpu_type) for price in plain) or any(
        _matches(cond, gpu_type) and _admits(price, gpu_type) for cond, price in filtered
    )


def _named_gpu_types(charges) -> set[str]:
    out: set[str] = set()
    for ch in charges:
        for price in charge_prices(ch):
            if isinstance(price, ast.PriceTable) and price.dimension.name == GPU_TYPE:
                out.update(row.value.value for row in price.rows)
        for f in ch.filters:
            out.update(v.value for m in f.condition.matches if m.key.name == GPU_TYPE for v in m.values)
    return out


def _unpriced_gpu_type(r: ast.Reserve, p: ast.Plan, charges) -> Diagnostic:
    named = _named_gpu_types(charges)
    hints = did_you_mean(r.gpu_type.value, named)
    if named:
        listed = ", ".join(f'"{q}"' for q in sorted(named))
        hints += (f"{_version_name(p)} prices {r.metric.name} for: {listed}",)
    hints += (f'or give "{r.gpu_type.value}" an on-demand price: a row "{r.gpu_type.value}" PRICE in the charge\'s table',)
    return error(
        "reserve-gpu-type-unseen",
        f'no charge of {_version_name(p)} prices "{r.gpu_type.value}" on {r.metric.name}: '
        "the usage this reservation covers and the usage above it have no on-demand price",
        r.gpu_type.span,
        hints=hints,
        notes=(_version_note(p),),
    )


# ---------------------------------------------------------------- commitments


def _commitment(c: ast.Contract, cm: ast.Commit, versions) -> Iterator[Diagnostic]:
    feeless = next((p for p in versions if p.fee is None and not p.charges), None)
    if feeless is not None:
        yield error(
            "commit-without-fees",
            f"nothing counts towards this commitment: {_version_name(feeless)} has no fee and no charges",
            cm.span,
            hints=("add a `fee` or a charge to the plan, or drop the commitment",),
            notes=(_version_note(feeless),),
        )
    if c.ends is None and "term" in (cm.per, cm.true_up):
        what = "a commitment per term" if cm.per == "term" else "a true-up at term end"
        yield error(
            "commit-without-end",
            f"{what} is never settled: the contract is open-ended",
            cm.span,
            hints=("add `ends DATE` to the contract, or commit per year (settled at the end of each year)",),
            notes=(("contract", c.name.span),),
        )
    yield from _window(cm, versions)


def _window(cm: ast.Commit, versions) -> Iterator[Diagnostic]:
    window = cm.per or "period"
    for p in versions:
        interval = p.billing.interval if p.billing is not None else None
        if interval not in INTERVAL_MONTHS or window == "period":
            continue
        if WINDOW_MONTHS[window] < INTERVAL_MONTHS[interval]:
            yield error(
                "commit-window",
                f"a commitment per {window} cannot be settled: {_version_name(p)} is billed {interval}, "
                f"and a {window} ends inside a billing period",
                cm.span,
                hints=(f"commit per period (one {interval} period), or bill the plan at most every {window}",),
                notes=(("billing", p.billing.span),),
            )
            return
        if cm.true_up == "period" and WINDOW_MONTHS[window] > INTERVAL_MONTHS[interval]:
            yield error(
                "commit-window",
                f"`true-up each period` cannot settle a commitment per {window}: "
                f"{_version_name(p)} is billed {interval}, and the {window} is not over at a period's end",
                cm.span,
                hints=(
                    f"commit per period to settle every invoice, or drop `true-up each period` "
                    f"to settle at the end of each {window}",
                ),
                notes=(("billing", p.billing.span),),
            )
            return
