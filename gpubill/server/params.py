"""Query parameters of ``GET /api/v1/events``, checked before any of them reaches SQL.

A bad value raises ``BadParam`` naming the parameter; the app answers 400 in
Lago's error envelope. Timestamps take the forms and range the store accepts
(``gpubill.service.events.parse_timestamp``).
"""

from __future__ import annotations

import re

from gpubill.service.events import parse_timestamp
from gpubill.text import shown

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000
MAX_PAGE = 10**9              # x MAX_PER_PAGE stays far inside SQLite's int64 OFFSET
_DIGITS = re.compile(r"[0-9]{1,12}")


class BadParam(Exception):
    def __init__(self, name: str, code: str, message: str):
        super().__init__(f"{name} {message}")
        self.name, self.code = name, code


def count(q, name: str, default: int, hi: int, lo: int = 1) -> int:
    """An integer from ``lo`` to ``hi`` in plain ASCII digits, or ``default`` when absent."""
    v = q.get(name)
    if v is None:
        return default
    if not (v.isascii() and _DIGITS.fullmatch(v)) or not lo <= int(v) <= hi:
        raise BadParam(name, "invalid_value", f"must be an integer from {lo} to {hi}, got {shown(v)}")
    return int(v)


def time_bound(q, name: str) -> int | None:
    """Epoch milliseconds of a timestamp parameter, or None when absent."""
    v = q.get(name)
    if v is None:
        return None
    ms, problem = parse_timestamp(v, 0)
    if problem:
        raise BadParam(name, problem.code, problem.message)
    return ms


def page_params(q) -> tuple[int, int]:
    return count(q, "page", 1, MAX_PAGE), count(q, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)


def page_meta(page: int, per_page: int, total: int) -> dict:
    """Lago's pagination ``meta`` of a list answer."""
    pages = (total + per_page - 1) // per_page
    return {"current_page": page, "next_page": page + 1 if page < pages else None,
            "prev_page": page - 1 if page > 1 else None, "total_pages": pages, "total_count": total}
