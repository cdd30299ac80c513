"""Job cost estimates: `gpubill estimate` in process, cold and warm, against a full invoice of the same customer.

    .venv/bin/python bench/estimate.py                          # 10 M events, 1 000 contracts
    .venv/bin/python bench/estimate.py --quick                  # a smoke run: 20 000 events, 24 contracts
    .venv/bin/python bench/estimate.py --db /tmp/b/bench.db     # reuse a store (bench/invoice.py's fits)

The goal (issue 10, item 7): <= 10 ms per estimate in process, warm (the
catalog checked and compiled, the customer's period so far already rated).

The repository and the store are bench/invoice.py's (``build_repo``,
``make_store``: copies of the example contracts, a month of demo events, made
once).  In one process, for ``--customers`` contracts whose plan bills GPU
jobs (spread over the example contracts), it measures:

1. loading and checking the catalog (``Estimator``), once;
2. cold: each contract's first estimate (its baseline: the earlier periods'
   ledger, the period's events read from the store, its invoices);
3. warm: ``--estimates`` more estimates spread over those contracts, each a
   different job size (the baseline is reused; the store is asked whether
   the subscription has newer events each time);
4. ``invoice_period`` for each of those contracts (``--customer`` given: what
   ``gpubill invoice --customer C`` runs), the same store in the same run.

It prints ms per estimate (p50, p99, max) and the ratios warm / invoice and
cold / invoice.  A benchmark, not a test: nothing is asserted; the exit
status is 1 when an estimate fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gpubill.service.estimate import Estimator, Job  # noqa: E402
from gpubill.service.events import Store  # noqa: E402
from gpubill.service.invoicing import invoice_period  # noqa: E402
from gpubill.service.rating import ServiceError  # noqa: E402
from invoice import prepare  # noqa: E402  bench/: one repository and store generator

GOAL_MS = 10.0
GPU = "H100-SXM"


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def line(label: str, xs: list[float]) -> str:
    return (f"{label:34s} p50 {percentile(xs, 0.5):9.2f} ms   p99 {percentile(xs, 0.99):9.2f} ms   "
            f"max {max(xs):9.2f} ms   (n={len(xs)})")


def job(i: int, hours: int) -> Job:
    """The i-th job: 1 to 64 GPUs, 1 to ``hours`` hours."""
    return Job(GPU, Decimal(1 + (i * 7) % 64), Decimal(1 + (i * 5) % hours))


def customers(est: Estimator, at_ms: int, wanted: int, hours: int) -> list[str]:
    """Contracts that can price a GPU job at ``at_ms``, taken in turn from each example contract's copies."""
    by_template: dict = {}
    for name in sorted(est.catalog.contracts):
        try:
            est.check(name, job(0, hours), at_ms)
        except ServiceError:
            continue
        by_template.setdefault(name.rsplit("_", 1)[0], []).append(name)
    turns = [names[k] for k in range(max(map(len, by_template.values()), default=0))
             for names in by_template.values() if k < len(names)]
    return turns[:wanted]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--contracts", type=int, default=1000)
    ap.add_argument("--period", default="2026-10")
    ap.add_argument("--at", default="2026-10-20T12:00:00Z", help="when the estimated jobs start (in --period)")
    ap.add_argument("--hours", type=int, default=24, help="the longest job (hours; each ends in the period)")
    ap.add_argument("--customers", type=int, default=8, help="contracts estimated (and invoiced)")
    ap.add_argument("--estimates", type=int, default=400, help="warm estimates, spread over the contracts")
    ap.add_argument("--dir", default="/tmp/bench_inv", help="the repository and the store")
    ap.add_argument("--db", default=None, help="an existing store (default: DIR/bench-CONTRACTSxEVENTS.db, made once)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 20 000 events, 24 contracts, 40 estimates")
    args = ap.parse_args()
    if args.quick:
        args.events, args.contracts, args.estimates, args.customers = 20_000, 24, 40, 4

    from gpubill.service.events import parse_timestamp

    at_ms, problem = parse_timestamp(args.at, 0)
    if problem:
        ap.error(f"--at: {problem.message}")
    _, repo, db = prepare(args)
    store = Store(str(db), readonly=True)
    print(f"{args.contracts:,} contracts, store {db}, jobs of {GPU} at {args.at}, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")

    t = time.perf_counter()
    est = Estimator(store, [str(repo)])
    load_ms = (time.perf_counter() - t) * 1000
    names = customers(est, at_ms, args.customers, args.hours)
    print(f"catalog loaded and checked in {load_ms:,.0f} ms; contracts: {', '.join(names)}")

    cold, warm, invoice = [], [], []
    try:
        for name in names:
            t = time.perf_counter()
            e = est.estimate(name, job(0, args.hours), at_ms)
            cold.append((time.perf_counter() - t) * 1000)
            print(f"  {name}: {e.job.label()} -> {e.delta.total} {e.currency} "
                  f"({len(e.changes)} lines change, {len(e.before)} invoice(s) in the period)")
        for i in range(args.estimates):
            t = time.perf_counter()
            est.estimate(names[i % len(names)], job(i + 1, args.hours), at_ms)
            warm.append((time.perf_counter() - t) * 1000)
        by_contract = {n: [w for i, w in enumerate(warm) if names[i % len(names)] == n] for n in names}
    except ServiceError as err:
        print(f"estimate failed: {err}")
        return 1
    for name in names:
        t = time.perf_counter()
        invoice_period(store, [str(repo)], args.period, name)
        invoice.append((time.perf_counter() - t) * 1000)
    store.close()

    print(line("cold estimate (first per contract)", cold))
    print(line("warm estimate", warm))
    for name, ws in by_contract.items():
        print(line(f"  {name}", ws))
    print(line("invoice_period, same contract", invoice))
    p50 = percentile(warm, 0.5)
    print(f"warm p50 / invoice p50: {p50 / percentile(invoice, 0.5):.4f} x "
          f"({percentile(invoice, 0.5) / p50:,.0f} estimates per invoice); "
          f"cold p50 / invoice p50: {percentile(cold, 0.5) / percentile(invoice, 0.5):.2f} x; "
          f"goal: warm <= {GOAL_MS:g} ms ({'met' if percentile(warm, 0.99) <= GOAL_MS else 'p99 not met'}"
          f"{'' if p50 <= GOAL_MS else ', p50 not met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
