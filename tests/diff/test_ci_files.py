"""The CI wiring shipped for billing repositories: the pre-commit manifest and the workflow."""

import os
import shlex
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
