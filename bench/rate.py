"""End-to-end rating benchmark on the examples catalog, from the SQLite file.

    .venv/bin/python bench/rate.py                    # 10 M events, 1 000 subscriptions
    .venv/bin/python bench/rate.py --events 1000000   # a quicker run

Builds a billing repository of 1 000 contracts on the example plans
(examples/plans, metrics, entities), generates a month of events for them
with the demo generator (pinned seed), ingests them into a fresh store, and
measures in one run:

1. cold: `gpubill rate --format json` as a new process (SQLite read, compile
   cache warm, kernels loaded from numba's disk cache);
2. warm: the same rating again in a process that already holds the columns;
3. the kernel pass alone (events/s per core);
4. the reference engine on a sample, scaled per event (the ratio);
5. the same per-event rounding + GROUP BY of the main GPU-hours charge as SQL
   over the store in SQLite (the baseline the issue names);
6. peak memory of the `gpubill rate` process (resident bytes per event).

It prints each figure with its ratio to the baselines of the same run. It is
a benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpubill.dsl.check import check_paths  # noqa: E402
from gpubill.service.rating import billed_subscriptions, load_catalog, read_window  # noqa: E402
from gpubill.store import Store, payloads  # noqa: E402
from invoice import make_store  # noqa: E402  bench/: one store generator for the rating benches


def build_repo(dst: Path, n_subs: int) -> None:
    """Entities, metrics and plans from examples/, and n_subs contracts cycling over the example contracts."""
    for part in ("entities", "metrics", "plans"):
        shutil.copytree(ROOT / "examples" / part, dst / part)
    catalog, _, _ = check_paths([str(ROOT / "examples")])
    templates = [c for c in catalog.contracts.values() if c.subscription is not None]
    out = []
    for i in range(n_subs):
        c = templates[i % len(templates)]
        plan = c.plan.name.name + (f" version {c.plan.version}" if c.plan.version else "")
        out.append(
            f'contract bench_{i:05d} {{\n  customer "cust_{i:05d}"\n  subscription "sub_{i:05d}"\n'
            f"  entity {c.entity.name}\n  plan {plan}\n  starts 2026-01-01\n}}\n"
        )
    (dst / "contracts").mkdir()
    (dst / "contracts" / "bench.bill").write_text("\n".join(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--subscriptions", type=int, default=1000)
    ap.add_argument("--period", default="2026-10")
    ap.add_argument("--reference-sample", type=int, default=20_000)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()

    work = Path(args.dir or tempfile.mkdtemp(prefix="gpubill-rate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    repo = work / "repo"
    if repo.exists():
        shutil.rmtree(repo)
    build_repo(repo, args.subscriptions)
    catalog, _ = load_catalog([str(repo)])
    billed = billed_subscriptions(catalog, args.period)
    print(f"{len(billed)} subscriptions, {args.events:,} events, period {args.period}, {os.cpu_count()} CPUs, dir {work}")

    db = work / "bench.db"
    if not db.exists():
        make_store(db, repo, args.period, args.events)

    from gpubill.engine.fast.rate import rate
    from gpubill.engine.reference.engine import rate_reference

    # 1. cold: a new process, from the SQLite file
    env = {**os.environ, "GPUBILL_STORE": str(db)}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "gpubill", "rate", "--contracts", str(repo), "--period", args.period,
                        "--format", "json"], env=env, capture_output=True, text=True)
    cold = time.perf_counter() - t
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # the `gpubill rate` process
    if r.returncode != 0:
        print("cold run failed:", r.stderr.strip().splitlines()[-1:])
    bare = _bare_python()

    # 2. warm: columns in memory, compile + kernels + pricing
    store = Store(str(db), readonly=True)
    window = read_window(billed)
    t = time.perf_counter()
    cols = store.read_columns(**window)
    t_read = time.perf_counter() - t
    n = int(cols.n)
    rate([b.spec for b in billed], cols)  # loads kernels
    times = []
    for _ in range(3):
        t = time.perf_counter()
        billed2 = billed_subscriptions(catalog, args.period)
        result = rate([b.spec for b in billed2], cols)
        times.append(time.perf_counter() - t)
    warm = min(times)

    # 3. reference engine on a sample
    sample_subs = [b.spec for b in billed[: max(1, len(billed) * args.reference_sample // max(n, 1))]]
    ids = [s.external_id for s in sample_subs]
    events = store.events_as_dicts(codes=window["codes"], subscriptions=ids,
                                   time_from_ms=window["time_from_ms"], time_to_ms=window["time_to_ms"])
    t = time.perf_counter()
    rate_reference(sample_subs, events)
    ref_per_event = (time.perf_counter() - t) / max(1, len(events))
    store.close()

    # 5. SQL baseline: per-event rounding (1 s, minimum 60 s) + GROUP BY subscription, gpu_type, over
    # the events as a SQL-first system keeps them (one row each; copied before the clock starts)
    con = sqlite3.connect(str(_sql_table(db)))
    t = time.perf_counter()
    con.execute(
        """SELECT external_subscription_id, raw ->> '$.properties.gpu_type',
                  sum(CAST(raw ->> '$.properties.gpu_count' AS REAL)
                      * max(60, ceil(CAST(raw ->> '$.properties.duration_seconds' AS REAL))) / 3600.0)
           FROM events WHERE code = 'gpu_job' AND timestamp_ms BETWEEN ? AND ?
           GROUP BY 1, 2""",
        (min(b.period.from_ms for b in billed), max(b.period.to_ms for b in billed)),
    ).fetchall()
    sql = time.perf_counter() - t
    con.close()

    print(f"events in period: {n:,}; lines: {len(result.lines):,}; in-advance fees: {len(result.in_advance):,}")
    print(f"read columns from SQLite      {t_read:8.3f} s   {n / max(t_read, 1e-9) / 1e6:8.1f} M events/s")
    print(f"cold `gpubill rate` process   {cold:8.3f} s   (bare python start {bare:.3f} s)   goal <= 5 s")
    print(f"warm rate (columns in memory) {warm:8.3f} s   {n / warm / 1e6:8.1f} M events/s   goal <= 0.25 s for 10 M")
    print(f"reference engine              {ref_per_event * n:8.1f} s (scaled from {len(events):,} events)   "
          f"fast/reference = {ref_per_event * n / warm:,.0f} x   goal >= 100 x")
    print(f"SQL in SQLite (one charge)    {sql:8.3f} s   fast/SQL = {sql / warm:,.1f} x")
    print(f"peak resident, `gpubill rate` {child_rss / 2**20:8.0f} MiB   {child_rss / max(n, 1):6.0f} bytes/event "
          f"(whole process: interpreter, numba, catalog, columns, JSON output)")


def _sql_table(db: Path) -> Path:
    """A side SQLite file with the store's events as one row each (raw JSON, generated columns)."""
    out = db.with_name("sql-baseline.db")
    out.unlink(missing_ok=True)
    con = sqlite3.connect(str(out))
    con.execute("CREATE TABLE events (timestamp_ms INTEGER NOT NULL, raw TEXT NOT NULL,"
                " external_subscription_id TEXT GENERATED ALWAYS AS (raw ->> '$.external_subscription_id') VIRTUAL,"
                " code TEXT GENERATED ALWAYS AS (raw ->> '$.code') VIRTUAL)")
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    for ts, *packed in src.execute("SELECT ts, raw, raw_end, frame_end FROM column_blocks ORDER BY id"):
        con.executemany("INSERT INTO events VALUES (?, ?)",
                        zip(np.frombuffer(ts, np.int64).tolist(), (r.decode() for r in payloads.unpack(*packed))))
    con.commit()
    con.close()
    src.close()
    return out


def _bare_python() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"])
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
