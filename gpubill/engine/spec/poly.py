"""Per-event quantity: ``Expr`` -> polynomial -> int64 coefficients + one scale.

``compile_expr`` turns an expression tree into a polynomial
``sum_t c_t * prod(props_t)`` with exact rational coefficients (constant
divisions fold into the coefficients).  ``fix_poly`` then fixes each
property's decimal scale ``s_p`` (value = x_p * 10**s_p, x_p an int64) and
factors the polynomial as ``D * sum_t k_t * prod(x_p)`` with integer ``k_t``
and a positive rational ``D``.  The kernels accumulate the integer sums; ``D``
is applied once per line after aggregation, so ``gpu_count *
duration_seconds / 3600`` aggregates in milli-GPU x milliseconds and divides
by 3.6e9 at the end.  ``per_event_fraction`` is the same per-event rounding
done on exact rationals (the reference engine's twin of the kernel's).
"""

from __future__ import annotations

from fractions import Fraction
from math import ceil, gcd

import attrs

from gpubill.engine.pricing.money import EngineError
from gpubill.engine.spec.program import Add, Const, Div, Mul, PerEvent, Prop, Sub


@attrs.frozen
class Poly:
    terms: tuple  # ((prop, prop, ...) sorted, Fraction coefficient), zero terms dropped

    def props(self) -> tuple:
        return tuple(sorted({p for t, _ in self.terms for p in t}))

    def evaluate(self, values: dict) -> Fraction:
        total = Fraction(0)
        for props, c in self.terms:
            v = c
            for p in props:
                v *= values[p]
            total += v
        return total


def _mul(a: dict, b: dict) -> dict:
    out: dict = {}
    for ta, ca in a.items():
        for tb, cb in b.items():
            t = tuple(sorted(ta + tb))
            out[t] = out.get(t, Fraction(0)) + ca * cb
    return out


def _lin(a: dict, b: dict, sign: int) -> dict:
    out = dict(a)
    for t, c in b.items():
        out[t] = out.get(t, Fraction(0)) + sign * c
    return out


def _compile(e) -> dict:
    if isinstance(e, Prop):
        return {(e.name,): Fraction(1)}
    if isinstance(e, Const):
        return {(): Fraction(e.value)}
    if isinstance(e, Add):
        return _lin(_compile(e.left), _compile(e.right), 1)
    if isinstance(e, Sub):
        return _lin(_compile(e.left), _compile(e.right), -1)
    if isinstance(e, Mul):
        return _mul(_compile(e.left), _compile(e.right))
    if isinstance(e, Div):
        d = {t: c for t, c in _compile(e.right).items() if c}
        if set(d) - {()}:
            raise EngineError("a quantity may only be divided by a constant")
        if not d:
            raise EngineError("division by zero in a quantity expression")
        return {t: c / d[()] for t, c in _compile(e.left).items()}
    raise EngineError(f"not a quantity expression: {e!r}")


def compile_expr(expr, unit_scale=1) -> Poly:
    terms = _compile(expr)
    us = Fraction(unit_scale)
    return Poly(tuple(sorted((t, c * us) for t, c in terms.items() if c)))


@attrs.frozen
class FixedPoly:
    """``value = scale * sum_t coefs[t] * prod(x[p] for p in props[t])``."""

    props: tuple  # per term: tuple of property names
    coefs: tuple  # per term: int
    scale: Fraction


def fix_poly(poly: Poly, scales: dict, extra_exponent: int = 0) -> FixedPoly:
    rs = []
    for props, c in poly.terms:
        exp = sum(scales[p] for p in props) + extra_exponent
        rs.append(c * Fraction(10) ** exp)
    if not rs:
        return FixedPoly((), (), Fraction(1))
    num = 0
    den = 1
    for r in rs:
        num = gcd(num, r.numerator)
        den = den * r.denominator // gcd(den, r.denominator)
    d = Fraction(num, den)
    coefs = tuple(int(r / d) for r in rs)
    for k in coefs:
        if not -(2**63) <= k < 2**63:
            raise EngineError("a quantity coefficient does not fit int64")
    return FixedPoly(tuple(p for p, _ in poly.terms), coefs, d)


def per_event_fraction(rule: PerEvent, x: Fraction) -> Fraction:
    """Round one event's property: ``M if x <= M else M + ceil((x-M)/I)*I``,
    ``ceil(x/I)*I`` without a minimum, then cap at ``maximum``."""
    inc = Fraction(rule.increment) if rule.increment is not None else None
    if rule.minimum is not None:
        m = Fraction(rule.minimum)
        if x <= m:
            q = m
        else:
            q = m + ceil((x - m) / inc) * inc if inc else x
    else:
        q = ceil(x / inc) * inc if inc else x
    if rule.maximum is not None:
        q = min(q, Fraction(rule.maximum))
    return q


def decimal_exponent(d) -> int:
    """The largest e with d an integer multiple of 10**e (0 -> large)."""
    if d == 0:
        return 127
    t = d.as_tuple()
    digits = int("".join(map(str, t.digits)))
    e = t.exponent
    while digits % 10 == 0:
        digits //= 10
        e += 1
    return e
