"""Rated usage -> charge fee lines, and the automatic policy credits on them.

Each engine line (``RatedLine``) becomes one ``charge`` fee with the clause
that priced it; a charge's pay-in-advance fees (one per event, each rounded
once when it was billed) become one line per filter and group, adding their
rounded amounts.  The contract's failure and preemption policies
(docs/language.md, Failure and preemption policies) add a ``credit`` line per
usage line that counted such jobs: P % of the share of the line's amount that
those jobs' units make (the line's average price), rounded once by the line's
rule, naming the jobs' count and reason.  ``failed_user`` jobs under `charge
actual usage` are billed as used and get no line.
"""

from __future__ import annotations

from decimal import Decimal

from gpubill.contracts.context import Billing
from gpubill.contracts.lines import FeeLine, dimensions_of, reason_number
from gpubill.contracts.spread import ZERO, percent_of
from gpubill.dsl import ast
from gpubill.engine.pricing.fees import FeeBlock
from gpubill.engine.pricing.money import EXACT, round_amount
from gpubill.engine.reference.trace import price_source

FAILED_INFRASTRUCTURE = "failed_infrastructure"
FAILED_USER = "failed_user"
PREEMPTED = "preempted"


def charge_fees(b: Billing, spec, lines, in_advance) -> list[FeeLine]:
    """The charge fee lines of one subscription's rated lines and pay-in-advance
    fee parts (``FeeBlock`` values or lists of ``InAdvanceFee``)."""
    charges = {c.id: c for c in spec.charges}
    out = [_usage_fee(b, charges[ln.charge_id], ln) for ln in lines]
    out += _advance_fees(b, charges, in_advance)
    return out


def _usage_fee(b: Billing, charge, ln) -> FeeLine:
    dims = dimensions_of(ln.filter, ln.group)
    if ln.kind == "min_true_up":
        reason = f"spending minimum of {ln.charge_id}: the charge's lines came to less"
    elif ln.units != ln.full_units:
        reason = f"{reason_number(ln.full_units)} units, {reason_number(ln.units)} after proration by days" + _idle_note(b, charge)
    else:
        reason = f"{reason_number(ln.full_units)} units x {reason_number(ln.unit_price)}" + _idle_note(b, charge)
    return FeeLine("charge", ln.charge_id, _describe(ln.charge_id, dims), reason, ln.full_units, ln.unit_price,
                   ln.precise_amount, ln.amount, b.covered_from_ms, b.covered_to_ms, charge=ln.charge_id,
                   dimensions=dims, clause=price_source(charge, ln), events_count=ln.event_count, kind=ln.kind)


def _advance_fees(b: Billing, charges: dict, parts) -> list[FeeLine]:
    """One line per filter and group of a charge's pay-in-advance fees: their
    sums.  ``parts``: the engine's fee parts of the subscription (``FeeBlock``
    columns, summed without building a fee per event, or lists of fees)."""
    groups: dict = {}
    clauses: dict = {}
    for part in parts:
        for key, fee, sums in _part_sums(part):
            old = groups.get(key, (ZERO, ZERO, ZERO, 0))
            groups[key] = tuple(a + x for a, x in zip(old, sums))
            if key not in clauses:
                clauses[key] = price_source(charges[key[0]], fee)
    return [
        FeeLine("charge", charge, _describe(charge, dims), f"{n} pay-in-advance fees, each rounded when billed",
                units, None, precise, amount, b.covered_from_ms, b.covered_to_ms, charge=charge, dimensions=dims,
                clause=clauses[(charge, dims)], events_count=n, pay_in_advance=True, kind="in_advance")
        for (charge, dims), (units, precise, amount, n) in groups.items()
    ]


def _part_sums(part):
    """((charge, dimensions), a fee of the line, (units, precise amount, amount, count)) of each fee or block."""
    if isinstance(part, FeeBlock):
        h = part.head
        yield (h["charge_id"], dimensions_of(h["filter"], h["group"])), part.fee(0), (*part.sums(), len(part))
        return
    for f in part:
        yield (f.charge_id, dimensions_of(f.filter, f.group)), f, (f.units, f.precise_amount, f.amount, 1)


def _describe(charge: str, dims: tuple) -> str:
    return charge + (f" ({', '.join(v for _, v in dims)})" if dims else "")


def _idle_note(b: Billing, charge) -> str:
    idle = b.contract.idle
    if charge.utilization is None or idle is None:
        return ""
    if idle.kind == "hybrid":
        return f"; idle hybrid: GPU time x max(avg_utilization, {idle.minimum.value.normalize():f}%)"
    return "; idle utilization: GPU time x avg_utilization"


# ------------------------------------------------------------------ policies


def policy_rates(contract: ast.Contract) -> dict[str, Decimal]:
    """end_reason -> the percent of its usage credited."""
    rates: dict[str, Decimal] = {}
    for p in contract.failure_policies:
        reason = FAILED_INFRASTRUCTURE if p.kind == "infrastructure" else FAILED_USER
        if p.action == "no_charge":
            rates[reason] = Decimal(100)
        elif p.action == "credit" and p.percent is not None:
            rates[reason] = p.percent.value
    pre = contract.preemption
    if pre is not None and pre.credit is not None:
        rates[PREEMPTED] = pre.credit.value
    return {k: v for k, v in rates.items() if v > 0}


def policy_credits(b: Billing, lines, billed: list[Decimal]) -> list[FeeLine]:
    """One credit line per usage line and credited end reason.  ``billed``:
    each line's precise amount still billed on demand (after a reservation
    covered part of it), aligned with ``lines``."""
    rates = policy_rates(b.contract)
    out: list[FeeLine] = []
    if not rates:
        return out
    for ln, amount in zip(lines, billed):
        if ln.kind != "usage" or ln.units == 0 or amount == 0:
            continue
        for reason, rate in sorted(rates.items()):
            units = ln.units_by_end_reason.get(reason, ZERO)
            if units:
                out.append(_credit(b, ln, reason, rate, units, amount))
    return out


def _credit(b: Billing, ln, reason: str, rate: Decimal, units: Decimal, amount: Decimal) -> FeeLine:
    precise = -percent_of(EXACT.divide(EXACT.multiply(amount, units), ln.units), rate)
    jobs = ln.count_by_end_reason.get(reason, 0)
    dims = dimensions_of(ln.filter, ln.group)
    return FeeLine("credit", f"{reason}_credit", f"{_describe(ln.charge_id, dims)}: {jobs} {reason} jobs",
                   f"{rate.normalize():f}% of the charge of {jobs} jobs that ended {reason} "
                   f"({reason_number(units)} of {reason_number(ln.units)} units)",
                   -units, None, precise, round_amount(precise, ln.rounding), b.covered_from_ms, b.covered_to_ms,
                   charge=ln.charge_id, dimensions=dims, clause=_policy_clause(b, reason), events_count=jobs,
                   kind="policy")


def _policy_clause(b: Billing, reason: str) -> str | None:
    c = b.contract
    if reason == PREEMPTED:
        return b.clause(c.preemption)
    kind = "infrastructure" if reason == FAILED_INFRASTRUCTURE else "user"
    return next((b.clause(p) for p in c.failure_policies if p.kind == kind), None)
