"""`gpubill diff` fixtures: one demo store and one temporary git repository for the session.

The repository holds a copy of examples/ committed once; each test copies it
(its .git included), changes the work tree and diffs it against HEAD.  The
store is `gpubill demo --no-invoices --events 3000` (seeded: the same events
every run).
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
DEMO_PERIOD = "2026-11"  # the month the demo store holds
UPDATE = os.environ.get("GPUBILL_UPDATE_GOLDEN") == "1"
GIT_ID = ["-c", "user.name=gpubill-tests", "-c", "user.email=tests@gpubill.invalid"]


def gpubill(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpubill", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"})


def git(*args: str, cwd: Path, env: dict | None = None) -> str:
    done = subprocess.run(["git", *GIT_ID, *args], cwd=cwd, capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})})
    return done.stdout


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    """Read only: a test that writes to it works on a copy."""
    folder = tmp_path_factory.mktemp("diff-store") / "demo"
    r = gpubill("demo", "--contracts", str(ROOT / "examples"), "--dir", str(folder), "--period", DEMO_PERIOD,
                "--events", "3000", "--seed", "2026", "--no-invoices", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return folder / "gpubill.db"


@pytest.fixture(scope="session")
def base_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("diff-repo") / "billing"
    shutil.copytree(ROOT / "examples", repo)
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "the examples", cwd=repo)
    return repo


@pytest.fixture
def repo(base_repo, tmp_path) -> Path:
    """A copy of the repository whose work tree the test changes (the head)."""
    copy = tmp_path / "billing"
    shutil.copytree(base_repo, copy)
    return copy


def assert_golden(name: str, got: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(got)
    want = path.read_text() if path.exists() else ""
    if got != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), str(path), "now", n=2))
        pytest.fail(f"the report changed (GPUBILL_UPDATE_GOLDEN=1 to accept):\n{diff[:20000]}")


@pytest.fixture(scope="module")
def cli():
    """The real `gpubill` CLI in a subprocess: cli(*args, cwd=...)."""
    return gpubill


@pytest.fixture(scope="module")
def golden():
    """golden(name, text): the text is tests/diff/golden/NAME (GPUBILL_UPDATE_GOLDEN=1 writes it)."""
    return assert_golden


@pytest.fixture(scope="module")
def commit():
    """commit(repo, message[, when]): commit everything in the repository's work tree (dated ``when``)."""
    def run(repo: Path, message: str, when: str | None = None) -> None:
        git("add", ".", cwd=repo)
        dated = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when} if when else {}
        git("commit", "-q", "-m", message, cwd=repo, env=dated)
    return run


class CountedReads:
    """The real store, counting its column reads."""

    def __init__(self, store):
        self.store, self.reads = store, 0

    def read_columns(self, **window):
        self.reads += 1
        return self.store.read_columns(**window)

    def __getattr__(self, name):
        return getattr(self.store, name)


@pytest.fixture
def counted():
    """CountedReads: wrap a real store to count its column reads."""
    return CountedReads
