"""The fast engine's pricing shortcuts build the same lines as ``price_line``.

``price_values`` may defer a line's end-reason maps (``lazy``) and build the
instance without attrs' ``__init__``; ``ratio_to_decimal`` skips the gcd.
These tests hold the shortcuts to the plain results.
"""

import copy
import pickle
from decimal import Decimal as D
from fractions import Fraction

import attrs

from gpubill.engine.pricing.money import ratio_to_decimal
from gpubill.engine.pricing.price import ChargeCtx, price_line, price_values, slot_reason_maps
from gpubill.engine.spec.program import ChargeSpec, Filter, MetricSpec, RatedLine, Standard, SubscriptionSpec
from gpubill.engine.pricing.usage import LineUsage

METRIC = MetricSpec("gh", "gpu_job", "sum", field="h")
CHARGE = ChargeSpec("gh", METRIC, Standard("2.5"), filters=(Filter({"t": {"a"}}, Standard("3")),), group_by=("r",))
SUB = SubscriptionSpec("s1", (CHARGE,), 0, 10)


def _lines(sm, reasons, dn=1, dd=7):
    cc = ChargeCtx(CHARGE)
    whole = sum(sm)
    cnt = [3] * len(sm)
    full = ratio_to_decimal(whole * dn, dd)
    u = LineUsage(0, 0, 0, ("eu",), None, (whole * dn, dd), 9,
                  reasons=tuple((r, v * dn, dd, c) for r, v, c in zip(reasons, sm, cnt)), ignored=2)
    eager = price_line(SUB, cc, u, 30)
    lazy = price_values(SUB, cc, 0, None, ("eu",), full, full, False, 9, None, None, 2, None, 30,
                        (slot_reason_maps, (reasons, sm, cnt, 0, len(sm), dn, dd, full, whole)))
    return eager, lazy


def test_lazy_line_equals_eager_line():
    eager, lazy = _lines([5, 9, -2], ["completed", None, "failed"])
    assert "_lazy_reasons" in vars(lazy)
    assert lazy == eager
    assert "_lazy_reasons" not in vars(lazy)  # built once, on first access
    assert lazy.units_by_end_reason == {"completed": D("0.7142857142857142857142857142857142857143"),
                                        None: ratio_to_decimal(9, 7),
                                        "failed": ratio_to_decimal(-2, 7)}
    assert lazy.count_by_end_reason == {"completed": 3, None: 3, "failed": 3}


def test_lazy_line_repr_asdict_evolve_pickle():
    eager, _ = _lines([4], ["completed"], dd=8)
    for make in (lambda x: x, repr, attrs.asdict, lambda x: attrs.evolve(x, ignored_count=2),
                 lambda x: pickle.loads(pickle.dumps(x)), copy.copy, copy.deepcopy):
        _, lazy = _lines([4], ["completed"], dd=8)
        out = make(lazy)
        assert out == make(eager)
    _, lazy = _lines([4], ["completed"], dd=8)
    back = pickle.loads(pickle.dumps(lazy))
    assert "_lazy_reasons" not in vars(back) and back.units_by_end_reason == {"completed": D("0.5")}


def test_instance_dict_holds_every_field():
    _, lazy = _lines([1, 2], ["a", "b"])
    lazy.units_by_end_reason  # noqa: B018 - builds the maps
    assert set(vars(lazy)) == {f.name for f in attrs.fields(RatedLine)}


def test_missing_attribute_still_raises():
    _, lazy = _lines([1], ["a"])
    try:
        lazy.no_such_field  # noqa: B018
    except AttributeError as e:
        assert "no_such_field" in str(e)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_ratio_to_decimal_matches_fraction_arithmetic():
    for den in (1, 2, 3, 6, 8, 36_000_000, 3600, 250, 7, -4, -3, 10**30, 3**40):
        for num in (0, 1, -1, 5, 36, 9 * 10**6, -123456789, 10**25 + 3, 2**64):
            got = ratio_to_decimal(num, den)
            f = Fraction(num, den)
            if got == D(f.numerator) / D(f.denominator) and Fraction(got) == f:  # exact: fewest decimals
                assert got.as_tuple().exponent == 0 or got.as_tuple().digits[-1] != 0
                assert got.as_tuple().exponent <= 0
            else:  # 40 significant digits, correctly rounded
                assert len(got.as_tuple().digits) == 40
                assert abs(Fraction(got) - f) <= Fraction(1, 2) * Fraction(10) ** (got.as_tuple().exponent)
