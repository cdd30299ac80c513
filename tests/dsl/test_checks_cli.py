"""`gpubill check` as a user runs it: a real subprocess on real files in a temp dir."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PRELUDE

GPUBILL = [sys.executable, "-m", "gpubill"]

BAD_PLAN = """\
plan p version 1 effective 2026-01-01 {
  currency USD
  billing monthly
  charge gpu_hour 3.49 per hour
}
"""


def run(*args, cwd):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([*GPUBILL, "check", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "prelude.bill").write_text(PRELUDE)
    return tmp_path


def test_clean_repository_is_silent(repo):
    r = run(".", cwd=repo)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = run(".", "--format", "json", cwd=repo)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_error_is_shown_with_caret_and_hint(repo):
    (repo / "bad.bill").write_text(BAD_PLAN)
    r = run(".", cwd=repo)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0] == 'bad.bill:4:10: error[unknown-metric]: unknown metric "gpu_hour"'
    assert lines[2] == "4 |   charge gpu_hour 3.49 per hour"
    assert lines[3] == "  |          ^^^^^^^^"
    assert lines[4] == '  = hint: did you mean "gpu_hours"?'
    assert lines[-1] == "1 error(s), 0 warning(s)"


def test_json_and_github_formats(repo):
    (repo / "bad.bill").write_text(BAD_PLAN)
    r = run("bad.bill", "prelude.bill", "--format", "json", cwd=repo)
    assert r.returncode == 1
    [item] = json.loads(r.stdout)
    assert (item["rule"], item["path"], item["line"], item["col"], item["end_col"]) == (
        "unknown-metric", "bad.bill", 4, 10, 18)
    assert item["hints"] == ['did you mean "gpu_hours"?']
    r = run(".", "--format", "github", cwd=repo)
    assert r.returncode == 1
    assert r.stdout.startswith("::error file=bad.bill,line=4,col=10,endLine=4,endColumn=18,title=unknown-metric::")


def test_warnings_exit_zero_unless_asked(repo):
    (repo / "w.bill").write_text(
        'contract w {\n  customer "w"\n  subscription "w"\n  entity gpucloud\n  plan on_demand\n'
        "  starts 2026-03-01\n  on user failure no charge\n}\n"
    )
    r = run(".", cwd=repo)
    assert r.returncode == 0 and "warning[user-failure-no-charge]" in r.stderr
    assert run(".", "-W", cwd=repo).returncode == 1


def test_missing_path_is_an_io_error(repo):
    r = run("nope.bill", cwd=repo)
    assert r.returncode == 3
    assert r.stderr == "gpubill: error: nope.bill: no such file or directory\n"


@pytest.mark.parametrize("data", [b"\xff\xfe\x00garbage\x89PNG", b"\x00\x01plan {{{ ]]]", b"contract \"x\" {"])
def test_garbage_never_gives_a_traceback(repo, data):
    (repo / "junk.bill").write_bytes(data)
    r = run(".", cwd=repo)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("junk.bill:1:")
