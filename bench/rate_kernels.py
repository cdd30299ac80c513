"""Benchmark: every goal of the rating engine, measured in one run.

    .venv/bin/python bench/rate_kernels.py [--events 10000000] [--subs 1000] [--skip-cold]

Generates a pinned data set with numpy (seed 7): GPU jobs and LLM token
events for ``--subs`` subscriptions over a 30-day month, in the store's
column format, and three plans of ten charges (GPU-hours by gpu_type --
graduated per type in the scale-up plan --, a spot filter with weekly price
windows, input/output tokens per 1M packages, graduated GPU-hours, job
count, peak GPUs, GPU-hours grouped by region and by availability class,
hybrid utilization billing); per-event rounding of the duration (1 s
increments, 60 s minimum, 7 day maximum) on every GPU-hour.

Prints one table: kernel throughput on one thread and on all, against a
bare numba loop over the same columns (the memory-speed ceiling) measured
in the same run; ``rate()`` warm end to end (with its breakdown: plan,
kernel, decode, pricing per line); the reference engine per event and the
ratio; first compile with an empty numba cache, ready time of a later
process, a cold ``rate()`` in a fresh process; and the engine's peak
allocations per event (tracemalloc; the input columns excluded).  Goals:
>= 200 M events/s/core, 10 M events / 1 000 subscriptions in <= 0.25 s warm
and <= 5 s cold, first compile <= 3 s, ready <= 0.3 s, >= 100x the
reference, <= 48 bytes/event.  Not a test: nothing here asserts time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from decimal import Decimal as D

import numpy as np

from gpubill.engine.fast.columns import InMemoryColumns
from gpubill.engine.spec.program import (
    ChargeSpec, Const, Div, Filter, Graduated, MetricSpec, Mul, Package, PerEvent, PriceWindow, Prop, Standard,
    SubscriptionSpec, Tier, Utilization,
)

T0 = 1_717_200_000_000
MONTH = 30 * 86_400_000
GPU_TYPES = ["A100-40GB", "A100-80GB", "H100-SXM", "H200", "L40S"]
REGIONS = ["eu-west", "us-east", "us-west", "ap-south"]
CLASSES = ["on_demand", "reserved", "spot"]
REASONS = ["completed", "preempted", "failed_user", "failed_infrastructure"]


def columns(n, subs, rng) -> InMemoryColumns:
    """The pinned month: ``n`` events of ``subs`` subscriptions, as the store's column format."""
    strings = [f"sub_{i}" for i in range(subs)] + ["gpu_job", "llm"] + GPU_TYPES + REGIONS + CLASSES + REASONS
    idx = {s: i for i, s in enumerate(strings)}
    ts = np.sort(rng.integers(T0, T0 + MONTH, n, dtype=np.int64))
    sub = rng.integers(0, subs, n, dtype=np.int32)
    is_gpu = rng.random(n) < 0.7
    code = np.where(is_gpu, idx["gpu_job"], idx["llm"]).astype(np.int32)

    def dim(values, p=None):
        ids = np.array([idx[v] for v in values], np.int32)
        return ids[rng.choice(len(values), n, p=p)]

    dims = {"gpu_type": dim(GPU_TYPES), "region": dim(REGIONS), "availability_class": dim(CLASSES),
            "end_reason": dim(REASONS, [0.85, 0.08, 0.05, 0.02])}
    miss = np.full(n, -128, np.int8)
    gc = rng.choice(np.array([5, 10, 20, 40, 80], np.int64), n)  # 0.5 .. 8 GPUs, exponent -1
    nums = {
        "gpu_count": (np.where(is_gpu, gc, 0), np.where(is_gpu, np.int8(-1), miss)),
        "duration_seconds": (np.where(is_gpu, rng.integers(1, 36_000_000, n), 0), np.where(is_gpu, np.int8(-3), miss)),
        "avg_utilization": (rng.integers(0, 101, n), np.full(n, -2, np.int8)),
        "input_tokens": (np.where(is_gpu, 0, rng.integers(1, 200_000, n)), np.where(is_gpu, miss, np.int8(0))),
        "output_tokens": (np.where(is_gpu, 0, rng.integers(1, 20_000, n)), np.where(is_gpu, miss, np.int8(0))),
    }
    return InMemoryColumns(ts, np.arange(n, dtype=np.int64), code, sub, strings, dims, nums)


WEEK = 7 * 86_400_000


def _spot_windows(prices):
    """Weekly spot prices over the month (the last window runs to the month's end)."""
    out = []
    for k, price in enumerate(prices):
        hi = T0 + MONTH if k == len(prices) - 1 else T0 + (k + 1) * WEEK
        out.append(PriceWindow(T0 + k * WEEK, hi, Standard(price)))
    return tuple(out)


def catalog(variant=0):
    """One of three plans (same metrics, different prices and tiers)."""
    scales = {"gpu_count": -1, "duration_seconds": -3, "avg_utilization": -2}
    hours = Div(Mul(Prop("gpu_count"), Prop("duration_seconds")), Const(3600))
    rounding = (PerEvent("duration_seconds", 1, 60, 604_800),)
    gh = MetricSpec("gpu_hours", "gpu_job", "sum", expr=hours, per_event=rounding, property_scales=scales)
    bump = D(variant) / 10
    prices = [D(p) - bump for p in ["1.89", "2.29", "3.49", "4.10", "1.10"]]
    if variant == 1:  # scale-up: graduated per GPU type
        by_type = tuple(Filter({"gpu_type": {t}}, Graduated((Tier(0, 2000, p), Tier(2001, None, p - D("0.2")))))
                        for t, p in zip(GPU_TYPES, prices))
    else:
        by_type = tuple(Filter({"gpu_type": {t}}, Standard(p)) for t, p in zip(GPU_TYPES, prices))
    spot = (Filter({"availability_class": {"spot"}}, Standard("1.5"),
                   _spot_windows(["1.40", "2.10", "1.25", "0.95", "1.40"])),)
    tin = MetricSpec("input_tokens", "llm", "sum", field="input_tokens")
    tout = MetricSpec("output_tokens", "llm", "sum", field="output_tokens")
    jobs = MetricSpec("jobs", "gpu_job", "count")
    peak = MetricSpec("peak_gpus", "gpu_job", "max", field="gpu_count", property_scales=scales)
    grad = Graduated((Tier(0, 1000, "3.00"), Tier(1001, 10000, "2.50", 100), Tier(10001, None, "2.00", 500)))
    charges = [
        ChargeSpec("gpu_hours", gh, Standard("2.00"), filters=by_type),
        ChargeSpec("gpu_hours_spot", gh, Standard("0"), filters=spot),
        ChargeSpec("tokens_in", tin, Package(D("2.00") - bump, 1_000_000, 1_000_000 * variant)),
        ChargeSpec("tokens_out", tout, Package(D("8.00") - bump, 1_000_000)),
        ChargeSpec("gpu_hours_tiered", gh, grad),
        ChargeSpec("jobs", jobs, Standard("0.01")),
        ChargeSpec("peak_gpus", peak, Standard(D(5) + variant)),
        ChargeSpec("gpu_hours_region", gh, Standard("0.10"), group_by=("region",)),
        ChargeSpec("gpu_hours_hybrid", gh, Standard("1.00"), utilization=Utilization("avg_utilization", D("0.3"))),
        ChargeSpec("gpu_hours_by_class", gh, Standard("0.05"), group_by=("availability_class",)),
    ]
    if variant == 2:  # inference: tokens first, no tiered GPU-hours
        charges = charges[2:4] + charges[:2] + charges[5:]
    return tuple(charges)


def subscriptions(n):
    plans = [catalog(v) for v in range(3)]
    return [SubscriptionSpec(f"sub_{i}", plans[(0, 0, 1, 2)[i % 4]], T0, T0 + MONTH - 1) for i in range(n)]


def _timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def _best(f, k=3):
    return min(_timed(f) for _ in range(k))


_CHILD = """
import os, sys, time
t0 = time.perf_counter()
import numpy as np
sys.path.insert(0, 'bench')
import rate_kernels as b
from gpubill.engine.fast.rate import rate
t_import = time.perf_counter() - t0
small = b.columns(1000, 10, np.random.default_rng(1))
t1 = time.perf_counter()
rate(b.subscriptions(10), small)
t_first = time.perf_counter() - t1
n = int(sys.argv[1])
if n:
    cols = b.columns(n, 1000, np.random.default_rng(7))
    subs = b.subscriptions(1000)
    t2 = time.perf_counter()
    rate(subs, cols)
    print(t_import, t_first, time.perf_counter() - t2)
else:
    print(t_import, t_first, 0.0)
"""


def _child(cache_dir, n=0):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _CHILD, str(n)], env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    imp, first, big = map(float, r.stdout.split())
    return wall, imp, first, big


def memory_ceiling(cols):
    """A bare numba loop reading every column the kernel reads: the memory-speed ceiling."""
    from numba import njit

    @njit(nogil=True, cache=True)
    def touch(sub, code, ts, d0, d1, d2, d3, m0, e0, m1, e1, m2, e2, m3, e3, m4, e4):
        t = 0
        for i in range(sub.shape[0]):
            t += sub[i] + code[i] + ts[i] + d0[i] + d1[i] + d2[i] + d3[i] + m0[i] + e0[i] + m1[i] + e1[i]
            t += m2[i] + e2[i] + m3[i] + e3[i] + m4[i] + e4[i]
        return t

    args = [cols.subscription, cols.code, cols.timestamp_ms] + [cols.dim(k) for k in
                                                                 ("gpu_type", "region", "availability_class",
                                                                  "end_reason")]
    for k in ("gpu_count", "duration_seconds", "avg_utilization", "input_tokens", "output_tokens"):
        args.extend(cols.numeric(k))
    touch(*args)
    return _best(lambda: touch(*args), 5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--subs", type=int, default=1000)
    ap.add_argument("--ref-events", type=int, default=20_000)
    ap.add_argument("--skip-cold", action="store_true")
    args = ap.parse_args()
    from gpubill.engine.fast import accumulate
    from gpubill.engine.fast import tables
    from gpubill.engine.fast import main_pass
    from gpubill.engine.fast import rate as ratemod
    from gpubill.engine.reference.engine import rate_reference

    n = args.events
    rng = np.random.default_rng(7)
    cols = columns(n, args.subs, rng)
    subs = subscriptions(args.subs)
    rate = ratemod.rate
    rate(subs, columns(1000, args.subs, np.random.default_rng(1)))  # load the cached kernels
    nthreads = accumulate.threads()
    ceiling = memory_ceiling(cols)
    p = tables.build(subs, cols)
    main_pass.run_pass(p, cols)
    t_pass = _best(lambda: main_pass.run_pass(p, cols))
    os.environ["GPUBILL_THREADS"] = "1"
    t_pass1 = _best(lambda: main_pass.run_pass(p, cols), 2)
    del os.environ["GPUBILL_THREADS"]
    t_rate = _best(lambda: rate(subs, cols))
    # breakdown of one warm run
    t0 = time.perf_counter()
    p = tables.build(subs, cols)
    t1 = time.perf_counter()
    base, accs = main_pass.run_pass(p, cols)
    t2 = time.perf_counter()
    d = ratemod.decode(p, accs)
    ign = ratemod._ignored(p, accs)
    side = ratemod._side(p, base, accs, d)
    t3 = time.perf_counter()
    res = ratemod._assemble(p, base, d, ign, side)
    t4 = time.perf_counter()
    nlines = len(res.lines)
    tracemalloc.start()
    rate(subs, cols)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # reference engine on the first events of 100 subscriptions (same catalog)
    keep = set(f"sub_{i}" for i in range(100))
    evs = [e for e in cols.to_events(range(min(args.ref_events * 10, n))) if e["external_subscription_id"] in keep]
    evs = evs[: args.ref_events]
    ref_t = _timed(lambda: rate_reference(subs[:100], evs))
    ref_eps = len(evs) / ref_t
    cold = None
    if not args.skip_cold:
        with tempfile.TemporaryDirectory() as cache:
            compile_run = _child(cache)  # empty cache: compiles
            cached_run = _child(cache)  # warm cache: loads
            big = _child(cache, n)  # warm cache, fresh process: first rate() of n events
        cold = (compile_run, cached_run, big)
    eps1 = n / t_pass1
    rows = [
        ("kernel pass, 1 thread", f"{eps1 / 1e6:.1f} M ev/s", ">= 200 M ev/s/core", eps1 / 200e6),
        (f"kernel pass, {nthreads} threads", f"{n / t_pass / 1e6:.1f} M ev/s ({n / t_pass / nthreads / 1e6:.1f}/core)",
         "", None),
        ("memory ceiling (bare loop, 1 thread)", f"{n / ceiling / 1e6:.0f} M ev/s", "kernel / ceiling",
         (n / t_pass1) / (n / ceiling)),
        (f"rate() warm, {n:,} events", f"{t_rate:.3f} s", "<= 0.25 s", 0.25 / t_rate),
        ("reference engine", f"{ref_eps:,.0f} ev/s", "", None),
        ("rate() warm / reference (per event)", f"{n / t_rate / ref_eps:,.0f} x", ">= 100 x", n / t_rate / ref_eps / 100),
        ("engine allocations (tracemalloc peak)", f"{peak / n:.1f} B/event", "<= 48 B/event", 48 / max(peak / n, 1e-9)),
    ]
    if cold:
        (cw, ci, cf, _), (ww, wi, wf, _), (bw, bi, bf, bb) = cold
        rows += [
            ("first compile (empty numba cache)", f"{cf:.2f} s (+{ci:.2f} s imports)", "<= 3 s", 3 / cf),
            ("later process: cached kernels ready", f"{wf:.2f} s (+{wi:.2f} s imports)", "<= 0.3 s", 0.3 / wf),
            (f"rate() cold (fresh process), {n:,} events", f"{bb:.2f} s", "<= 5 s", 5 / bb),
        ]
    print(f"events: {n:,}  subscriptions: {args.subs:,}  plans: 3  charges per plan: 10/10/10  "
          f"lines: {nlines:,}  threads: {nthreads}")
    print(f"programs: {len(p.programs)}  instances: {len(p.instances)}  dense slots: {p.n_dense:,}  "
          f"end reasons: {p.R}")
    print(f"warm breakdown: plan {t1 - t0:.3f} s, kernel {t2 - t1:.3f} s, decode+sequences {t3 - t2:.3f} s, "
          f"pricing {t4 - t3:.3f} s ({(t4 - t3) / max(nlines, 1) * 1e6:.1f} us/line)")
    print(f"{'measure':42s} {'value':34s} {'goal':20s} goal ratio (>=1 met)")
    for name, val, goal, ratio in rows:
        print(f"{name:42s} {val:34s} {goal:20s} {'' if ratio is None else f'{ratio:.2f}'}")


if __name__ == "__main__":
    main()
