"""The diff report's data model: deltas, percentages, totals per currency."""

from decimal import Decimal

from gpubill.service.diff import CustomerDelta, DiffReport, LineDelta


def _customer(currency, before, after):
    return CustomerDelta("acme", "acme", currency, "2026-11", before, after, ())


def test_line_delta_and_pct():
    line = LineDelta("gpu", ("charge", "gpu"), Decimal("200.00"), Decimal("250.00"), "a.bill:1:1", "a.bill:1:1")
    assert line.delta == Decimal("50.00")
    assert line.pct == Decimal("25.00")


def test_pct_is_none_without_a_before():
    assert LineDelta("gpu", (), None, Decimal("3"), None, "a.bill:2:3").pct is None
    assert _customer("USD", Decimal(0), Decimal("1")).pct is None
    assert _customer("USD", Decimal("3"), None).delta == Decimal("-3")


def test_totals_per_currency():
    report = DiffReport("main", "HEAD", ("2026-11",), (
        _customer("USD", Decimal("10"), Decimal("12")),
        _customer("EUR", None, Decimal("5")),
        _customer("USD", Decimal("1"), Decimal("1")),
    ), (), (), ())
    assert report.totals() == {"EUR": (Decimal(0), Decimal("5")), "USD": (Decimal("11"), Decimal("13"))}


def test_a_zero_amount_keeps_its_places_in_the_delta_and_the_totals():
    zero = _customer("USD", Decimal("0.00"), Decimal("0.00"))
    assert str(zero.delta) == "0.00"
    report = DiffReport("main", "HEAD", ("2026-11",), (zero,), (), (), ())
    assert [str(a) for a in report.totals()["USD"]] == ["0.00", "0.00"]
