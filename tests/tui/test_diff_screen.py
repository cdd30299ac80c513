"""Diff (key 5): a `gpubill diff --format json` file, customers by impact, Enter shows a customer's changed lines."""

from __future__ import annotations

import json
import shutil
import subprocess
from decimal import Decimal

import pytest
from textual.widgets import Input

from gpubill.tui.screens.diff import DiffCustomerScreen, DiffScreen
from gpubill.tui.widgets.filter_table import FilterTable

from .conftest import ROOT, SIZE, settle

pytestmark = pytest.mark.anyio


def moved(before, after) -> dict:
    return {"before": before, "after": after, "delta": str(Decimal(after or 0) - Decimal(before or 0)), "pct": None}


DIFF = {"schema": "gpubill-diff/1", "base": "main", "head": "HEAD", "periods": ["2026-11"],
        "totals": {"USD": moved("300.00", "330.00")},
        "customers": [
            {"customer": "quill-ai", "contract": "quill_ai", "currency": "USD", "period": "2026-11",
             **moved("100.00", "95.00"), "lines": [{"name": "api_requests", **moved("100.00", "95.00"),
                                                     "clause_before": "plans/a.bill:3:3", "clause_after": "plans/a.bill:3:3"}]},
            {"customer": "helix-labs", "contract": "helix_labs", "currency": "USD", "period": "2026-11",
             **moved("200.00", "235.00"), "lines": [
                 {"name": "gpu_hours (H100-SXM)", **moved("150.00", "185.00"), "clause_before": "plans/b.bill:9:5",
                  "clause_after": "plans/b.bill:9:5"},
                 {"name": "support", **moved(None, "0.00"), "clause_before": None, "clause_after": "plans/b.bill:12:3"}]}],
        "changes": [], "finalized": [], "unrated": [], "notices": []}


async def test_a_diff_file_opens_on_its_customers_by_impact_and_enter_shows_the_lines(make_app, tmp_path):
    path = tmp_path / "diff.json"
    path.write_text(json.dumps(DIFF))
    app = make_app()
    app.diff_path = str(path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        table = screen.query_one("#diff-customers", FilterTable)
        assert [r.cells[0] for r in table.shown] == ["helix-labs", "quill-ai"]
        assert "main → HEAD · 2026-11 · 2 of 2 invoices changed" in str(screen.query_one("#diff-totals").render())
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DiffCustomerScreen)
        lines = app.screen.query_one("#diff-lines", FilterTable)
        assert [(r.cells[0], r.cells[1], r.cells[2]) for r in lines.rows] == [
            ("gpu_hours (H100-SXM)", "150.00", "185.00"), ("support", "—", "0.00")]


async def test_a_path_typed_in_the_box_opens_and_a_bad_file_says_why(make_app, tmp_path):
    bad = tmp_path / "not-a-diff.json"
    bad.write_text(json.dumps({"schema": "gpubill-invoice/1"}))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        box = app.screen.query_one("#diff-path", Input)
        assert not box.has_focus  # the number keys still switch screens
        await pilot.press("o")
        assert box.has_focus
        box.value = str(bad)
        await pilot.press("enter")
        await settle(pilot)
        assert "not a gpubill diff result" in str(app.screen.query_one("#diff-totals").render())
        box.focus()
        await pilot.press("escape")
        assert isinstance(app.screen, DiffScreen) and not box.has_focus
        assert app.screen.query_one("#diff-customers", FilterTable).rows == []


async def test_two_revisions_are_backtested_on_the_month_under_review(make_app, tmp_path):
    repo = tmp_path / "billing"
    shutil.copytree(ROOT / "examples", repo)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    for argv in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "base"]):
        subprocess.run([*git, *argv], cwd=repo, check=True, capture_output=True)
    plan = repo / "plans" / "on_demand.bill"
    plan.write_text(plan.read_text().replace('"H100-SXM"  3.49', '"H100-SXM"  3.69', 1))
    app = make_app(contracts=[str(repo)], period="2026-11", diff_revisions=("HEAD", None))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        table = app.screen.query_one("#diff-customers", FilterTable)
        assert "HEAD → work tree · 2026-11" in str(app.screen.query_one("#diff-totals").render())
        first = table.shown[0].cells
        assert first[0] == "sunbeam-robotics" and str(first[6]).startswith("+")  # the one the raise reaches, first
