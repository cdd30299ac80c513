"""A git revision's contract files, read without touching the work tree.

`gpubill diff --base REV` loads the contract repository as it was at REV:
``git archive REV -- PATH`` unpacked into a temporary directory.  The work
tree is the default head (WORK_TREE).  Every failure is a ServiceError with
one line: a revision that does not exist, a path that is not in a git
repository, a revision without .bill files.

The run's time (``run_time``) is the clock, or $SOURCE_DATE_EPOCH when set
(reproducible reports: the work tree's changes are introduced then, and the
PR comment's valid-at says so).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import attrs

from gpubill.service.rating import ServiceError

WORK_TREE = "work tree"
EXIT_IO = 3
SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"  # reproducible-builds.org: seconds since 1970-01-01 UTC


@attrs.frozen
class Revision:
    """One side of a diff: its name, the directory that holds its contracts
    (the work tree's or a temporary copy) and the root their clauses are named from."""

    name: str
    contracts: str
    root: str
    day: dt.date  # when its changes take effect at the earliest: the commit's day, today for the work tree

    def relative(self, text: str) -> str:
        """``text`` with this revision's root left off its file names."""
        return text.replace(self.root.rstrip("/") + "/", "")


def git_root(path: str) -> Path:
    """The top of the git repository holding ``path``."""
    where = path if os.path.isdir(path) else os.path.dirname(path) or "."
    out = _git(["rev-parse", "--show-toplevel"], where, f"{path} is not in a git repository")
    return Path(out.decode().strip())


def work_tree(contracts: str) -> Revision:
    root = git_root(contracts)
    _require_bill_files(Path(contracts), WORK_TREE)
    return Revision(WORK_TREE, str(Path(contracts).resolve()), str(root), run_time().date())


def run_time() -> dt.datetime:
    """Now (UTC, whole seconds), or $SOURCE_DATE_EPOCH when it is set."""
    epoch = os.environ.get(SOURCE_DATE_EPOCH)
    if epoch is None:
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if not epoch.isdigit():
        raise ServiceError(f"{SOURCE_DATE_EPOCH}={epoch!r} is not a number of seconds since 1970")
    return dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc)


def at_revision(rev: str, contracts: str, into: str) -> Revision:
    """The contracts directory as it is at ``rev``, unpacked under ``into``."""
    root = git_root(contracts)
    inside = Path(contracts).resolve().relative_to(root).as_posix()
    _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], str(root), f"no revision {rev!r} in {root}")
    tar = _git(["archive", "--format=tar", rev, "--", inside], str(root),
               f"{inside} is not in revision {rev!r}")
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    where = Path(into) / inside
    _require_bill_files(where, rev)
    stamp = _git(["log", "-1", "--format=%ct", rev], str(root), f"no revision {rev!r} in {root}")
    day = dt.datetime.fromtimestamp(int(stamp), dt.timezone.utc).date()
    return Revision(rev, str(where), into, day)


def copied(rev: Revision, into: str) -> Revision:
    """``rev`` with its .bill files copied under ``into`` (their paths from the root kept, so
    clauses are named as before): a copy to rewrite, the work tree left untouched."""
    inside = Path(rev.contracts).relative_to(rev.root)
    for path in Path(rev.contracts).rglob("*.bill"):
        target = Path(into) / inside / path.relative_to(rev.contracts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return attrs.evolve(rev, contracts=str(Path(into) / inside), root=into)


def temporary_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="gpubill-diff-")


def _require_bill_files(where: Path, name: str) -> None:
    if not (where.is_dir() and any(where.rglob("*.bill"))):
        raise ServiceError(f"no .bill files in {where.name or where} at {name}", code=1)


def _git(argv: list[str], cwd: str, problem: str) -> bytes:
    try:
        done = subprocess.run(["git", *argv], cwd=cwd, capture_output=True, check=False)
    except OSError as e:
        raise ServiceError(f"cannot run git: {e.strerror}", code=EXIT_IO) from None
    if done.returncode != 0:
        raise ServiceError(problem, code=EXIT_IO)
    return done.stdout
