"""`gpubill fmt`: canonical printing, comments, the identity corpus, the command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpubill.dsl import ast
from gpubill.dsl.comments import scan
from gpubill.dsl.fmt import format_document, format_source
from gpubill.dsl.parse import parse

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.bill"))
GPUBILL = [sys.executable, "-m", "gpubill"]


def fmt(src: str) -> str:
    out, diags = format_source(src, "t.bill")
    assert out is not None, diags
    return out


def assert_roundtrip(src: str) -> str:
    """fmt keeps the IR, and is idempotent; returns the formatted text."""
    out = fmt(src)
    before, d1 = parse(src, "t.bill")
    after, d2 = parse(out, "t.bill")
    assert not d2, d2
    assert after == before
    assert fmt(out) == out
    return out


# ---------------------------------------------------------------- the corpus


def test_corpus_covers_every_block_and_price_model():
    docs = [parse(p.read_text(), str(p))[0] for p in CORPUS]
    seen = set()

    def walk(node):
        seen.add(type(node).__name__)
        if hasattr(type(node), "__attrs_attrs__"):
            for a in type(node).__attrs_attrs__:
                walk(getattr(node, a.name))
        elif isinstance(node, tuple):
            for n in node:
                walk(n)

    for d in docs:
        walk(d)
    names = {c.__name__ for c in vars(ast).values() if isinstance(c, type) and hasattr(c, "__attrs_attrs__")}
    assert names - {"Span"} <= seen, names - seen


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_file_is_canonical_and_survives_roundtrip(path):
    src = path.read_text()
    _, diags = parse(src, str(path))
    assert diags == []
    assert assert_roundtrip(src) == src


# ---------------------------------------------------------------- canonical form


def test_messy_source_is_printed_canonically():
    src = """metric  m{event e sum a*(b+c) in hours
per event d up to 1 second,minimum 60 seconds}
plan p {charge m per hour by t {"A" 1 "LONGER" 2.50} {in advance group by r where r="x" 2 per hour}
currency USD}
contract c { plan p customer "c" commit 10 USD per year true-up at term end credit 5 USD granted priority 2 }
"""
    assert assert_roundtrip(src) == """metric m {
  event e
  sum a * (b + c) in hours
  per event d up to 1 second, minimum 60 seconds
}

plan p {
  charge m per hour by t {
    "A"      1
    "LONGER" 2.50
  } {
    group by r
    where r = "x" 2 per hour
    in advance
  }
  currency USD
}

contract c {
  plan p
  customer "c"
  commit 10 USD per year, true-up at term end
  credit 5 USD granted, priority 2
}
"""


def test_numbers_and_dates_keep_their_spelling():
    src = "plan p { fee 1_000.50 charge m package 2 per 1M tokens free 100k tokens }\n" \
          "contract c { starts 2026-03-01T00:00:00+01:00 discount 12.50% once }\n"
    out = assert_roundtrip(src)
    for text in ("1_000.50", "1M tokens", "100k tokens", "2026-03-01T00:00:00+01:00", "12.50%"):
        assert text in out


def test_strings_are_reescaped():
    out = assert_roundtrip('entity e { name "a \\"b\\" c\\\\d" }\n')
    assert 'name "a \\"b\\" c\\\\d"' in out


def test_expression_parentheses_follow_the_tree():
    out = assert_roundtrip("metric m { sum ((a - (b - c)) * -(d + e)) / (f * g) }\n")
    assert "sum (a - (b - c)) * -(d + e) / (f * g)" in out


def test_blocks_are_separated_by_one_blank_line():
    out = fmt("entity a {}\n\n\n\nentity b {}\nentity c {}")
    assert out == "entity a {}\n\nentity b {}\n\nentity c {}\n"


def test_crlf_and_tabs_are_normalised():
    out = fmt("entity a {\r\n\tcurrency USD\t# money\r\n}\r\n")
    assert out == "entity a {\n  currency USD  # money\n}\n"


def test_an_unindented_clause_that_looks_like_a_block_keyword_is_a_clause():
    out = assert_roundtrip("contract c {\nplan p\n}\n")
    assert out == "contract c {\n  plan p\n}\n"


# ---------------------------------------------------------------- comments


def test_scanner_skips_strings():
    cs = scan('x "a # b" # real\n  # alone\n"\\"#" y')
    assert [(c.line, c.col, c.text, c.standalone) for c in cs] == [(1, 11, "# real", False), (2, 3, "# alone", True)]


def test_comments_move_with_their_clause_when_a_charge_body_is_reordered():
    src = """plan p {
  charge m 1 per hour {
    # about the rounding
    rounding half_up 0.01  # trailing on the rounding
    # about the filter
    where r = "x" 2 per hour  # trailing on the filter
  }
}
"""
    assert assert_roundtrip(src) == """plan p {
  charge m 1 per hour {
    # about the filter
    where r = "x" 2 per hour  # trailing on the filter
    # about the rounding
    rounding half_up 0.01  # trailing on the rounding
  }
}
"""


def test_block_clauses_keep_their_source_order():
    src = "metric m {\n  recurring\n  dimension b\n  event e\n  dimension a\n  count\n}\n"
    # every clause, `recurring` included, stays where it was written
    assert assert_roundtrip(src) == src


def test_comments_inside_a_clause_split_over_lines_stay_with_it():
    src = "contract c {\n  progressive billing at 10 USD,  # first\n    20 USD  # second\n}\n"
    out = assert_roundtrip(src)
    assert out == "contract c {\n  progressive billing at 10 USD, 20 USD  # first  # second\n}\n"


def test_comment_only_file_and_empty_file():
    assert fmt("") == ""
    assert fmt("   \n\n") == ""
    assert fmt("# just\n\n\n# comments\n") == "# just\n\n# comments\n"


def test_comment_inside_an_empty_block_keeps_it_open():
    src = 'test "t" {\n      # todo\n}\nplan p { charge m per hour by t { # none yet\n } }\n'
    assert assert_roundtrip(src) == (
        'test "t" {\n  # todo\n}\n\nplan p {\n  charge m per hour by t {}  # none yet\n}\n'
    )


def test_format_document_without_spans_or_comments():
    doc = ast.Document("x", (ast.Entity(ast.Ref("e"), currency=ast.Ref("USD")),))
    assert format_document(doc) == "entity e {\n  currency USD\n}\n"


def test_syntax_errors_give_no_output():
    out, diags = format_source("plan p { charge }\n", "bad.bill")
    assert out is None
    assert [d.rule for d in diags] == ["syntax"]


def test_duplicate_clause_is_not_formatted_away():
    out, diags = format_source("contract c { credit 1 USD, priority 1, priority 2 }\n", "d.bill")
    assert out is None
    assert [d.rule for d in diags] == ["duplicate-clause"]


# ---------------------------------------------------------------- the command


def run(*args, cwd, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.run([*GPUBILL, "fmt", *args], cwd=cwd, input=stdin, capture_output=True, text=True, env=env)


UGLY = "entity   e {currency USD}\n"
PRETTY = "entity e {\n  currency USD\n}\n"


def test_cli_rewrites_in_place_and_is_silent(tmp_path):
    (tmp_path / "sub").mkdir()
    a, b = tmp_path / "a.bill", tmp_path / "sub" / "b.bill"
    a.write_text(UGLY)
    b.write_text(PRETTY)
    os.chmod(a, 0o640)
    r = run(".", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert a.read_text() == PRETTY and b.read_text() == PRETTY
    assert a.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.bill", "b.bill", "sub"]  # no temp files left


def test_cli_check_lists_files_and_writes_nothing(tmp_path):
    (tmp_path / "a.bill").write_text(UGLY)
    (tmp_path / "b.bill").write_text(PRETTY)
    r = run("--check", "a.bill", "b.bill", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (1, "a.bill\n")
    assert (tmp_path / "a.bill").read_text() == UGLY
    r = run("--check", "b.bill", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_cli_diff(tmp_path):
    (tmp_path / "a.bill").write_text(UGLY)
    r = run("--check", "--diff", "a.bill", cwd=tmp_path)
    assert r.returncode == 1
    assert "-entity   e {currency USD}\n+entity e {\n+  currency USD\n+}\n" in r.stdout
    assert r.stdout.startswith("--- a.bill (original)\n+++ a.bill (formatted)\n")


def test_cli_syntax_error_is_reported_and_file_untouched(tmp_path):
    bad = "plan p {\n  charge m per\n}\n"
    (tmp_path / "bad.bill").write_text(bad)
    (tmp_path / "good.bill").write_text(UGLY)
    r = run(".", cwd=tmp_path)
    assert r.returncode == 1
    assert "bad.bill:3:1: error[syntax]: unexpected \"}\"" in r.stderr
    assert r.stderr.endswith("1 error(s), 0 warning(s)\n")
    assert "\n3 | }\n" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "bad.bill").read_text() == bad
    assert (tmp_path / "good.bill").read_text() == PRETTY


def test_cli_stdin_to_stdout(tmp_path):
    r = run("-", cwd=tmp_path, stdin=UGLY)
    assert (r.returncode, r.stdout, r.stderr) == (0, PRETTY, "")
    r = run("--check", "-", cwd=tmp_path, stdin=UGLY)
    assert (r.returncode, r.stdout) == (1, "<stdin>\n")
    r = run("-", cwd=tmp_path, stdin="entity {")
    assert r.returncode == 1 and "<stdin>:1:8: error[syntax]" in r.stderr


def test_cli_missing_path_is_an_io_error(tmp_path):
    r = run("nope.bill", cwd=tmp_path)
    assert r.returncode == 3
    assert "nope.bill: no such file or directory" in r.stderr


def test_percentage_in_a_filter_followed_by_minimum_spend():
    # "minimum" after a percentage price used to be read as the percentage's own
    # `minimum ... per event` option: the grammar now needs a comma before those.
    src = 'plan p { charge m 1 per hour { minimum spend 100 where r = "a" percentage 2%, minimum 1 per event } }\n'
    out = assert_roundtrip(src)
    assert '    where r = "a" percentage 2%, minimum 1 per event\n    minimum spend 100\n' in out


def test_discount_scope_then_a_policy_clause():
    out = assert_roundtrip("contract c { discount 5% forever for gpu_hours on preemption no credit }\n")
    assert "  discount 5% forever for gpu_hours\n  on preemption no credit\n" in out


def test_blank_lines_between_clauses_are_kept_one_at_most():
    src = "contract c {\n\n  plan p\n\n\n\n  idle hybrid\n  starts 2026-01-01\n\n}\n"
    assert assert_roundtrip(src) == "contract c {\n  plan p\n\n  idle hybrid\n  starts 2026-01-01\n}\n"
