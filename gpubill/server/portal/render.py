"""The portal's templates (``templates/``, Jinja2, autoescaped) and how they write numbers, money and time.

Money is written in the customer's billing entity's locale (its country's
CLDR conventions, Babel) and never rounded here: the amounts are the
invoice's, already in the currency's minor unit, and each is wrapped as
``<data value="EXACT">shown</data>`` so that a script (or a test) reads the
exact decimal the invoice document holds. Quantities (GPU-hours, units) are
shown to a few places, the exact figure in the element's ``title``. Times are
UTC, said so.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_LOCALE = Locale.parse("en_US")


def locale_of(country: str | None) -> Locale:
    """The likeliest locale of a country (ISO 3166 alpha-2: DE -> de_DE, NL -> nl_NL); en_US when unknown."""
    if not country:
        return DEFAULT_LOCALE
    try:
        return Locale.parse(f"und_{country.upper()}")
    except (UnknownLocaleError, ValueError):
        return DEFAULT_LOCALE


class Renderer:
    """The template environment, its filters, and ``page(template, **context)``."""

    def __init__(self):
        env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters.update(money=_money, qty=_qty, units=_units, date=_date, when=_when, pct=_pct)
        self.env = env

    def page(self, template: str, *, customer=None, **context) -> str:
        country = customer.subscriptions[0].country if customer is not None and customer.subscriptions else None
        return self.env.get_template(template).render(customer=customer, locale=locale_of(country), **context)

    @staticmethod
    def recent_months(now_ms: int, n: int) -> list[str]:
        """The ``n`` months up to the month of ``now_ms``, newest first (YYYY-MM)."""
        day = dt.datetime.fromtimestamp(now_ms / 1000, dt.timezone.utc)
        index = day.year * 12 + day.month - 1
        return [f"{(index - i) // 12:04d}-{(index - i) % 12 + 1:02d}" for i in range(n)]


@pass_context
def _money(ctx, amount: Decimal | None, currency: str) -> Markup:
    if amount is None:
        return Markup("—")
    shown = format_currency(amount, currency, locale=ctx["locale"], decimal_quantization=False)
    return Markup('<data value="{}">{}</data>').format(str(amount), shown)


@pass_context
def _qty(ctx, value, places: int = 1) -> Markup:
    """A quantity to ``places`` decimals, the exact figure in the title."""
    d = Decimal(str(value))
    shown = format_decimal(d, format="#,##0." + "0" * places if places else "#,##0", locale=ctx["locale"])
    return Markup('<span title="{}">{}</span>').format(str(value), shown)


@pass_context
def _units(ctx, text: str | None) -> Markup:
    """A line's units as the invoice writes them (often many decimals): four places shown, all in the title."""
    if text in (None, ""):
        return Markup("")
    shown = format_decimal(Decimal(text), format="#,##0.####", locale=ctx["locale"])
    return Markup('<span title="{}">{}</span>').format(text, shown) if shown != text else escape(text)


@pass_context
def _pct(ctx, value: Decimal | None) -> str:
    return "—" if value is None else format_decimal(value, format="#,##0.#", locale=ctx["locale"]) + " %"


@pass_context
def _date(ctx, ms_or_iso) -> str:
    day = dt.date.fromisoformat(ms_or_iso[:10]) if isinstance(ms_or_iso, str) else \
        dt.datetime.fromtimestamp(ms_or_iso / 1000, dt.timezone.utc).date()
    return format_date(day, format="medium", locale=ctx["locale"])


@pass_context
def _when(ctx, ms: int | None) -> str:
    if ms is None:
        return "—"
    at = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return format_datetime(at, format="medium", tzinfo=dt.timezone.utc, locale=ctx["locale"]) + " UTC"
