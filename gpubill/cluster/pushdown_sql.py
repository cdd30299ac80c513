"""The SQL a shard runs for a pushed-down rating (``pushdown.py``): text only, no I/O.

Every query reads ``events_local FINAL`` on one shard, keeps what the run's
read keeps (``Selection``: code, subscription and time conditions before
``FINAL``, which every copy of a key shares; the id bounds after it), and
returns per-line sums. Literals are inlined (quoted here), so no ``%``
formatting happens in the driver: ``modulo`` is spelled as a function.

A property's value is found with ``indexOf(pk, name)`` (0: absent). Its text
(what filters, groups, unique ids, jobs and end reasons compare) is the
explicit string when it was one, else ``format_decimal`` of its exact pair,
built in SQL (``_number_text``); a quantity reads the pair as an Int64 at a
fixed exponent chosen by the caller, who has proved that no value, product
or sum can overflow (ClickHouse wraps silently).
"""

from __future__ import annotations

from fractions import Fraction

from .select import Selection

UNHOLDABLE, MISSING = -127, -128


def lit(s: str) -> str:
    """A ClickHouse string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def int_lit(v: int) -> str:
    return f"toInt64({int(v)})"


def in_list(values, quote=True) -> str:
    vals = [lit(v) if quote else str(int(v)) for v in values]
    return "(" + ", ".join(vals) + ")"


def base_sql(db: str, sel: Selection, cols: str, *, code: str | None = None, subs=None, bounds=None) -> str:
    """The kept events' ``cols`` (``id`` among them). ``subs``: these subscriptions only;
    ``bounds``: {sub: (lo, hi)} inclusive time bounds per subscription."""
    pre = ["1"]
    if sel.codes is not None:
        pre.append(f"code IN {in_list(sel.codes)}" if sel.codes else "0")
    if code is not None:
        pre.append(f"code = {lit(code)}")
    if sel.subscriptions is not None:
        pre.append(f"sub IN {in_list(sel.subscriptions)}" if sel.subscriptions else "0")
    if subs is not None:
        pre.append(f"sub IN {in_list(subs)}" if subs else "0")
    if sel.time_from_ms is not None:
        pre.append(f"ts >= {int(sel.time_from_ms)}")
    if sel.time_to_ms is not None:
        pre.append(f"ts <= {int(sel.time_to_ms)}")
    if bounds:
        names = sorted(bounds)
        arr = "[" + ", ".join(lit(s) for s in names) + "]"
        los = "[" + ", ".join(int_lit(bounds[s][0]) for s in names) + "]"
        his = "[" + ", ".join(int_lit(bounds[s][1]) for s in names) + "]"
        pre.append(f"ts >= transform(sub, {arr}, {los}, toInt64(0))")
        pre.append(f"ts <= transform(sub, {arr}, {his}, toInt64(0))")
    post = [f"id > {int(sel.since)}"]
    if sel.until is not None:
        post.append(f"id <= {int(sel.until)}")
    return (f"SELECT {cols} FROM (SELECT {cols} FROM {db}.events_local FINAL WHERE {' AND '.join(pre)})"
            f" WHERE {' AND '.join(post)}")


PROP_STATS = 7  # per property: present, held, min e, max e, max |m|, unholdable, JSON numbers


def stats_sql(db: str, sel: Selection, subs, names) -> str:
    """Per subscription and code: events, then precise_total_amount_cents' (held values, min / max
    exponent, max |mantissa|, unholdable values), then per property of ``names`` (sorted)
    ``PROP_STATS`` values: events with it, held values, min / max exponent, max |mantissa|,
    unholdable values, values that were JSON numbers (their text is formatted)."""
    P = Props(names)
    aggs = ["count()", f"countIf(ptac_e > {UNHOLDABLE})", f"minIf(ptac_e, ptac_e > {UNHOLDABLE})",
            f"maxIf(ptac_e, ptac_e > {UNHOLDABLE})", f"maxIf(abs(ptac_m), ptac_e > {UNHOLDABLE})",
            f"countIf(ptac_e = {UNHOLDABLE})"]
    for n in P.names:
        i = P.i(n)
        held = P.held(n)
        aggs += [f"countIf({i} > 0)", f"countIf({held})", f"minIf(pe[{i}], {held})", f"maxIf(pe[{i}], {held})",
                 f"maxIf(abs(pm[{i}]), {held})", f"countIf({i} > 0 AND pe[{i}] = {UNHOLDABLE})",
                 f"countIf({i} > 0 AND px[{i}] = 0)"]
    cols = "id, sub, code, pk, px, pm, pe, ptac_m, ptac_e"
    idx = ", ".join(["sub", "code", "px", "pm", "pe", "ptac_m", "ptac_e", *P.index_cols()])
    return (f"SELECT sub, code, {', '.join(aggs)} FROM (SELECT {idx} FROM ({base_sql(db, sel, cols, subs=subs)}))"
            f" GROUP BY sub, code")


_ZEROS = "'" + "0" * 260 + "'"  # more than any held exponent needs (|e| <= 127, 19 digits)


def _zeros(n: str) -> str:
    """``n`` zeros (0 <= n <= 260): a slice of a constant, no per-row array."""
    return f"substring({_ZEROS}, 1, toUInt64({n}))"


def _number_text(m: str, e: str) -> str:
    """``gpubill.numbers.format_decimal(m, e)`` in SQL (e a held exponent)."""
    a = f"toString(abs({m}))"
    padded = f"concat({_zeros(f'greatest(0, 1 - toInt16({e}) - toInt16(length({a})))')}, {a})"
    frac = (f"concat(if({m} < 0, '-', ''), substring({padded}, 1, toUInt64(greatest(0, length({padded}) + toInt16({e})))), '.',"
            f" substring({padded}, toUInt64(greatest(1, length({padded}) + toInt16({e}) + 1))))")
    whole = f"if({m} = 0, '0', concat(toString({m}), {_zeros(f'greatest(0, toInt16({e}))')}))"
    return f"if({e} >= 0, {whole}, {frac})"


class Props:
    """The SQL of one event's properties: index, presence, text, numeric value at a scale.
    ``numbers``: the properties that may hold a JSON number (None: any); the others' text is the
    explicit string (ClickHouse evaluates both branches of an ``if``: formatting costs every row)."""

    def __init__(self, names, numbers=None):
        self.names = sorted(set(names))
        self.alias = {n: f"p{i}" for i, n in enumerate(self.names)}
        self.numbers = numbers

    def index_cols(self) -> list[str]:
        return [f"indexOf(pk, {lit(n)}) AS {self.alias[n]}" for n in self.names]

    def i(self, n: str) -> str:
        return self.alias[n]

    def has(self, n: str) -> str:
        """The property has a text (a string, or a held number)."""
        i = self.i(n)
        return f"({i} > 0 AND (px[{i}] = 1 OR pe[{i}] > {UNHOLDABLE}))"

    def text(self, n: str) -> str:
        i = self.i(n)
        if self.numbers is not None and n not in self.numbers:
            return f"if({i} = 0 OR px[{i}] = 0, '', ps[{i}])"
        return f"if({i} = 0, '', if(px[{i}] = 1, ps[{i}], if(pe[{i}] > {UNHOLDABLE}, {_number_text(f'pm[{i}]', f'pe[{i}]')}, '')))"

    def held(self, n: str) -> str:
        """The property is strictly numeric and held."""
        i = self.i(n)
        return f"({i} > 0 AND pe[{i}] > {UNHOLDABLE})"

    def scaled(self, n: str, scale: int) -> str:
        """The value as an Int64 count of 10**scale (0 where not held)."""
        i = self.i(n)
        return (f"if({self.held(n)}, pm[{i}] * toInt64(intExp10(toInt16(pe[{i}]) - {int(scale)})), toInt64(0))")


def ceil_to(x: str, inc: int) -> str:
    """ceil(x / inc) * inc for an integer inc > 0 (ClickHouse's modulo takes the dividend's sign)."""
    r = f"modulo({x}, {int_lit(inc)})"
    return f"({x} - {r} + if({r} > 0, {int_lit(inc)}, toInt64(0)))"


def at_scale(v: Fraction, scale: int) -> int:
    """v as an integer count of 10**scale (the caller chose scale so that it is one)."""
    x = Fraction(v) / Fraction(10) ** scale
    assert x.denominator == 1, (v, scale)
    return x.numerator
