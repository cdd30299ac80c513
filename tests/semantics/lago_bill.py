"""Helpers: a Lago worked example written as `.bill` source, rated by either engine.

`compile_bill(metrics, charges, ...)` wraps the metric and charge text in a
USD entity, a plan `p` and a contract `c` (subscription "sub_1"), requires
`check_sources` to report no error, and compiles the contract for the period
named as `gpubill rate --period` would name it. `event(...)` builds a
Lago-shaped event dict (Unix-seconds `timestamp`, string properties).
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from gpubill.dsl.check import check_sources
from gpubill.engine.spec.compile import compile_subscription
from gpubill.engine.spec.subscription import resolve_subscription

SUB = "sub_1"
ENTITY = 'entity lago { name "Lago Inc." currency USD timezone "UTC" }\n'

_tx = itertools.count(1)


def source(metrics: str, charges: str, *, billing: str = "monthly", starts: str = "2024-01-01",
           contract: str = "") -> str:
    """The whole `.bill` text of one example."""
    return (
        ENTITY
        + metrics
        + f"\nplan p {{\n  currency USD\n  billing {billing}\n{charges}\n}}\n"
        + f'contract c {{\n  customer "cust_1" subscription "{SUB}" entity lago plan p starts {starts}\n{contract}\n}}\n'
    )


def check_ok(src: str):
    """The catalog of `src`, which must check without an error."""
    catalog, diags = check_sources({"lago.bill": src})
    errors = [d for d in diags if d.is_error]
    assert not errors, "\n".join(f"{d.rule}: {d.message}" for d in errors)
    return catalog


def compile_bill(metrics: str, charges: str, *, period: str = "2024-05", billing: str = "monthly",
                 starts: str = "2024-01-01", contract: str = ""):
    """Check the example and compile contract `c` for `period` (a `--period` value)."""
    src = source(metrics, charges, billing=billing, starts=starts, contract=contract)
    return compile_source(src, period=period)


def compile_source(src: str, *, period: str):
    """Check a whole `.bill` text and compile its contract `c` for `period`, resolved as `gpubill rate` does."""
    catalog = check_ok(src)
    return compile_subscription(catalog, resolve_subscription(catalog, catalog.contracts["c"], period))


def unix(at: str) -> Decimal:
    """'2024-05-10T12:00:00Z' (or with .fff) -> Unix seconds, exactly."""
    t = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    whole = int(t.replace(microsecond=0).timestamp())
    return Decimal(whole) + Decimal(t.microsecond) / Decimal(1_000_000)


def event(code: str, at: str, *, cents: str | None = None, rowid: int | None = None, **props) -> dict:
    """A Lago-shaped event of subscription "sub_1"; property values are sent as strings."""
    e = {
        "transaction_id": f"tx-{next(_tx)}",
        "external_subscription_id": SUB,
        "code": code,
        "timestamp": str(unix(at)),
        "properties": {k: str(v) for k, v in props.items()},
    }
    if cents is not None:
        e["precise_total_amount_cents"] = cents
    if rowid is not None:
        e["rowid"] = rowid
    return e


def usage(result):
    """The usage lines of a RateResult (not spending-minimum true-ups)."""
    return [ln for ln in result.lines if ln.kind == "usage"]


def one(result):
    (line,) = usage(result)
    return line


def total(result) -> Decimal:
    """The sum of the rounded lines, true-ups included, as an invoice would add them."""
    return sum((ln.amount for ln in result.lines), Decimal(0))


def quotient(value: Decimal, num, den) -> bool:
    """`value` is num / den to 30 decimals (a unit amount that does not terminate in decimal)."""
    from fractions import Fraction

    return abs(Fraction(value) - Fraction(num) / Fraction(den)) < Fraction(1, 10**30)
