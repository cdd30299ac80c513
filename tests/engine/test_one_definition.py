"""Issue 8: money is rounded by one function, a filter has one canonical form.

`money.round_amount(value, rule)` is the only `quantize` in the engine and the
service; `program.canonical_filter` (and `Filter.canonical`) the only place a
filter's ((key, (values...)), ...) form is derived.
"""

import ast
import re
from decimal import Decimal as D
from pathlib import Path

import pytest

from gpubill.engine.pricing.money import ceil_decimals, round_amount
from gpubill.engine.spec.program import ChargeSpec, Filter, MetricSpec, MoneyRounding, Standard, SubscriptionSpec, canonical_filter, match_order
from gpubill.engine.reference.trace import line_ref
from gpubill.service.report import display

ROOT = Path(__file__).resolve().parents[2] / "gpubill"
SCANNED = [p for d in ("engine", "contracts", "service") for p in sorted((ROOT / d).rglob("*.py"))]
# Not yet routed (files outside this change's owner; see issue 8's report).
PENDING_QUANTIZE: set = set()
PENDING_FILTER: set = set()
PENDING_ORDER: set = set()


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def _quantize_sites(path: Path) -> list[str]:
    """'file:function' for every `.quantize(` call in `path`."""
    tree = ast.parse(path.read_text())
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for n in ast.walk(fn):
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "quantize":
                    out.append(f"{_rel(path)}:{fn.name}")
    # calls outside any function
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == "quantize"]
    out += [f"{_rel(path)}:<module>"] * (len(calls) - len(out))
    return out


def test_quantize_only_in_round_amount():
    sites = [s for p in SCANNED if _rel(p) not in PENDING_QUANTIZE for s in _quantize_sites(p)]
    assert sites == ["engine/pricing/money.py:round_amount"]


def test_filter_form_derived_only_in_program():
    pattern = re.compile(r"sorted\(\(k, tuple\(sorted\(v\)\)\)|tuple\(sorted\(v\)\)|join\(sorted\(v\)\)|sorted\(v\) for k, v")
    sites = [_rel(p) for p in SCANNED if _rel(p) not in PENDING_FILTER and pattern.search(p.read_text())]
    assert sites == ["engine/spec/program.py"]


def test_filter_match_order_written_only_in_program():
    pattern = re.compile(r"-len\(")
    sites = [_rel(p) for p in SCANNED if _rel(p) not in PENDING_ORDER and pattern.search(p.read_text())]
    assert sites == ["engine/spec/program.py"]


def test_match_order_most_keys_first_ties_as_written():
    fs = [Filter({"a": {"1"}}, Standard(1)), Filter({"a": {"1"}, "b": {"2"}}, Standard(1)), Filter({"c": {"3"}}, Standard(1))]
    assert match_order(fs) == [1, 0, 2]


@pytest.mark.parametrize("mode,quantum,value,expected", [
    ("ROUND_HALF_UP", "0.01", "2.345", "2.35"),
    ("ROUND_HALF_UP", "0.01", "-2.345", "-2.35"),  # half away from zero
    ("ROUND_HALF_UP", "0.01", "-0.005", "-0.01"),
    ("ROUND_HALF_EVEN", "0.01", "2.345", "2.34"),
    ("ROUND_HALF_EVEN", "0.01", "2.355", "2.36"),
    ("ROUND_HALF_EVEN", "0.01", "-2.345", "-2.34"),
    ("ROUND_HALF_DOWN", "0.01", "2.345", "2.34"),
    ("ROUND_HALF_DOWN", "0.01", "2.3451", "2.35"),
    ("ROUND_UP", "0.01", "2.341", "2.35"),
    ("ROUND_UP", "0.01", "-2.341", "-2.35"),
    ("ROUND_DOWN", "0.01", "2.349", "2.34"),
    ("ROUND_DOWN", "0.01", "-2.349", "-2.34"),
    ("ROUND_CEILING", "0.01", "-2.349", "-2.34"),
    ("ROUND_CEILING", "0.01", "2.341", "2.35"),
    ("ROUND_FLOOR", "0.01", "-2.341", "-2.35"),
    ("ROUND_FLOOR", "0.01", "2.349", "2.34"),
    ("ROUND_HALF_UP", "1", "2.5", "3"),  # JPY-like quantum
    ("ROUND_HALF_UP", "0.001", "2.0005", "2.001"),  # BHD-like quantum
    ("ROUND_HALF_UP", "1E+1", "15", "2E+1"),
    ("ROUND_HALF_UP", "0.01", "2.5", "2.50"),  # exactly the quantum's exponent
    ("ROUND_HALF_UP", "0.01", "0", "0.00"),
])
def test_round_amount(mode, quantum, value, expected):
    got = round_amount(D(value), MoneyRounding(mode, quantum))
    assert str(got) == expected


def test_round_amount_ignores_the_ambient_context():
    import decimal
    big = D("123456789012345678901234567890.125")  # 33 digits: more than the default precision
    with decimal.localcontext(decimal.Context(prec=5, rounding=decimal.ROUND_FLOOR)):
        got = round_amount(big, MoneyRounding("ROUND_HALF_UP", "0.01"))
    assert got == D("123456789012345678901234567890.13")


def test_round_amount_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="unknown rounding mode"):
        round_amount(D(1), MoneyRounding("HALF_UP", "0.01"))


def test_ceil_decimals_is_a_ceiling_at_the_places():
    assert [str(ceil_decimals(D(v), 5)) for v in ("1.234561", "-1.234569", "2", "-0.000001")] == [
        "1.23457", "-1.23456", "2.00000", "-0.00000"]


def test_display_cuts_half_even_beyond_the_default_precision():
    assert display(D("1.1234565")) == "~1.123456"
    assert display(D("12345678901234567890123456789.1234565")) == "~12345678901234567890123456789.123456"
    assert display(D("1.5")) == "1.5"


def test_canonical_filter_sorts_keys_and_values():
    f = Filter({"region": {"us", "eu"}, "cloud": ["gcp", "aws"]}, Standard(1))
    assert canonical_filter(f.values) == f.canonical == (("cloud", ("aws", "gcp")), ("region", ("eu", "us")))
    assert canonical_filter({"cloud": ("aws", "gcp"), "region": ["us", "eu"]}) == f.canonical


def test_a_lines_filter_is_its_filters_canonical_form(engine):
    m = MetricSpec("x", "e", "count")
    f = Filter({"region": {"us", "eu"}, "cloud": {"gcp", "aws"}}, Standard(2))
    ch = ChargeSpec("c", m, Standard(1), filters=(f,))
    s = SubscriptionSpec("s", (ch,), 0, 86_400_000 * 30)
    ev = dict(transaction_id="t1", external_subscription_id="s", code="e", timestamp_ms=1,
              properties={"cloud": "aws", "region": "eu"})
    line = next(ln for ln in engine([s], [ev]).lines if ln.filter)
    assert line.filter == dict(f.canonical)
    assert list(line.filter) == ["cloud", "region"]
    assert line_ref(line).filter == f.canonical
