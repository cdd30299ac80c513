"""Render a rating report: stable JSON (docs/rate-json.md) and a terminal table.

Each line can be explained: the clause that priced it (file:line:col of the
charge, table row, filter, window or contract override, as compile recorded
it on the price), the tiers it went through, the unrounded amount and the
rounding rule that made the invoice amount.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import numpy as np

from gpubill.engine.pricing.fees import FeeBlock, parts_by_subscription
from gpubill.engine.pricing.fees import totals as totals_of_fees
from gpubill.engine.pricing.money import EXACT, round_amount
from gpubill.engine.spec.program import MoneyRounding, canonical_filter
from gpubill.engine.reference.trace import line_ref, price_source
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


def _fee_json(charge_id, metric, fltr, group, transaction_id, timestamp, units, precise_amount, amount) -> dict:
    """One in-advance fee in the JSON output; the last five fields already as JSON values."""
    return {
        "charge": charge_id,
        "metric": metric,
        "transaction_id": transaction_id,
        "timestamp": timestamp,
        "filter": _filter_json(fltr),
        "group": dict(group),
        "units": units,
        "precise_amount": precise_amount,
        "amount": amount,
    }


def fee_json(f) -> dict:
    return _fee_json(f.charge_id, f.metric, f.filter, f.group, f.transaction_id, _iso(f.timestamp_ms), _s(f.units),
                     _s(f.precise_amount), _s(f.amount))


def _subscription_json(report, b, lines, fees, total, explain: bool) -> dict:
    return {
        "external_subscription_id": b.spec.external_id,
        "contract": b.contract.name.name,
        "customer": b.contract.customer.id.value if b.contract.customer else None,
        "plan": b.plan.name.name,
        "plan_version": b.plan.version.id if b.plan.version else None,
        "currency": b.currency,
        "period": {"from": _iso(b.period.from_ms), "to": _iso(b.period.to_ms), "label": b.period.label},
        "lines": [line_json(b, ln, explain, report) for ln in lines],
        "in_advance_fees": fees,
        "total": _s(total),
    }


def _unrated_json(report: RateReport) -> list:
    return [
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


def _lines_by_subscription(report: RateReport) -> dict[str, list]:
    by_sub: dict[str, list] = {}
    for line in report.result.lines:
        by_sub.setdefault(line.subscription, []).append(line)
    return by_sub


def report_json(report: RateReport, explain: bool = False) -> dict:
    by_sub = _lines_by_subscription(report)
    fees: dict[str, list] = {}
    for fee in report.result.in_advance:
        fees.setdefault(fee.subscription, []).append(fee)
    tot = totals(report)
    subs = []
    for b in report.rated():
        sid = b.spec.external_id
        subs.append(_subscription_json(report, b, by_sub.get(sid, []), [fee_json(f) for f in fees.get(sid, [])],
                                       tot.get(sid, Decimal(0)), explain))
    return {"schema": SCHEMA_VERSION, "subscriptions": subs, "unrated": _unrated_json(report)}


def write_report_json(report: RateReport, out, explain: bool = False) -> None:
    """Write ``report_json``'s document to the binary file ``out`` exactly as
    ``orjson.dumps(..., option=OPT_INDENT_2)`` prints it, one subscription
    at a time, its fees straight from the engine's fee columns: the run is
    never one dict, nor one fee object per fee."""
    import orjson

    marker = "gpubill-" + uuid.uuid4().hex
    rated = report.rated()
    skeleton = {"schema": SCHEMA_VERSION, "subscriptions": [f"{marker}:{i}" for i in range(len(rated))],
                "unrated": _unrated_json(report)}
    doc = orjson.dumps(skeleton, option=orjson.OPT_INDENT_2)
    by_sub = _lines_by_subscription(report)
    fee_parts = parts_by_subscription(report.result.in_advance)
    tot = totals(report)
    at = 0
    for i, b in enumerate(rated):
        token = orjson.dumps(f"{marker}:{i}")
        found = doc.index(token, at)
        out.write(doc[at:found])
        at = found + len(token)
        sid = b.spec.external_id
        sub = _subscription_json(report, b, by_sub.get(sid, []), f"{marker}:fees", tot.get(sid, Decimal(0)), explain)
        head, tail = orjson.dumps(sub, option=orjson.OPT_INDENT_2).split(orjson.dumps(f"{marker}:fees"), 1)
        out.write(_indent(head, 4))
        _write_fees(out, fee_parts.get(sid, []), marker)
        out.write(_indent(tail, 4))
    out.write(doc[at:])


_FEE_INDENT = 8  # a fee object's depth in the document: {subscriptions: [{in_advance_fees: [{...}]}]}


def _indent(text: bytes, n: int) -> bytes:
    return text.replace(b"\n", b"\n" + b" " * n)


def _write_fees(out, parts: list, marker: str) -> None:
    """A subscription's ``in_advance_fees`` array, as orjson indents it at its depth."""
    import orjson

    if not parts:
        out.write(b"[]")
        return
    out.write(b"[")
    sep = b"\n"
    for part in parts:
        if isinstance(part, FeeBlock):
            _write_block(out, part, marker, sep)
        else:
            for f in part:
                out.write(sep + b" " * _FEE_INDENT + _indent(orjson.dumps(fee_json(f), option=orjson.OPT_INDENT_2),
                                                              _FEE_INDENT))
                sep = b",\n"
        sep = b",\n"
    out.write(b"\n" + b" " * (_FEE_INDENT - 2) + b"]")


_BLOCK_FIELDS = ("transaction_id", "timestamp", "units", "precise_amount", "amount")


def _write_block(out, block, marker: str, sep: bytes) -> None:
    """The fees of one ``FeeBlock``: its line's fields written once into a
    template, each distinct rise's amounts formatted once."""
    import orjson

    h = block.head
    fields = [orjson.dumps(f"{marker}:{k}") for k in _BLOCK_FIELDS]
    text = b" " * _FEE_INDENT + _indent(orjson.dumps(_fee_json(h["charge_id"], h["metric"], h["filter"], h["group"],
                                                               *(f"{marker}:{k}" for k in _BLOCK_FIELDS)),
                                                     option=orjson.OPT_INDENT_2), _FEE_INDENT)
    pieces = []
    for f in fields:
        piece, text = text.split(f, 1)
        pieces.append(piece)
    p0, p1, p2, p3, p4 = pieces
    amounts = [b"".join((p2, orjson.dumps(_s(units)), p3, orjson.dumps(_s(precise)), p4, orjson.dumps(_s(amount)), text))
               for units, precise, amount in block.values]
    stamps = _iso_many(block.timestamp_ms)
    first = sep + p0
    rest = b",\n" + p0
    chunk = []
    for j, (tx, ts, w) in enumerate(zip(block.transaction_ids, stamps, block.which.tolist())):
        chunk.append(b"".join((rest if j else first, orjson.dumps(tx), p1, ts, amounts[w])))
        if len(chunk) == 4096:
            out.write(b"".join(chunk))
            chunk.clear()
    out.write(b"".join(chunk))


def _iso_many(ms) -> list:
    """``_iso`` of each int64 millisecond timestamp, as JSON strings (bytes)."""
    if ms.size and 0 <= int(ms.min()) and int(ms.max()) < 253402300800000:  # 1970 .. 9999: numpy's ISO form
        text = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms")
        return [b'"' + t.encode() + b'Z"' for t in text.tolist()]
    return [b'"' + _iso(t).encode() + b'"' for t in ms.tolist()]


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
    by_sub = _lines_by_subscription(report)
    fee_parts = parts_by_subscription(report.result.in_advance)
    fee_totals = totals_of_fees(report.result.in_advance)
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
        n_fees = sum(len(p) for p in fee_parts.get(sid, []))
        if n_fees:
            t.add_row("in-advance fees", f"{n_fees} fees", "", "", "", "", _s(fee_totals[sid]))
        t.add_row("[b]total[/b]", "", "", "", "", "", f"[b]{_s(tot.get(sid, Decimal(0)))}[/b]")
        console.print(t)
