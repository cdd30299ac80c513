"""Tier schedules of graduated, volume and graduated percentage prices.

Follows Lago's validators (reference/lago-semantics.md section a), so that a
plan imported from Lago checks clean and one exported to Lago is accepted:

* the first tier starts at 0 or 1, the last is open (`N and above`), and only
  the last; every other tier has `to` > `from`;
* graduated: each tier starts at the previous `to` (adjacent, for decimal
  tiers such as 0 to 0.1, 0.1 to 1) or at the previous `to` + 1 (integer
  tiers: 0 to 10, 11 to 20). Lago switches the whole schedule to the +1
  reading when one pair is not adjacent, so mixing the two is a warning;
* volume: each tier starts at the previous `to` + 1 (no adjacent mode);
* graduated percentage: each tier starts at the previous `to` + 1, or at the
  previous `to` itself when that bound is fractional (`0 to 0.01`, `0.01 to
  10`, `11 and above`): Lago's validator accepts a range starting at the
  previous `to_value` or at it + 1. Its rating has no adjacent mode, so such a
  tier holds to - from + 1 units when full (0.01 to 10: 10.99), as the engine
  rates it. A shared whole-number bound (`0 to 10`, `10 and above`) stays an
  overlap: Lago accepts it too, but the unit at the bound is counted in both
  tiers, and gpubill refuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from gpubill.dsl import ast
from gpubill.dsl.checks.common import plans, walk
from gpubill.dsl.diagnostics import Diagnostic, error, warning
from gpubill.dsl.resolve import Catalog

ONE = Decimal(1)


def check_tiers(cat: Catalog) -> Iterator[Diagnostic]:
    roots: list = list(plans(cat)) + [c.overrides for c in cat.contracts.values()]
    for root in roots:
        for n in walk(root):
            if isinstance(n, (ast.Graduated, ast.Volume, ast.GraduatedPercentage)):
                yield from _schedule(n)


def _name(price) -> str:
    if isinstance(price, ast.Graduated):
        return "graduated"
    if isinstance(price, ast.Volume):
        return "volume"
    return "graduated percentage"


def _range(t: ast.Tier) -> str:
    return f"{t.from_value.text} to {t.to_value.text}" if t.to_value else f"{t.from_value.text} and above"


def _schedule(price) -> Iterator[Diagnostic]:
    tiers = price.tiers
    model = _name(price)
    if not tiers:
        yield error(
            "no-tiers",
            f"this {model} price has no tiers",
            price.span,
            hints=("add tiers, e.g. { 0 to 1000 at 3.49  1001 and above at 2.99 }",),
        )
        return
    first = tiers[0]
    if first.from_value.value not in (0, 1):
        yield error(
            "tier-first",
            f"the first tier starts at {first.from_value.text}",
            first.from_value.span,
            hints=("start the first tier at 0 (or 1)",),
        )
    for i, t in enumerate(tiers):
        last = i == len(tiers) - 1
        if t.to_value is None and not last:
            yield error(
                "tier-open-middle",
                f"tier {_range(t)} is open-ended but is not the last tier",
                t.span,
                hints=(f"give it an upper bound: {t.from_value.text} to N", "or move it to the end"),
                notes=(("next tier", tiers[i + 1].span),),
            )
        if t.to_value is None and last:
            continue
        if last and t.to_value is not None:
            yield error(
                "tier-last-bounded",
                f"the last tier stops at {t.to_value.text}: usage above it would have no price",
                t.to_value.span,
                hints=(f"end the schedule with an open tier: {t.from_value.text} and above",),
            )
        if t.to_value is not None and t.to_value.value <= t.from_value.value:
            yield error(
                "tier-empty",
                f"tier {_range(t)} ends before it starts",
                t.to_value.span,
                hints=(f"`to` must be greater than {t.from_value.text}",),
            )
    yield from _joints(price, tiers, model)


def _may_start_at_bound(price, end: Decimal) -> bool:
    """Whether a tier may start at the previous tier's `to` (see the module doc)."""
    if isinstance(price, ast.Graduated):
        return True
    return isinstance(price, ast.GraduatedPercentage) and end != end.to_integral_value()


def _kind_of_bound(price) -> str:
    return "whole-number " if isinstance(price, ast.GraduatedPercentage) else ""


def _joints(price, tiers, model) -> Iterator[Diagnostic]:
    styles: list[tuple[str, ast.Tier]] = []
    for prev, t in zip(tiers, tiers[1:]):
        if prev.to_value is None:
            continue  # reported as tier-open-middle
        end, start = prev.to_value.value, t.from_value.value
        shared_ok = _may_start_at_bound(price, end)
        want = f"{end} or {end + ONE}" if shared_ok else f"{end + ONE}"
        note = ((f"previous tier {_range(prev)}", prev.span),)
        if start == end + ONE:
            styles.append(("+1", t))
            continue
        if start == end and shared_ok:
            styles.append(("adjacent", t))
            continue
        if start <= end:
            yield error(
                "tier-overlap",
                f"tier {_range(t)} overlaps tier {_range(prev)}",
                t.from_value.span,
                hints=(f"start this tier at {want}",)
                + (() if shared_ok or start != end else (f"{model} tiers do not share {_kind_of_bound(price)}bounds: {_range(prev)} includes {end}",)),
                notes=note,
            )
        else:
            yield error(
                "tier-gap",
                f"usage between {end} and {start} falls in no tier",
                t.from_value.span,
                hints=(f"start this tier at {want}",),
                notes=note,
            )
    kinds = {s for s, _ in styles}
    if len(kinds) > 1 and isinstance(price, ast.Graduated):  # the only model with an adjacent reading
        first_kind = styles[0][0]
        odd = next(t for s, t in styles if s != first_kind)
        yield warning(
            "tier-mixed-bounds",
            "this schedule mixes adjacent tiers (0 to 10, 10 to 20) with +1 tiers (0 to 10, 11 to 20)",
            odd.from_value.span,
            hints=("use one style: with one +1 tier every tier is read the +1 way (to - from + 1 units)",),
            notes=(("first tier of the other style", styles[0][1].from_value.span),),
        )
