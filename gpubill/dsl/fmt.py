"""Canonical formatting of `.bill` files, printed from the IR.

`format_source(text, path) -> (formatted | None, diagnostics)` parses the
text and prints it back canonically; a file with syntax errors gives `None`
and the parser's diagnostics (it is never rewritten). `format_document(doc,
comments)` prints an already parsed document.

The canonical form: blocks in source order separated by one blank line,
2-space indentation, one clause per line, a block's clauses in source order
(a charge body's in a fixed order: group by, where, during, minimum spend,
rounding, timing, prorated), tiers and table rows one per line (`by` tables
aligned), numbers, amounts, quantities and dates kept as written, strings
re-escaped. A blank line before a clause inside a block is kept (one at most).
Comments survive: the printer knows the source position of what starts each
printed line (a block, a clause, a row, a tier, a closing brace), a
standalone comment is printed before the line of the first such position
after it, and a trailing comment at the end of the line of the last one
before it.

Guarantees (tested on a corpus and by hypothesis): fmt(fmt(x)) == fmt(x),
and parse(fmt(x)) equals parse(x) (spans are excluded from IR equality).
"""

from __future__ import annotations

import re

import bisect
from collections import defaultdict
from decimal import Decimal

import attrs

from gpubill.dsl import ast
from gpubill.dsl.comments import Comment, scan
from gpubill.dsl.diagnostics import Diagnostic
from gpubill.dsl.parse import parse
from gpubill.dsl.source import normalize

INDENT = "  "

Pos = tuple[int, int]


@attrs.define
class _Line:
    """One printed line before comments are placed."""

    depth: int
    text: str
    pos: tuple[Pos, ...] = ()  # source positions of the nodes that start on it
    closer: bool = False  # a lone `}`: its leading comments sit one level in
    block_start: bool = False
    empty_closer: Pos | None = None  # the `}` of an empty `{}` printed on this line


def format_source(text: str, path: str = "<string>") -> tuple[str | None, list[Diagnostic]]:
    """Format one file's text; `None` (and the diagnostics) when it has errors."""
    text = normalize(text)
    doc, diags = parse(text, path)
    if any(d.is_error for d in diags):
        return None, diags
    blank = frozenset(i for i, ln in enumerate(text.split("\n"), 1) if not ln.strip())
    return format_document(doc, scan(text), blank), diags


def format_document(doc: ast.Document, comments: list[Comment] = (), blank_lines: frozenset[int] = frozenset()) -> str:
    """Print `doc`; `comments` and the source's blank line numbers are kept where they belong."""
    lines: list[_Line] = []
    for block in doc.blocks:
        block_lines = _BLOCK_PRINTERS[type(block)](block)
        block_lines[0].block_start = True
        lines.extend(block_lines)
    return _emit(lines, list(comments), blank_lines)


# ---------------------------------------------------------------- comments and output


def _emit(lines: list[_Line], comments: list[Comment], blank_lines: frozenset[int]) -> str:
    lines = _open_empty(lines, [c for c in comments if c.standalone])
    anchors = sorted((p, i) for i, ln in enumerate(lines) for p in ln.pos)
    keys = [a[0] for a in anchors]
    leading: dict[int, list[Comment]] = defaultdict(list)
    trailing: dict[int, list[Comment]] = defaultdict(list)
    tail: list[Comment] = []
    for c in comments:
        if c.standalone:
            k = bisect.bisect_right(keys, (c.line, 1 << 30))
            if k < len(anchors):
                leading[anchors[k][1]].append(c)
            else:
                tail.append(c)
        else:
            k = bisect.bisect_right(keys, (c.line, c.col)) - 1
            if k >= 0:
                trailing[anchors[k][1]].append(c)
            elif lines:
                leading[0].append(c)
            else:
                tail.append(c)

    out: list[str] = []

    def blank() -> None:
        if out and out[-1] != "" and not out[-1].endswith("{"):
            out.append("")

    def comment(c: Comment, depth: int) -> None:
        if c.blank_before:
            blank()
        out.append(INDENT * depth + c.text)
        if c.blank_after:
            blank()

    for i, ln in enumerate(lines):
        if ln.block_start:
            blank()
        for c in leading.get(i, ()):
            comment(c, ln.depth + 1 if ln.closer else ln.depth)
        if ln.pos and ln.pos[0][0] - 1 in blank_lines:  # a blank line the author left before it
            blank()
        if ln.closer and out and out[-1] == "":
            out.pop()
        text = INDENT * ln.depth + ln.text
        if trailing.get(i):
            text += "  " + "  ".join(c.text for c in trailing[i])
        out.append(text)
    for c in tail:
        comment(c, 0)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def _open_empty(lines: list[_Line], standalone: list[Comment]) -> list[_Line]:
    """Print `x {}` as `x {` / `}` when a standalone comment sits inside the braces."""
    out: list[_Line] = []
    for ln in lines:
        inside = [
            c for c in standalone
            if ln.empty_closer and ln.pos and ln.pos[0] < (c.line, c.col) < ln.empty_closer
        ]
        cut = ln.text.rfind(" {}")
        if not inside or cut < 0:
            out.append(ln)
            continue
        head = tuple(p for p in ln.pos if p != ln.empty_closer)
        out.append(_Line(ln.depth, ln.text[:cut] + " {", head, block_start=ln.block_start))
        out.append(_Line(ln.depth, "}" + ln.text[cut + 3 :], (ln.empty_closer,), closer=True))
    return out


# ---------------------------------------------------------------- leaves


def _start(node) -> tuple[Pos, ...]:
    s = getattr(node, "span", None)
    return ((s.line, s.col),) if s else ()


def _end(node) -> tuple[Pos, ...]:
    s = getattr(node, "span", None)
    return ((s.end_line, s.end_col - 1),) if s else ()


def _dec(d: Decimal) -> str:
    return format(d, "f")


def _str(s: ast.Str) -> str:
    return '"' + s.value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(n: ast.Number) -> str:
    return n.text or _dec(n.value)


def _amount(a: ast.Amount) -> str:
    return (a.text or _dec(a.value)) + (f" {a.currency}" if a.currency else "")


def _qty(q: ast.Quantity) -> str:
    return q.text or f"{_dec(q.value)} {q.unit}"


def _pct(p: ast.Percent) -> str:
    return f"{_dec(p.value)}%"


def _cond(c: ast.Condition) -> str:
    parts = []
    for m in c.matches:
        if m.op == "in":
            parts.append(f"{m.key.name} in (" + ", ".join(_str(v) for v in m.values) + ")")
        else:
            parts.append(f"{m.key.name} = {_str(m.values[0])}")
    return " and ".join(parts)


def _expr(e) -> str:
    if isinstance(e, ast.Const):
        return e.text or _dec(e.value)
    if isinstance(e, ast.Prop):
        return e.name
    if isinstance(e, ast.Neg):
        inner = _expr(e.operand)
        return "-" + (f"({inner})" if isinstance(e.operand, ast.BinOp) else inner)
    prec = 1 if e.op in "+-" else 2
    left, right = _expr(e.left), _expr(e.right)
    if isinstance(e.left, ast.BinOp) and _prec(e.left) < prec:
        left = f"({left})"
    if isinstance(e.right, ast.BinOp) and _prec(e.right) <= prec:
        right = f"({right})"
    return f"{left} {e.op} {right}"


def _prec(e: ast.BinOp) -> int:
    return 1 if e.op in "+-" else 2


# ---------------------------------------------------------------- prices


def _join(head: _Line, tail: list[_Line]) -> list[_Line]:
    """`head` continued by the first line of `tail` (a price printed inline)."""
    first = _Line(
        head.depth, f"{head.text} {tail[0].text}", head.pos + tail[0].pos,
        block_start=head.block_start, empty_closer=tail[0].empty_closer,
    )
    return [first, *tail[1:]]


def _braced(head: str, rows: list[_Line], node, depth: int) -> list[_Line]:
    if not rows:
        end = _end(node)
        return [_Line(depth, head + " {}", end, empty_closer=end[0] if end else None)]
    return [_Line(depth, head + " {"), *rows, _Line(depth, "}", _end(node), closer=True)]


def _price(p, depth: int) -> list[_Line]:
    """A price; the first line is printed on the caller's line."""
    if isinstance(p, ast.Standard):
        return [_Line(depth, f"{_amount(p.amount)} per {p.unit.name}")]
    if isinstance(p, ast.PriceTable):
        width = max((len(_str(r.value)) for r in p.rows), default=0)
        rows = [_Line(depth + 1, f"{_str(r.value):<{width}} {_amount(r.amount)}", _start(r)) for r in p.rows]
        return _braced(f"per {p.unit.name} by {p.dimension.name}", rows, p, depth)
    if isinstance(p, (ast.Graduated, ast.Volume)):
        head = "graduated" if isinstance(p, ast.Graduated) else "volume"
        head += f" per {p.unit.name}" if p.unit else ""
        return _braced(head, _tiers(p.tiers, depth + 1), p, depth)
    if isinstance(p, ast.GraduatedPercentage):
        return _braced("graduated percentage", _tiers(p.tiers, depth + 1), p, depth)
    if isinstance(p, ast.Package):
        text = f"package {_amount(p.amount)} per {_qty(p.size)}"
        return [_Line(depth, text + (f" free {_qty(p.free)}" if p.free else ""))]
    if isinstance(p, ast.Percentage):
        parts = [f"percentage {_pct(p.rate)}"]
        if p.fixed:
            parts.append(f"fixed {_amount(p.fixed)} per event")
        if p.free_events:
            parts.append(f"free {_num(p.free_events)} events")
        if p.free_amount:
            parts.append(f"free {_amount(p.free_amount)}")
        if p.minimum:
            parts.append(f"minimum {_amount(p.minimum)} per event")
        if p.maximum:
            parts.append(f"maximum {_amount(p.maximum)} per event")
        return [_Line(depth, ", ".join(parts))]
    if isinstance(p, ast.Dynamic):
        return [_Line(depth, "dynamic")]
    raise TypeError(f"not a price: {p!r}")


def _tiers(tiers, depth: int) -> list[_Line]:
    """One tier per line, single-spaced (aligned columns churn when a tier is added)."""
    out = []
    for t in tiers:
        price = _pct(t.price) if isinstance(t.price, ast.Percent) else _amount(t.price)
        end = f"to {_num(t.to_value)}" if t.to_value is not None else "and above"
        text = f"{_num(t.from_value)} {end} at {price}" + (f" flat {_amount(t.flat)}" if t.flat else "")
        out.append(_Line(depth, text, _start(t)))
    return out


# ---------------------------------------------------------------- clauses


def _clause(text: str, node, depth: int = 1) -> _Line:
    return _Line(depth, text, _start(node))


def _charge(c: ast.Charge, depth: int) -> list[_Line]:
    head = f"charge {c.metric.name}" + (f" as {c.label.name}" if c.label else "")
    lines = _join(_Line(depth, head, _start(c)), _price(c.price, depth))
    body: list[_Line] = []
    d = depth + 1
    if c.group_by:
        body.append(_clause("group by " + ", ".join(r.name for r in c.group_by), c.group_by[0], d))
    for w in c.filters:
        body += _join(_clause(f"where {_cond(w.condition)}", w, d), _price(w.price, d))
    for w in c.windows:
        body += _join(_clause(f"during {w.start.text} .. {w.end.text}", w, d), _price(w.price, d))
    if c.minimum_spend:
        body.append(_clause(f"minimum spend {_amount(c.minimum_spend)}", c.minimum_spend, d))
    if c.rounding:
        body.append(_clause(_money_rounding(c.rounding), c.rounding, d))
    if c.timing:
        body.append(_Line(d, f"in {c.timing}"))
    if c.prorated:
        body.append(_Line(d, "prorated"))
    if body:
        lines[-1].text += " {"
        lines += body
        lines.append(_Line(depth, "}", _end(c), closer=True))
    return lines


def _money_rounding(r: ast.MoneyRounding) -> str:
    return f"rounding {r.mode} {_num(r.quantum)}"


def _progressive(p: ast.Progressive) -> str:
    items = [_amount(a) for a in p.thresholds] + [f"every {_amount(a)}" for a in p.every]
    return "progressive billing at " + ", ".join(items)


def _block(head: str, node, groups: list[list[_Line]]) -> list[_Line]:
    """A block: its clauses in source order (see `_source_order`), braced."""
    clauses = _source_order(groups)
    if not clauses:
        end = _end(node)
        return [_Line(0, head + " {}", _start(node) + end, empty_closer=end[0] if end else None)]
    return [_Line(0, head + " {", _start(node)), *clauses, _Line(0, "}", _end(node), closer=True)]


def _source_order(groups: list[list[_Line]]) -> list[_Line]:
    """Clauses (each a group of lines, given in the IR's field order) in source order.

    A clause without a span (`recurring`, or an IR built by hand) keeps its
    place after the clause before it in field order, so the result is the
    same when the output is parsed and printed again.
    """
    keyed, last = [], (0, 0)
    for i, g in enumerate(groups):
        if g[0].pos:
            last = g[0].pos[0]
        keyed.append((last, i, g))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [ln for _, _, g in keyed for ln in g]


# ---------------------------------------------------------------- blocks


def _entity(e: ast.Entity) -> list[_Line]:
    out = []
    if e.display_name:
        out.append([_clause(f"name {_str(e.display_name)}", e.display_name)])
    if e.currency:
        out.append([_clause(f"currency {e.currency.name}", e.currency)])
    if e.timezone:
        out.append([_clause(f"timezone {_str(e.timezone)}", e.timezone)])
    for t in e.taxes:
        out.append([_clause(f"tax {_str(t.name)} {_pct(t.rate)}", t)])
    if e.invoice_prefix:
        text = f"invoice prefix {_str(e.invoice_prefix)}"
        out.append([_clause(text + (f" numbering {e.numbering.name}" if e.numbering else ""), e.invoice_prefix)])
    if e.invoice_grace:
        out.append([_clause(f"invoice grace {_qty(e.invoice_grace)}", e.invoice_grace)])
    if e.address:
        out.append([_clause(f"address {_address(e.address)}", e.address)])
    if e.country:
        out.append([_clause(f"country {_str(e.country)}", e.country)])
    if e.vat_id:
        out.append([_clause(f"vat id {_str(e.vat_id)}", e.vat_id)])
    return _block(f"entity {e.name.name}", e, out)


def _address(a: ast.Address) -> str:
    """The lines, then `, country "XX"` when the address carries its country (a contract's `bill to`)."""
    return " ".join(map(_str, a.lines)) + (f", country {_str(a.country)}" if a.country else "")


def _aggregation(a: ast.Aggregation) -> str:
    if a.kind == "count":
        return "count"
    if a.kind == "unique_count":
        return f"unique count {a.field.name}"
    word = "weighted sum" if a.kind == "weighted_sum" else a.kind
    return f"{word} {_expr(a.expr)}" + (f" in {a.unit.name}" if a.unit else "")


def _metric(m: ast.Metric) -> list[_Line]:
    out = []
    if m.event:
        code = m.event.name
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", code):
            code = '"' + code.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append([_clause(f"event {code}", m.event)])
    if m.aggregation:
        out.append([_clause(_aggregation(m.aggregation), m.aggregation)])
    if m.recurring:  # where it was written; an IR built by hand: after the aggregation
        span = m.recurring_span
        out.append([_Line(1, "recurring", ((span.line, span.col),) if span else ())])
    for pe in m.per_event:
        opts = []
        if pe.increment:
            opts.append(f"up to {_qty(pe.increment)}")
        if pe.minimum:
            opts.append(f"minimum {_qty(pe.minimum)}")
        if pe.maximum:
            opts.append(f"maximum {_qty(pe.maximum)}")
        out.append([_clause(f"per event {pe.prop.name} " + ", ".join(opts), pe)])
    for d in m.dimensions:
        values = " in " + ", ".join(_str(v) for v in d.values) if d.values else ""
        out.append([_clause(f"dimension {d.name.name}{values}", d)])
    if m.rounding:
        r = m.rounding
        out.append([_clause(f"rounding {r.function}" + (f" {r.precision}" if r.precision else ""), r)])
    return _block(f"metric {m.name.name}", m, out)


def _plan(p: ast.Plan) -> list[_Line]:
    head = f"plan {p.name.name}"
    if p.version:
        v = p.version
        head += f" version {v.id}"
        if v.effective_from:
            head += f" effective {v.effective_from.text}"
            if v.effective_to:
                head += f" to {v.effective_to.text}"
    out = []
    if p.currency:
        out.append([_clause(f"currency {p.currency.name}", p.currency)])
    if p.billing:
        b = p.billing
        text = f"billing {b.interval}" + (f" {b.anchor}" if b.anchor else "") + (f" in {b.timing}" if b.timing else "")
        out.append([_clause(text, b)])
    if p.timezone:
        out.append([_clause(f"timezone {_str(p.timezone)}", p.timezone)])
    if p.fee:
        out.append([_clause(f"fee {_amount(p.fee.amount)}" + (f" in {p.fee.timing}" if p.fee.timing else ""), p.fee)])
    if p.rounding:
        out.append([_clause(_money_rounding(p.rounding), p.rounding)])
    if p.progressive:
        out.append([_clause(_progressive(p.progressive), p.progressive)])
    if p.notice:
        out.append([_clause(f"notice {_qty(p.notice)}", p.notice)])
    for c in p.charges:
        out.append(_charge(c, 1))
    return _block(head, p, out)


_FAILURE_ACTIONS = {"no_charge": "no charge", "charge_actual": "charge actual usage"}
_LATE_TARGETS = {"next_invoice": "next invoice", "new_revision": "new revision"}


# C901 exempt: one flat `if`/`for` per optional contract clause, in the grammar's order.
def _contract(k: ast.Contract) -> list[_Line]:
    return _block(f"contract {k.name.name}", k, _contract_terms(k) + _contract_prices(k) + _contract_policies(k))


def _contract_terms(k: ast.Contract) -> list[_Line]:
    """Who, what and when: customer, subscription, entity, plan, dates, timezone, billing address, VAT id."""
    out = []
    if k.customer:
        c = k.customer
        out.append([_clause(f"customer {_str(c.id)}" + (f" name {_str(c.display_name)}" if c.display_name else ""), c)])
    if k.subscription:
        out.append([_clause(f"subscription {_str(k.subscription)}", k.subscription)])
    if k.entity:
        out.append([_clause(f"entity {k.entity.name}", k.entity)])
    if k.plan:
        out.append([_clause(f"plan {k.plan.name.name}" + (f" version {k.plan.version}" if k.plan.version else ""), k.plan)])
    if k.starts:
        out.append([_clause(f"starts {k.starts.text}", k.starts)])
    if k.ends:
        out.append([_clause(f"ends {k.ends.text}", k.ends)])
    if k.timezone:
        out.append([_clause(f"timezone {_str(k.timezone)}", k.timezone)])
    if k.bill_to:
        out.append([_clause(f"bill to {_address(k.bill_to)}", k.bill_to)])
    if k.vat_id:
        out.append([_clause(f"vat id {_str(k.vat_id)}", k.vat_id)])
    return out


def _contract_prices(k: ast.Contract) -> list[_Line]:
    """Overrides, commits, reservations, credits and discounts."""
    out = []
    for o in k.overrides:
        head = f"override {o.charge.name}" + (f" where {_cond(o.condition)}" if o.condition else "")
        out.append(_join(_clause(head, o), _price(o.price, 1)))
    for c in k.commits:
        text = f"commit {_amount(c.amount)}" + (f" per {c.per}" if c.per else "")
        if c.true_up == "period":
            text += ", true-up each period"
        elif c.true_up == "term":
            text += ", true-up at term end"
        out.append([_clause(text, c)])
    for r in k.reserves:
        text = f"reserve {_num(r.count)} {_str(r.gpu_type)} on {r.metric.name} at {_amount(r.rate)} per {r.unit.name}"
        text += ", prepaid" if r.billing == "prepaid" else f", in {r.billing}"
        out.append([_clause(text, r)])
    for c in k.credits:
        parts = [f"credit {_amount(c.amount)}" + (f" {c.kind}" if c.kind else "")]
        if c.expires:
            parts.append(f"expires {c.expires.text}")
        if c.priority:
            parts.append(f"priority {_num(c.priority)}")
        if c.scope:
            parts.append(f"for {c.scope.name}")
        out.append([_clause(", ".join(parts), c)])
    for d in k.discounts:
        value = _pct(d.value) if isinstance(d.value, ast.Percent) else _amount(d.value)
        freq = f"recurring {_num(d.periods)} periods" if d.frequency == "recurring" else d.frequency
        out.append([_clause(f"discount {value} {freq}" + (f" for {d.scope.name}" if d.scope else ""), d)])
    return out


def _contract_policies(k: ast.Contract) -> list[_Line]:
    """Progressive billing, budget, job limit, late events, failure, preemption and idle policies, invoice grace."""
    out = []
    if k.progressive:
        out.append([_clause(_progressive(k.progressive), k.progressive)])
    if k.budget:
        b = k.budget
        text = f"budget {_amount(b.amount)}" + (f" {b.interval}" if b.interval else "")
        if b.alerts:
            text += ", alert at " + ", ".join(_pct(a) for a in b.alerts)
        out.append([_clause(text, b)])
    if k.job_limit:
        out.append([_clause(f"job limit {_amount(k.job_limit.amount)}", k.job_limit)])
    if k.late_events:
        le = k.late_events
        target = f", then {_LATE_TARGETS[le.target]}" if le.target else ""
        out.append([_clause(f"late events grace {_qty(le.grace)}{target}", le)])
    for f in k.failure_policies:
        action = f"credit {_pct(f.percent)}" if f.action == "credit" else _FAILURE_ACTIONS[f.action]
        out.append([_clause(f"on {f.kind} failure {action}", f)])
    if k.preemption:
        p = k.preemption
        out.append([_clause(f"on preemption credit {_pct(p.credit)}" if p.credit else "on preemption no credit", p)])
    if k.idle:
        i = k.idle
        out.append([_clause(f"idle {i.kind}" + (f" minimum {_pct(i.minimum)}" if i.minimum else ""), i)])
    if k.invoice_grace:
        out.append([_clause(f"invoice grace {_qty(k.invoice_grace)}", k.invoice_grace)])
    if k.notice:
        out.append([_clause(f"notice {_qty(k.notice)}", k.notice)])
    return out


def _test(t: ast.TestBlock) -> list[_Line]:
    out = []
    if t.contract:
        out.append([_clause(f"contract {t.contract.name}", t.contract)])
    if t.period:
        out.append([_clause(f"period {t.period.text}", t.period)])
    for u in t.usages:
        text = f"usage {u.code.name}"
        for p in u.props:
            value = _str(p.value) if isinstance(p.value, ast.Str) else _num(p.value)
            text += f" {p.name.name}={value}"
        text += f" at {u.at.text}" if u.at else ""
        text += f" times {_num(u.times)}" if u.times else ""
        out.append([_clause(text, u)])
    for e in t.expects:
        text = f"expect {e.what}" + (f" {e.target.name}" if e.target else "")
        text += f" where {_cond(e.condition)}" if e.condition else ""
        out.append([_clause(f"{text} = {_amount(e.value)}", e)])
    return _block(f"test {_str(t.name)}", t, out)


_BLOCK_PRINTERS = {
    ast.Entity: _entity,
    ast.Metric: _metric,
    ast.Plan: _plan,
    ast.Contract: _contract,
    ast.TestBlock: _test,
}
