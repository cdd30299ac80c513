"""`gpubill check` start-up benchmark: a repository of 100 contracts, end to end.

    .venv/bin/python bench/check.py               # 100 contracts, 7 runs
    .venv/bin/python bench/check.py --contracts 300 --runs 11 --keep /tmp/repo

A pinned (seeded) generator writes a realistic billing repository into a
temp dir: 2 entities, 6 metrics, 4 plans (one with two versions) and 100
contract files, each with a commented contract (customer, plan, term,
overrides, commitments, reservations, credits, discounts, budgets, policies)
and a test block. It then measures, in the same run and on the same machine:

1. the bare interpreter: ``python -c pass`` (the floor no CLI can beat);
2. ``gpubill check DIR`` as a subprocess, start-up included.

It prints the medians, check's ratio to the 1 s goal and to the bare
interpreter, and confirms with ``-X importtime`` that check imports neither
numba nor numpy. It is a benchmark, not a test: nothing is asserted, but the
exit status is 1 when the repository is not clean, the goal is missed, or a
heavy module was imported.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 1.0
HEAVY = ("numba", "numpy", "llvmlite", "textual", "rich", "orjson")

GPUS = {"A100-40GB": 1.89, "A100-80GB": 2.21, "H100-SXM": 3.49, "H200": 4.25}
REGIONS = ["us-east", "us-west", "eu-central"]
WORDS = ["acme", "globex", "initech", "umbrella", "stark", "wayne", "tyrell", "cyberdyne", "soylent", "hooli",
         "pied", "piper", "vandelay", "wonka", "gringotts", "oscorp", "aperture", "black", "mesa", "nakatomi"]

PRELUDE = {
    "entities/us.bill": """# The US billing entity.
entity gpucloud_us {
  name "Northwind GPU Cloud, Inc."
  currency USD
  timezone "America/New_York"
  tax "NY sales tax" 8.875%
  invoice prefix "NWG" numbering per_customer
  invoice grace 3 days
}
""",
    "entities/eu.bill": """# The EU billing entity.
entity gpucloud_eu {
  name "Northwind GPU Cloud GmbH"
  currency EUR
  timezone "Europe/Berlin"
  tax "VAT" 19%
  invoice prefix "NWE" numbering per_entity
}
""",
    "metrics/compute.bill": f"""# GPU time, the foundation metrics.
metric gpu_hours {{
  event gpu_job
  sum gpu_count * duration_seconds in GPU-hours
  per event duration_seconds up to 1 minute, minimum 1 minute, maximum 7 days
  dimension gpu_type in {", ".join(f'"{g}"' for g in GPUS)}
  dimension region in {", ".join(f'"{r}"' for r in REGIONS)}
  dimension availability_class in "on_demand", "reserved", "spot"
}}

metric inference_gpu_hours {{
  event inference
  sum gpu_count * duration_seconds in GPU-hours
  per event duration_seconds up to 1 second, minimum 60 seconds
  dimension gpu_type in {", ".join(f'"{g}"' for g in GPUS)}
}}

metric concurrent_gpus {{
  event gpu_allocation
  weighted sum gpu_count in GPUs
}}

metric reserved_instances {{
  event reserved_instance
  unique count instance_id
  recurring
}}
""",
    "metrics/tokens.bill": """# Inference API tokens.
metric input_tokens {
  event inference_request
  sum input_tokens in tokens
  dimension model_name
}

metric output_tokens {
  event inference_request
  sum output_tokens in tokens
  dimension model_name
}
""",
}


def _table(indent: str, scale: float) -> str:
    width = max(len(g) for g in GPUS) + 2
    return "\n".join(f'{indent}{f"{chr(34)}{g}{chr(34)}":<{width}} {p * scale:.2f}' for g, p in GPUS.items())


def _plans() -> dict[str, str]:
    on_demand = []
    for version, (start, end, scale) in enumerate([("2025-01-01", "2026-06-30", 1.1), ("2026-07-01", None, 1.0)], 1):
        span = f"effective {start}" + (f" to {end}" if end else "")
        on_demand.append(f"""plan on_demand version {version} {span} {{
  currency USD
  billing monthly calendar in arrears
  progressive billing at 10_000 USD, 50_000 USD, every 25_000 USD
  # training and batch, per started minute
  charge gpu_hours per GPU-hour by gpu_type {{
{_table("    ", scale)}
  }}
  charge inference_gpu_hours per GPU-hour by gpu_type {{
{_table("    ", scale)}
  }}
}}
""")
    return {
        "plans/on_demand.bill": "# The public price list, in two versions.\n" + "\n".join(on_demand),
        "plans/scale_up.bill": """# Volume pricing for large training customers.
plan scale_up {
  currency USD
  billing monthly calendar in arrears
  fee 2_500.00 in advance
  rounding half_even 0.01
  charge gpu_hours graduated per GPU-hour {
    0      to 10_000 at 3.49
    10_001 to 50_000 at 3.19 flat 500
    50_001 and above at 2.89
  } {
    where region = "eu-central" 3.69 per GPU-hour
    group by region
  }
  charge concurrent_gpus volume per GPUs {
    0   to 64    at 900.00
    65 and above at 850.00
  }
  charge reserved_instances 1_800.00 per instance {
    prorated
  }
}
""",
        "plans/inference.bill": """# Token-priced inference API.
plan inference_api {
  currency USD
  billing monthly anniversary in arrears
  charge input_tokens package 0.50 per 1M tokens free 1M tokens
  charge output_tokens package 1.50 per 1M tokens
  charge inference_gpu_hours 2.10 per GPU-hour
}
""",
        "plans/eu.bill": f"""# The EU price list, in euros.
plan on_demand_eu {{
  currency EUR
  billing monthly calendar in arrears
  charge gpu_hours per GPU-hour by gpu_type {{
{_table("    ", 0.95)}
  }}
}}
""",
    }


def _contract(i: int, rng: random.Random) -> str:
    name = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{i:03d}"
    eu = rng.random() < 0.2
    plan = "on_demand_eu" if eu else rng.choice(["on_demand", "on_demand", "scale_up", "inference_api"])
    cur = "EUR" if eu else "USD"
    year = rng.choice([2025, 2026])
    month = rng.randint(1, 12)
    lines = [
        f"# {name.replace('_', ' ').title()}: a {rng.choice(['startup', 'lab', 'enterprise', 'university'])} customer.",
        f"contract {name} {{",
        f'  customer "{name.replace("_", "-")}" name "{name.replace("_", " ").title()}"',
        f'  subscription "sub_{name}"',
        f"  entity {'gpucloud_eu' if eu else 'gpucloud_us'}",
        f"  plan {plan}" + (" version 2" if plan == "on_demand" and (year, month) >= (2026, 7) else ""),
        f"  starts {year}-{month:02d}-01",
        f"  ends {year + rng.randint(1, 3)}-12-31",
    ]
    if plan in ("on_demand", "on_demand_eu") and rng.random() < 0.6:
        gpu = rng.choice(sorted(GPUS))
        lines.append(f'  override gpu_hours where gpu_type = "{gpu}" {GPUS[gpu] * 0.85:.2f} per GPU-hour')
    if rng.random() < 0.5:
        lines.append(f"  commit {rng.choice([50, 100, 250, 1_000])}_000 {cur} per year, true-up at term end")
    if plan == "on_demand" and rng.random() < 0.4:
        gpu = rng.choice(sorted(GPUS))
        lines.append(f'  reserve {rng.choice([8, 16, 64])} "{gpu}" on gpu_hours at {GPUS[gpu] * 0.7:.2f} per GPU-hour, prepaid')
    for p in range(rng.randint(0, 2)):
        lines.append("  # onboarding credit, spent first" if p == 0 else "  # prepaid balance")
        lines.append(f"  credit {rng.choice([1, 5, 20])}_000 {cur} {'granted' if p == 0 else 'paid'}, "
                     f"expires {year + 1}-06-30, priority {p + 1}")
    if rng.random() < 0.3:
        lines.append(f"  discount {rng.choice([5, 10, 15])}% recurring {rng.randint(2, 6)} periods")
    if rng.random() < 0.6:
        lines.append(f"  budget {rng.choice([10, 20, 50])}_000 {cur} monthly, alert at 50%, 80%, 100%")
    lines.append(f"  late events grace {rng.randint(1, 5)} days, then next invoice")
    lines.append("  on infrastructure failure " + rng.choice(["no charge", "credit 50%"]))
    lines.append("  on user failure charge actual usage")
    if rng.random() < 0.3:
        lines.append(f"  on preemption credit {rng.choice([10, 20, 25])}%")
    lines.append("}")
    gpu = rng.choice(sorted(GPUS))
    charge = "inference_gpu_hours" if plan == "inference_api" else "gpu_hours"
    event = "inference" if plan == "inference_api" else "gpu_job"
    lines += [
        "",
        f'test "{name}: a day on 8 GPUs" {{',
        f"  contract {name}",
        f"  period {year + 1}-03",
        f'  usage {event} gpu_type="{gpu}" gpu_count=8 duration_seconds=86400 at {year + 1}-03-02T00:00:00Z',
        f"  expect units {charge} = 192",
        "}",
    ]
    return "\n".join(lines) + "\n"


def generate(root: Path, contracts: int, seed: int = 406) -> int:
    rng = random.Random(seed)
    files = dict(PRELUDE)
    files.update(_plans())
    for i in range(contracts):
        files[f"contracts/c{i:03d}.bill"] = _contract(i, rng)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return len(files)


def _time(cmd: list[str], runs: int) -> tuple[list[float], list[float], subprocess.CompletedProcess]:
    """Wall-clock and CPU (user + system) seconds of each run of `cmd`."""
    walls, cpus, last = [], [], None
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        last = subprocess.run(cmd, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus, last


def _gpubill() -> list[str]:
    exe = Path(sys.executable).with_name("gpubill")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gpubill"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contracts", type=int, default=100)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--keep", metavar="DIR", help="write the repository here and keep it")
    args = ap.parse_args()

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gpubill-bench-check-"))
    try:
        n = generate(root, args.contracts)
        size = sum(p.stat().st_size for p in root.rglob("*.bill"))
        print(f"repository: {n} files ({args.contracts} contracts), {size / 1024:.0f} KiB, in {root}")

        check = [*_gpubill(), "check", str(root)]
        _time(check, 1)  # warm the OS cache and Lark's grammar cache
        bare, bare_cpu, _ = _time([sys.executable, "-c", "pass"], args.runs)
        runs, cpu, result = _time(check, args.runs)
        if result.returncode != 0:
            print(f"gpubill check exited {result.returncode}:\n{result.stderr[-3000:]}")

        imp = subprocess.run([sys.executable, "-X", "importtime", "-m", "gpubill", "check", str(root)],
                             capture_output=True, text=True)
        rows = [ln.split("|") for ln in imp.stderr.splitlines() if ln.startswith("import time:") and "self" not in ln]
        modules = [r[-1].strip() for r in rows]
        heavy = sorted({m for m in modules if m.split(".")[0] in HEAVY})
        top = sorted(((int(r[0].split(":")[1]), r[-1].strip()) for r in rows), reverse=True)[:5]
        total_import = sum(int(r[0].split(":")[1]) for r in rows) / 1e6

        med_bare, med = statistics.median(bare), statistics.median(runs)
        print(f"load average          {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
        print(f"python -c pass        median {med_bare * 1000:7.1f} ms wall, {statistics.median(bare_cpu) * 1000:6.1f} ms CPU"
              f"  (min {min(bare) * 1000:.1f}, {args.runs} runs)")
        print(f"gpubill check DIR     median {med * 1000:7.1f} ms wall, {statistics.median(cpu) * 1000:6.1f} ms CPU"
              f"  (min {min(runs) * 1000:.1f}, max {max(runs) * 1000:.1f}, {args.runs} runs, exit {result.returncode})")
        print(f"ratio to the {GOAL_S:.0f} s goal   {med / GOAL_S:.2f}  ({'met' if med <= GOAL_S else 'MISSED'})")
        print(f"ratio to bare python  {med / med_bare:.1f}x wall")
        print(f"imports               {len(modules)} modules, {total_import * 1000:.0f} ms; heavy: "
              f"{', '.join(heavy) if heavy else 'none (no numba, no numpy)'}")
        print("largest self import times: " + ", ".join(f"{m} {us / 1000:.1f} ms" for us, m in top))
        return 0 if (result.returncode == 0 and med <= GOAL_S and not heavy) else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
