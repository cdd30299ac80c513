"""`gpubill diff --format markdown|github`: the sticky PR comment and the annotations."""

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from gpubill.service.diff import Change, CustomerDelta, DiffReport, LineDelta
from gpubill.service.diff_render import (
    ANNOTATIONS_PER_TYPE, COMMENT_LIMIT, MARKER, markdown, read_report, render, report_json, write_step_summary)
from gpubill.service.rating import ServiceError

EXAMPLE = Path(__file__).parents[2] / "docs" / "ci-example-comment.md"
RUN_EPOCH = "1796126400"   # 2026-12-01T12:00:00Z: the example's valid-at, and the day its change is introduced


def _line(name, before, after, clause="contracts/plans/gpu.bill:14:5"):
    return LineDelta(name, ("charge", name), before, after, clause, clause)


def example_report():
    """A price raise of the H100 hour reaching two customers, a new tier, a finalized invoice."""
    acme = CustomerDelta("Acme Corp", "acme", "USD", "2026-11", D("1200.00"), D("1368.00"), (
        _line("H100-SXM hours", D("1200.00"), D("1368.00")),))
    beta = CustomerDelta("Beta Labs", "beta", "USD", "2026-11", D("300.00"), D("330.00"), (
        _line("H100-SXM hours", D("240.00"), D("273.60")),
        _line("storage | tier 2", None, D("-3.60"), "contracts/plans/gpu.bill:22:7"),))
    gamma = CustomerDelta("Gamma", "gamma", "EUR", "2026-11", D("80.00"), D("80.00"), ())
    changes = (
        Change("version", "gpu@2026-11", "changed", ("contracts/plans/gpu.bill:14:5",), ("acme", "beta")),
        Change("plan", "storage", "added", ("contracts/plans/gpu.bill:22:7",), ("beta",)),
    )
    return DiffReport("origin/main", "HEAD", ("2026-11",), (acme, beta, gamma), changes,
                      (("INV-2026-11-0001", "acme", D("1200.00"), D("1368.00")),), (),
                      ("contracts/plans/gpu.bill:14:5: the raise takes effect 12 days after its commit "
                       "(notice period 30 days)",))


def test_the_example_comment_is_the_documented_one(repo, store):
    """docs/ci-example-comment.md is the comment of a real diff: the H100 hour of on_demand
    version 2 raised from 3.49 to 3.79 in the examples repository, over the demo store
    (GPUBILL_UPDATE_GOLDEN=1 rewrites it)."""
    plan = repo / "plans" / "on_demand.bill"
    plan.write_text(plan.read_text().replace('"H100-SXM"  3.49', '"H100-SXM"  3.79', 1))
    command = [sys.executable, "-m", "gpubill", "diff", "--base", "HEAD", "--store", str(store),
               "--period", "2026-11", "--format", "markdown"]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "GITHUB_STEP_SUMMARY": "", "SOURCE_DATE_EPOCH": RUN_EPOCH})
    assert done.returncode == 0, done.stderr
    if os.environ.get("GPUBILL_UPDATE_GOLDEN") == "1":
        EXAMPLE.write_text(done.stdout, encoding="utf-8")
    assert done.stdout == EXAMPLE.read_text(encoding="utf-8")
    assert "| gpu_hours (H100-SXM) |" in done.stdout


def test_the_comment_has_the_marker_totals_customers_and_details():
    text = markdown(example_report())
    assert text.startswith(MARKER + " valid-at=")
    assert "| USD | 1500.00 | 1698.00 | +198.00 | +13.20 % |" in text
    assert "| EUR | 80.00 | 80.00 | 0.00 | 0.00 % |" in text
    assert "#### Customers (2 changed, 1 unchanged)" in text
    assert text.index("| Acme Corp |") < text.index("| Beta Labs |")
    assert "| storage \\| tier 2 | — | -3.60 | -3.60 | — | `contracts/plans/gpu.bill:22:7` |" in text
    assert text.count("<details>") == text.count("</details>") == 1
    assert "| INV-2026-11-0001 | acme | 1200.00 | 1368.00 | +168.00 |" in text
    assert "- contracts/plans/gpu.bill:14:5: the raise takes effect" in text
    assert text.splitlines()[5] == \
        "**Needs attention:** 1 notice-period violation, 1 finalized invoice that needs a credit note (below)."
    assert "Needs attention" not in markdown(_many_customers(1))


def _many_customers(n):
    lines = tuple(_line(f"line {i} " + "x" * 40, D("1.00"), D("2.00")) for i in range(10))
    return DiffReport("main", "HEAD", ("2026-11",), tuple(
        CustomerDelta(f"customer {i}", f"c{i}", "USD", "2026-11", D("10.00"), D("20.00"), lines)
        for i in range(n)), (), (), ())


def test_a_long_comment_stays_under_githubs_limit_with_its_details_cut():
    text = markdown(_many_customers(300))
    assert len(text) <= COMMENT_LIMIT
    assert "more customers' lines left out to stay under GitHub's comment size limit" in text
    assert text.count("<details>") == text.count("</details>") == 1
    assert "| customer 299 |" in text          # the summary table is whole


def test_tables_too_long_for_the_limit_are_cut_at_a_line():
    text = markdown(_many_customers(300), limit=8_000)
    assert len(text) <= 8_000
    assert text.startswith(MARKER)
    assert "characters left out to stay under GitHub's comment size limit" in text


def test_the_step_summary_is_appended_when_github_names_one(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert write_step_summary("### gpubill diff") is True
    assert summary.read_text() == "earlier step\n### gpubill diff\n"
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert write_step_summary("again") is False


def test_annotations_on_changed_clauses_largest_first_and_escaped():
    out = render(example_report(), "github").splitlines()
    assert out == [
        "::error file=contracts/plans/gpu.bill,line=14,col=5,title=Notice period::"
        "the raise takes effect 12 days after its commit (notice period 30 days)",
        "::warning file=contracts/plans/gpu.bill,line=14,col=5,title=Price up::"
        "+201.60 USD on 2 contract(s): acme, beta",
        "::warning file=contracts/plans/gpu.bill,line=22,col=7,title=Price down::"
        "-3.60 USD on 1 contract(s): beta",
    ]


def test_annotation_properties_and_data_are_escaped():
    line = _line("gpu", D("1"), D("2"), "dir,a:b/x%.bill:3:4")
    report = DiffReport("main", "HEAD", ("2026-11",), (
        CustomerDelta("c", "50%\nco", "USD", "2026-11", D("1"), D("2"), (line,)),), (), (), ())
    assert render(report, "github") == \
        "::warning file=dir%2Ca%3Ab/x%25.bill,line=3,col=4,title=Price up::+1 USD on 1 contract(s): 50%25%0Aco\n"


def test_at_most_ten_annotations_per_type_then_how_many_were_left_out():
    customers = tuple(
        CustomerDelta(f"c{i}", f"c{i}", "USD", "2026-11", D("10"), D(10 + i), (
            _line("gpu", D("10"), D(10 + i), f"p.bill:{i}:1"),)) for i in range(1, 16))
    report = DiffReport("main", "HEAD", ("2026-11",), customers, (), (), ())
    out = render(report, "github").splitlines()
    assert len(out) == ANNOTATIONS_PER_TYPE + 1
    assert out[0].startswith("::warning file=p.bill,line=15,col=1,")     # the largest first
    assert out[-1] == "5 more warning annotations left out (GitHub shows 10 per step); see the job summary"


def test_a_change_without_money_impact_is_a_notice():
    change = Change("metric", "gpu_hours", "changed", ("metrics.bill:2:1",), ())
    report = DiffReport("main", "HEAD", ("2026-11",), (), (change,), (), ())
    assert render(report, "github") == "::notice file=metrics.bill,line=2,col=1,title=metric changed::" \
        "metric gpu_hours changed\n"


def test_one_invoice_is_named_in_the_singular():
    assert "<details><summary>Changed lines (1 invoice)</summary>" in markdown(_many_customers(1))


def test_a_name_cannot_break_the_comments_html():
    customer = CustomerDelta("Acme </details> <b>", "acme", "USD", "2026-11", D("1"), D("2"), (
        _line("gpu", D("1"), D("2"), "a`b.bill:1:1"),))
    text = markdown(DiffReport("main", "HEAD", ("2026-11",), (customer,), (), (), ()))
    assert text.count("</details>") == 1
    assert "| Acme &lt;/details> &lt;b> |" in text
    assert "| `a'b.bill:1:1` |" in text


def test_the_marker_carries_the_runs_time_as_valid_at():
    text = markdown(example_report(), valid_at=dt.datetime(2026, 12, 1, 13, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    assert text.splitlines()[0] == "<!-- gpubill-diff valid-at=2026-12-01T12:00:05Z -->"


def _new_empty_invoice():
    """A contract added at head whose invoice is 0.00: its delta has the amounts' two places."""
    line = _line("gpu", None, D("0.00"))
    return DiffReport("main", "HEAD", ("2026-11",), (
        CustomerDelta("c", "c", "USD", "2026-11", None, D("0.00"), (line,)),), (), (), ())


def test_a_zero_delta_keeps_the_amounts_places():
    report = _new_empty_invoice()
    assert "USD: - -> 0.00  0.00\n    + gpu: - -> 0.00  0.00  " in render(report, "text")
    assert "| USD | 0.00 | 0.00 | 0.00 | — |" in markdown(report)          # the total before is a sum of nothing
    assert "| c | c | 2026-11 | USD | — | 0.00 | 0.00 | — |" in markdown(report)
    doc = report_json(report)
    assert doc["totals"]["USD"] == {"before": "0.00", "after": "0.00", "delta": "0.00", "pct": None}
    assert [(c["delta"], c["lines"][0]["delta"]) for c in doc["customers"]] == [("0.00", "0.00")]
    json.dumps(doc)


def test_a_yen_amount_keeps_no_places():
    report = DiffReport("main", "HEAD", ("2026-11",), (
        CustomerDelta("c", "c", "JPY", "2026-11", D("100"), D("100"), ()),), (), (), ())
    assert "total JPY: 100 -> 100  0 (0.00 %)" in render(report, "text")


def test_a_json_report_reads_back_as_the_same_report(tmp_path):
    doc = report_json(example_report())
    path = tmp_path / "diff.json"
    path.write_text(json.dumps(doc))
    back = read_report(str(path))
    assert report_json(back) == doc
    assert back.customers[1].lines[1].delta == D("-3.60") and back.finalized == example_report().finalized


@pytest.mark.parametrize("text, message", [
    ("{", "not JSON"), (json.dumps({"schema": "gpubill-invoice/1"}), "not a gpubill diff result"),
    (json.dumps({**report_json(example_report()), "customers": [{"customer": "x"}]}), "field missing or wrong")])
def test_a_file_that_is_not_a_diff_report_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "diff.json"
    path.write_text(text)
    with pytest.raises(ServiceError, match=message) as e:
        read_report(str(path))
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value) and e.value.code == 1
