"""Reserved capacity: the reservation billed, and the usage it covers.

``reserve COUNT "GPU_TYPE" on METRIC at PRICE per UNIT [, prepaid | in
arrears]`` (docs/language.md, Reserved capacity).  The reservation is COUNT
GPUs for every hour the contract covers of the period (its days x 24, by
days like every proration) at PRICE: a ``reservation`` fee, rounded once to
the currency's minor unit, billed whether used or not (``prepaid``: billed in
advance, at the period's start).  Usage of the charges on METRIC whose lines
are for that GPU type, up to the reserved GPU-hours, is covered: a negative
``reservation`` line per usage line takes back that part of the line at the
line's average price (its precise amount / its units), rounded once by the
line's rule.  Usage above the capacity stays billed at the plan's price.
"""

from __future__ import annotations

from decimal import Decimal

from gpubill.contracts.context import Billing
from gpubill.contracts.lines import FeeLine, reason_number
from gpubill.dsl import ast, quantities, units
from gpubill.engine.pricing.money import EXACT, round_amount

HOURS_PER_DAY = 24


def reserved_units(b: Billing, r: ast.Reserve) -> Decimal:
    """GPU x time reserved in the period, in the reservation's unit (GPU-hours for `per GPU-hour`)."""
    gpu_hours = r.count.value * HOURS_PER_DAY * b.covered_days
    return EXACT.divide(gpu_hours * _scale("GPU-hour"), _scale(r.unit.name))


def reservation_fees(b: Billing) -> list[FeeLine]:
    out = []
    for i, r in enumerate(b.contract.reserves):
        qty = reserved_units(b, r)
        precise = EXACT.multiply(qty, r.rate.value)
        out.append(FeeLine(
            "reservation", f"reservation_{i + 1}", f'reserved {r.count.value.normalize():f} x {r.gpu_type.value}',
            f"{r.count.value.normalize():f} GPUs x {HOURS_PER_DAY * b.covered_days} hours at {r.rate.value:f} per "
            f"{r.unit.name}, {'prepaid' if r.billing == 'prepaid' else 'in arrears'}",
            qty, r.rate.value, precise, b.to_minor(precise), b.covered_from_ms, b.covered_to_ms,
            charge=None, dimensions=(("gpu_type", r.gpu_type.value),), clause=b.clause(r),
            pay_in_advance=r.billing == "prepaid", kind="reserved"))
    return out


def covered(b: Billing, lines) -> tuple[list[FeeLine], list[Decimal]]:
    """The coverage lines, and each usage line's precise amount still billed on demand."""
    billed = [ln.precise_amount for ln in lines]
    out: list[FeeLine] = []
    if not b.contract.reserves:
        return out, billed
    scales = _charge_scales(b)
    for i, r in enumerate(b.contract.reserves):
        left = reserved_units(b, r) * _scale(r.unit.name)  # in the base unit (GPU-seconds)
        for k, ln in enumerate(lines):
            metric, scale = scales.get(ln.charge_id, (None, None))
            if ln.kind != "usage" or metric != r.metric.name or _gpu_type(ln) != r.gpu_type.value or ln.units <= 0:
                continue
            take = min(EXACT.divide(left, scale), ln.units)
            if take <= 0:
                break
            left -= take * scale
            precise = -EXACT.divide(EXACT.multiply(ln.precise_amount, take), ln.units)
            billed[k] += precise
            out.append(FeeLine(
                "reservation", f"reservation_{i + 1}_covered", f"{ln.charge_id} ({r.gpu_type.value}) covered by the reservation",
                f"{reason_number(take)} of {reason_number(ln.units)} units covered by "
                "reserved capacity (not billed on demand)",
                -take, ln.unit_price, precise, round_amount(precise, ln.rounding), b.covered_from_ms, b.covered_to_ms,
                charge=ln.charge_id, dimensions=(("gpu_type", r.gpu_type.value),), clause=b.clause(r),
                kind="covered"))
    return out, billed


def _charge_scales(b: Billing) -> dict:
    """charge name -> (its metric, the scale of the unit its lines count in)."""
    out = {}
    for ch in b.plan.charges:
        metric = b.catalog.metrics.get(ch.metric.name)
        unit = quantities.charge_unit(ch, metric) if metric is not None else None
        out[ch.key] = (ch.metric.name, unit.scale if unit is not None else Decimal(1))
    return out


def _scale(unit_name: str) -> Decimal:
    u = units.lookup(unit_name)
    return u.scale if u is not None else Decimal(1)


def _gpu_type(ln) -> str | None:
    values = (ln.filter or {}).get("gpu_type")
    if values is not None and len(values) == 1:
        return str(values[0])
    g = (ln.group or {}).get("gpu_type")
    return None if g is None else str(g)
