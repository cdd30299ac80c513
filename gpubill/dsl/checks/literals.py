"""Values that are wrong on their own, whatever surrounds them.

Unknown currency codes, country codes, time zones, numbering schemes and
units; VAT ids without a country prefix; dates that
do not exist (2026-02-30) and instants without an offset; negative money;
percentages outside 0..100; sizes, increments and counts that must be
positive or whole.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from functools import lru_cache

from gpubill.dsl import ast, units
from gpubill.dsl.checks.common import blocks, walk
from gpubill.dsl.diagnostics import Diagnostic, did_you_mean, error
from gpubill.dsl.limits import MAX_ROUNDING_PRECISION, MAX_USAGE_TIMES
from gpubill.dsl.resolve import Catalog
from gpubill.dsl.currencies import COMMON_CURRENCIES, CURRENCIES
from gpubill.dsl.countries import COMMON_COUNTRIES, COUNTRIES, VAT_PREFIXES


NUMBERING = ("per_customer", "per_entity")

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    """Every zone name, for did-you-mean hints only."""
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def valid_timezone(name: str) -> bool:
    """Whether the tz database has the zone (loading one zone is cheaper than listing all)."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except Exception:  # not found, a malformed key, a directory such as "America"
        return False
    return True


def check_literals(cat: Catalog) -> Iterator[Diagnostic]:
    for b in blocks(cat):
        yield from _names(b)
        if isinstance(b, ast.TestBlock):
            yield from _values(b.usages, alerts=())
            if b.period is not None:
                yield from _values(b.period, alerts=())
                yield from _month(b.period)
            for e in b.expects:  # expected amounts may be negative; only their currency is checked
                yield from _currency(e.value)
        else:
            alerts = b.budget.alerts if isinstance(b, ast.Contract) and b.budget else ()
            yield from _values(b, alerts={id(a) for a in alerts})


def _names(b: ast.Block) -> Iterator[Diagnostic]:
    cur = getattr(b, "currency", None)
    if isinstance(cur, ast.Ref) and cur.name not in CURRENCIES:
        yield _unknown_currency(cur.name, cur.span)
    tz = getattr(b, "timezone", None)
    if tz is not None and not valid_timezone(tz.value):
        hints = did_you_mean(tz.value, _timezones()) or ('use an IANA zone name such as "Europe/Berlin" or "UTC"',)
        yield error("unknown-timezone", f'unknown time zone "{tz.value}"', tz.span, hints=hints)
    if isinstance(b, ast.Entity) and b.numbering is not None and b.numbering.name not in NUMBERING:
        yield error(
            "unknown-numbering",
            f'unknown numbering scheme "{b.numbering.name}"',
            b.numbering.span,
            hints=did_you_mean(b.numbering.name, NUMBERING) or ("numbering is per_customer or per_entity",),
        )
    yield from _legal_identity(b)


def _legal_identity(b: ast.Block) -> Iterator[Diagnostic]:
    """An entity's `country` and a contract's `bill to ..., country` are ISO 3166-1 alpha-2 codes;
    a `vat id` starts with a country prefix (EN 16931 rule BR-CO-09)."""
    address = getattr(b, "bill_to", None)
    country = getattr(b, "country", None) or (address.country if address is not None else None)
    if country is not None and country.value not in COUNTRIES:
        yield error("unknown-country", f'"{country.value}" is not an ISO 3166-1 alpha-2 country code', country.span,
                    hints=(_country_hint(country.value),))
    vat = getattr(b, "vat_id", None)
    if vat is not None and vat.value[:2] not in VAT_PREFIXES:
        example = f"{country.value}{vat.value}" if country is not None and country.value in COUNTRIES else "DE123456789"
        yield error("vat-id-country", f'VAT id "{vat.value}" does not start with a country code', vat.span,
                    hints=(f'start it with the code of the country that issued it, as in "{example}" '
                           '(Greece uses "EL")',))


def _country_hint(code: str) -> str:
    if code.upper() in COUNTRIES:
        return f'write the code in capitals: "{code.upper()}"'
    if code.upper() == "UK":
        return 'the United Kingdom\'s code is "GB"'
    return f"use a two-letter code such as {', '.join(COMMON_COUNTRIES)}"


def _unknown_currency(code: str, span) -> Diagnostic:
    hints = did_you_mean(code, COMMON_CURRENCIES) or did_you_mean(code, CURRENCIES) or (f"common codes: {', '.join(COMMON_CURRENCIES)}",)
    return error("unknown-currency", f'"{code}" is not an ISO 4217 currency code', span, hints=hints)


def _currency(a: ast.Amount) -> Iterator[Diagnostic]:
    if a.currency is not None and a.currency not in CURRENCIES:
        yield _unknown_currency(a.currency, a.span)


def _values(root, alerts) -> Iterator[Diagnostic]:
    for n in walk(root):
        if isinstance(n, ast.Amount):
            yield from _currency(n)
            if n.value < 0:
                yield error(
                    "negative-amount",
                    f"amount {n.text} is negative",
                    n.span,
                    hints=("prices and amounts are never negative; use `discount` or `credit` to lower a bill",),
                )
        elif isinstance(n, ast.When):
            yield from _when(n)
        elif isinstance(n, ast.Unit):
            yield from _unit(n.name, n.span)
        elif isinstance(n, ast.Quantity):
            yield from _unit(n.unit, n.span)
        elif isinstance(n, ast.Percent) and id(n) not in alerts:
            if not Decimal(0) <= n.value <= Decimal(100):
                yield error(
                    "percent-range",
                    f"{n.value}% is outside 0% .. 100%",
                    n.span,
                    hints=("a rate, tax, discount or credit is between 0% and 100%",),
                )
        yield from _numbers(n)


def _unit(name: str, span) -> Iterator[Diagnostic]:
    if units.lookup(name) is None:
        hints = did_you_mean(name, units.known_units()) or (
            "known units: second, minute, hour, day, token, Mtoken, GB, GiB, FLOP, PFLOP-hour, GPU, event "
            "(combine with '-': GPU-hour, GB-hour)",
        )
        yield error("unknown-unit", f'unknown unit "{name}"', span, hints=hints)


def _when(w: ast.When) -> Iterator[Diagnostic]:
    if w.value is None:
        yield error(
            "invalid-date",
            f"{w.text} is not a valid date",
            w.span,
            hints=("check the month (01-12), the day of the month and the time (00:00-23:59)",),
        )
    elif isinstance(w.value, dt.datetime) and w.value.tzinfo is None:
        yield error(
            "naive-datetime",
            f"{w.text} has no time zone offset",
            w.span,
            hints=(f"add Z or an offset: {w.text}Z or {w.text}+02:00",),
        )


def _month(p: ast.TestPeriod) -> Iterator[Diagnostic]:
    m = _MONTH.match(p.text)
    if m and not 1 <= int(m.group(2)) <= 12:
        yield error("invalid-date", f"{p.text} is not a valid month", p.span, hints=("months are 01 to 12",))


def _positive(value: Decimal | None, what: str, span) -> Iterator[Diagnostic]:
    if value is not None and value <= 0:
        yield error("not-positive", f"{what} must be greater than zero", span)


def _whole(n: ast.Number | None, what: str) -> Iterator[Diagnostic]:
    if n is not None and n.value != n.value.to_integral_value():
        yield error(
            "not-whole", f"{what} must be a whole number, not {n.text}", n.span,
            hints=(f"write {n.value.to_integral_value()}",),
        )


def _times_bounded(n: ast.Number) -> Iterator[Diagnostic]:
    if n.value is not None and n.value > MAX_USAGE_TIMES:
        yield error(
            "times-too-large",
            f"`times {n.text}` is more than {MAX_USAGE_TIMES:_} events",
            n.span,
            hints=(f"a test needs a few events; use at most times {MAX_USAGE_TIMES:_}, "
                   "and a larger quantity per event (duration_seconds, output_tokens) for volume",),
        )


def _numbers(n) -> Iterator[Diagnostic]:
    if isinstance(n, ast.Package):
        yield from _positive(n.size.value, "a package size", n.size.span)
        if n.free is not None and n.free.value < 0:
            yield from _positive(n.free.value, "free units", n.free.span)
    elif isinstance(n, ast.PerEvent):
        if n.increment is not None:
            yield from _positive(n.increment.value, "a rounding increment", n.increment.span)
        if n.maximum is not None:
            yield from _positive(n.maximum.value, "a per-event maximum", n.maximum.span)
    elif isinstance(n, ast.Reserve):
        yield from _positive(n.count.value, "the number of reserved GPUs", n.count.span)
    elif isinstance(n, ast.Usage) and n.times is not None:
        yield from _positive(n.times.value, "`times`", n.times.span)
        yield from _whole(n.times, "`times`")
        yield from _times_bounded(n.times)
    elif isinstance(n, ast.Discount) and n.periods is not None:
        yield from _positive(n.periods.value, "the number of periods", n.periods.span)
        yield from _whole(n.periods, "the number of periods")
    elif isinstance(n, ast.MoneyRounding):
        yield from _positive(n.quantum.value, "a rounding quantum", n.quantum.span)
    elif isinstance(n, ast.MetricRounding) and abs(n.precision) > MAX_ROUNDING_PRECISION:
        yield error(
            "precision-range",
            f"a rounding precision of {n.precision} is outside -{MAX_ROUNDING_PRECISION} .. {MAX_ROUNDING_PRECISION}",
            n.span,
            hints=("the precision counts decimals: 2 rounds to 0.01, -3 to thousands",),
        )
    elif isinstance(n, ast.Percentage):
        yield from _whole(n.free_events, "the number of free events")
    elif isinstance(n, ast.Credit):
        yield from _whole(n.priority, "a credit priority")
        if n.priority is not None:
            yield from _positive(n.priority.value, "a credit priority", n.priority.span)
