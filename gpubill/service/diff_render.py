"""`gpubill diff --format text|json|markdown|github`: a DiffReport (gpubill/service/diff.py)
as the terminal report, one JSON document, a sticky pull-request comment, or GitHub
workflow-command annotations.  All of the diff's renderers live here.

markdown: a hidden marker (``MARKER``) to find the comment again, one summary table per
currency, the customers by |delta| with their changed lines folded in <details>, the catalog
changes, the finalized invoices that need credit notes, what could not be invoiced and the
notice-period violations; never over GitHub's comment limit (``COMMENT_LIMIT``): the details
are cut first, with a note saying how much was left out.

github: one ``::warning`` per changed clause with a money impact (largest first), one
``::notice`` per changed clause without one, one ``::error`` per notice-period violation;
at most ``ANNOTATIONS_PER_TYPE`` of each type (GitHub shows no more per step), then one
plain line saying how many were left out.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from decimal import Decimal
from pathlib import Path

import attrs
import orjson

from gpubill.service.diff import Change, CustomerDelta, DiffReport, LineDelta, percent_change
from gpubill.service.rating import ServiceError
from gpubill.service.revisions import run_time

MARKER = "<!-- gpubill-diff"    # the comment's first line: MARKER valid-at=<RFC3339> -->
COMMENT_LIMIT = 65_536          # GitHub: "Body is too long (maximum is 65536 characters)"
ANNOTATIONS_PER_TYPE = 10       # GitHub shows 10 warnings (errors, notices) per step
ABSENT = "—"                    # an amount one side does not have
_CUT_NOTE = "\n\n_…{n} left out to stay under GitHub's comment size limit; " \
    "`gpubill diff --format text` shows everything._\n"


def render(report, fmt: str, now: dt.datetime | None = None) -> str:
    """The report in ``fmt`` (text, markdown or github; JSON: ``report_json``); ``now``:
    the run's time, the markdown's valid-at (default: ``run_time()``)."""
    if fmt == "markdown":
        return markdown(report, valid_at=now)
    return RENDERERS[fmt](report)


def write_step_summary(text: str) -> bool:
    """Append ``text`` to $GITHUB_STEP_SUMMARY when it is set; True when written."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")
    return True


# ---- text and JSON ---------------------------------------------------------------------

JSON_SCHEMA = "gpubill-diff/1"


def _mark(before, after) -> str:
    return "+" if before is None else "-" if after is None else "~"


def _places(*amounts: Decimal | None) -> int:
    """The most decimal places among the amounts (their own exponents: 2 for 0.00 USD, 0 for JPY)."""
    return max((-d.as_tuple().exponent for d in amounts if d is not None), default=0)


def _totals(report):
    """(currency, before, after, places): the totals, with the places of the currency's amounts
    (a sum of no amounts is a bare 0)."""
    for currency, (before, after) in report.totals().items():
        places = _places(*(d for c in report.customers if c.currency == currency for d in (c.before, c.after)))
        yield currency, before, after, places


def _fixed(d: Decimal, places: int = 0) -> str:
    """``d`` with at least ``places`` decimals: zeros added, never rounded (a zero delta is 0.00, not 0)."""
    return f"{d:.{max(places, -d.as_tuple().exponent, 0)}f}"


def _signed(d: Decimal, places: int = 0) -> str:
    return ("+" if d > 0 else "") + _fixed(d, places)


def _money(d: Decimal | None, places: int) -> str:
    return "-" if d is None else _fixed(d, places)


def _moved(before, after, delta: Decimal, pct: Decimal | None, places: int = 0) -> str:
    rel = "" if pct is None else f" ({_signed(pct)} %)"
    places = max(places, _places(before, after, delta))
    return f"{_money(before, places)} -> {_money(after, places)}  {_signed(delta, places)}{rel}"


def report_text(report) -> str:
    """The terminal report: totals, the customers whose invoice changed with
    their changed lines (+ added, - removed, ~ changed), the catalog changes,
    the finalized invoices that need credit notes, what was not invoiced."""
    out = [f"gpubill diff: {report.base} -> {report.head} · {', '.join(report.periods)}", ""]
    for currency, before, after, places in _totals(report):
        out.append(f"total {currency}: {_moved(before, after, after - before, percent_change(before, after), places)}")
    changed = [c for c in report.customers if c.delta or c.lines]
    out.append(f"{len(changed)} of {len(report.customers)} invoices changed")
    for c in changed:
        out += ["", f"{_mark(c.before, c.after)} {c.customer} (contract {c.contract}, {c.period}) {c.currency}: "
                    f"{_moved(c.before, c.after, c.delta, c.pct)}"]
        out += [f"    {_mark(ln.before, ln.after)} {ln.name}: {_moved(ln.before, ln.after, ln.delta, ln.pct)}"
                f"  {ln.clause_after or ln.clause_before or ''}".rstrip() for ln in c.lines]
    out += _section("changes", [f"{_mark(*_sides(ch.what))} {ch.kind} {ch.name} {ch.what}"
                                f"{' at ' + ', '.join(ch.clauses) if any(ch.clauses) else ''}"
                                f"; reaches {', '.join(ch.customers) or 'no contract'}" for ch in report.changes])
    out += _section("finalized invoices that would change (they need credit notes, never edits)",
                    [f"{number} {customer}: total stored {_fixed(stored)}, at head {_fixed(head)}"
                     for number, customer, stored, head in report.finalized])
    out += _section("not invoiced", list(report.unrated))
    out += _section("notice-period violations", list(report.notices))
    return "\n".join(out) + "\n"


def _sides(what: str) -> tuple:
    return {"added": (None, 1), "removed": (1, None)}.get(what, (1, 1))


def _section(title: str, items: list[str]) -> list[str]:
    return ["", f"{title}:", *(f"  {i}" for i in items)] if items else []


def report_json(report) -> dict:
    """One JSON document, decimals as strings (docs/ci.md)."""
    def moved(x) -> dict:
        return _json_moved(x.before, x.after, x.delta, x.pct)

    return {
        "schema": JSON_SCHEMA, "base": report.base, "head": report.head, "periods": list(report.periods),
        "totals": {cur: _json_moved(b, a, a - b, percent_change(b, a), places) for cur, b, a, places in _totals(report)},
        "customers": [{"customer": c.customer, "contract": c.contract, "currency": c.currency, "period": c.period,
                       **moved(c), "lines": [{"name": ln.name, **moved(ln), "clause_before": ln.clause_before,
                                              "clause_after": ln.clause_after} for ln in c.lines]}
                      for c in report.customers],
        "changes": [attrs.asdict(ch) for ch in report.changes],
        "finalized": [{"number": n, "customer": cu, "stored": _json_amount(a), "head": _json_amount(b)} for n, cu, a, b in report.finalized],
        "unrated": list(report.unrated),
        "notices": list(report.notices),
    }


def report_from_json(doc) -> DiffReport:
    """The report a ``report_json`` document holds (``gpubill tui --diff FILE``); a
    ServiceError (exit 1, one line) for anything else.  A line's identity is its name."""
    if not isinstance(doc, dict) or doc.get("schema") != JSON_SCHEMA:
        raise ServiceError(f"not a gpubill diff result (schema {JSON_SCHEMA}; write one with "
                           "`gpubill diff --format json`)", code=1)
    try:
        return DiffReport(
            doc["base"], doc["head"], tuple(doc["periods"]),
            tuple(CustomerDelta(c["customer"], c["contract"], c["currency"], c["period"], _dec(c["before"]),
                                _dec(c["after"]), tuple(LineDelta(ln["name"], (ln["name"],), _dec(ln["before"]),
                                                                  _dec(ln["after"]), ln["clause_before"],
                                                                  ln["clause_after"]) for ln in c["lines"]))
                  for c in doc["customers"]),
            tuple(Change(ch["kind"], ch["name"], ch["what"], tuple(ch["clauses"]), tuple(ch["customers"]))
                  for ch in doc["changes"]),
            tuple((f["number"], f["customer"], Decimal(f["stored"]), Decimal(f["head"])) for f in doc["finalized"]),
            tuple(doc["unrated"]), tuple(doc["notices"]))
    except (KeyError, TypeError, ArithmeticError) as e:
        raise ServiceError(f"a gpubill diff result with a field missing or wrong ({e!r})", code=1) from None


def read_report(path: str) -> DiffReport:
    """A ``gpubill diff --format json`` file's report (``report_from_json``), errors naming the file."""
    try:
        return report_from_json(orjson.loads(Path(path).read_bytes()))
    except OSError as e:
        raise ServiceError(f"{path}: {e.strerror or e}", code=3) from None
    except orjson.JSONDecodeError as e:
        raise ServiceError(f"{path}: not JSON ({e})", code=1) from None
    except ServiceError as e:
        raise ServiceError(f"{path}: {e}", code=e.code) from None


def _dec(s: str | None) -> Decimal | None:
    return None if s is None else Decimal(s)


def _json_moved(before, after, delta: Decimal, pct: Decimal | None, places: int = 0) -> dict:
    places = max(places, _places(before, after, delta))
    return {"before": _json_amount(before, places), "after": _json_amount(after, places),
            "delta": _json_amount(delta, places), "pct": _json_amount(pct)}


def _json_amount(d: Decimal | None, places: int = 0) -> str | None:
    return None if d is None else _fixed(d, places)


# ---- markdown --------------------------------------------------------------------------

def markdown(report, limit: int = COMMENT_LIMIT, valid_at: dt.datetime | None = None) -> str:
    """The sticky PR comment, at most ``limit`` characters; its marker carries ``valid_at``
    (the run's time, default ``run_time()``) so that an older run never replaces a newer comment."""
    head = "\n\n".join(part for part in (
        _md_title(report, valid_at or run_time()), _md_attention(report), _md_totals(report),
        _md_customers(report)) if part)
    tail = "\n\n".join(part for part in (
        _md_changes(report), _md_finalized(report), _md_list("Not invoiced", report.unrated),
        _md_list("Notice-period violations", report.notices)) if part)
    blocks = [_md_lines_block(c) for c in report.customers if c.lines]
    room = limit - len(head) - len(tail) - len(_CUT_NOTE) - 200
    details = _md_details(blocks, room)
    text = "\n\n".join(part for part in (head, details, tail) if part) + "\n"
    if len(text) > limit:   # the tables alone are too long: cut at a line
        cut = text[:limit - len(_CUT_NOTE) - 20].rsplit("\n", 1)[0]
        text = cut + _CUT_NOTE.format(n=f"{len(text) - len(cut)} more characters")
    return text


def failure_markdown(message: str, valid_at: dt.datetime) -> str:
    """The comment when the diff cannot run (a revision that does not check, a store without the
    period): it replaces the last run's numbers, which no longer say what the pull request does."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", message)), default=0))
    return f"{_marker(valid_at)}\n### gpubill diff could not run\n\n{fence}\n{message}\n{fence}\n"


def _marker(valid_at: dt.datetime) -> str:
    return f"{MARKER} valid-at={rfc3339(valid_at)} -->"


def _md_title(report, valid_at: dt.datetime) -> str:
    periods = ", ".join(report.periods)
    return f"{_marker(valid_at)}\n### gpubill diff: {_code(report.base)} → {_code(report.head)}\n\n" \
        f"Invoices of {periods} re-rated on the same stored events."


def _md_attention(report) -> str:
    """One line before the numbers: what the reviewer must act on (its sections are at the end)."""
    counts = ((report.notices, "notice-period violation", "notice-period violations"),
              (report.finalized, "finalized invoice that needs a credit note",
               "finalized invoices that need credit notes"),
              (report.unrated, "entry under not invoiced", "entries under not invoiced"))
    found = [f"{len(items)} {one if len(items) == 1 else many}" for items, one, many in counts if items]
    return f"**Needs attention:** {', '.join(found)} (below)." if found else ""


def rfc3339(when: dt.datetime) -> str:
    """UTC, whole seconds, ``Z``: one fixed width, so two of them compare as strings (in the workflow)."""
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _md_totals(report) -> str:
    rows = ["| Currency | Before | After | Δ | Δ % |", "| --- | ---: | ---: | ---: | ---: |"]
    for currency, before, after, places in _totals(report):
        rows.append(f"| {currency} | {_md_moved(before, after, after - before, places)} | "
                    f"{_percent(percent_change(before, after))} |")
    return "\n".join(rows)


def _md_customers(report) -> str:
    changed = [c for c in report.customers if c.delta or c.lines]
    same = len(report.customers) - len(changed)
    if not changed:
        return f"No invoice changes ({same} unchanged)."
    rows = [f"#### Customers ({len(changed)} changed, {same} unchanged)", "",
            "| Customer | Contract | Period | Currency | Before | After | Δ | Δ % |",
            "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    rows += [f"| {_cell(c.customer)} | {_cell(c.contract)} | {c.period} | {c.currency} | "
             f"{_md_moved(c.before, c.after, c.delta)} | {_percent(c.pct)} |"
             for c in changed]
    return "\n".join(rows)


def _md_lines_block(c) -> str:
    rows = [f"**{_cell(c.customer)}** ({_cell(c.contract)}, {c.period}, {c.currency})", "",
            "| Line | Before | After | Δ | Δ % | Clause |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    rows += [f"| {_cell(ln.name)} | {_md_moved(ln.before, ln.after, ln.delta)} | "
             f"{_percent(ln.pct)} | {_clause_cell(ln)} |" for ln in c.lines]
    return "\n".join(rows)


def _md_details(blocks: list[str], room: int) -> str:
    if not blocks:
        return ""
    kept, used = [], 0
    for block in blocks:
        if used + len(block) + 2 > room:
            break
        kept.append(block)
        used += len(block) + 2
    body = "\n\n".join(kept)
    if len(kept) < len(blocks):
        body += _CUT_NOTE.format(n=f"{len(blocks) - len(kept)} more customers' lines")
    return f"<details><summary>Changed lines ({len(blocks)} invoice{'s' if len(blocks) != 1 else ''})</summary>\n\n{body}\n\n</details>"


def _md_changes(report) -> str:
    if not report.changes:
        return ""
    rows = ["#### Changes", "", "| Kind | Name | What | Clauses | Reaches |", "| --- | --- | --- | --- | --- |"]
    rows += [f"| {ch.kind} | {_cell(ch.name)} | {ch.what} | {', '.join(_code(c) for c in ch.clauses if c) or ABSENT} | "
             f"{_cell(', '.join(ch.customers)) or ABSENT} |" for ch in report.changes]
    return "\n".join(rows)


def _md_finalized(report) -> str:
    if not report.finalized:
        return ""
    rows = ["#### Finalized invoices that need credit notes", "",
            "| Invoice | Customer | Stored total | Head total | Δ |", "| --- | --- | ---: | ---: | ---: |"]
    rows += [f"| {_cell(number)} | {_cell(customer)} | {_md_moved(stored, head, head - stored)} |" for number, customer, stored, head in report.finalized]
    return "\n".join(rows)


def _md_list(title: str, items) -> str:
    if not items:
        return ""
    return f"#### {title}\n\n" + "\n".join(f"- {_cell(item)}" for item in items)


def _clause_cell(line) -> str:
    clause = line.clause_after or line.clause_before
    return _code(clause) if clause else ABSENT


def _cell(text: str) -> str:
    """Text inside a markdown table cell: one line, no column break, no HTML tag."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "&lt;")


def _code(text: str) -> str:
    """Text as a code span in a table cell (shown as is: only backticks and | need care)."""
    return "`" + " ".join(str(text).split()).replace("`", "'").replace("|", "\\|") + "`"


def _md_moved(before, after, delta: Decimal, places: int = 0) -> str:
    """The before | after | delta cells, with one number of decimals (at least ``places``)."""
    places = max(places, _places(before, after, delta))
    return " | ".join((*(ABSENT if d is None else _fixed(d, places) for d in (before, after)), _signed(delta, places)))


def _percent(value: Decimal | None) -> str:
    return ABSENT if value is None else f"{_signed(value)} %"


# ---- github annotations ----------------------------------------------------------------

def annotations(report) -> str:
    """Workflow commands on the changed clauses, the largest money impact first."""
    impacts = _clause_impacts(report)
    warnings = [_command("warning", clause, _impact_title(by), _impact_message(by, reached))
                for clause, (by, reached) in impacts]
    touched = {clause for clause, _ in impacts}
    notices = [_command("notice", clause, f"{ch.kind} {ch.what}", _change_message(ch))
               for ch in report.changes for clause in ch.clauses if clause not in touched]
    errors = [_notice_violation(text) for text in report.notices]
    out: list[str] = []
    for kind, commands in (("error", errors), ("warning", warnings), ("notice", notices)):
        out += commands[:ANNOTATIONS_PER_TYPE]
        if len(commands) > ANNOTATIONS_PER_TYPE:
            out.append(f"{len(commands) - ANNOTATIONS_PER_TYPE} more {kind} annotations left out "
                       f"(GitHub shows {ANNOTATIONS_PER_TYPE} per step); see the job summary")
    return "\n".join(out) + ("\n" if out else "")


def _clause_impacts(report):
    """[(clause, ({currency: delta}, {contract}))] with a nonzero delta, largest |delta| first."""
    found: dict[str, tuple[dict[str, Decimal], set[str]]] = {}
    for c in report.customers:
        for line in c.lines:
            clause = line.clause_after or line.clause_before
            if clause and line.delta:
                by, reached = found.setdefault(clause, ({}, set()))
                by[c.currency] = by.get(c.currency, Decimal(0)) + line.delta
                reached.add(c.contract)
    ranked = sorted(found.items(), key=lambda kv: (-sum(abs(d) for d in kv[1][0].values()), kv[0]))
    return [(clause, (by, reached)) for clause, (by, reached) in ranked if any(by.values())]


def _impact_title(by: dict[str, Decimal]) -> str:
    total = sum(by.values())
    return "Price up" if total > 0 else "Price down" if total < 0 else "Price moved"


def _impact_message(by: dict[str, Decimal], reached: set[str]) -> str:
    amounts = ", ".join(f"{_signed(d)} {currency}" for currency, d in sorted(by.items()))
    names = sorted(reached)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{amounts} on {len(names)} contract(s): {shown}"


def _change_message(ch) -> str:
    reach = f"; reaches {', '.join(ch.customers)}" if ch.customers else ""
    return f"{ch.kind} {ch.name} {ch.what}{reach}"


def _notice_violation(text: str) -> str:
    """'file:line:col: message' as an error annotation (plain when it has no location)."""
    parts = text.split(": ", 1)
    if len(parts) == 2 and _location(parts[0]):
        return _command("error", parts[0], "Notice period", parts[1])
    return f"::error title=Notice period::{_escape_data(text)}"


def _location(clause: str) -> tuple[str, str, str] | None:
    parts = clause.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], parts[1], parts[2]
    return None


def _command(kind: str, clause: str, title: str, message: str) -> str:
    where = _location(clause)
    props = {"file": where[0], "line": where[1], "col": where[2]} if where else {}
    props["title"] = title
    joined = ",".join(f"{k}={_escape_property(v)}" for k, v in props.items())
    return f"::{kind} {joined}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    """actions/toolkit escapeData: % CR LF."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """actions/toolkit escapeProperty: escapeData plus : and ,."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


RENDERERS = {"text": report_text, "markdown": markdown, "github": annotations}
FORMATS = tuple(RENDERERS)
