"""Billing calendars: which period a subscription bills, calendar or anniversary, weekly to yearly.

A period is a pair of UTC epoch milliseconds, both inclusive (Lago's bounds:
`to` is the last instant of the period, 23:59:59.999 local time). Pure: no
clock, no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import attrs

_MONTHS = {"weekly": 0, "monthly": 1, "quarterly": 3, "yearly": 12}


@attrs.frozen
class Period:
    """The billing period: its bounds in UTC ms and its label. What part of it
    one subscription covers, in its local days, is ``coverage.Coverage``."""

    from_ms: int
    to_ms: int  # inclusive
    label: str


def to_ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000) if t.microsecond == 0 else (
        int(t.replace(microsecond=0).timestamp()) * 1000 + t.microsecond // 1000
    )


def start_of(value: dt.date | dt.datetime, tz: str) -> dt.datetime:
    """Midnight of a date in tz, or an aware instant as given."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=ZoneInfo(tz))
        return value
    return dt.datetime(value.year, value.month, value.day, tzinfo=ZoneInfo(tz))


def _add_months(d: dt.date, months: int, anchor_day: int) -> dt.date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    last = (dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(anchor_day, last))


def period_containing(
    day: dt.date,
    interval: str,
    anchor: str,
    tz: str,
    subscription_start: dt.date | None = None,
) -> Period:
    """The billing period of a subscription that contains `day` (local date)."""
    if interval not in _MONTHS:
        raise ValueError(f"unknown billing interval {interval!r}")
    anniversary = anchor == "anniversary" and subscription_start is not None
    if interval == "weekly":
        if anniversary:
            offset = (day - subscription_start).days % 7
            first = day - dt.timedelta(days=offset)
        else:
            first = day - dt.timedelta(days=day.weekday())  # Monday
        nxt = first + dt.timedelta(days=7)
    else:
        step = _MONTHS[interval]
        if anniversary:
            anchor_day = subscription_start.day
            k = (day.year - subscription_start.year) * 12 + (day.month - subscription_start.month)
            k -= k % step
            first = _add_months(subscription_start, k, anchor_day)
            while first > day:
                k -= step
                first = _add_months(subscription_start, k, anchor_day)
            nxt = _add_months(subscription_start, k + step, anchor_day)
            while nxt <= day:
                k += step
                first, nxt = nxt, _add_months(subscription_start, k + step, anchor_day)
        else:
            month0 = (day.month - 1) // step * step if step > 1 else day.month - 1
            first = dt.date(day.year, month0 + 1, 1)
            nxt = _add_months(first, step, 1)
    start = start_of(first, tz)
    end = start_of(nxt, tz)
    return Period(to_ms(start), to_ms(end) - 1, f"{first.isoformat()}..{(nxt - dt.timedelta(days=1)).isoformat()}")


_MONTH_RE = re.compile(r"[0-9]{4}-[0-9]{2}")
# The years a period may name: every billing period containing one of their
# days (a year at most) starts and ends within what datetime and the store's
# timestamps (1970 .. 9999-12-31) can hold.
FIRST_YEAR, LAST_YEAR = 1970, 9998


def parse_period_arg(text: str) -> tuple[str, object]:
    """Classify a `--period` value: ("month", (y, m)), ("date", date) or ("range", (start, end)).

    Raises ValueError with a message in the user's words.
    """
    text = text.strip()
    if not text.isascii():
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or a date-time with an offset")
    if ".." in text:
        a, b = (p.strip() for p in text.split("..", 1))
        start, end = _parse_when(a), _parse_when(b)
        _check_years(text, start.year, end.year)
        return "range", (start, end)
    if _MONTH_RE.fullmatch(text):
        y, m = int(text[:4]), int(text[5:])
        if not 1 <= m <= 12:
            raise ValueError(f"{text!r} is not a month (expected YYYY-MM)")
        _check_years(text, y)
        return "month", (y, m)
    when = _parse_when(text)
    _check_years(text, when.year)
    return "date", when


def _check_years(text: str, *years: int) -> None:
    if not all(FIRST_YEAR <= y <= LAST_YEAR for y in years):
        raise ValueError(f"{text!r} is outside the years {FIRST_YEAR}..{LAST_YEAR} that can be rated")


def _parse_when(text: str) -> dt.date | dt.datetime:
    try:
        if "T" in text or " " in text:
            v = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if v.tzinfo is None:
                raise ValueError(f"{text!r} has no UTC offset; add Z or +HH:MM")
            return v
        return dt.date.fromisoformat(text)
    except ValueError as e:
        if "offset" in str(e):
            raise
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or a date-time with an offset") from None


def resolve_period(
    kind: str,
    value,
    interval: str,
    anchor: str,
    tz: str,
    subscription_start: dt.date | None,
) -> Period:
    """Turn a classified `--period` into this subscription's period."""
    if kind == "month":
        y, m = value
        first = dt.date(y, m, 1)
        nxt = _add_months(first, 1, 1)
        return Period(to_ms(start_of(first, tz)), to_ms(start_of(nxt, tz)) - 1, f"{y:04d}-{m:02d}")
    if kind == "date":
        day = value.date() if isinstance(value, dt.datetime) else value
        return period_containing(day, interval, anchor, tz, subscription_start)
    start, end = value
    s = start_of(start, tz)
    if isinstance(end, dt.datetime):
        e_ms = to_ms(end)  # an instant: inclusive as given
    else:
        e_ms = to_ms(start_of(end + dt.timedelta(days=1), tz)) - 1  # a date: its last instant
    if e_ms < to_ms(s):
        raise ValueError("the period ends before it starts")
    return Period(to_ms(s), e_ms, f"{_txt(start)}..{_txt(end)}")


def _txt(v) -> str:
    return v.isoformat()
