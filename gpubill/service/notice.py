"""Notice periods at diff time: price rises a change introduces too close to their effect.

The rule is gpubill.dsl.checks.notice's; here the clock is the head commit's
date, and only plan versions new or changed since the base count.
"""

from __future__ import annotations

import datetime as dt

from gpubill.dsl.checks.notice import violations
from gpubill.dsl.resolve import Catalog


def notice_violations(base_catalog: Catalog, head_catalog: Catalog, introduced: dt.date) -> list[str]:
    """Each violation as "file:line:col: message (hint)", for DiffReport.notices."""
    out = []
    for v in violations(head_catalog, introduced, base_catalog):
        out.append(f"{v.span}: {v.message()} ({v.hint()})")
    return out
