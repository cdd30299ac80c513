"""Semantic checks over a resolved catalog.

Each check is a plain function `check_x(catalog) -> Iterable[Diagnostic]`;
`CHECKS` runs them in order (beancount style). All diagnostics are collected:
one bad block never hides the others. The rule ids are stable and each one is
documented with a bad and a good example in docs/diagnostics.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from gpubill.dsl import ast
from gpubill.dsl.diagnostics import Diagnostic, dedupe, sort_key
from gpubill.dsl.load import load_paths
from gpubill.dsl.parse import parse
from gpubill.dsl.resolve import Catalog, resolve

Check = Callable[[Catalog], Iterable[Diagnostic]]


def _checks() -> tuple[Check, ...]:
    from gpubill.dsl.checks import CHECKS

    return CHECKS


def check_catalog(catalog: Catalog, today: dt.date | None = None) -> list[Diagnostic]:
    """Every check's diagnostics; ``today``: also the rules that depend on the date
    (`notice-period`), which a pure check (rating, tests) leaves out."""
    out: list[Diagnostic] = []
    for fn in _checks():
        out.extend(fn(catalog))
    if today is not None:
        from gpubill.dsl.checks.notice import check_notice_period

        out.extend(check_notice_period(catalog, today))
    return out


def check_documents(docs: list[ast.Document], today: dt.date | None = None) -> tuple[Catalog, list[Diagnostic]]:
    catalog, diags = resolve(docs)
    diags = diags + check_catalog(catalog, today)
    return catalog, diags


def check_paths(paths: list[str], today: dt.date | None = None) -> tuple[Catalog, dict[str, str], list[Diagnostic]]:
    """Load, resolve and check every `.bill` file under the paths (``today``: see ``check_catalog``)."""
    docs, sources, diags = load_paths(paths)
    catalog, more = check_documents(docs, today)
    return catalog, sources, _ordered(diags, more)


def check_sources(sources: dict[str, str], today: dt.date | None = None) -> tuple[Catalog, list[Diagnostic]]:
    """The same on in-memory sources (path -> text): for tests and tools."""
    docs, diags = [], []
    for path, text in sources.items():
        doc, ds = parse(text, path)
        docs.append(doc)
        diags.extend(ds)
    catalog, more = check_documents(docs, today)
    return catalog, _ordered(diags, more)


def _ordered(parsed: list[Diagnostic], checked: list[Diagnostic]) -> list[Diagnostic]:
    """The parse errors first, each group in file order: a block that did not parse is missing from the
    catalog, so what the checks say next may only follow from it (the cause is read before its effects)."""
    return sorted(dedupe(parsed), key=sort_key) + sorted(dedupe(checked), key=sort_key)
