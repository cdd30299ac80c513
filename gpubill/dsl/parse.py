"""Text -> typed IR, with syntax errors in the user's words.

One entry point: `parse(text, path) -> (Document, diagnostics)`. The Lark
LALR parser is built once per process. A file is split into top-level blocks
(a line starting with `entity`, `metric`, `plan`, `contract` or `test`), and
each block is parsed on its own, so one bad block never hides the rest.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.lexer import PatternStr

from gpubill.dsl import ast
from gpubill.dsl.diagnostics import Diagnostic, did_you_mean, error, quote
from gpubill.text import escape
from gpubill.dsl.limits import MAX_EXPR_OPERATORS, MAX_NUMBER_DIGITS
from gpubill.dsl.source import normalize

BLOCK_KEYWORDS = ("entity", "metric", "plan", "contract", "test")
_BLOCK_START = re.compile(rf"^({'|'.join(BLOCK_KEYWORDS)})\b", re.M)

#: How regex terminals are named in messages (never the grammar's names).
TERMINAL_WORDS = {
    "NAME": "a name",
    "UNIT": "a unit (hour, second, token, GB-hour, ...)",
    "CURRENCY": "a currency code (USD, EUR, ...)",
    "STRING": 'a quoted string like "H100-SXM"',
    "NUMBER": "a number",
    "NEG": '"-"',
    "SIGNED_INT": "a whole number",
    "PERCENT": "a percentage like 20%",
    "DATETIME": "a date-time like 2026-10-01T00:00Z",
    "DATE": "a date like 2026-10-01",
    "MONTH": "a month like 2026-10",
    "VERSION_ID": "a version like 2",
    "ROUND_FN": "round, ceil or floor",
    "ROUND_MODE": "a rounding mode (half_up, half_even, down, ...)",
    "INTERVAL": "weekly, monthly, quarterly or yearly",
    "ANCHOR": "calendar or anniversary",
    "TIMING": "advance or arrears",
    "PERIOD_WORD": "period, month, quarter, year or term",
    "CREDIT_KIND": "granted or paid",
    "FAILURE_KIND": "infrastructure or user",
    "IDLE_KIND": "allocation, utilization or hybrid",
    "EXPECT_WHAT": "charge, units, total or events",
    "AGG_COUNT": '"count"',
    "AGG_SUM": '"sum"',
    "AGG_MAX": '"max"',
    "AGG_LATEST": '"latest"',
    "AGG_UNIQUE": '"unique"',
    "AGG_WEIGHTED": '"weighted"',
    "$END": "the end of the file",
}

_SUFFIX = {"k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12}


@lru_cache(maxsize=1)
def parser() -> Lark:
    # The grammar ships inside the package; a plain path read keeps
    # importlib.resources out of the start-up of `gpubill check`.
    grammar = (Path(__file__).resolve().parent.parent / "grammar.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        cache=True,
    )


def parse(text: str, path: str = "<string>") -> tuple[ast.Document, list[Diagnostic]]:
    """Parse one file. Never raises on bad input: problems come back as diagnostics.

    The whole file is parsed at once; only when that fails is it split into
    blocks for error recovery (so a clause that happens to start a line with
    a block keyword, like `plan` inside a contract, is fine in a valid file).
    """
    diags: list[Diagnostic] = []
    blocks: list[ast.Block] = []
    text = normalize(text)
    whole = _parse_chunk(text, path)
    if whole[0] is not None:
        return ast.Document(path, tuple(whole[0])), whole[1]
    for line0, chunk in _chunks(text):
        found, ds = _parse_chunk(chunk, path, line0)
        blocks.extend(found or ())
        diags.extend(ds)
    return ast.Document(path, tuple(blocks)), diags


def _parse_chunk(text: str, path: str, line0: int = 0) -> tuple[list[ast.Block] | None, list[Diagnostic]]:
    """Blocks and diagnostics of one piece of text that starts after `line0` lines of its file.

    The blocks are None on a syntax error (the caller then parses the file
    block by block). A block that crosses a limit (gpubill.dsl.limits) is
    reported and left out; the others are kept.
    """
    try:
        tree = parser().parse(text)
    except UnexpectedInput as e:
        return None, [_syntax_diagnostic(e, text, path, line0)]
    builder = _Build(path, line0)
    blocks, refused = [], []
    for block in tree.children:
        too_complex = _complex_expression(block, path, line0)
        if too_complex is not None:  # before the builder, which recurses on expressions
            refused.append(too_complex)
            continue
        try:
            blocks.append(builder.transform(block))
        except VisitError as e:  # a bug in the builder must not become a traceback
            if not isinstance(e.orig_exc, _BuildError):
                raise
            refused.append(e.orig_exc.diag)
    return blocks, builder.diags + refused


def _chunks(text: str):
    """(lines before it, text) of each top-level block; text before the first block is a chunk too."""
    starts = [m.start() for m in _BLOCK_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    starts.append(len(text))
    line0 = prev = 0
    for a, b in zip(starts, starts[1:]):
        line0 += text.count("\n", prev, a)
        prev = a
        chunk = text[a:b]
        if chunk.strip() == "" or _only_comments(chunk):
            continue
        yield line0, chunk


def _only_comments(chunk: str) -> bool:
    return all(not ln.strip() or ln.lstrip().startswith("#") for ln in chunk.splitlines())


# ---------------------------------------------------------------- syntax errors


def _describe_expected(names) -> list[str]:
    terms = {t.name: t for t in parser().terminals}
    words = set()
    for n in names:
        if n in TERMINAL_WORDS:
            words.add(TERMINAL_WORDS[n])
            continue
        t = terms.get(n)
        if t is not None and isinstance(t.pattern, PatternStr):
            words.add(f'"{t.pattern.value}"')
        elif t is not None and set(t.pattern.value) <= set("abcdefghijklmnopqrstuvwxyz_-|()?: "):
            alts = [a for a in re.split(r"[|()]", t.pattern.value.replace("(?:", "")) if a.strip()]
            words.update(f'"{a.strip()}"' for a in alts)
        else:
            words.add(n.lower())
    return sorted(words, key=lambda w: (w.startswith('"') is False, w))


_WORD_AT = re.compile(r"[A-Za-z0-9_.%-]+")


def _syntax_diagnostic(e: UnexpectedInput, text: str, path: str, line0: int = 0) -> Diagnostic:
    line = getattr(e, "line", 1) or 1
    col = getattr(e, "column", 1) or 1
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            body = text[:-1] if text.endswith("\n") else text
            line, col = body.count("\n") + 1, len(body) - body.rfind("\n")
            found = "the end of the block"
            width = 1
        else:
            found = quote(str(tok.value))
            width = max(1, len(str(tok.value)))
        expected = _describe_expected(e.expected)
    elif isinstance(e, UnexpectedCharacters):
        if text.startswith('"', e.pos_in_stream):
            return _bad_string(text, e.pos_in_stream, ast.Span(path, line + line0, col, line + line0, col + 1))
        word = _WORD_AT.match(text, e.pos_in_stream)
        found = quote(word.group(0) if word else text[e.pos_in_stream : e.pos_in_stream + 1])
        width = len(word.group(0)) if word else 1
        expected = _describe_expected(e.allowed or ())
    else:  # UnexpectedEOF
        found, width = "the end of the file", 1
        expected = _describe_expected(getattr(e, "expected", ()) or ())
    span = ast.Span(path, line + line0, col, line + line0, col + width)
    hints: tuple[str, ...] = ()
    keywords = [w.strip('"') for w in expected if w.startswith('"')]
    if found.startswith('"') and keywords:
        hints = did_you_mean(found.strip('"'), keywords)
    if len(expected) > 8:
        shown = ", ".join(expected[:8]) + ", ..."
    else:
        shown = ", ".join(expected)
    msg = f"unexpected {found}" + (f"; expected {shown}" if shown else "")
    return error("syntax", msg, span, hints=hints)


#: Characters a string may not hold (a tab may: it is kept as written).
_STRING_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _bad_string(text: str, pos: int, span: ast.Span) -> Diagnostic:
    """A string the lexer refused: a control character inside it, or no closing quote on its line."""
    j, eol = pos + 1, text.find("\n", pos)
    eol = len(text) if eol < 0 else eol
    while j < eol and text[j] != '"':
        if _STRING_CONTROL.match(text, j):
            at = _span_at_col(span, span.col + j - pos)
            return error("syntax", f"a string may not hold the control character {escape(text[j])}", at,
                         hints=("delete it; only a tab and printable characters may appear in a string",))
        j += 2 if text[j] == "\\" and j + 1 < eol and not _STRING_CONTROL.match(text, j + 1) else 1
    return error("syntax", "this string is not closed: a string ends on the line it starts", span,
                 hints=('add the closing \" (write \\" for a quote inside the string)',))


def _span_at_col(span: ast.Span, col: int) -> ast.Span:
    return ast.Span(span.path, span.line, col, span.line, col + 1)


# ---------------------------------------------------------------- limits


_EXPR_OPS = frozenset({"add", "sub", "mul", "div", "neg"})
_EXPR_AGGS = frozenset({"agg_sum", "agg_max", "agg_latest", "agg_weighted_sum"})


def _complex_expression(block: Tree, path: str, line0: int) -> Diagnostic | None:
    """The block's quantity expression with more than MAX_EXPR_OPERATORS operators, as a diagnostic.

    Walks the parse tree without recursion; only metrics' aggregations hold expressions.
    """
    if block.data != "metric":
        return None
    for clause in block.children:
        if not isinstance(clause, Tree) or clause.data not in _EXPR_AGGS:
            continue
        for expr in clause.children:
            if isinstance(expr, Tree) and expr.data in _EXPR_OPS:
                n = _operators(expr)
                if n > MAX_EXPR_OPERATORS:
                    m = expr.meta
                    return error(
                        "expression-too-complex",
                        f"this expression has {n} operators; a quantity expression may have at most "
                        f"{MAX_EXPR_OPERATORS}",
                        ast.Span(path, m.line + line0, m.column, m.end_line + line0, m.end_column),
                        hints=("compute the quantity where the events are made and send it as one property",),
                    )
    return None


def _operators(expr: Tree) -> int:
    n, stack = 0, [expr]
    while stack:
        t = stack.pop()
        if t.data in _EXPR_OPS:
            n += 1
            stack.extend(c for c in t.children if isinstance(c, Tree))
    return n


# ---------------------------------------------------------------- building the IR


class _BuildError(Exception):
    def __init__(self, diag: Diagnostic):
        self.diag = diag


def _num(text: str) -> Decimal:
    t = text.replace("_", "")
    mult = Decimal(1)
    if t and t[-1] in _SUFFIX:
        mult = _SUFFIX[t[-1]]
        t = t[:-1]
    return Decimal(t) * mult


def _when(tok: Token, span: ast.Span) -> ast.When:
    text = str(tok)
    value: dt.date | dt.datetime | None
    try:
        if tok.type == "DATE":
            value = dt.date.fromisoformat(text)
        else:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        value = None
    return ast.When(value, text, span=span)


class _Clause:
    """One clause inside a block, before the block assembles its fields."""

    __slots__ = ("kind", "value", "span")

    def __init__(self, kind: str, value, span: ast.Span):
        self.kind, self.value, self.span = kind, value, span


# Block fields that may appear once, and those collected into tuples.
_SINGLE = {
    "entity": {
        "display_name", "currency", "timezone", "invoice_prefix", "numbering", "invoice_grace", "address", "country",
        "vat_id",
    },
    "metric": {"event", "aggregation", "rounding", "recurring"},
    "plan": {"currency", "billing", "timezone", "fee", "rounding", "progressive", "notice"},
    "contract": {
        "customer", "subscription", "entity", "plan", "starts", "ends", "timezone", "progressive",
        "budget", "job_limit", "late_events", "preemption", "idle", "invoice_grace", "bill_to", "vat_id", "notice",
    },
    "test": {"contract", "period"},
    "charge": {"timing", "minimum_spend", "rounding", "prorated", "group_by"},
}
_MULTI = {
    "entity": {"taxes"},
    "metric": {"per_event", "dimensions"},
    "plan": {"charges"},
    "contract": {"overrides", "commits", "reserves", "credits", "discounts", "failure_policies"},
    "test": {"usages", "expects"},
    "charge": {"filters", "windows"},
}
#: Clauses whose value is a flag or a word, so the node keeps their span beside it.
_SPANNED = {"recurring", "timing", "prorated"}
_WORD = {
    "display_name": "name", "invoice_prefix": "invoice prefix", "invoice_grace": "invoice grace",
    "vat_id": "vat id", "bill_to": "bill to",
    "event": "event", "aggregation": "aggregation", "late_events": "late events", "idle": "idle",
    "minimum_spend": "minimum spend", "group_by": "group by", "timing": "in advance/in arrears",
}


@v_args(inline=True)
class _Build(Transformer):
    def __init__(self, path: str, line0: int = 0):
        super().__init__(visit_tokens=False)
        self.path = path
        self.line0 = line0  # lines of the file before the parsed text
        self.diags: list[Diagnostic] = []

    # -------------------------------------------------------------- helpers
    def _sp(self, meta) -> ast.Span:
        return ast.Span(self.path, meta.line + self.line0, meta.column, meta.end_line + self.line0, meta.end_column)

    def _t(self, tok: Token) -> ast.Span:
        return ast.Span(self.path, tok.line + self.line0, tok.column, tok.end_line + self.line0, tok.end_column)

    def _num(self, tok: Token) -> Decimal:
        return _num(self._digits(tok))

    def _digits(self, tok: Token) -> str:
        """The text of a number token, refused (the block is dropped) past MAX_NUMBER_DIGITS digits."""
        text = str(tok)
        if len(text) > MAX_NUMBER_DIGITS:
            n = sum(c.isdigit() for c in text)
            if n > MAX_NUMBER_DIGITS:
                raise _BuildError(error(
                    "number-too-long",
                    f"this number has {n} digits; a number may have at most {MAX_NUMBER_DIGITS} digits",
                    self._t(tok),
                    hints=("use a suffix (k, M, G, T) or a larger unit for large quantities",),
                ))
        return text

    def _ref(self, tok: Token) -> ast.Ref:
        return ast.Ref(str(tok), span=self._t(tok))

    def _str(self, tok: Token) -> ast.Str:
        raw = str(tok)[1:-1]
        value = re.sub(r"\\(.)", r"\1", raw)
        return ast.Str(value, span=self._t(tok))

    def _number(self, tok: Token) -> ast.Number:
        return ast.Number(self._num(tok), str(tok), span=self._t(tok))

    def _percent(self, tok: Token) -> ast.Percent:
        return ast.Percent(Decimal(self._digits(tok)[:-1]), span=self._t(tok))

    def _assemble(self, block: str, cls, head: dict, clauses, span: ast.Span):
        fields = dict(head)
        seen: dict[str, ast.Span] = {}
        multi = {k: [] for k in _MULTI[block]}
        for c in clauses:
            if not isinstance(c, _Clause):
                continue
            if c.kind in multi:
                multi[c.kind].append(c.value)
            elif c.kind in _SINGLE[block]:
                if c.kind in seen:
                    word = _WORD.get(c.kind, c.kind.replace("_", " "))
                    self.diags.append(
                        error(
                            "duplicate-clause",
                            f'"{word}" is given twice in this {block}',
                            c.span,
                            hints=("keep one of them",),
                            notes=(("first given", seen[c.kind]),),
                        )
                    )
                    continue
                seen[c.kind] = c.span
                fields[c.kind] = c.value
                if c.kind in _SPANNED:  # flags and words keep where they were written
                    fields[f"{c.kind}_span"] = c.span
        for k, v in multi.items():
            fields[k] = tuple(v)
        return cls(**fields, span=span)

    # -------------------------------------------------------------- entities
    @v_args(meta=True, inline=True)
    def entity(self, meta, name, *clauses):
        out = []
        for c in clauses:
            if c.kind == "invoice_prefix":
                prefix, numbering = c.value
                out.append(_Clause("invoice_prefix", prefix, c.span))
                if numbering is not None:
                    out.append(_Clause("numbering", numbering, c.span))
            else:
                out.append(c)
        clauses = out
        return self._assemble("entity", ast.Entity, {"name": self._ref(name)}, clauses, self._sp(meta))

    @v_args(meta=True, inline=True)
    def display_name(self, meta, s):
        return _Clause("display_name", self._str(s), self._sp(meta))

    @v_args(meta=True, inline=True)
    def currency(self, meta, code):
        return _Clause("currency", self._ref(code), self._sp(meta))

    @v_args(meta=True, inline=True)
    def timezone(self, meta, s):
        return _Clause("timezone", self._str(s), self._sp(meta))

    @v_args(meta=True, inline=True)
    def tax(self, meta, name, rate):
        return _Clause("taxes", ast.Tax(self._str(name), self._percent(rate), span=self._sp(meta)), self._sp(meta))

    @v_args(meta=True, inline=True)
    def invoice_prefix(self, meta, prefix, numbering=None):
        sp = self._sp(meta)
        # numbering rides along with the prefix clause
        return _Clause("invoice_prefix", (self._str(prefix), self._ref(numbering) if numbering else None), sp)

    @v_args(meta=True, inline=True)
    def invoice_grace(self, meta, q):
        return _Clause("invoice_grace", q, self._sp(meta))

    @v_args(meta=True, inline=True)
    def notice(self, meta, q):
        return _Clause("notice", q, self._sp(meta))

    @v_args(meta=True, inline=True)
    def address(self, meta, lines):
        return _Clause("address", ast.Address(lines, span=self._sp(meta)), self._sp(meta))

    def address_lines(self, *lines):
        return tuple(map(self._str, lines))

    @v_args(meta=True, inline=True)
    def country(self, meta, code):
        return _Clause("country", self._str(code), self._sp(meta))

    @v_args(meta=True, inline=True)
    def vat_id(self, meta, s):
        return _Clause("vat_id", self._str(s), self._sp(meta))

    # -------------------------------------------------------------- metrics
    @v_args(meta=True, inline=True)
    def metric(self, meta, name, *clauses):
        return self._assemble("metric", ast.Metric, {"name": self._ref(name)}, clauses, self._sp(meta))

    @v_args(meta=True, inline=True)
    def event_code(self, meta, name):
        ref = self._ref(name) if name.type == "NAME" else ast.Ref(self._str(name).value, span=self._t(name))
        return _Clause("event", ref, self._sp(meta))

    def _agg(self, meta, kind, expr=None, unit=None, field=None):
        node = ast.Aggregation(kind, expr=expr, field=field, unit=unit, span=self._sp(meta))
        return _Clause("aggregation", node, self._sp(meta))

    @v_args(meta=True, inline=True)
    def agg_count(self, meta, _kw):
        return self._agg(meta, "count")

    @v_args(meta=True, inline=True)
    def agg_sum(self, meta, _kw, expr, unit=None):
        return self._agg(meta, "sum", expr, unit)

    @v_args(meta=True, inline=True)
    def agg_max(self, meta, _kw, expr, unit=None):
        return self._agg(meta, "max", expr, unit)

    @v_args(meta=True, inline=True)
    def agg_latest(self, meta, _kw, expr, unit=None):
        return self._agg(meta, "latest", expr, unit)

    @v_args(meta=True, inline=True)
    def agg_weighted_sum(self, meta, _kw, expr, unit=None):
        return self._agg(meta, "weighted_sum", expr, unit)

    @v_args(meta=True, inline=True)
    def agg_unique_count(self, meta, _kw, field):
        return self._agg(meta, "unique_count", field=self._ref(field))

    def unit_in(self, tok):
        return ast.Unit(str(tok), span=self._t(tok))

    @v_args(meta=True, inline=True)
    def per_event(self, meta, prop, *opts):
        kw = {}
        for kind, q in opts:
            if kind in kw:
                self.diags.append(error("duplicate-clause", f'"{kind}" is given twice for this property', q.span))
            kw[kind] = q
        node = ast.PerEvent(self._ref(prop), span=self._sp(meta), **kw)
        return _Clause("per_event", node, self._sp(meta))

    def increment(self, q):
        return ("increment", q)

    def pe_minimum(self, q):
        return ("minimum", q)

    def pe_maximum(self, q):
        return ("maximum", q)

    @v_args(meta=True, inline=True)
    def dimension(self, meta, name, values=None):
        node = ast.Dimension(self._ref(name), values, span=self._sp(meta))
        return _Clause("dimensions", node, self._sp(meta))

    @v_args(meta=True, inline=True)
    def metric_rounding(self, meta, fn, precision=None):
        node = ast.MetricRounding(str(fn), int(self._digits(precision)) if precision is not None else 0, span=self._sp(meta))
        return _Clause("rounding", node, self._sp(meta))

    @v_args(meta=True, inline=True)
    def recurring(self, meta):
        return _Clause("recurring", True, self._sp(meta))

    # expressions
    @v_args(meta=True, inline=True)
    def const(self, meta, tok):
        return ast.Const(self._num(tok), str(tok), span=self._t(tok))

    @v_args(meta=True, inline=True)
    def prop(self, meta, tok):
        return ast.Prop(str(tok), span=self._t(tok))

    def _bin(self, op, meta, a, b):
        return ast.BinOp(op, a, b, span=self._sp(meta))

    @v_args(meta=True, inline=True)
    def add(self, meta, a, b):
        return self._bin("+", meta, a, b)

    @v_args(meta=True, inline=True)
    def sub(self, meta, a, b):
        return self._bin("-", meta, a, b)

    @v_args(meta=True, inline=True)
    def mul(self, meta, a, b):
        return self._bin("*", meta, a, b)

    @v_args(meta=True, inline=True)
    def div(self, meta, a, b):
        return self._bin("/", meta, a, b)

    @v_args(meta=True, inline=True)
    def neg(self, meta, *items):
        return ast.Neg(items[-1], span=self._sp(meta))

    # -------------------------------------------------------------- plans
    @v_args(meta=True, inline=True)
    def plan(self, meta, name, *rest):
        head = {"name": self._ref(name)}
        clauses = list(rest)
        if clauses and isinstance(clauses[0], ast.PlanVersion):
            head["version"] = clauses.pop(0)
        return self._assemble("plan", ast.Plan, head, clauses, self._sp(meta))

    @v_args(meta=True, inline=True)
    def plan_version(self, meta, vid, start=None, end=None):
        return ast.PlanVersion(str(vid), start, end, span=self._sp(meta))

    @v_args(meta=True, inline=True)
    def billing(self, meta, interval, *rest):
        anchor = timing = None
        for r in rest:
            if isinstance(r, Token) and r.type == "ANCHOR":
                anchor = str(r)
            elif isinstance(r, str):
                timing = r
        node = ast.Billing(str(interval), anchor, timing, span=self._sp(meta))
        return _Clause("billing", node, self._sp(meta))

    def timing(self, tok):
        return str(tok)

    @v_args(meta=True, inline=True)
    def fee(self, meta, amount, timing=None):
        return _Clause("fee", ast.Fee(amount, timing, span=self._sp(meta)), self._sp(meta))

    @v_args(meta=True, inline=True)
    def money_rounding(self, meta, mode, quantum):
        node = ast.MoneyRounding(str(mode), self._number(quantum), span=self._sp(meta))
        return _Clause("rounding", node, self._sp(meta))

    @v_args(meta=True, inline=True)
    def progressive(self, meta, *items):
        fixed = tuple(i for i in items if isinstance(i, ast.Amount))
        every = tuple(i[1] for i in items if isinstance(i, tuple))
        node = ast.Progressive(fixed, every, span=self._sp(meta))
        return _Clause("progressive", node, self._sp(meta))

    def every(self, amount):
        return ("every", amount)

    @v_args(meta=True, inline=True)
    def charge(self, meta, metric, *rest):
        head = {"metric": self._ref(metric)}
        items = list(rest)
        if items and isinstance(items[0], ast.Ref):
            head["label"] = items.pop(0)
        head["price"] = items.pop(0)
        clauses = items[0] if items else []
        node = self._assemble("charge", ast.Charge, head, clauses, self._sp(meta))
        return _Clause("charges", node, self._sp(meta))

    def charge_label(self, tok):
        return self._ref(tok)

    def charge_body(self, *items):
        return list(items)

    @v_args(meta=True, inline=True)
    def where_price(self, meta, cond, price):
        return _Clause("filters", ast.WherePrice(cond, price, span=self._sp(meta)), self._sp(meta))

    @v_args(meta=True, inline=True)
    def window_price(self, meta, start, end, price):
        return _Clause("windows", ast.WindowPrice(start, end, price, span=self._sp(meta)), self._sp(meta))

    @v_args(meta=True, inline=True)
    def group_by(self, meta, *names):
        return _Clause("group_by", tuple(self._ref(n) for n in names), self._sp(meta))

    @v_args(meta=True, inline=True)
    def pay_timing(self, meta, timing):
        return _Clause("timing", timing, self._sp(meta))

    @v_args(meta=True, inline=True)
    def spend_minimum(self, meta, amount):
        return _Clause("minimum_spend", amount, self._sp(meta))

    @v_args(meta=True, inline=True)
    def prorated(self, meta):
        return _Clause("prorated", True, self._sp(meta))

    @v_args(meta=True, inline=True)
    def condition(self, meta, *matches):
        return ast.Condition(tuple(matches), span=self._sp(meta))

    @v_args(meta=True, inline=True)
    def match_eq(self, meta, key, value):
        return ast.Match(self._ref(key), (self._str(value),), "=", span=self._sp(meta))

    @v_args(meta=True, inline=True)
    def match_in(self, meta, key, values):
        return ast.Match(self._ref(key), values, "in", span=self._sp(meta))

    def string_list(self, *toks):
        return tuple(self._str(t) for t in toks)

    # prices
    @v_args(meta=True, inline=True)
    def standard(self, meta, amount, unit):
        return ast.Standard(amount, ast.Unit(str(unit), span=self._t(unit)), span=self._sp(meta))

    @v_args(meta=True, inline=True)
    def price_table(self, meta, unit, dim, *rows):
        return ast.PriceTable(ast.Unit(str(unit), span=self._t(unit)), self._ref(dim), tuple(rows), span=self._sp(meta))

    @v_args(meta=True, inline=True)
    def table_row(self, meta, value, amount):
        return ast.TableRow(self._str(value), amount, span=self._sp(meta))

    def _tiers(self, rest):
        unit = None
        items = list(rest)
        if items and isinstance(items[0], Token):
            tok = items.pop(0)
            unit = ast.Unit(str(tok), span=self._t(tok))
        return unit, tuple(items)

    @v_args(meta=True, inline=True)
    def graduated(self, meta, *rest):
        unit, tiers = self._tiers(rest)
        return ast.Graduated(unit, tiers, span=self._sp(meta))

    @v_args(meta=True, inline=True)
    def volume(self, meta, *rest):
        unit, tiers = self._tiers(rest)
        return ast.Volume(unit, tiers, span=self._sp(meta))

    @v_args(meta=True, inline=True)
    def tier(self, meta, start, end, price, flat=None):
        return ast.Tier(self._number(start), end, price, flat, span=self._sp(meta))

    @v_args(meta=True, inline=True)
    def percentage_tier(self, meta, start, end, rate, flat=None):
        return ast.Tier(self._number(start), end, self._percent(rate), flat, span=self._sp(meta))

    def tier_end(self, tok):
        return self._number(tok)

    def tier_open(self):
        return None

    @v_args(meta=True, inline=True)
    def graduated_percentage(self, meta, *tiers):
        return ast.GraduatedPercentage(tuple(tiers), span=self._sp(meta))

    @v_args(meta=True, inline=True)
    def package(self, meta, amount, size, free=None):
        return ast.Package(amount, size, free, span=self._sp(meta))

    @v_args(meta=True, inline=True)
    def percentage(self, meta, rate, *opts):
        kw = {}
        for kind, value, sp in opts:
            if kind in kw:
                self.diags.append(error("duplicate-clause", f'"{kind.replace("_", " ")}" is given twice', sp))
            kw[kind] = value
        return ast.Percentage(self._percent(rate), span=self._sp(meta), **kw)

    @v_args(meta=True, inline=True)
    def pct_fixed(self, meta, amount):
        return ("fixed", amount, self._sp(meta))

    @v_args(meta=True, inline=True)
    def pct_free_events(self, meta, n):
        return ("free_events", self._number(n), self._sp(meta))

    @v_args(meta=True, inline=True)
    def pct_free_amount(self, meta, amount):
        return ("free_amount", amount, self._sp(meta))

    @v_args(meta=True, inline=True)
    def pct_min(self, meta, amount):
        return ("minimum", amount, self._sp(meta))

    @v_args(meta=True, inline=True)
    def pct_max(self, meta, amount):
        return ("maximum", amount, self._sp(meta))

    @v_args(meta=True, inline=True)
    def dynamic(self, meta):
        return ast.Dynamic(span=self._sp(meta))

    # -------------------------------------------------------------- contracts
    @v_args(meta=True, inline=True)
    def contract(self, meta, name, *clauses):
        return self._assemble("contract", ast.Contract, {"name": self._ref(name)}, clauses, self._sp(meta))

    @v_args(meta=True, inline=True)
    def customer(self, meta, cid, display=None):
        node = ast.Customer(self._str(cid), self._str(display) if display else None, span=self._sp(meta))
        return _Clause("customer", node, self._sp(meta))

    @v_args(meta=True, inline=True)
    def bill_to(self, meta, lines, country=None):
        node = ast.Address(lines, self._str(country) if country else None, span=self._sp(meta))
        return _Clause("bill_to", node, self._sp(meta))

    @v_args(meta=True, inline=True)
    def subscription(self, meta, sid):
        return _Clause("subscription", self._str(sid), self._sp(meta))

    @v_args(meta=True, inline=True)
    def contract_entity(self, meta, name):
        return _Clause("entity", self._ref(name), self._sp(meta))

    @v_args(meta=True, inline=True)
    def contract_plan(self, meta, name, version=None):
        node = ast.PlanRef(self._ref(name), str(version) if version else None, span=self._sp(meta))
        return _Clause("plan", node, self._sp(meta))

    @v_args(meta=True, inline=True)
    def starts(self, meta, when):
        return _Clause("starts", when, self._sp(meta))

    @v_args(meta=True, inline=True)
    def ends(self, meta, when):
        return _Clause("ends", when, self._sp(meta))

    @v_args(meta=True, inline=True)
    def override(self, meta, charge, *rest):
        cond = rest[0] if len(rest) == 2 else None
        node = ast.Override(self._ref(charge), cond, rest[-1], span=self._sp(meta))
        return _Clause("overrides", node, self._sp(meta))

    @v_args(meta=True, inline=True)
    def commit(self, meta, amount, *rest):
        per = true_up = None
        for r in rest:
            if isinstance(r, Token):
                per = str(r)
            else:
                true_up = r
        node = ast.Commit(amount, per, true_up, span=self._sp(meta))
        return _Clause("commits", node, self._sp(meta))

    def true_up_period(self):
        return "period"

    def true_up_term(self):
        return "term"

    @v_args(meta=True, inline=True)
    def reserve(self, meta, count, gpu_type, metric, rate, unit, billing="prepaid"):
        node = ast.Reserve(
            self._number(count), self._str(gpu_type), self._ref(metric), rate,
            ast.Unit(str(unit), span=self._t(unit)), billing, span=self._sp(meta),
        )
        return _Clause("reserves", node, self._sp(meta))

    def prepaid(self):
        return "prepaid"

    def reserve_billing(self, value):
        return value

    @v_args(meta=True, inline=True)
    def credit(self, meta, amount, *opts):
        kw = {}
        for kind, value, sp in opts:
            if kind in kw:
                word = "for" if kind == "scope" else kind
                self.diags.append(error("duplicate-clause", f'"{word}" is given twice for this credit', sp))
            kw[kind] = value
        return _Clause("credits", ast.Credit(amount, span=self._sp(meta), **kw), self._sp(meta))

    @v_args(meta=True, inline=True)
    def credit_kind(self, meta, tok):
        return ("kind", str(tok), self._sp(meta))

    @v_args(meta=True, inline=True)
    def credit_expiry(self, meta, when):
        return ("expires", when, self._sp(meta))

    @v_args(meta=True, inline=True)
    def credit_priority(self, meta, n):
        return ("priority", self._number(n), self._sp(meta))

    @v_args(meta=True, inline=True)
    def credit_scope(self, meta, name):
        return ("scope", self._ref(name), self._sp(meta))

    @v_args(meta=True, inline=True)
    def discount(self, meta, value, freq, scope=None):
        if isinstance(value, Token):
            value = self._percent(value)
        kind, periods = freq
        node = ast.Discount(value, kind, periods, self._ref(scope) if scope else None, span=self._sp(meta))
        return _Clause("discounts", node, self._sp(meta))

    def once(self):
        return ("once", None)

    def forever(self):
        return ("forever", None)

    def recurring_n(self, n):
        return ("recurring", self._number(n))

    @v_args(meta=True, inline=True)
    def budget(self, meta, amount, *rest):
        interval = None
        alerts = []
        for r in rest:
            if r.type == "INTERVAL":
                interval = str(r)
            else:
                alerts.append(self._percent(r))
        node = ast.Budget(amount, interval, tuple(alerts), span=self._sp(meta))
        return _Clause("budget", node, self._sp(meta))

    @v_args(meta=True, inline=True)
    def job_limit(self, meta, amount):
        return _Clause("job_limit", ast.JobLimit(amount, span=self._sp(meta)), self._sp(meta))

    @v_args(meta=True, inline=True)
    def late_events(self, meta, grace, target=None):
        return _Clause("late_events", ast.LatePolicy(grace, target, span=self._sp(meta)), self._sp(meta))

    def late_next_invoice(self):
        return "next_invoice"

    def late_new_revision(self):
        return "new_revision"

    @v_args(meta=True, inline=True)
    def failure_policy(self, meta, kind, action):
        name, pct = action
        node = ast.FailurePolicy(str(kind), name, pct, span=self._sp(meta))
        return _Clause("failure_policies", node, self._sp(meta))

    def no_charge(self):
        return ("no_charge", None)

    def credit_pct(self, pct):
        return ("credit", self._percent(pct))

    def charge_actual(self):
        return ("charge_actual", None)

    @v_args(meta=True, inline=True)
    def preemption_policy(self, meta, pct=None):
        node = ast.PreemptionPolicy(self._percent(pct) if pct is not None else None, span=self._sp(meta))
        return _Clause("preemption", node, self._sp(meta))

    @v_args(meta=True, inline=True)
    def idle_policy(self, meta, kind, minimum=None):
        node = ast.IdlePolicy(str(kind), self._percent(minimum) if minimum is not None else None, span=self._sp(meta))
        return _Clause("idle", node, self._sp(meta))

    # -------------------------------------------------------------- tests
    @v_args(meta=True, inline=True)
    def test(self, meta, name, *clauses):
        return self._assemble("test", ast.TestBlock, {"name": self._str(name)}, clauses, self._sp(meta))

    @v_args(meta=True, inline=True)
    def test_contract(self, meta, name):
        return _Clause("contract", self._ref(name), self._sp(meta))

    @v_args(meta=True, inline=True)
    def test_period(self, meta, first, second=None):
        sp = self._sp(meta)
        if isinstance(first, Token):  # MONTH
            node = ast.TestPeriod(str(first), span=sp)
        else:
            text = first.text + (f" .. {second.text}" if second else "")
            node = ast.TestPeriod(text, first, second, span=sp)
        return _Clause("period", node, sp)

    @v_args(meta=True, inline=True)
    def usage(self, meta, code, *rest):
        props, at, times = [], None, None
        for r in rest:
            if isinstance(r, ast.UsageProp):
                props.append(r)
            elif isinstance(r, ast.When):
                at = r
            else:
                times = self._number(r)
        node = ast.Usage(self._ref(code), tuple(props), at, times, span=self._sp(meta))
        return _Clause("usages", node, self._sp(meta))

    @v_args(meta=True, inline=True)
    def usage_prop(self, meta, name, *value):
        if value[-1].type == "STRING":
            v = self._str(value[-1])
        else:
            num = self._number(value[-1])
            if len(value) == 2:
                num = ast.Number(-num.value, "-" + num.text, span=self._sp(meta))
            v = num
        return ast.UsageProp(self._ref(name), v, span=self._sp(meta))

    @v_args(meta=True, inline=True)
    def expect(self, meta, what, *rest):
        target = cond = None
        value = rest[-1]
        for r in rest[:-1]:
            if isinstance(r, ast.Ref):
                target = r
            elif isinstance(r, ast.Condition):
                cond = r
        node = ast.Expect(str(what), target, cond, value, span=self._sp(meta))
        return _Clause("expects", node, self._sp(meta))

    def expect_target(self, tok):
        return self._ref(tok)

    # -------------------------------------------------------------- leaves
    @v_args(meta=True, inline=True)
    def amount(self, meta, *toks):
        neg = toks[0].type == "NEG"
        toks = toks[1:] if neg else toks
        value = self._num(toks[0])
        text = ("-" if neg else "") + str(toks[0])
        cur = str(toks[1]) if len(toks) > 1 else None
        return ast.Amount(-value if neg else value, cur, text, span=self._sp(meta))

    @v_args(meta=True, inline=True)
    def quantity(self, meta, num, unit):
        return ast.Quantity(self._num(num), str(unit), f"{num} {unit}", span=self._sp(meta))

    def date_or_time(self, tok):
        return _when(tok, self._t(tok))
