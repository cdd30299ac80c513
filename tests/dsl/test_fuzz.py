"""Fuzzing the language front end with hypothesis.

(a) Programs generated from the grammar, clause by clause, with random names,
numbers, tiers, filters, whitespace and comments: the parser accepts them,
the checker never raises (diagnostics only), and parse -> fmt -> parse gives
an equal IR while fmt is idempotent.

(b) Mutated real files (the identity corpus and examples/): characters and
tokens deleted, duplicated, swapped, garbage inserted, truncated. parse,
check and fmt never raise; whatever fmt accepts still round-trips.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpubill.dsl.check import check_sources
from gpubill.dsl.fmt import format_source
from gpubill.dsl.parse import parse

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = frozenset(re.findall(r'"([A-Za-z_-]+)"', resources.files("gpubill").joinpath("grammar.lark").read_text()))
#: GPUBILL_FUZZ_EXAMPLES=2000 for a deeper run; the default keeps the file under ~30 s.
SETTINGS = settings(
    max_examples=int(os.environ.get("GPUBILL_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# ---------------------------------------------------------------- leaves (each strategy gives a list of tokens)


def one(s):
    return s.map(lambda t: [t])


names = st.from_regex(r"[a-z_][a-z0-9_]{0,7}", fullmatch=True).filter(lambda n: n not in KEYWORDS)
name = one(names)
units = one(st.sampled_from(["hour", "hours", "second", "seconds", "token", "tokens", "GB-hour", "GPU-hour",
                             "days", "minute", "GB-month", "request"]))
currency = one(st.sampled_from(["USD", "EUR", "GBP", "JPY", "XYZ"]))
number_text = st.builds(
    lambda i, under, frac, suffix: i + under + frac + suffix,
    st.from_regex(r"0|[1-9][0-9]{0,4}", fullmatch=True),
    st.sampled_from(["", "", "_000"]),
    st.sampled_from(["", "", ".5", ".25", ".001"]),
    st.sampled_from(["", "", "", "k", "M"]),
)
number = one(number_text)
percent = one(st.builds(lambda neg, n, f: f"{neg}{n}{f}%", st.sampled_from(["", "", "-"]),
                        st.integers(0, 150), st.sampled_from(["", ".5", ".25"])))
string_chars = st.characters(blacklist_characters="\n", blacklist_categories=("Cs", "Cc"))
string = one(st.text(string_chars, max_size=10).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'))
date = st.from_regex(r"20[0-9]{2}-[01][0-9]-[0-3][0-9]", fullmatch=True)
datetime = st.builds(lambda d, t, z: f"{d}T{t}{z}", date, st.sampled_from(["00:00", "10:30:00", "23:59:59.5"]),
                     st.sampled_from(["Z", "+01:00", "-05:30", ""]))
when = one(st.one_of(date, datetime))


def seq(*parts):
    """Concatenate token-list strategies (plain strings are literal tokens)."""
    return st.tuples(*[one(st.just(p)) if isinstance(p, str) else p for p in parts]).map(lambda ls: sum(ls, []))


def opt(s):
    return st.one_of(st.just([]), s)


def comma_list(s, min_size=1, max_size=3, sep=","):
    return st.lists(s, min_size=min_size, max_size=max_size).map(
        lambda items: sum(([sep] + t if i else t for i, t in enumerate(items)), []))


amount = seq(opt(one(st.just("-"))), number, opt(currency))
quantity = seq(number, units)
string_list = st.one_of(comma_list(string), seq("(", comma_list(string), ")"))
match = st.one_of(seq(name, "=", string), seq(name, "in", string_list))
condition = st.lists(match, min_size=1, max_size=2).map(
    lambda ms: sum((["and"] + m if i else m for i, m in enumerate(ms)), []))
expr = st.recursive(
    st.one_of(name, number),
    lambda inner: st.one_of(
        seq(inner, one(st.sampled_from(["+", "-", "*", "/"])), inner),
        seq("(", inner, ")"),
        seq("-", inner),
    ),
    max_leaves=6,
)


def subset(options: dict, min_size=0):
    """Some of the named option strategies, each at most once, in random order."""
    return st.lists(st.sampled_from(sorted(options)), unique=True, min_size=min_size).flatmap(
        lambda keys: st.permutations(keys)).flatmap(
        lambda keys: st.tuples(*[options[k] for k in keys]) if keys else st.just(()))


def clauses(singles: dict, multis: dict, max_multi=2):
    """A block body: each single clause at most once, multi clauses 0..n times, shuffled."""
    multi_lists = st.tuples(*[st.lists(s, max_size=max_multi) for s in multis.values()]) if multis else st.just(())

    def combine(parts):
        one_each, many = parts
        return st.permutations(list(one_each) + [c for group in many for c in group])

    return st.tuples(subset(singles), multi_lists).flatmap(combine).map(lambda cs: sum(cs, []))


# ---------------------------------------------------------------- prices

tier_end = st.one_of(seq("to", number), st.just(["and", "above"]))
tier = seq(number, tier_end, "at", amount, opt(seq("flat", amount)))
pct_tier = seq(number, tier_end, "at", percent, opt(seq("flat", amount)))
pct_opts = {
    "fixed": seq("fixed", amount, "per", "event"),
    "free_events": seq("free", number, "events"),
    "free_amount": seq("free", amount),
    "minimum": seq("minimum", amount, "per", "event"),
    "maximum": seq("maximum", amount, "per", "event"),
}
price = st.one_of(
    seq(amount, "per", units),
    seq("per", units, "by", name, "{", st.lists(seq(string, amount), max_size=3).map(lambda r: sum(r, [])), "}"),
    seq(one(st.sampled_from(["graduated", "volume"])), opt(seq("per", units)), "{",
        st.lists(tier, max_size=3).map(lambda r: sum(r, [])), "}"),
    seq("package", amount, "per", quantity, opt(seq("free", quantity))),
    seq("percentage", percent, subset(pct_opts).map(lambda os: [t for o in os for t in [","] + o])),
    seq("graduated", "percentage", "{", st.lists(pct_tier, max_size=3).map(lambda r: sum(r, [])), "}"),
    st.just(["dynamic"]),
)
timing = seq("in", one(st.sampled_from(["advance", "arrears"])))
money_rounding = seq("rounding", one(st.sampled_from(["half_up", "half_even", "down", "ceiling", "floor"])), number)
charge_body = clauses(
    {
        "group_by": seq("group", "by", comma_list(name)),
        "timing": timing,
        "minimum_spend": seq("minimum", "spend", amount),
        "rounding": money_rounding,
        "prorated": st.just(["prorated"]),
    },
    {
        "where": seq("where", condition, price),
        "during": seq("during", when, "..", when, price),
    },
)
charge = seq("charge", name, opt(seq("as", name)), price, opt(seq("{", charge_body, "}")))
progressive = seq("progressive", "billing", "at", comma_list(st.one_of(amount, seq("every", amount))))

# ---------------------------------------------------------------- blocks

entity = seq("entity", name, "{", clauses({
    "name": seq("name", string),
    "currency": seq("currency", currency),
    "timezone": seq("timezone", string),
    "prefix": seq("invoice", "prefix", string, opt(seq("numbering", name))),
    "grace": seq("invoice", "grace", quantity),
}, {"tax": seq("tax", string, percent)}), "}")

per_event_opts = {"up": seq("up", "to", quantity), "min": seq("minimum", quantity), "max": seq("maximum", quantity)}
aggregation = st.one_of(
    st.just(["count"]),
    seq(one(st.sampled_from(["sum", "max", "latest"])), expr, opt(seq("in", units))),
    seq("unique", "count", name),
    seq("weighted", "sum", expr, opt(seq("in", units))),
)
metric = seq("metric", name, "{", clauses({
    "event": seq("event", st.one_of(name, string)),
    "aggregation": aggregation,
    "rounding": seq("rounding", one(st.sampled_from(["round", "ceil", "floor"])),
                    opt(one(st.integers(-3, 6).map(str)))),
    "recurring": st.just(["recurring"]),
}, {
    "per_event": seq("per", "event", name, subset(per_event_opts, min_size=1).map(
        lambda os: sum(([","] + o if i else o for i, o in enumerate(os)), []))),
    "dimension": seq("dimension", name, opt(seq("in", string_list))),
}), "}")

version_id = one(st.from_regex(r"[0-9a-z][0-9a-z_.]{0,4}", fullmatch=True).filter(lambda v: v not in KEYWORDS))
plan = seq("plan", name, opt(seq("version", version_id, opt(seq("effective", when, opt(seq("to", when)))))), "{",
           clauses({
               "currency": seq("currency", currency),
               "billing": seq("billing", one(st.sampled_from(["weekly", "monthly", "quarterly", "yearly"])),
                              opt(one(st.sampled_from(["calendar", "anniversary"]))), opt(timing)),
               "timezone": seq("timezone", string),
               "fee": seq("fee", amount, opt(timing)),
               "rounding": money_rounding,
               "progressive": progressive,
           }, {"charge": charge}, max_multi=3), "}")

credit_opts = {
    "kind": one(st.sampled_from(["granted", "paid"])),
    "expires": seq("expires", when),
    "priority": seq("priority", number),
    "scope": seq("for", name),
}
contract = seq("contract", name, "{", clauses({
    "customer": seq("customer", string, opt(seq("name", string))),
    "subscription": seq("subscription", string),
    "entity": seq("entity", name),
    "plan": seq("plan", name, opt(seq("version", version_id))),
    "starts": seq("starts", when),
    "ends": seq("ends", when),
    "timezone": seq("timezone", string),
    "progressive": progressive,
    "budget": seq("budget", amount, opt(one(st.sampled_from(["monthly", "yearly"]))),
                  opt(seq(",", "alert", "at", comma_list(percent)))),
    "job_limit": seq("job", "limit", amount),
    "late": seq("late", "events", "grace", quantity,
                opt(seq(",", "then", st.sampled_from([["next", "invoice"], ["new", "revision"]])))),
    "preemption": seq("on", "preemption", st.one_of(seq("credit", percent), st.just(["no", "credit"]))),
    "idle": seq("idle", one(st.sampled_from(["allocation", "utilization", "hybrid"])), opt(seq("minimum", percent))),
    "grace": seq("invoice", "grace", quantity),
}, {
    "override": seq("override", name, opt(seq("where", condition)), price),
    "commit": seq("commit", amount, opt(seq("per", one(st.sampled_from(["period", "month", "year", "term"])))),
                  opt(seq(",", st.sampled_from([["true-up", "each", "period"], ["true-up", "at", "term", "end"]])))),
    "reserve": seq("reserve", number, string, "on", name, "at", amount, "per", units,
                   opt(seq(",", st.one_of(st.just(["prepaid"]), timing)))),
    "credit": seq("credit", amount, subset(credit_opts).map(lambda os: [t for o in os for t in [","] + o])),
    "discount": seq("discount", st.one_of(percent, amount),
                    st.one_of(st.just(["once"]), st.just(["forever"]), seq("recurring", number, "periods")),
                    opt(seq("for", name))),
    "failure": seq("on", one(st.sampled_from(["infrastructure", "user"])), "failure",
                   st.one_of(st.just(["no", "charge"]), seq("credit", percent), st.just(["charge", "actual", "usage"]))),
}), "}")

usage_value = st.one_of(string, seq(opt(one(st.just("-"))), number))
test_block = seq("test", string, "{", clauses({
    "contract": seq("contract", name),
    "period": st.one_of(one(st.from_regex(r"20[0-9]{2}-[01][0-9]", fullmatch=True)), seq(when, opt(seq("..", when)))
                        ).map(lambda p: ["period"] + p),
}, {
    "usage": seq("usage", name, st.lists(seq(name, "=", usage_value), max_size=3).map(lambda r: sum(r, [])),
                 opt(seq("at", when)), opt(seq("times", number))),
    "expect": seq("expect", one(st.sampled_from(["charge", "units", "total", "events"])), opt(name),
                  opt(seq("where", condition)), "=", amount),
}), "}")

comment_text = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=8)
separator = st.one_of(
    st.sampled_from([" ", " ", " ", "\n", "\n  ", "\n\n", "\t"]),
    comment_text.map(lambda t: f"  # {t}\n"),
    comment_text.map(lambda t: f"\n# {t}\n"),
)


@st.composite
def programs(draw):
    blocks = draw(st.lists(st.one_of(entity, metric, plan, contract, test_block), min_size=1, max_size=4))
    tokens = [t for b in blocks for t in b + ["\n"]]
    out = []
    for t in tokens:
        out.append(t)
        out.append(draw(separator))
    return "".join(out)


# ---------------------------------------------------------------- (a) generated programs


def assert_fmt_roundtrip(src: str, path: str = "f.bill"):
    out, diags = format_source(src, path)
    if out is None:
        return
    doc, _ = parse(src, path)
    again, diags2 = parse(out, path)
    assert [d for d in diags2 if d.is_error] == [], (out, diags2)
    assert again == doc, out
    assert format_source(out, path)[0] == out


@SETTINGS
@given(programs())
def test_generated_programs_parse_check_and_roundtrip(src):
    doc, diags = parse(src, "gen.bill")
    assert [d for d in diags if d.is_error] == [], (src, diags)
    assert doc.blocks
    check_sources({"gen.bill": src})  # diagnostics only, never an exception
    assert_fmt_roundtrip(src, "gen.bill")


# ---------------------------------------------------------------- (b) mutated real files

SEEDS = sorted((ROOT / "tests" / "dsl" / "corpus").glob("*.bill")) + sorted((ROOT / "examples").rglob("*.bill"))
SEED_TEXT = {str(p.relative_to(ROOT)): p.read_text() for p in SEEDS}
GARBAGE = ["{", "}", '"', "#", "..", "-", "=", ",", "(", ")", "%", "\n", "plan", "contract x {", "per", "at",
           "and above", "1e5", "9" * 30, "\\", "T", "é", "\x00", "\r", "2026-13-45", "99999-01-01", "1_", "0.0.0"]
TOKEN = re.compile(r'"(?:\\.|[^"\\\n])*"|\s+|[A-Za-z0-9_.%:+-]+|.', re.S)


@st.composite
def mutated(draw):
    path = draw(st.sampled_from(sorted(SEED_TEXT)))
    text = SEED_TEXT[path]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "truncate", "chars"]))
        toks = TOKEN.findall(text)
        if not toks:
            break
        i = draw(st.integers(0, len(toks) - 1))
        j = draw(st.integers(i, min(len(toks), i + 8)))
        if kind == "delete":
            del toks[i:j]
        elif kind == "duplicate":
            toks[i:i] = toks[i:j]
        elif kind == "swap":
            k = draw(st.integers(0, len(toks) - 1))
            toks[i], toks[k] = toks[k], toks[i]
        elif kind == "insert":
            toks.insert(i, draw(st.one_of(st.sampled_from(GARBAGE), st.text(max_size=4))))
        elif kind == "truncate":
            toks = toks[:i]
        text = "".join(toks)
        if kind == "chars" and text:
            a = draw(st.integers(0, len(text) - 1))
            text = text[:a] + draw(st.text(max_size=3)) + text[a + draw(st.integers(0, 3)):]
    return path, text


@SETTINGS
@given(mutated())
def test_mutated_files_give_diagnostics_never_exceptions(case):
    path, src = case
    parse(src, path)
    sources = dict(SEED_TEXT)
    sources[path] = src
    check_sources(sources)
    assert_fmt_roundtrip(src, path)
