"""docs/diagnostics.md documents every rule id, and its examples do what they say.

* Every rule id the package can emit (found in the source: the first argument
  of error()/warning(), `rule="..."` (a keyword or its default), and `unknown("kind", ...)`, which emits
  `unknown-kind`) has a section in the document.
* Every documented bad example, checked with the document's prelude, yields
  exactly its rule (and no other); every good example yields no error.
* Rules that cannot be shown with `.bill` text (files that do not exist or
  are not UTF-8, and the Lago importer's rules about JSON) have ```text
  examples instead; every other rule has both ```bill examples.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

import gpubill
from gpubill.dsl.check import check_sources

ROOT = Path(gpubill.__file__).parent
DOC = ROOT.parent / "docs" / "diagnostics.md"

FILE_RULES = {"no-such-file", "unreadable-file", "invalid-utf8"}

_RULE_ARG = re.compile(r'\b(?:error|warning)\(\s*"([a-z0-9-]+)"|\brule\s*(?::\s*str\s*)?=\s*"([a-z0-9-]+)"')
_UNKNOWN = re.compile(r'\bunknown\(\s*"([a-z-]+)"')
_SECTION = re.compile(r"^### `([a-z0-9-]+)` \((error|warning)\)$", re.M)
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)


def emitted_rules() -> set[str]:
    rules = set()
    for path in ROOT.rglob("*.py"):
        text = path.read_text()
        for m in _RULE_ARG.finditer(text):
            rules.add(m.group(1) or m.group(2))
        rules.update(f"unknown-{k}" for k in _UNKNOWN.findall(text))
    return rules


def sections() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """rule -> (severity, [(language, code), ...]) in document order."""
    text = DOC.read_text()
    heads = list(_SECTION.finditer(text))
    out = {}
    for i, h in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = text[h.end():end]
        assert h.group(1) not in out, f"{h.group(1)} is documented twice"
        out[h.group(1)] = (h.group(2), [(m.group(1), m.group(2)) for m in _BLOCK.finditer(body)])
    return out


def prelude() -> str:
    text = DOC.read_text()
    first_rule = _SECTION.search(text).start()
    blocks = [m.group(2) for m in _BLOCK.finditer(text[:first_rule]) if m.group(1) == "bill"]
    assert len(blocks) == 1, "the document has one ```bill prelude before the first rule"
    return blocks[0]


SECTIONS = sections()
EXAMPLES = [(rule, sev, blocks) for rule, (sev, blocks) in SECTIONS.items() if rule not in FILE_RULES and not rule.startswith("lago-")]


# The date the examples are checked on: the rules that depend on the date (notice-period) count from it.
DOC_TODAY = dt.date(2026, 1, 1)


def run(src: str):
    _, diags = check_sources({"prelude.bill": prelude(), "example.bill": src}, DOC_TODAY)
    return diags


def test_the_scan_finds_rules_in_the_source():
    found = emitted_rules()
    assert {"syntax", "unknown-metric", "tier-overlap", "duplicate-name", "missing-price"} <= found


def test_every_emitted_rule_is_documented():
    missing = emitted_rules() - set(SECTIONS)
    assert not missing, f"rule ids without a section in docs/diagnostics.md: {sorted(missing)}"


def test_every_documented_rule_exists():
    stale = set(SECTIONS) - emitted_rules()
    assert not stale, f"documented rules that no code emits: {sorted(stale)}"


def test_the_prelude_is_clean():
    _, diags = check_sources({"prelude.bill": prelude()})
    assert diags == []


@pytest.mark.parametrize("rule, severity, blocks", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_documented_examples(rule, severity, blocks):
    bills = [code for lang, code in blocks if lang == "bill"]
    assert len(bills) == 2, f"{rule}: expected a bad and a good ```bill example, found {len(bills)}"
    bad, good = bills
    diags = run(bad)
    assert {d.rule for d in diags} == {rule}, [(d.rule, d.message) for d in diags]
    assert {d.severity for d in diags} == {severity}
    assert all(d.span is None or d.span.path == "example.bill" for d in diags), "the caret points into the example"
    diags = run(good)
    assert not [d for d in diags if d.is_error or d.rule == rule], [(d.rule, d.message) for d in diags]


@pytest.mark.parametrize("rule", sorted(r for r in SECTIONS if r in FILE_RULES or r.startswith("lago-")))
def test_rules_without_bill_examples_show_their_output(rule):
    _, blocks = SECTIONS[rule]
    assert [lang for lang, _ in blocks] == ["text"]
