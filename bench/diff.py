"""`gpubill diff` benchmark: a backtest of two revisions against two `gpubill invoice` runs, same store, same run.

    .venv/bin/python bench/diff.py                      # 10 M events, 1 000 contracts
    .venv/bin/python bench/diff.py --quick              # a smoke run: 5 000 events, 8 contracts
    .venv/bin/python bench/diff.py --events 2000000     # a smaller store (made once in --dir)
    .venv/bin/python bench/diff.py --db /tmp/b/bench.db # reuse a store (bench/invoice.py's fits)
    .venv/bin/python bench/diff.py --profile            # + where a warm diff spends its time

The goal (issue 12): a backtest of two revisions over 10 M events in <= 5 s
warm, the events read once.

The contracts and the store are bench/invoice.py's (``--contracts`` copies of
the example contracts, one month of demo events, made once in ``--dir`` and
reused).  The repository is a git repository (``DIR/diff-repo-N``) with two
commits: the base, and a head that changes one on-demand price of one plan
(``CHANGE``: the H200 price of on_demand_eu, which reaches the contracts on
that plan, a part of them).

Measured, in the same run:

1. ``diff_revisions`` in this process, warm: the second of two runs (the
   numba kernels and the modules loaded; each run reads the store itself;
   unpacking the two revisions with git is left out);
2. ``gpubill diff --base HEAD~1 --head HEAD --format json`` as a new process
   (cold, with the kernels' on-disk cache warmed by one untimed run);
3. the baseline: ``gpubill invoice --format json`` of the base contracts and
   of the head contracts, two new processes (what a diff would cost as two
   separate invoice runs).

Best of ``--repeat`` interleaved runs of each command, with the spread, and
the ratio of the diff to the two invoice runs together.  ``--profile`` runs
the warm diff once more under cProfile and prints the time of its stages.

It is a benchmark, not a test: nothing is asserted; the exit status is 1
when a run fails.  tests/diff/test_backtest_once.py runs ``--quick``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import invoice as inv  # noqa: E402  (bench/invoice.py: the contracts, the store, a timed CLI run)

from gpubill.service.diff import diff_revisions  # noqa: E402
from gpubill.service.revisions import at_revision, temporary_dir  # noqa: E402
from gpubill.store import Store  # noqa: E402

GOAL_S = 5.0
# The head's change: one on-demand price of one plan (file, old text, new text).
CHANGE = ("plans/on_demand_eu.bill", '"H200"      3.95', '"H200"      4.15')
GIT = ["git", "-c", "user.name=gpubill-bench", "-c", "user.email=bench@gpubill.invalid"]

# What `--profile` reports: the stages of diff_revisions, as (file, function, what).
STAGES = (
    ("service/diff.py", "_catalog", "check + resolve both revisions"),
    ("service/diff.py", "_require_events", "the period has events"),
    ("service/diff.py", "reached_contracts", "the contracts a change reaches"),
    ("service/invoicing.py", "invoice_period", "invoicing (both sides)"),
    ("service/rating.py", "billed_subscriptions", "  of which the period's subscriptions, compiled"),
    ("service/invoicing.py", "rate_rounds", "  of which rating every period"),
    ("service/invoicing.py", "rate_checks", "  of which rating the daily progressive checks"),
    ("store/store.py", "read_columns", "    of which store reads (SQLite -> columns)"),
    ("engine/fast/rate.py", "rate", "    of which fast engine"),
    ("service/invoicing.py", "invoice_chain", "  of which invoicing every chain (contracts layer)"),
    ("service/diff.py", "_customers", "comparing the invoices"),
    ("service/diff.py", "catalog_changes", "catalog changes"),
    ("service/notice.py", "notice_violations", "notice periods"),
    ("service/diff.py", "finalized_changed", "finalized invoices"),
)


def git(*argv: str, cwd: Path) -> str:
    return subprocess.run([*GIT, *argv], cwd=cwd, capture_output=True, text=True, check=True).stdout


def build_git_repo(base: Path, dst: Path) -> Path:
    """A git repository of ``base``'s files: the base commit, then the head commit with CHANGE."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(base, dst)
    git("init", "-q", "-b", "main", cwd=dst)
    git("add", ".", cwd=dst)
    git("commit", "-q", "-m", "base", cwd=dst)
    path, old, new = CHANGE
    text = (dst / path).read_text()
    assert text.count(old) == 1, f"{path}: {old!r} not found once"
    (dst / path).write_text(text.replace(old, new))
    git("commit", "-q", "-am", "head: one on-demand price", cwd=dst)
    return dst


def diff_in_process(repo: Path, db: Path, period: str):
    """One diff_revisions of HEAD~1 against HEAD (the revisions unpacked by
    git beforehand, untimed): (seconds, report)."""
    with temporary_dir() as a, temporary_dir() as b:
        base, head = at_revision("HEAD~1", str(repo), a), at_revision("HEAD", str(repo), b)
        store = Store(str(db), readonly=True)
        try:
            t = time.perf_counter()
            report = diff_revisions(store, base, head, [period])
            return time.perf_counter() - t, report
        finally:
            store.close()


def commands(repo: Path, base_dir: Path, period: str) -> dict[str, list[str]]:
    py = [sys.executable, "-m", "gpubill"]
    return {
        "diff": [*py, "diff", "--base", "HEAD~1", "--head", "HEAD", "--contracts", str(repo),
                 "--period", period, "--format", "json"],
        "invoice base": inv.cli("invoice", base_dir, period),
        "invoice head": inv.cli("invoice", repo, period),
    }


def measure(repo: Path, base_dir: Path, db: Path, period: str, repeat: int, work: Path) -> dict[str, list]:
    """Each command once untimed (caches), then ``repeat`` interleaved timed runs of each."""
    env = {**os.environ, "GPUBILL_STORE": str(db)}
    runs: dict[str, list] = {name: [] for name in commands(repo, base_dir, period)}
    for k in range(repeat + 1):
        for name, argv in commands(repo, base_dir, period).items():
            r = inv.Run(argv, env, work / f"{name.replace(' ', '-')}.json")
            if r.rc:
                print(f"`gpubill {name}` failed (exit {r.rc}): {' '.join(r.error)}")
            if k:
                runs[name].append(r)
    return runs


def report(warm: list[float], runs: dict[str, list], diff) -> None:
    best = {name: min(r.wall for r in rs) for name, rs in runs.items()}
    both = best["invoice base"] + best["invoice head"]
    changed = [c for c in diff.customers if c.delta or c.lines]
    print(f"diff: {len(diff.customers):,} invoices compared, {len(changed):,} changed, "
          f"{len(diff.changes)} catalog change(s), {len(diff.unrated)} not invoiced")
    print(f"{'measure':36s} {'value':>10s} {'goal':>8s} {'goal ratio (>=1 met)':>21s}  runs (s)")
    rows = [("warm diff_revisions (in process)", min(warm), GOAL_S, warm)]
    rows += [(f"cold `gpubill {name}`", best[name], None, [r.wall for r in runs[name]]) for name in runs]
    for label, value, goal, spread in rows:
        ratio = f"{goal / value:.2f}" if goal else ""
        print(f"{label:36s} {value:8.2f} s {'<= 5 s' if goal else '':>8s} {ratio:>21s}  "
              f"{' '.join(f'{s:.2f}' for s in spread)}")
    print(f"diff / two invoice runs ({both:.2f} s): warm {min(warm) / both:.2f} x, "
          f"cold CLI {best['diff'] / both:.2f} x; load average {inv._load()}")


def profile(repo: Path, db: Path, period: str, work: Path, top: int) -> None:
    """One more warm diff under cProfile: its stages and costliest functions."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    seconds, _ = diff_in_process(repo, db, period)
    prof.disable()
    out = work / "diff.prof"
    prof.dump_stats(str(out))
    print(f"\nprofiled warm diff: {seconds:.2f} s (cProfile slows Python code down); {out}")
    stats = pstats.Stats(str(out))
    cumulative = {(path, name): ct for (path, _, name), (_, _, _, ct, _) in stats.stats.items()}
    for suffix, name, what in STAGES:
        t = [ct for (path, fn), ct in cumulative.items() if fn == name and path.endswith(suffix)]
        print(f"  {f'{sum(t):7.2f} s' if t else '  (none)':9s}  {name:22s} {what}")
    print(f"\ncostliest functions (own time), top {top}:")
    stats.sort_stats("tottime").print_stats(top)


def main() -> int:
    args = inv.bench_arguments(__doc__, "/tmp/bench_diff", 1, "warm diff", (5_000, 8))

    work, base_dir, db = inv.prepare(args)
    repo = build_git_repo(base_dir, work / f"diff-repo-{args.contracts}")
    print(f"{args.contracts:,} contracts, {inv._events(db):,} events in {db}, period {args.period}, "
          f"{os.cpu_count()} CPUs, load average {inv._load()}")
    warm = []
    for _ in range(2):
        seconds, diff = diff_in_process(repo, db, args.period)
        warm.append(seconds)
    runs = measure(repo, base_dir, db, args.period, args.repeat, work)
    failed = any(r.rc for rs in runs.values() for r in rs)
    report(warm[1:], runs, diff)
    if args.profile and not failed:
        profile(repo, db, args.period, work, args.top)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
