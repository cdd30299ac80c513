"""The CI wiring shipped for billing repositories: the pre-commit manifest and the workflow."""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
GPUBILL = Path(sys.executable).with_name("gpubill")
WORKFLOW = ROOT / ".github" / "workflows" / "gpubill.yml"


def test_the_pre_commit_manifest_is_valid_and_names_our_commands():
    subprocess.run([sys.executable, "-m", "pre_commit", "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
                   check=True)
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == ["gpubill-check", "gpubill-fmt", "gpubill-test", "gpubill-diff"]
    assert {h["entry"] for h in hooks} == {"gpubill check", "gpubill fmt", "gpubill test", "gpubill diff"}
    assert all(h["files"] == r"\.bill$" for h in hooks)


def _steps():
    doc = yaml.safe_load(WORKFLOW.read_text())
    (job,) = doc["jobs"].values()
    return job["env"], [s["run"] for s in job["steps"] if "run" in s]


@pytest.mark.parametrize("command", ["check", "fmt", "test"])
def test_the_workflows_check_fmt_and_test_steps_pass_on_the_examples(command):
    env, runs = _steps()
    (line,) = [r for r in runs if r.startswith(f"gpubill {command} ")]
    words = [os.path.expandvars(w) for w in shlex.split(line.replace("$CONTRACTS", env["CONTRACTS"]))]
    done = subprocess.run([str(GPUBILL), *words[1:]], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_workflows_diff_flags_exist():
    _, runs = _steps()
    lines = [line.split("gpubill diff", 1)[1].split(">")[0]
             for r in runs for line in r.replace("\\\n", " ").splitlines() if "gpubill diff" in line]
    flags = {w for line in lines for w in shlex.split(line) if w.startswith("--")}
    assert flags >= {"--base", "--contracts", "--store", "--format"}
    help_text = subprocess.run([str(GPUBILL), "diff", "--help"], capture_output=True, text=True).stdout
    assert [f for f in sorted(flags) if f not in help_text] == []


FAKE_GH = """#!/usr/bin/env bash
# gh as the sticky-comment step calls it: logs its arguments; `gh api .../comments --paginate --jq F`
# answers with the real jq run over $COMMENTS (the PR's comments, as GitHub's API lists them).
echo "$*" >> "$GH_LOG"
if [ "$1" = api ] && [ "$3" = --paginate ]; then jq -r "$5" "$COMMENTS"; fi
"""


def _sticky_step(tmp_path, comments: list[dict]) -> tuple[str, list[str]]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    (job,) = doc["jobs"].values()
    (script,) = [s["run"] for s in job["steps"] if s.get("name", "").startswith("sticky PR comment")]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    (tmp_path / "comments.json").write_text(json.dumps(comments))
    (tmp_path / "diff.md").write_text("<!-- gpubill-diff valid-at=2026-12-01T12:00:00Z -->\n### gpubill diff\n")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GH_LOG": str(tmp_path / "gh.log"),
           "COMMENTS": str(tmp_path / "comments.json"), "GITHUB_REPOSITORY": "o/r", "PR": "7"}
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    log = tmp_path / "gh.log"
    return done.stdout, log.read_text().splitlines()[1:] if log.exists() else []


def _comment(id_: int, body: str) -> dict:
    return {"id": id_, "body": body}


needs_jq = pytest.mark.skipif(shutil.which("jq") is None, reason="jq (installed on CI by .ci/run) is not here")


@needs_jq
def test_the_sticky_comment_is_created_when_the_pr_has_none(tmp_path):
    _, calls = _sticky_step(tmp_path, [_comment(1, "LGTM")])
    assert calls == ["pr comment 7 --body-file diff.md"]


@needs_jq
def test_the_sticky_comment_of_an_older_run_is_edited(tmp_path):
    _, calls = _sticky_step(tmp_path, [
        _comment(41, "<!-- gpubill-diff valid-at=2026-11-30T09:00:00Z -->\n### old"), _comment(5, "LGTM"),
        _comment(42, "<!-- gpubill-diff valid-at=2026-12-01T11:59:59Z -->\n### older")])
    assert calls == ["api -X PATCH repos/o/r/issues/comments/42 -F body=@diff.md"]


@needs_jq
def test_the_sticky_comment_of_a_newer_run_is_left_as_it_is(tmp_path):
    out, calls = _sticky_step(tmp_path, [_comment(42, "<!-- gpubill-diff valid-at=2026-12-01T12:00:01Z -->\n### newer")])
    assert calls == []
    assert "valid-at 2026-12-01T12:00:01Z, this run 2026-12-01T12:00:00Z" in out
