"""End-to-end invoicing benchmark: `gpubill invoice` against `gpubill rate`, same store, same run.

    .venv/bin/python bench/invoice.py                      # 10 M events, 1 000 contracts
    .venv/bin/python bench/invoice.py --quick              # a smoke run: 20 000 events, 24 contracts
    .venv/bin/python bench/invoice.py --db /tmp/b/bench.db # reuse a store (bench/rate.py's fits)
    .venv/bin/python bench/invoice.py --profile            # + where `invoice` spends its time

The goal (issue 9): invoices for 1 000 contracts over 10 M events of the
examples catalog in <= 5 s cold end to end and <= 1 GiB peak resident memory.

The billing repository (``--dir``, default /tmp/bench_inv) holds the examples'
entities, metrics and plans, and ``--contracts`` contract files, each a copy
of one of the example contracts (cycling over them in catalog order) with
its own contract name, customer and subscription id and every term kept:
commitments, reservations, credits, discounts, progressive billing,
policies, starts and ends.  Contract i bills subscription ``sub_{i:05d}`` on
the plan bench/rate.py gives it, so a store made by bench/rate.py (the demo
generator, pinned seeds, one month of events) is the same data; without
``--db`` the bench makes that store itself in ``--dir`` once (about 20 min
for 10 M events on 2 cores) and reuses it afterwards.

Measured, each as a new process with the numba kernels already compiled
and cached (a user's second run; one untimed run of each warms the caches):

1. ``gpubill rate --format json``: the baseline;
2. ``gpubill invoice --format json`` over the same store and period;

best of ``--repeat`` runs, interleaved: wall time (the best run) and peak
resident memory of the child (``os.wait4``; the largest of the runs), with the spread of the runs (other processes' load
shows there), and the ratio invoice / rate.  ``--profile`` then runs
``invoice`` once more under cProfile in a fresh process and prints the
cumulative time of its stages and the functions that cost most.

It is a benchmark, not a test: nothing is asserted; the exit status is 1
when a run fails.  tests/test_bench_invoice.py runs ``--quick``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from gpubill.dsl.check import check_paths  # noqa: E402
from gpubill.service import demo_data  # noqa: E402
from gpubill.service.rating import billed_subscriptions, load_catalog  # noqa: E402
from gpubill.store import Store  # noqa: E402

GOAL_S = 5.0
GOAL_RSS = 2**30
CHUNK = 500_000  # events generated and ingested at a time

# What `--profile` reports: the stages of invoice_period and of the report, as (file, function).
STAGES = (
    ("service/rating.py", "load_catalog", "check + resolve the .bill files"),
    ("service/rating.py", "billed_subscriptions", "the period's subscriptions, compiled"),
    ("service/invoicing.py", "closing_periods", "the billing periods that close in the month"),
    ("service/invoicing.py", "history", "earlier periods of contracts whose terms carry"),
    ("service/invoicing.py", "rate_rounds", "rating every period, one round per period back"),
    ("service/invoicing.py", "rate_checks", "rating the daily progressive checks"),
    ("store/store.py", "read_columns", "  of which store reads (SQLite -> columns)"),
    ("engine/fast/rate.py", "rate", "  of which fast engine (lazy property loads included)"),
    ("service/invoicing.py", "invoice_chain", "invoicing every chain (contracts layer)"),
    ("service/invoice_report.py", "report_json", "the JSON document"),
)

_PROFILED = """
import cProfile, pstats, sys
import orjson
from gpubill.service.invoice_report import report_json
from gpubill.service.invoicing import invoice_period
from gpubill.store import Store
db, repo, period, out = sys.argv[1:5]
prof = cProfile.Profile()
prof.enable()
store = Store(db, readonly=True)
report = invoice_period(store, [repo], period)
doc = orjson.dumps(report_json(report), option=orjson.OPT_INDENT_2)
prof.disable()
prof.dump_stats(out)
"""


def templates(examples: Path) -> list[tuple[str, str]]:
    """(plan, source text) of each example contract that bills a subscription, in catalog order."""
    catalog, _, _ = check_paths([str(examples)])
    texts = {}
    for f in sorted((examples / "contracts").glob("*.bill")):
        for block in re.split(r"\n(?=contract )", f.read_text()):
            m = re.search(r"^contract (\w+) \{", block, re.M)
            if m:
                texts[m.group(1)] = block[m.start():]
    return [(c.plan.name.name, texts[name]) for name, c in catalog.contracts.items() if c.subscription is not None]


def contract_copy(text: str, i: int) -> str:
    """The example contract as contract i: its own name, customer and subscription; every term kept."""
    text = re.sub(r"^contract (\w+) \{", rf"contract \1_{i:05d} {{", text, count=1, flags=re.M)
    text = re.sub(r'^(\s*customer )"[^"]*"', rf'\1"cust_{i:05d}"', text, count=1, flags=re.M)
    return re.sub(r'^(\s*subscription )"[^"]*"', rf'\1"sub_{i:05d}"', text, count=1, flags=re.M)


def build_repo(dst: Path, n_contracts: int) -> None:
    """Entities, metrics and plans from examples/, and one .bill file per contract."""
    if dst.exists():
        shutil.rmtree(dst)
    for part in ("entities", "metrics", "plans"):
        shutil.copytree(ROOT / "examples" / part, dst / part)
    tpl = templates(ROOT / "examples")
    (dst / "contracts").mkdir()
    for i in range(n_contracts):
        (dst / "contracts" / f"c{i:05d}.bill").write_text(contract_copy(tpl[i % len(tpl)][1], i))


def prepare(args) -> tuple[Path, Path, Path]:
    """The work folder, the repository of ``args.contracts`` contracts and the store of ``args.events``
    events of ``args.period`` (made once, reused by later runs, or ``args.db``)."""
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    repo = work / f"repo-{args.contracts}"
    build_repo(repo, args.contracts)
    db = Path(args.db) if args.db else work / f"bench-{args.contracts}x{args.events}.db"
    if not db.exists():
        make_store(db, repo, args.period, args.events)
    return work, repo, db


def make_store(db: Path, repo: Path, period: str, events: int) -> None:
    """A month of demo events for the repository's subscriptions, made once (bench/rate.py uses it too)."""
    catalog, _ = load_catalog([str(repo)])
    billed = billed_subscriptions(catalog, period)
    plans = {b.contract.name.name: b.plan for b in billed}
    lo = min(b.period.from_ms for b in billed)
    hi = max(b.period.to_ms for b in billed)
    tmp = db.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    store = Store(str(tmp))
    t = time.perf_counter()
    done = 0
    while done < events:
        n = min(CHUNK, events - done)
        data = demo_data.generate(catalog, [b.contract for b in billed], plans, lo, hi, n, seed=done + 1)
        for e in data.main:  # unique transaction ids across chunks
            e["transaction_id"] = f"{done}-{e['transaction_id']}"
        store.ingest(data.main, source="bench")
        done += n
    store.close()
    tmp.rename(db)
    print(f"generated + ingested {events:,} events in {time.perf_counter() - t:.1f} s")


class Run:
    """One CLI run as a new process: wall seconds, peak resident bytes, exit code, stdout size."""

    def __init__(self, argv: list[str], env: dict, out: Path):
        with open(out, "wb") as fo, open(out.with_suffix(".err"), "wb") as fe:
            t = time.perf_counter()
            p = subprocess.Popen(argv, env=env, stdout=fo, stderr=fe)
            _, status, usage = os.wait4(p.pid, 0)
            self.wall = time.perf_counter() - t
        p.returncode = self.rc = os.waitstatus_to_exitcode(status)
        self.rss = usage.ru_maxrss * 1024  # Linux: KiB
        self.bytes = out.stat().st_size
        self.error = out.with_suffix(".err").read_text().strip().splitlines()[-1:] if self.rc else []


def cli(command: str, repo: Path, period: str) -> list[str]:
    return [sys.executable, "-m", "gpubill", command, "--contracts", str(repo), "--period", period, "--format", "json"]


def measure(repo: Path, db: Path, period: str, repeat: int, work: Path) -> dict[str, list[Run]]:
    """Each command once untimed (caches), then ``repeat`` interleaved timed runs of each."""
    env = {**os.environ, "GPUBILL_STORE": str(db)}
    runs: dict[str, list[Run]] = {"rate": [], "invoice": []}
    for k in range(repeat + 1):
        for command in runs:
            r = Run(cli(command, repo, period), env, work / f"{command}.json")
            if r.rc:
                print(f"`gpubill {command}` failed (exit {r.rc}): {' '.join(r.error)}")
            if k:
                runs[command].append(r)
    return runs


def _best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.wall)


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def report(runs: dict[str, list[Run]]) -> None:
    rate, inv = _best(runs["rate"]), _best(runs["invoice"])
    rss_rate, rss_inv = max(r.rss for r in runs["rate"]), max(r.rss for r in runs["invoice"])
    print(f"{'measure':34s} {'value':>12s} {'goal':>10s} {'goal ratio (>=1 met)':>21s}  runs (s)")
    for command, label, best, goal in (("rate", "cold `gpubill rate` (baseline)", rate, None),
                                       ("invoice", "cold `gpubill invoice`", inv, GOAL_S)):
        spread = " ".join(f"{r.wall:.2f}" for r in runs[command])
        ratio = f"{goal / best.wall:.2f}" if goal else ""
        print(f"{label:34s} {best.wall:10.2f} s {'<= 5 s' if goal else '':>10s} {ratio:>21s}  {spread}")
    print(f"{'peak resident, `gpubill rate`':34s} {_mib(rss_rate):>12s}")
    print(f"{'peak resident, `gpubill invoice`':34s} {_mib(rss_inv):>12s} {'<= 1 GiB':>10s} "
          f"{GOAL_RSS / rss_inv:21.2f}")
    print(f"invoice / rate: time {inv.wall / rate.wall:.2f} x, peak memory {rss_inv / rss_rate:.2f} x; "
          f"JSON {rate.bytes / 1e6:.1f} MB (rate), {inv.bytes / 1e6:.1f} MB (invoice)")
    noise = max(max(r.wall for r in rs) / min(r.wall for r in rs) for rs in runs.values())
    print(f"noise: slowest / fastest run of a command {noise:.2f} x; load average {_load()}")


def profile(repo: Path, db: Path, period: str, work: Path, top: int) -> None:
    """`invoice` once more under cProfile, in a fresh process: its stages and costliest functions."""
    import pstats

    out = work / "invoice.prof"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", _PROFILED, str(db), str(repo), period, str(out)], check=True)
    print(f"\nprofiled `invoice` run: {time.perf_counter() - t:.2f} s (cProfile slows Python code down); {out}")
    stats = pstats.Stats(str(out))
    cumulative = {(path, name): ct for (path, _, name), (_, _, _, ct, _) in stats.stats.items()}
    for suffix, name, what in STAGES:
        t = [ct for (path, fn), ct in cumulative.items() if fn == name and path.endswith(suffix)]
        print(f"  {f'{sum(t):7.2f} s' if t else '  (none)':9s}  {name:22s} {what}")
    print(f"\ncostliest functions (own time), top {top}:")
    stats.sort_stats("tottime").print_stats(top)


def documents(work: Path) -> str:
    """What the last runs produced: rated subscriptions, invoices and their fee lines."""
    rated = orjson.loads((work / "rate.json").read_bytes())
    invoiced = orjson.loads((work / "invoice.json").read_bytes())
    fees = sum(len(i["fees"]) for i in invoiced["invoices"])
    return (f"rate: {len(rated['subscriptions']):,} subscriptions rated; invoice: "
            f"{len(invoiced['invoices']):,} invoices (the billing periods that close in the month), "
            f"{fees:,} fee lines, {len(invoiced['unrated'])} not invoiced")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _events(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT coalesce(sum(n), 0) FROM column_blocks").fetchone()[0]
    finally:
        con.close()


def bench_arguments(doc: str, where: str, repeat: int, profiled: str, quick: tuple[int, int]) -> argparse.Namespace:
    """The arguments of a bench over this module's store (bench/diff.py's too): ``quick`` is the smoke
    run's (events, contracts), timed once."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--contracts", type=int, default=1000)
    ap.add_argument("--period", default="2026-10")
    ap.add_argument("--repeat", type=int, default=repeat, help="timed runs of each command (best of)")
    ap.add_argument("--dir", default=where, help="the repositories, the store and the outputs")
    ap.add_argument("--db", default=None, help="an existing store to read (default: DIR/bench-CONTRACTSxEVENTS.db, made once)")
    ap.add_argument("--quick", action="store_true", help=f"a smoke run: {quick[0]:,} events, {quick[1]} contracts, 1 run")
    ap.add_argument("--profile", action="store_true", help=f"also profile one {profiled}")
    ap.add_argument("--top", type=int, default=25, help="functions listed by --profile")
    args = ap.parse_args()
    if args.quick:
        args.events, args.contracts, args.repeat = *quick, 1
    return args


def main() -> int:
    args = bench_arguments(__doc__, "/tmp/bench_inv", 3, "`invoice` run", (20_000, 24))

    work, repo, db = prepare(args)
    print(f"{args.contracts:,} contracts, {_events(db):,} events in {db}, period {args.period}, "
          f"{os.cpu_count()} CPUs, load average {_load()}")
    runs = measure(repo, db, args.period, args.repeat, work)
    failed = any(r.rc for rs in runs.values() for r in rs)
    if not failed:
        print(documents(work))
    report(runs)
    if args.profile and not failed:
        profile(repo, db, args.period, work, args.top)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
