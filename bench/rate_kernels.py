"""Benchmark: the rating kernels on synthetic store-format columns.

    .venv/bin/python bench/rate_kernels.py [--events 10000000] [--subs 1000]

Generates a pinned data set with numpy (seed 7): GPU jobs and LLM token
events for ``--subs`` subscriptions over a 30-day month, in the store's
column format, and a catalog of ten charges (GPU-hours by gpu_type, a spot
line with hourly price windows, tokens in/out per 1M packages, graduated
GPU-hours, job count, peak GPUs, GPU-hours by region (grouped), hybrid
utilization billing, preemption-aware hours).  Prints events/s of the kernel
(numba runs on one core), the whole warm ``rate()`` call, the reference
engine on a subset and the ratio, compile time cold vs cached, and peak
bytes per event allocated by the engine.  Goals: >= 200 M events/s/core,
10 M events / 1 000 subscriptions in <= 0.25 s warm, >= 100x the
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

from gpubill.engine.program import (
    ChargeSpec, Const, Div, Filter, Graduated, MetricSpec, Mul, Package, PerEvent, PriceWindow, Prop, Standard,
    SubscriptionSpec, Tier, Utilization,
)

T0 = 1_717_200_000_000
MONTH = 30 * 86_400_000
GPU_TYPES = ["A100-40GB", "A100-80GB", "H100-SXM", "H200", "L40S"]
REGIONS = ["eu-west", "us-east", "us-west", "ap-south"]
CLASSES = ["on_demand", "reserved", "spot"]
REASONS = ["completed", "preempted", "failed_user", "failed_infrastructure"]


class Columns:
    """Store-format columns (the engine duck-types this shape)."""

    def __init__(self, n, subs, rng):
        self.strings = [f"sub_{i}" for i in range(subs)] + ["gpu_job", "llm"] + GPU_TYPES + REGIONS + CLASSES + REASONS
        idx = {s: i for i, s in enumerate(self.strings)}
        self._idx = idx
        self.n = n
        self.rowid = np.arange(n, dtype=np.int64)
        self.timestamp_ms = np.sort(rng.integers(T0, T0 + MONTH, n, dtype=np.int64))
        self.subscription = rng.integers(0, subs, n, dtype=np.int32)
        is_gpu = rng.random(n) < 0.7
        self.code = np.where(is_gpu, idx["gpu_job"], idx["llm"]).astype(np.int32)

        def dim(values, p=None):
            ids = np.array([idx[v] for v in values], np.int32)
            return ids[rng.choice(len(values), n, p=p)]

        self._dims = {
            "gpu_type": dim(GPU_TYPES), "region": dim(REGIONS), "availability_class": dim(CLASSES),
            "end_reason": dim(REASONS, [0.85, 0.08, 0.05, 0.02]),
        }
        miss = np.full(n, -128, np.int8)
        gc = rng.choice(np.array([5, 10, 20, 40, 80], np.int64), n)  # 0.5 .. 8 GPUs, exponent -1
        self._num = {
            "gpu_count": (np.where(is_gpu, gc, 0), np.where(is_gpu, np.int8(-1), miss)),
            "duration_seconds": (np.where(is_gpu, rng.integers(1, 36_000_000, n), 0), np.where(is_gpu, np.int8(-3), miss)),
            "avg_utilization": (rng.integers(0, 101, n), np.full(n, -2, np.int8)),
            "input_tokens": (np.where(is_gpu, 0, rng.integers(1, 200_000, n)), np.where(is_gpu, miss, np.int8(0))),
            "output_tokens": (np.where(is_gpu, 0, rng.integers(1, 20_000, n)), np.where(is_gpu, miss, np.int8(0))),
        }
        self.precise_total_amount_cents = (np.zeros(n, np.int64), miss)

    def lookup(self, s):
        return self._idx.get(s, -1)

    def numeric(self, name):
        return self._num[name]

    def dim(self, name):
        return self._dims.get(name, np.full(self.n, -1, np.int32))

    def to_events(self, rows):
        out = []
        for i in rows:
            props = {}
            for k, (m, e) in self._num.items():
                if e[i] != -128:
                    props[k] = str(D(int(m[i])).scaleb(int(e[i])))
            for k, a in self._dims.items():
                props[k] = self.strings[a[i]]
            out.append(dict(transaction_id=str(i), external_subscription_id=self.strings[self.subscription[i]],
                            code=self.strings[self.code[i]], timestamp_ms=int(self.timestamp_ms[i]),
                            properties=props, rowid=int(i)))
        return out


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


def compile_times():
    code = ("import time,numpy as np;t=time.time();"
            "import sys;sys.path.insert(0,'bench');import rate_kernels as b;from gpubill.engine.rate import rate;"
            "c=b.Columns(1000,3,np.random.default_rng(1));rate(b.subscriptions(3),c);print(time.time()-t)")
    out = {}
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        for label in ("cold", "cached"):
            r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            out[label] = float(r.stdout.strip().splitlines()[-1])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--subs", type=int, default=1000)
    ap.add_argument("--ref-events", type=int, default=20_000)
    args = ap.parse_args()
    from gpubill.engine import plan as planmod
    from gpubill.engine.rate import rate, run_pass
    from gpubill.engine.reference import rate_reference

    rng = np.random.default_rng(7)
    cols = Columns(args.events, args.subs, rng)
    subs = subscriptions(args.subs)
    rate(subs, Columns(1000, args.subs, np.random.default_rng(1)))  # warm: load the cached kernels
    p = planmod.build(subs, cols)
    run_pass(p, cols)
    best = min(_timed(lambda: run_pass(p, cols)) for _ in range(3))
    whole = min(_timed(lambda: rate(subs, cols)) for _ in range(2))
    tracemalloc.start()
    rate(subs, cols)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n_ref = min(args.ref_events, args.events)
    evs = cols.to_events(range(n_ref))
    ref_t = _timed(lambda: rate_reference(subs[:50], [e for e in evs if int(e["external_subscription_id"][4:]) < 50]))
    ref_n = sum(1 for e in evs if int(e["external_subscription_id"][4:]) < 50)
    ct = compile_times()
    kps = args.events / best
    print(f"events: {args.events:,}  subscriptions: {args.subs:,}  charges per subscription: {len(subs[0].charges)}")
    print(f"kernel pass:          {best:.3f} s  = {kps / 1e6:.1f} M events/s (one core)")
    print(f"rate() warm, total:   {whole:.3f} s  (plan + kernel + decode + Decimal pricing of "
          f"{args.subs * 40:,}+ lines)")
    ref_rate = ref_n / ref_t
    print(f"reference engine:     {ref_rate:,.0f} events/s on {ref_n:,} events of 50 subscriptions")
    print(f"ratio kernel / reference: {kps / ref_rate:,.0f}x ; whole rate() / reference: "
          f"{args.events / whole / ref_rate:,.0f}x")
    print(f"compile: cold {ct['cold']:.2f} s, cached {ct['cached']:.2f} s (process start to first result)")
    print(f"peak engine allocations: {peak / args.events:.1f} bytes/event (input columns excluded)")


def _timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
