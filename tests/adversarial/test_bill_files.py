"""Hostile `.bill` files against the language front end: `gpubill check` and `gpubill fmt`.

Long expressions (Python's recursion limit), numbers beyond Python's int
string-conversion limit, huge lines and files, NUL bytes, a BOM, CRLF and lone
CR line ends, invalid UTF-8, tabs, binary garbage, deep braces, unterminated
strings, paths that are not regular files. Each file gets ordinary
diagnostics (file:line:col, a caret, exit 1; exit 3 for a path that cannot be
read), never an internal error (exit 70) or a traceback, never a hang, and
bounded output; `fmt` never rewrites such a file.

The CLI runs as a real subprocess on real files in a temp dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpubill.dsl.check import check_sources
from gpubill.dsl.diagnostics import render_github, render_text, to_json
from gpubill.dsl.fmt import format_source
from gpubill.dsl.limits import (
    MAX_EXPR_OPERATORS, MAX_EXPR_TERMS, MAX_NUMBER_DIGITS, MAX_ROUNDING_PRECISION, MAX_SHOWN_DIAGNOSTICS,
    MAX_SOURCE_BYTES,
)
from gpubill.dsl.parse import parse

GPUBILL = [sys.executable, "-m", "gpubill"]
CLI_TIMEOUT_S = 120
#: No diagnostic of these files needs more than this many bytes of output.
OUTPUT_BOUND = 4000

PLAN = """\
entity gpucloud {
  currency USD
}

metric m {
  event e
  sum duration_seconds
}

plan p {
  currency USD
  billing monthly
  charge m 1.00 per hour
}
"""


def metric(expr: str) -> str:
    return f"metric m {{\n  event e\n  sum {expr}\n}}\n"


def gpubill(*args, cwd, stdin=None):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("GPUBILL_DEBUG", None)
    return subprocess.run([*GPUBILL, *args], cwd=cwd, capture_output=True, env=env, timeout=CLI_TIMEOUT_S,
                          input=stdin)


def assert_refused(tmp_path: Path, name: str, data: bytes, rule: str, line: int | None = None,
                   col: int | None = None, code: int = 1) -> str:
    """check, fmt --check and fmt all report `rule` (at line:col), exit `code`, and leave the file alone."""
    f = tmp_path / name
    f.write_bytes(data)
    text_err = ""
    for args in (("check", name), ("check", "--format", "json", name), ("fmt", "--check", name), ("fmt", name)):
        r = gpubill(*args, cwd=tmp_path)
        out, err = r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")
        assert r.returncode == code, (args, r.returncode, err[:2000])
        assert "Traceback" not in err and "internal error" not in err, err[:2000]
        assert len(r.stdout) + len(r.stderr) < OUTPUT_BOUND, (args, len(r.stdout), len(r.stderr))
        if "json" in args:
            found = [d for d in json.loads(out) if d["rule"] == rule]
            assert found, out
            if line is not None:
                assert (found[0]["line"], found[0]["col"]) == (line, col), found[0]
        else:
            where = f"{name}:{line}:{col}: " if line is not None else f"{name}"
            assert where in err and f"error[{rule}]" in err, err
            text_err = text_err or err
    assert f.read_bytes() == data, "fmt rewrote a file it refused"
    return text_err


# ---------------------------------------------------------------- 1. long expressions


LONG_EXPRESSIONS = {
    "100k-plus": " + ".join(["a"] * 100_000),
    "5k-times": " * ".join(["a"] * 5_000),
    "100k-unary-minus": "-" * 100_000 + "a",
    "5k-nested-subtractions": "a" + " - (b" * 5_000 + ")" * 5_000,
}


@pytest.mark.parametrize("expr", LONG_EXPRESSIONS.values(), ids=LONG_EXPRESSIONS.keys())
def test_a_long_expression_is_a_diagnostic_not_a_recursion_error(tmp_path, expr):
    (tmp_path / "m.bill").write_text(metric(expr))
    r = gpubill("check", "m.bill", cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 1 and len(err) < OUTPUT_BOUND, err[-2000:]
    assert err.startswith("m.bill:3:7: error[expression-too-complex]: this expression has ")
    assert f"at most {MAX_EXPR_OPERATORS}" in err
    assert "3 |   sum " in err and "…" in err  # the source line is shown, cut to a window
    assert "= hint:" in err
    formatted, diags = format_source(metric(expr), "m.bill")
    assert formatted is None and [d.rule for d in diags] == ["expression-too-complex"]


def test_fmt_refuses_a_long_expression_and_the_other_blocks_still_check(tmp_path):
    src = PLAN.replace("sum duration_seconds", "sum " + " * ".join(["duration_seconds"] * 5_000))
    err = assert_refused(tmp_path, "m.bill", src.encode(), "expression-too-complex", 7, 7)
    # the metric is left out, like a block with a syntax error; its neighbours are checked as usual
    assert 'm.bill:13:10: error[unknown-metric]: unknown metric "m"' in err and "2 error(s)" in err


def test_ten_thousand_nested_parentheses_are_only_parentheses(tmp_path):
    f = tmp_path / "m.bill"
    f.write_text(metric("(" * 10_000 + "a * b" + ")" * 10_000))
    r = gpubill("check", "m.bill", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (0, b"")
    r = gpubill("fmt", "m.bill", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f.read_text() == metric("a * b")


def test_an_expression_at_the_limit_checks_formats_and_compiles():
    expr = " + ".join(["a"] * (MAX_EXPR_OPERATORS + 1))
    _, diags = check_sources({"m.bill": metric(expr)})
    assert diags == []
    formatted, diags = format_source(metric(expr))
    assert formatted == metric(expr) and diags == []
    over = " + ".join(["a"] * (MAX_EXPR_OPERATORS + 2))
    _, diags = check_sources({"m.bill": metric(over)})
    assert [(d.rule, d.span.line, d.span.col) for d in diags] == [("expression-too-complex", 3, 7)]


def test_the_engine_compiles_an_expression_at_the_limit_from_a_deep_stack():
    from gpubill.engine.spec.compile import compile_metric
    from gpubill.engine.spec.poly import compile_expr

    doc, diags = parse(metric(" * ".join(["duration_seconds"] * 1 + ["2"] * MAX_EXPR_OPERATORS)))
    assert diags == []

    def nested(depth):  # a caller already a few hundred frames down (a TUI, a server, pytest)
        if depth:
            return nested(depth - 1)
        spec = compile_metric(doc.blocks[0])
        return compile_expr(spec.expr)

    assert nested(sys.getrecursionlimit() // 2).terms


def test_a_product_of_sums_that_expands_to_too_many_terms_is_refused():
    factor = "(" + " + ".join(f"p{i}" for i in range(4)) + ")"
    # 4**5 = 1024 terms once multiplied out: the rating engine would expand them all
    src = metric(" * ".join([factor] * 5))
    _, diags = check_sources({"m.bill": src})
    assert [d.rule for d in diags] == ["expression-too-complex"]
    assert f"more than {MAX_EXPR_TERMS} terms" in diags[0].message
    _, diags = check_sources({"m.bill": metric(" * ".join([factor] * 4))})
    assert diags == []


@pytest.mark.parametrize("src", [
    # a `where` of 5 000 `and`s, 5 000 charges, 5 000 tiers: flat lists, never recursion
    PLAN.replace("1.00 per hour", "1.00 per hour {\n    where "
                 + " and ".join(f'k{i} = "v"' for i in range(5_000)) + " 2.00 per hour\n  }").replace(
        "sum duration_seconds\n", "sum duration_seconds\n" + "".join(f"  dimension k{i}\n" for i in range(5_000))),
    PLAN.replace("  charge m 1.00 per hour\n", "".join(f"  charge m as c{i} 1.00 per hour\n" for i in range(5_000))),
    PLAN.replace("1.00 per hour", "graduated per hour {\n"
                 + "".join(f"    {i * 10 + 1 if i else 0} to {i * 10 + 10} at 1.00\n" for i in range(5_000))
                 + "    50001 and above at 0.5\n  }"),
], ids=["5k-and", "5k-charges", "5k-tiers"])
def test_long_flat_lists_check_without_recursion(tmp_path, src):
    (tmp_path / "p.bill").write_text(src)
    r = gpubill("check", "p.bill", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (0, b""), r.stderr[-2000:]


def test_five_thousand_errors_print_the_first_two_hundred_and_count_the_rest(tmp_path):
    src = PLAN.replace("  charge m 1.00 per hour\n", "".join(f"  charge nope{i} 1.00 per hour\n" for i in range(5_000)))
    (tmp_path / "p.bill").write_text(src)
    r = gpubill("check", "p.bill", cwd=tmp_path)  # was 5 000 of them, the file split into lines for each
    err = r.stderr.decode()
    assert r.returncode == 1
    assert err.count("error[unknown-metric]") == MAX_SHOWN_DIAGNOSTICS
    assert err.endswith(f"... {5_000 - MAX_SHOWN_DIAGNOSTICS} more not shown (gpubill check --format json lists "
                        "them all)\n5000 error(s), 0 warning(s)\n")
    r = gpubill("check", "--format", "json", "p.bill", cwd=tmp_path)
    found = json.loads(r.stdout)
    assert len(found) == 5_000 and (found[-1]["line"], found[-1]["col"]) == (5012, 10)
    _, diags = check_sources({"p.bill": src})
    assert "5012 |   charge nope4999 1.00 per hour\n" in render_text(diags, {"p.bill": src})


def test_a_syntax_error_after_many_blocks_is_found_in_linear_time(tmp_path):
    blocks = "".join(f"metric m{i} {{\n  event e\n  count\n}}\n" for i in range(5_000))
    (tmp_path / "b.bill").write_text(blocks + "metric bad {\n  event\n}\n" + blocks.replace("metric m", "metric n"))
    r = gpubill("check", "b.bill", cwd=tmp_path)  # was quadratic: each block re-parsed behind its line count of newlines
    assert r.returncode == 1
    assert r.stderr.startswith(b"b.bill:20003:1: error[syntax]")
    assert b"\n1 error(s)" in r.stderr  # the 10 000 other blocks are read


# ---------------------------------------------------------------- 2. bounded windows of long lines


def test_a_syntax_error_on_a_huge_line_shows_a_bounded_window(tmp_path):
    data = b"x" * 500_000
    err = assert_refused(tmp_path, "x.bill", data, "syntax", 1, 1)
    head, _, src, caret = err.splitlines()[:4]
    assert head.startswith('x.bill:1:1: error[syntax]: unexpected "xxxx') and "…" in head and len(head) < 300
    assert src.startswith("1 | xxx") and src.endswith("…") and len(src) <= 110
    assert caret.startswith("  | ^^^") and caret.endswith("…") and len(caret) <= 110


def test_the_window_follows_the_caret_into_a_long_line(tmp_path):
    data = ("entity e {" + " " * 300_000 + "bogus currency USD }\n").encode()
    err = assert_refused(tmp_path, "e.bill", data, "syntax", 1, 300_011)
    _, _, src, caret = err.splitlines()[:4]
    assert src.startswith("1 | …") and "bogus currency USD }" in src
    assert src.index("bogus") == caret.index("^^^^^") and caret.count("^") == 5


def test_messages_and_every_renderer_are_bounded_for_a_million_character_name():
    name = "p" * 1_000_000
    src = f"plan {name} {{\n  currency USD\n  billing monthly\n  charge {name} 1.00 per hour\n}}\n"
    _, diags = check_sources({"p.bill": src})
    assert {d.rule for d in diags} == {"unknown-metric"}
    for d in diags:
        assert len(d.message) < 300 and all(len(h) < 300 for h in d.hints)
    assert len(render_text(diags, {"p.bill": src})) < OUTPUT_BOUND
    assert len(to_json(diags)) < OUTPUT_BOUND
    assert len(render_github(diags)) < OUTPUT_BOUND


def test_a_fifty_megabyte_file_is_refused_before_it_is_read(tmp_path):
    data = b"x" * 50_000_000
    err = assert_refused(tmp_path, "big.bill", data, "unreadable-file", code=3)
    assert f"at most {MAX_SOURCE_BYTES // (1024 * 1024)} MiB" in err


def test_a_file_at_the_size_limit_is_read(tmp_path):
    comment = "# " + "padding " * 100_000 + "\n"
    data = (PLAN + comment * ((MAX_SOURCE_BYTES - len(PLAN)) // len(comment))).encode()
    data += b" " * (MAX_SOURCE_BYTES - len(data))
    assert len(data) == MAX_SOURCE_BYTES
    (tmp_path / "p.bill").write_bytes(data)
    r = gpubill("check", "p.bill", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (0, b"")
    r = gpubill("fmt", "-", cwd=tmp_path, stdin=data)
    assert r.returncode == 0 and r.stdout.startswith(b"entity gpucloud {")
    r = gpubill("fmt", "-", cwd=tmp_path, stdin=data + b" ")
    assert r.returncode == 1 and f"at most {MAX_SOURCE_BYTES // 2**20} MiB".encode() in r.stderr and r.stdout == b""


# ---------------------------------------------------------------- 3. hostile bytes


@pytest.mark.parametrize("text, line, col", [
    (PLAN.replace("1.00 per", "9" * 5000 + " per"), 13, 12),                       # a price
    (PLAN.replace("1.00 per", "1." + "9" * 5000 + " per"), 13, 12),                # its fraction
    (metric("a").replace("sum a", "sum a\n  rounding round " + "9" * 5000), 4, 18),  # int() of a whole number
    (metric("a * " + "9" * 5000), 3, 11),                                           # an expression's constant
    (PLAN.replace("  currency USD\n}", '  currency USD\n  tax "vat" ' + "9" * 5000 + "%\n}", 1), 3, 13),
])
def test_a_number_of_five_thousand_digits_is_a_diagnostic(tmp_path, text, line, col):
    err = assert_refused(tmp_path, "n.bill", text.encode(), "number-too-long", line, col)
    assert f"at most {MAX_NUMBER_DIGITS} digits" in err


def test_a_number_at_the_digit_limit_is_exact():
    digits = "1" * (MAX_NUMBER_DIGITS - 2) + ".25"
    doc, diags = parse(PLAN.replace("1.00 per", f"{digits} per"))
    assert diags == []
    assert str(doc.blocks[2].charges[0].price.amount.value) == digits  # never rounded to 28 significant digits
    _, diags = check_sources({"n.bill": PLAN.replace("1.00 per", "1" * MAX_NUMBER_DIGITS + "1 per")})
    assert [d.rule for d in diags] == ["number-too-long"]


def test_a_rounding_precision_the_engine_cannot_scale_by_is_refused():
    # the engine multiplies by 10**precision: 10**(10**27) never finishes
    src = metric("duration_seconds").replace("\n}", "\n  rounding ceil 999999999999999999999999999\n}")
    _, diags = check_sources({"m.bill": src})
    assert [(d.rule, d.span.line) for d in diags] == [("precision-range", 4)]
    _, diags = check_sources({"m.bill": src.replace("999999999999999999999999999", f"-{MAX_ROUNDING_PRECISION}")})
    assert diags == []


@pytest.mark.parametrize("divisor", ["(1 - 1)", "(2 * 0.5 - 1)", "-(3 - 3)", "(0 / 2)"])
def test_a_divisor_that_is_zero_is_found_however_it_is_written(divisor):
    _, diags = check_sources({"m.bill": metric(f"duration_seconds / {divisor}")})
    assert [(d.rule, d.span.col) for d in diags] == [("division-by-zero", 26 + (divisor[0] == "("))]


def test_nul_bytes_are_syntax_errors_shown_escaped(tmp_path):
    err = assert_refused(tmp_path, "z.bill", PLAN.replace("  billing", "\0\0  billing").encode(), "syntax", 12, 1)
    assert 'unexpected "\\x00"' in err and "\0" not in err


def test_a_nul_inside_a_string_is_a_syntax_error(tmp_path):
    data = PLAN.replace("  currency USD\n}", '  name "a\0b"\n  currency USD\n}', 1).encode()
    err = assert_refused(tmp_path, "z.bill", data, "syntax", 2, 10)
    assert "control character" in err and "\0" not in err


def test_a_bom_is_ignored(tmp_path):
    (tmp_path / "b.bill").write_bytes(b"\xef\xbb\xbf" + PLAN.encode())
    r = gpubill("check", "b.bill", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (0, b"")
    r = gpubill("fmt", "--check", "b.bill", cwd=tmp_path)  # the canonical form has no BOM
    assert (r.returncode, r.stdout) == (1, b"b.bill\n")


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "lone-cr"])
def test_crlf_and_lone_cr_line_ends_count_lines(tmp_path, newline):
    text = ("# a comment\n" + PLAN.replace("  billing monthly\n", "  billing monthly\n  bogus\n")).replace("\n", newline)
    err = assert_refused(tmp_path, "r.bill", text.encode(), "syntax", 14, 3)
    assert "14 |   bogus\n   |   ^^^^^\n" in err  # a lone CR used to hide the whole file in the first comment


def test_a_valid_file_with_lone_cr_line_ends_checks_and_formats(tmp_path):
    f = tmp_path / "r.bill"
    f.write_bytes(("# a comment\n" + PLAN).replace("\n", "\r").encode())
    r = gpubill("check", "--format", "json", "r.bill", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, b"")
    assert gpubill("fmt", "r.bill", cwd=tmp_path).returncode == 0
    assert f.read_text() == "# a comment\n" + PLAN


def test_invalid_utf8_names_its_line_and_column(tmp_path):
    data = PLAN.replace("billing monthly", "billing \udcffmonthly").encode("utf-8", "surrogateescape")
    assert_refused(tmp_path, "u.bill", data, "invalid-utf8", 12, 11)


def test_binary_garbage_is_refused(tmp_path):
    data = bytes(range(256)) * 400  # LF at 10 and a lone CR at 13 end lines 1 and 2; 0x80 at 128 is bad
    assert_refused(tmp_path, "g.bill", data, "invalid-utf8", 3, 115)


def test_printable_garbage_with_control_characters_is_refused(tmp_path):
    data = ("\x1b[31m\x07" + "".join(chr(c) for c in range(1, 0x3000, 7))).encode()
    err = assert_refused(tmp_path, "g.bill", data, "syntax", 1, 1)
    assert "\x1b" not in err and "\x07" not in err  # no terminal escapes reach the user's terminal


def test_deeply_nested_braces(tmp_path):
    assert_refused(tmp_path, "n.bill", b"plan p " + b"{" * 100_000 + b"\n", "syntax", 1, 9)


@pytest.mark.parametrize("data, line, col", [
    (b'entity e {\n  name "abc', 2, 8),
    (b'entity e {\n  name "abc\n  currency USD\n}\n', 2, 8),
    (b'entity e {\n  name "ab\\"', 2, 8),
], ids=["at-eof", "at-eol", "escaped-quote-at-eof"])
def test_an_unterminated_string_says_so(tmp_path, data, line, col):
    err = assert_refused(tmp_path, "s.bill", data, "syntax", line, col)
    assert "is not closed" in err


def test_tabs_keep_the_caret_under_the_mistake(tmp_path):
    err = assert_refused(tmp_path, "t.bill", PLAN.replace("  billing monthly", "\tbilling\tmontly").encode(),
                         "syntax", 12, 10)
    lines = err.splitlines()
    assert lines[2] == "12 |     billing montly"
    assert lines[3] == "   |             ^^^^^^"


def test_a_tab_inside_a_string_is_kept():
    doc, diags = parse('entity e {\n  name "a\tb"\n}\n')
    assert diags == [] and doc.blocks[0].display_name.value == "a\tb"


def test_a_path_that_is_not_a_regular_file_is_an_io_error(tmp_path):
    os.mkfifo(tmp_path / "fifo.bill")  # reading it would block forever
    for args in (("check", "fifo.bill"), ("fmt", "fifo.bill"), ("fmt", "--check", "fifo.bill")):
        r = gpubill(*args, cwd=tmp_path)
        assert r.returncode == 3, (args, r.stderr)
        assert b"not a regular file" in r.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_an_io_error(tmp_path):
    f = tmp_path / "secret.bill"
    f.write_text(PLAN)
    f.chmod(0)
    r = gpubill("check", "secret.bill", cwd=tmp_path)
    assert r.returncode == 3 and b"Permission denied" in r.stderr


def test_a_file_name_that_is_not_utf8_is_shown_in_every_format(tmp_path):
    name = os.fsdecode(b"bad\xff.bill")
    (tmp_path / name).write_text(PLAN.replace("billing monthly", "billing montly"))
    for args in (("check", "."), ("check", "--format", "github", "."), ("check", "--format", "json", "."),
                 ("fmt", "--check", ".")):
        r = gpubill(*args, cwd=tmp_path)
        assert r.returncode == 1, (args, r.stderr)
        assert b"internal error" not in r.stderr


def test_github_annotations_escape_their_properties():
    diags = check_sources({"a,b:c.bill": "plan p {\n  bogus\n}\n"})[1]
    out = render_github(diags)
    assert out.startswith("::error file=a%2Cb%3Ac.bill,line=2,col=3,")


# ---------------------------------------------------------------- gpubill import lago

FIXTURES = Path(__file__).resolve().parents[1] / "importer" / "fixtures"


def lago_import(tmp_path: Path, edit: tuple[str, str, str] | None = None, extra: str | None = None):
    """`gpubill import lago` on the fixtures, one of them edited (file, old, new) or one file added."""
    src = tmp_path / "lago"
    src.mkdir()
    for f in FIXTURES.glob("*.json"):
        text = f.read_text()
        if edit and f.name == edit[0]:
            assert edit[1] in text
            text = text.replace(edit[1], edit[2], 1)
        (src / f.name).write_text(text)
    if extra is not None:
        (src / "extra.json").write_text(extra)
    out = tmp_path / "billing"
    r = gpubill("import", "lago", *sorted(str(p) for p in src.glob("*.json")), "--out", str(out), cwd=tmp_path)
    err = r.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    assert len(r.stderr) < OUTPUT_BOUND, len(r.stderr)
    return r.returncode, err, out


@pytest.mark.parametrize("json_text, where", [
    ("[" * 100_000 + "]" * 100_000, "extra.json:1:101: error[lago-invalid]: the JSON nests more than 100 levels"),
    ('{"billable_metric": {"code": "x", "aggregation_type": "count_agg", "rounding_precision": ' + "9" * 5000 + "}}",
     "extra.json:1:90: error[lago-invalid]: billable_metric.rounding_precision: the number 999"),
    ('{"plan": {"code": "x", "amount_cents": 1e999999999}}',
     "extra.json:1:40: error[lago-invalid]: plan.amount_cents: the number 1e999999999 has more than 28 digits"),
], ids=["deep", "5000-digits", "huge-exponent"])
def test_lago_json_that_would_crash_or_hang_is_refused(tmp_path, json_text, where):
    code, err, out = lago_import(tmp_path, extra=json_text)
    assert code == 1 and where in err, err
    assert not out.exists()


@pytest.mark.parametrize("ext", ["sub\\u0000acme", "sub\\ud800acme", "sub\\nacme"], ids=["nul", "lone-surrogate", "newline"])
def test_a_lago_id_a_bill_string_cannot_hold_is_refused(tmp_path, ext):
    code, err, out = lago_import(tmp_path, edit=("subscriptions.json", '"sub_acme_gpu"', f'"{ext}"'))
    assert code == 1, err  # each was an internal error (exit 70); a NUL would have reached the .bill file
    assert "error[lago-invalid]: subscriptions[0].external_id: the external_id contains a " in err, err
    assert not out.exists()


@pytest.mark.parametrize("name", ["Acme\\u0000Corp", "Acme\\ud800Corp"], ids=["nul", "lone-surrogate"])
def test_a_lago_display_name_is_written_without_control_characters(tmp_path, name):
    code, err, out = lago_import(tmp_path, edit=("customers.json", '"Acme Corp"', f'"{name}"'))
    assert code == 0, err  # the lone surrogate crashed the write (exit 70)
    text = (out / "contracts.bill").read_text(encoding="utf-8")
    assert 'name "Acme\ufffdCorp"' in text and "\0" not in text
    r = gpubill("check", str(out), cwd=tmp_path)
    assert (r.returncode, r.stderr) == (0, b"")


@pytest.mark.parametrize("path, old, new", [
    ("billable_metrics.json", '"aggregation_type": "sum_agg"', '"aggregation_type": ["sum_agg"]'),
    ("subscriptions.json", '"plan_code": "gpu-cloud-pro"', '"plan_code": {}'),
    ("subscriptions.json", '"external_customer_id": "acme-corp"', '"external_customer_id": []'),
    ("plan_starter_bare.json", '"charges": [', '"usage_thresholds": 1, "minimum_commitment": "x", "charges": ['),
    ("customers.json", '"timezone": "America/New_York"', '"timezone": "' + "x" * 300 + '"'),
], ids=["list-aggregation", "object-plan-code", "list-customer-id", "scalar-thresholds", "long-timezone"])
def test_lago_values_of_the_wrong_type_are_diagnostics(tmp_path, path, old, new):
    code, err, out = lago_import(tmp_path, edit=(path, old, new))
    assert code == 1 and "error[lago-" in err, err  # each was an internal error (exit 70)
    assert not out.exists()
