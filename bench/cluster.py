"""Scale-out benchmark: a 2-shard ClickHouse + Redis Streams intake against the embedded SQLite store.

    .venv/bin/python bench/cluster.py                          # 10 M events billed, 1 M through the intake
    .venv/bin/python bench/cluster.py --events 1000000 --intake-events 200000   # a quicker run

Starts, on 127.0.0.1 in a work folder, two clickhouse-server shards and one
redis-server (AOF, fsync on every write: ``gpubill/cluster/local.py``), and
measures in one run:

1. intake: events/s acknowledged over HTTP by 2 ``gpubill serve --events
   --intake`` processes (4 client threads), then events/s stored by 2
   ``gpubill ingest-worker`` processes until the intake is drained; the
   baseline is 1 ``gpubill serve`` into the SQLite store, the same events;
2. the bill run: a month of ``--events`` events for 1 000 contracts on the
   example plans (bench/invoice.py's generator), moved into the cluster with
   ``gpubill migrate-events`` (events/s), then ``gpubill rate --format json``
   as a new process from the SQLite file (the embedded path, the baseline)
   and from the cluster (charges that decompose pushed down to the shards),
   each output compared byte for byte.

It prints each figure and its ratio to the baseline of the same run. It is a
benchmark, not a test: nothing is asserted (a difference in output is printed).
On a 2-core machine the servers, the workers and the client share the cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gpubill.cluster.local import LocalClickHouse, LocalRedis, servers_missing  # noqa: E402
from ingest import chunks  # noqa: E402  bench/: the ingestion benchmark's event generator
from invoice import build_repo, make_store  # noqa: E402  bench/: one store generator for the rating benches

BATCH = 10_000  # events per HTTP batch
CLIENTS = 4


def gpubill(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpubill", *map(str, args)], capture_output=True, **kw)


def _key(store: Path) -> str:
    """A writer key in a fresh control store (the servers need one)."""
    r = gpubill("keys", "create", "--name", "bench", "--role", "writer", "--store", store, text=True)
    if r.returncode:
        sys.exit(f"gpubill keys create: {r.stderr.strip()}")
    return r.stdout.split()[-1]


def _serve(store: Path, extra: list) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "gpubill", "serve", "--store", str(store), "--port", "0",
                             "--batch-limit", str(BATCH), *map(str, extra)], stdout=subprocess.PIPE)
    return proc, proc.stdout.readline().decode().split()[-1]


def _post_all(urls: list[str], key: str, total: int) -> tuple[float, list]:
    """Send ``total`` events in batches from CLIENTS threads spread over the servers; (seconds, errors)."""
    import httpx

    bodies = [orjson.dumps({"events": part}) for part in chunks(total, BATCH, [0.0])]
    errors: list = []

    def client(mine, url):
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}",
                                                 "Content-Type": "application/json"}, timeout=300) as c:
            for b in mine:
                r = c.post("/api/v1/events/batch", content=b)
                if r.status_code >= 300:
                    errors.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client, args=(bodies[i::CLIENTS], urls[i % len(urls)]))
               for i in range(CLIENTS)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t, errors


def bench_intake_embedded(work: Path, total: int) -> float:
    store = work / "intake-embedded.db"
    key = _key(store)
    proc, url = _serve(store, [])
    try:
        spent, errors = _post_all([url], key, total)
    finally:
        proc.terminate()
        proc.wait()
    if errors:
        print("  embedded HTTP errors:", errors[:2])
    return total / spent


def bench_intake_cluster(work: Path, ch: LocalClickHouse, redis: LocalRedis, total: int) -> tuple[float, float]:
    """(events/s acknowledged by 2 servers, events/s stored by 2 workers from the first send to drained)."""
    store = work / "intake-control.db"
    cluster = ["--events", ch.url("intake"), "--intake", redis.url]
    key = _key(store)
    servers = [_serve(store, cluster) for _ in range(2)]
    workers = [subprocess.Popen([sys.executable, "-m", "gpubill", "ingest-worker", "--store", str(store), *cluster,
                                 "--name", f"bench-{i}", "--quiet"], stdout=subprocess.DEVNULL)
               for i in range(2)]
    t0 = time.perf_counter()
    try:
        spent, errors = _post_all([url for _, url in servers], key, total)
        if errors:
            print("  cluster HTTP errors:", errors[:2])
        drain = gpubill("ingest-worker", "--store", store, *cluster, "--drain", "--quiet", "--name", "bench-drain")
        if drain.returncode:
            print("  drain failed:", drain.stderr.decode().strip()[-300:])
        stored = time.perf_counter() - t0
    finally:
        for p in [p for p, _ in servers] + workers:
            p.terminate()
        for p in [p for p, _ in servers] + workers:
            p.wait()
    status = gpubill("status", "--store", store, *cluster, "--format", "json", text=True)
    if status.returncode == 0:
        print(f"  cluster after the intake: {status.stdout.strip()}")
    return total / spent, total / stored


def bench_bill_run(work: Path, ch: LocalClickHouse, events: int, contracts: int, period: str, reuse: bool) -> None:
    repo = work / f"repo-{contracts}"
    if not repo.exists():
        build_repo(repo, contracts)
    db = work / f"bill-{contracts}x{events}.db"
    if not db.exists():
        make_store(db, repo, period, events)
    url = ch.url("bill")
    held = ch.client(0).execute("SELECT count() FROM system.tables WHERE database = 'bill' AND name = 'events'")
    if held[0][0] and reuse:
        print("migrate-events                skipped: the kept servers hold the events (--reuse)")
    else:
        t = time.perf_counter()
        r = gpubill("migrate-events", "--store", db, "--events", url, "--format", "json")
        moved = time.perf_counter() - t
        if r.returncode:
            sys.exit(f"migrate-events: {r.stderr.decode().strip()}")
        print(f"migrate-events                {moved:8.1f} s   {events / moved:10,.0f} events/s into 2 shards")
    for i in range(2):
        size, n = ch.client(i).execute("SELECT sum(bytes_on_disk), sum(rows) FROM system.parts"
                                       " WHERE database = 'bill' AND table = 'events_local' AND active")[0]
        print(f"  shard {i + 1}: {n:,} rows, {size / 2**20:,.0f} MiB on disk, {size / max(n, 1):.0f} bytes/event")
    rate = ["rate", "--contracts", repo, "--period", period, "--format", "json"]
    runs = {}
    for name, extra in (("embedded", []), ("cluster", ["--events", url])):
        gpubill(*rate, "--store", db, *extra)  # warm: numba's cache, the servers' page cache
        t = time.perf_counter()
        out = gpubill(*rate, "--store", db, *extra)
        (work / f"rate-{name}.json").write_bytes(out.stdout)
        runs[name] = (time.perf_counter() - t, out)
        if out.returncode:
            print(f"  {name} rate failed: {out.stderr.decode().strip()[-300:]}")
    (e_s, e_out), (c_s, c_out) = runs["embedded"], runs["cluster"]
    same = "identical" if e_out.stdout == c_out.stdout else "DIFFERENT"
    print(f"`gpubill rate`, SQLite file   {e_s:8.1f} s   (baseline)")
    print(f"`gpubill rate`, 2 shards      {c_s:8.1f} s   cluster/embedded = {c_s / e_s:.2f} x   output {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000, help="events of the billed month")
    ap.add_argument("--contracts", type=int, default=1000)
    ap.add_argument("--period", default="2026-10")
    ap.add_argument("--intake-events", type=int, default=1_000_000, help="events sent through the intake")
    ap.add_argument("--dir", default=None, help="work folder (kept; the generated store is reused)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the servers' data of an earlier run in --dir (the bill run's events are not moved again)")
    args = ap.parse_args()
    missing = servers_missing()
    if missing:
        sys.exit(f"bench/cluster.py needs the servers: {missing}")
    work = Path(args.dir or tempfile.mkdtemp(prefix="gpubill-cluster-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs, work folder {work}")
    servers = work / "servers"
    if not args.reuse:
        shutil.rmtree(servers, ignore_errors=True)
    with LocalClickHouse(servers / "clickhouse", shards=2) as ch, LocalRedis(servers / "redis") as redis:
        if args.intake_events:
            base = bench_intake_embedded(work, args.intake_events)
            acked, stored = bench_intake_cluster(work, ch, redis, args.intake_events)
            print(f"intake, 1 server -> SQLite    {base:10,.0f} events/s acknowledged (baseline)")
            print(f"intake, 2 servers -> Redis    {acked:10,.0f} events/s acknowledged   {acked / base:.2f} x")
            print(f"intake, 2 workers -> 2 shards {stored:10,.0f} events/s stored (first send to drained)"
                  f"   {stored / base:.2f} x")
        if args.events:
            bench_bill_run(work, ch, args.events, args.contracts, args.period, args.reuse)


if __name__ == "__main__":
    main()
