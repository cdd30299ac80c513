"""Render a rating report: stable JSON (docs/rate-json.md) and a terminal table.

Each line can be explained: the clause that priced it (file:line:col of the
charge, table row, filter, window or contract override, as compile recorded
it on the price), the tiers it went through, the unrounded amount and the
rounding rule that made the invoice amount.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from gpubill.engine.money import EXACT, round_amount
from gpubill.engine.program import MoneyRounding, canonical_filter
from gpubill.engine.trace import line_ref, price_source
from gpubill import text
from gpubill.service.rating import RateReport, totals

SCHEMA_VERSION = 1


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _s(d: Decimal | None) -> str | None:
    return None if d is None else format(d, "f")


def clause_of(billed, line) -> str | None:
    """Where the price of a line was written (file:line:col): compile keeps it on each price."""
    charge = next(c for c in billed.spec.charges if c.id == line.charge_id)
    return price_source(charge, line)


def _filter_json(f):
    if f is None:
        return None
    return {k: list(v) for k, v in canonical_filter(f)}


EXPLAIN_EVENTS = 20  # transaction ids listed per line; the count is always complete


def _events_of(report, line):
    refs = report.traces.get(line.subscription, {}).get(line_ref(line), [])
    return [r for r in refs if r.counted]


def line_json(billed, line, explain: bool, report=None) -> dict:
    out = {
        "kind": line.kind,
        "charge": line.charge_id,
        "metric": line.metric,
        "filter": _filter_json(line.filter),
        "group": dict(line.group),
        "window": line.window,
        "units": _s(line.units),
        "full_units": _s(line.full_units),
        "events": line.event_count,
        "ignored_events": line.ignored_count,
        "unit_price": _s(line.unit_price),
        "precise_amount": _s(line.precise_amount),
        "amount": _s(line.amount),
        "rounding": {"mode": line.rounding.mode, "quantum": _s(line.rounding.quantum)},
        "units_by_end_reason": {str(k): _s(v) for k, v in sorted(line.units_by_end_reason.items(), key=lambda kv: str(kv[0]))},
        "events_by_end_reason": {str(k): v for k, v in sorted(line.count_by_end_reason.items(), key=lambda kv: str(kv[0]))},
    }
    if explain:
        evs = _events_of(report, line) if report is not None else []
        out["explain"] = {
            "clause": clause_of(billed, line),
            "events": {"count": len(evs), "transaction_ids": [e.transaction_id for e in evs[:EXPLAIN_EVENTS]]},
            "tiers": [
                {"tier": t.index + 1, "units": _s(t.units), "per_unit": _s(t.per_unit), "flat": _s(t.flat), "amount": _s(t.amount)}
                for t in line.tiers
            ],
        }
    return out


def report_json(report: RateReport, explain: bool = False) -> dict:
    by_sub: dict[str, list] = {}
    for line in report.result.lines:
        by_sub.setdefault(line.subscription, []).append(line)
    fees: dict[str, list] = {}
    for fee in report.result.in_advance:
        fees.setdefault(fee.subscription, []).append(fee)
    tot = totals(report)
    subs = []
    for b in report.rated():
        sid = b.spec.external_id
        subs.append(
            {
                "external_subscription_id": sid,
                "contract": b.contract.name.name,
                "customer": b.contract.customer.id.value if b.contract.customer else None,
                "plan": b.plan.name.name,
                "plan_version": b.plan.version.id if b.plan.version else None,
                "currency": b.currency,
                "period": {"from": _iso(b.period.from_ms), "to": _iso(b.period.to_ms), "label": b.period.label},
                "lines": [line_json(b, ln, explain, report) for ln in by_sub.get(sid, [])],
                "in_advance_fees": [
                    {
                        "charge": f.charge_id,
                        "metric": f.metric,
                        "transaction_id": f.transaction_id,
                        "timestamp": _iso(f.timestamp_ms),
                        "filter": _filter_json(f.filter),
                        "group": dict(f.group),
                        "units": _s(f.units),
                        "precise_amount": _s(f.precise_amount),
                        "amount": _s(f.amount),
                    }
                    for f in fees.get(sid, [])
                ],
                "total": _s(tot.get(sid, Decimal(0))),
            }
        )
    unrated = [
        {
            "external_subscription_id": u.subscription,
            "contract": b.contract.name.name,
            "customer": b.contract.customer.id.value if b.contract.customer else None,
            "charge": u.charge_id,
            "metric": u.metric,
            "reason": u.reason,
        }
        for b, u in report.unrated()
    ]
    return {"schema": SCHEMA_VERSION, "subscriptions": subs, "unrated": unrated}


def display_rounding(places: int) -> MoneyRounding:
    """How a number is cut for people: half-even to `places` decimals (JSON keeps all)."""
    return MoneyRounding("ROUND_HALF_EVEN", Decimal(1).scaleb(-places))


def display(d: Decimal | None, places: int = 6) -> str:
    """A number for people: at most `places` decimals, marked with "~" when cut (JSON keeps all)."""
    if d is None:
        return "-"
    exp = d.as_tuple().exponent
    if isinstance(exp, int) and -exp > places:
        return "~" + format(round_amount(d, display_rounding(places)).normalize(EXACT), "f")
    return format(d, "f")


def _dims(line) -> str:
    parts = []
    if line.filter:
        parts.extend(f"{k}={'|'.join(v)}" for k, v in canonical_filter(line.filter))
    parts.extend(f"{k}={v if v is None else text.escape(v)}" for k, v in line.group.items())
    if line.window is not None:
        parts.append(f"window {line.window + 1}")
    return ", ".join(parts) or "-"


def report_table(report: RateReport, explain: bool = False, file=None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=file, highlight=False, soft_wrap=False, width=160 if file is not None and not file.isatty() else None)
    by_sub: dict[str, list] = {}
    for line in report.result.lines:
        by_sub.setdefault(line.subscription, []).append(line)
    tot = totals(report)
    for b in report.rated():
        sid = b.spec.external_id
        title = f"{b.contract.name.name} ({sid}) · plan {b.plan.name.name} · {b.period.label} · {b.currency}"
        t = Table(title=title, title_justify="left", show_lines=False)
        for col, just in (("charge", "left"), ("dimensions", "left"), ("events", "right"), ("units", "right"),
                          ("unit price", "right"), ("precise amount", "right"), ("amount", "right")):
            t.add_column(col, justify=just)
        for ln in by_sub.get(sid, []):
            t.add_row(ln.charge_id + ("" if ln.kind == "usage" else f" ({ln.kind})"), escape(_dims(ln)), str(ln.event_count),
                      display(ln.units), display(ln.unit_price), display(ln.precise_amount, 8), _s(ln.amount))
            if explain:
                where = clause_of(b, ln) or "?"
                t.add_row("", f"[dim]priced by {escape(where)}[/dim]", "", "", "", "", "")
                evs = _events_of(report, ln)
                if evs:
                    shown = ", ".join(escape(e.transaction_id) for e in evs[:3])
                    more = f" (+{len(evs) - 3} more)" if len(evs) > 3 else ""
                    t.add_row("", f"[dim]events: {escape(shown)}{more}[/dim]", "", "", "", "", "")
                for tp in ln.tiers:
                    t.add_row("", f"[dim]tier {tp.index + 1}: {display(tp.units)} x {_s(tp.per_unit)} + {_s(tp.flat)}[/dim]",
                              "", "", "", display(tp.amount, 8), "")
                t.add_row("", f"[dim]{display(ln.precise_amount, 10)} rounded {ln.rounding.mode} to {_s(ln.rounding.quantum)}[/dim]",
                          "", "", "", "", "")
        adv = [f for f in report.result.in_advance if f.subscription == sid]
        if adv:
            t.add_row("in-advance fees", f"{len(adv)} fees", "", "", "", "", _s(sum((f.amount for f in adv), Decimal(0))))
        t.add_row("[b]total[/b]", "", "", "", "", "", f"[b]{_s(tot.get(sid, Decimal(0)))}[/b]")
        console.print(t)
