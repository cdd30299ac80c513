"""`gpubill diff` over a real temporary git repository and a real demo store.

Each change is made in the work tree of a copy of the examples repository and
compared with its HEAD; the text report is checked against
tests/diff/golden/NAME.txt (GPUBILL_UPDATE_GOLDEN=1 regenerates them).
"""

from __future__ import annotations

import json

import pytest

PERIOD = "2026-11"  # the demo store's month (conftest.py)


@pytest.fixture
def diff(cli, store):
    def run(repo, *more):
        return cli("diff", "--base", "HEAD", "--store", str(store), "--period", PERIOD, *more, cwd=repo)
    return run


@pytest.fixture
def report(diff, golden):
    """report(repo, name): the text report of the work tree against HEAD, checked against golden/NAME.txt."""
    def run(repo, name):
        r = diff(repo)
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""
        golden(f"{name}.txt", r.stdout)
        return r.stdout
    return run


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_unchanged_work_tree_changes_nothing(repo, diff):
    r = diff(repo, "--detailed-exitcode")
    assert r.returncode == 0, r.stderr
    assert "0 of" in r.stdout and "changes:" not in r.stdout


def test_price_change(repo, report, diff):
    edit(repo / "plans/on_demand.bill", '"H100-SXM"  3.49', '"H100-SXM"  3.69')
    out = report(repo, "price_change")
    assert "~ version on_demand@2 changed at plans/on_demand.bill:" in out
    assert "reaches sunbeam_robotics\n" in out   # meridian_bank pins version 1
    assert diff(repo, "--detailed-exitcode").returncode == 2


def test_new_tier(repo, report):
    edit(repo / "plans/scale_up.bill", "    0 to 2_000 at 2.21", "    0 to 100 at 2.50\n    101 to 2_000 at 2.21")
    out = report(repo, "new_tier")
    assert "~ plan scale_up changed at plans/scale_up.bill:15:3" in out


def test_new_contract(repo, report):
    text = (repo / "contracts/sunbeam_robotics.bill").read_text()
    text = text.replace("sunbeam_robotics", "sunbeam_labs").replace('"sunbeam-robotics"', '"sunbeam-labs"')
    (repo / "contracts/sunbeam_labs.bill").write_text(text.replace("sub_sunbeam_payg", "sub_sunbeam_labs"))
    out = report(repo, "new_contract")
    assert "+ contract sunbeam_labs added at contracts/sunbeam_labs.bill:6:1; reaches sunbeam_labs" in out


def test_removed_plan(repo, report):
    for path in ("plans/spot.bill", "tests/spot.bill", "tests/pixelforge_studios.bill", "contracts/pixelforge_studios.bill"):
        (repo / path).unlink()
    out = report(repo, "removed_plan")
    assert "- plan spot removed at plans/spot.bill:" in out
    assert "- contract pixelforge_studios removed" in out


def test_renamed_charge(repo, report):
    edit(repo / "plans/scale_up.bill", "charge peak_gpus as burst_capacity", "charge peak_gpus as peak_capacity")
    tests = repo / "tests/scale_up.bill"
    tests.write_text(tests.read_text().replace("burst_capacity", "peak_capacity"))
    out = report(repo, "renamed_charge")
    assert "    - burst_capacity" in out and "    + peak_capacity" in out


def test_changed_commitment(repo, report):
    edit(repo / "contracts/meridian_bank.bill", "commit 40_000 USD per month", "commit 45_000 USD per month")
    out = report(repo, "changed_commitment")
    assert "~ contract meridian_bank changed at contracts/meridian_bank.bill:20:3; reaches meridian_bank" in out


def test_json_report(repo, diff):
    edit(repo / "plans/on_demand.bill", '"H100-SXM"  3.49', '"H100-SXM"  3.69')
    r = diff(repo, "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "gpubill-diff/1" and doc["periods"] == [PERIOD]
    first = doc["customers"][0]
    assert first["contract"] == "sunbeam_robotics" and first["delta"].startswith("8")
    assert [ln["name"] for ln in first["lines"]] == ["gpu_hours (H100-SXM)"]
    assert doc["changes"][0]["kind"] == "version"


def test_syntax_error_at_head(repo, diff, golden):
    edit(repo / "plans/on_demand.bill", '"H100-SXM"  3.49', '"H100-SXM"  3.49.')
    r = diff(repo)
    assert r.returncode == 1 and r.stdout == ""
    golden("syntax_error.txt", r.stderr)


def test_bad_revision(repo, cli, store):
    r = cli("diff", "--base", "no-such-branch", "--store", str(store), cwd=repo)
    assert r.returncode == 3
    assert r.stderr.splitlines() == [f"gpubill: error: no revision 'no-such-branch' in {repo}"]


def test_no_period_in_store(repo, diff):
    r = diff(repo, "--period", "2025-01")
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["gpubill: error: the store holds no events in 2025-01: nothing to compare"]


def test_no_bill_files(repo, cli, store, commit):
    (repo / "docs").mkdir()
    (repo / "docs/README.md").write_text("no contracts here\n")
    commit(repo, "docs")
    r = cli("diff", "--base", "HEAD", "--contracts", "docs", "--store", str(store), cwd=repo)
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["gpubill: error: no .bill files in docs at HEAD"]


def test_not_a_git_repository(tmp_path, cli, store):
    (tmp_path / "a.bill").write_text("")
    r = cli("diff", "--base", "HEAD", "--store", str(store), cwd=tmp_path)
    assert r.returncode == 3
    assert r.stderr.splitlines() == ["gpubill: error: . is not in a git repository"]
