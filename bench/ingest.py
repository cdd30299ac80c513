"""Ingestion benchmark: raw SQLite ceiling vs Store.ingest vs HTTP, and columnar reads.

    .venv/bin/python bench/ingest.py                  # 10 M events (slow; needs ~25 GB disk)
    .venv/bin/python bench/ingest.py --events 200000  # a quick run
    .venv/bin/python bench/ingest.py --read DIR/store.db  # only step 5, on a store kept from a run

A pinned (seeded) generator makes realistic events: GPU job usage intervals
(gpu_type, gpu_count, duration_seconds, avg_utilization, ... with job ids
repeated over a job's intervals) and inference requests (model_name, token
counts). One run measures, on the same machine and data:

1. the ceiling: ``sqlite3.executemany`` of pre-built row tuples into a
   one-row-per-event ``events`` table (store schema 4's, in a file with the
   store's settings; same chunking and transaction size; no validation, no dedup);
2. ``Store.ingest`` (validation, dedup, quarantine, column blocks);
3. HTTP batch ingest through a real ``gpubill serve`` with 4 concurrent clients, with one
   worker process and with one per CPU (``--workers``);
4. ``gpubill ingest FILE`` (a whole process) of a JSONL file of the same kind
   of events into a fresh store, against the ceiling on those events; then a
   one-off ``gpubill ingest`` of 1 000 new events into step 2's store;
5. ``Store.read_columns`` of everything stored, plus two property columns; then filtered by
   every code and subscription (keeping every row, as ``gpubill rate`` reads) and by every other
   subscription; each in a fresh process (time, events/s, the process's peak resident memory).

It prints events/s and the ratios. Events are generated before each timed
round (500 000 at a time), so generation is excluded from every figure and
never overlaps the measured work. It is a benchmark, not a test: nothing is
asserted. Timings on a shared machine vary a lot: run it when the machine is
otherwise idle, and compare only figures from one run.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import numpy as np
import orjson

GPUS = [("H100-SXM", 80, "nvlink"), ("A100-80GB", 80, "nvlink"), ("A100-40GB", 40, "pcie"),
        ("L40S", 48, "pcie"), ("H200", 141, "nvlink")]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1"]
MODELS = ["llama-3.1-70b", "llama-3.1-8b", "mixtral-8x22b", "qwen2.5-72b", "deepseek-v3"]
CLASSES = ["on_demand", "on_demand", "reserved", "spot"]
REASONS = ["completed"] * 8 + ["preempted", "failed_user", "failed_infrastructure"]
T0 = 1_735_689_600  # 2025-01-01
ROUND = 500_000  # events generated ahead of each timed round


def generate(n: int, seed: int = 7, start: int = 0):
    """n events, deterministic for (seed, start)."""
    rnd = random.Random(seed * 1_000_003 + start)
    out = []
    for i in range(start, start + n):
        sub = f"sub_{rnd.randrange(500):04d}"
        ts = T0 + i // 4
        if rnd.random() < 0.35:
            g, vram, link = rnd.choice(GPUS)
            job = rnd.randrange(max(0, i // 40 - 500), i // 40 + 1)
            props = {"gpu_type": g, "gpu_count": rnd.choice((1, 2, 4, 8, 8, 0.5)),
                     "duration_seconds": rnd.choice((300, 300, 300, rnd.randrange(1, 300))),
                     "avg_utilization": round(rnd.random(), 2), "peak_vram_gb": round(rnd.random() * vram, 1),
                     "interconnect": link, "region": rnd.choice(REGIONS),
                     "availability_class": rnd.choice(CLASSES), "job_id": f"job-{job:08d}",
                     "end_reason": rnd.choice(REASONS)}
            code = "gpu_job"
        else:
            inp = rnd.randrange(10, 8000)
            props = {"model_name": rnd.choice(MODELS), "input_tokens": inp,
                     "output_tokens": rnd.randrange(1, 2000), "cached_tokens": rnd.randrange(0, inp),
                     "region": rnd.choice(REGIONS)}
            code = "inference"
        out.append({"transaction_id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                    "external_subscription_id": sub, "code": code, "timestamp": ts, "properties": props})
    return out


def chunks(total: int, size: int, gen_time: list):
    for k in range(0, total, size):
        t = time.perf_counter()
        part = generate(min(size, total - k), start=k)
        gen_time[0] += time.perf_counter() - t
        yield part


def rounds(total: int, size: int, per_round: int = ROUND):
    """Pre-generated lists of chunks, ``per_round`` events at a time (bounded memory).

    Each round is generated before the clock starts, so no generation overlaps
    the measured work (a pipelined writer would otherwise run during it).
    """
    per_round = max(size, per_round // size * size)
    for r in range(0, total, per_round):
        n = min(per_round, total - r)
        yield [generate(min(size, n - k), start=r + k) for k in range(0, n, size)]


# The one-row-per-event table of store schema 4 (what gpubill wrote before its events moved into
# their column blocks): the ceiling is measured into it.
ROW_TABLE = """CREATE TABLE events (
    id INTEGER PRIMARY KEY, k1 INTEGER NOT NULL, k2 INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL,
    batch_id INTEGER NOT NULL, raw TEXT NOT NULL,
    transaction_id TEXT GENERATED ALWAYS AS (raw ->> '$.transaction_id') VIRTUAL,
    external_subscription_id TEXT GENERATED ALWAYS AS (raw ->> '$.external_subscription_id') VIRTUAL,
    code TEXT GENERATED ALWAYS AS (raw ->> '$.code') VIRTUAL)"""


def _row_table(path: str):
    """A fresh WAL file with the store's settings (``connect``) and ``ROW_TABLE``."""
    from gpubill.store.schema import connect
    db = connect(path)
    db.execute(ROW_TABLE)
    return db


def bench_raw(path: str, total: int, size: int, commit: int) -> float:
    """The ceiling: executemany of pre-built tuples into a one-row-per-event table.

    The store's file settings, rows in chunks of ``size`` and transactions of
    ``commit`` events, as Store.ingest does; no validation, no dedup.
    """
    from gpubill.store.encode import _hash_keys
    db = _row_table(path)
    spent = cpu = 0.0
    nid = 1
    for parts in rounds(total, size):
        batches = []
        for part in parts:
            k1, k2 = _hash_keys([e["transaction_id"] for e in part],
                                [e["external_subscription_id"] for e in part])
            batches.append([(nid + j, int(a), int(b), e["timestamp"] * 1000, 1, orjson.dumps(e).decode())
                            for j, (a, b, e) in enumerate(zip(k1.tolist(), k2.tolist(), part))])
            nid += len(part)
        del parts
        t, c = time.perf_counter(), time.process_time()
        pending = 0
        for rows in batches:
            if not pending:
                db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR IGNORE INTO events (id, k1, k2, timestamp_ms, batch_id, raw)"
                           " VALUES (?, ?, ?, ?, ?, ?)", rows)
            pending += len(rows)
            if pending >= commit:
                db.execute("COMMIT")
                pending = 0
        if pending:
            db.execute("COMMIT")
        spent += time.perf_counter() - t
        cpu += time.process_time() - c
    db.close()
    return total / spent, cpu / total * 1e6


def bench_store(path: str, total: int, size: int, commit: int) -> float:
    from gpubill.store import Store
    spent = cpu = 0.0
    n = 0
    with Store(path, chunk_size=size, commit_events=commit, max_future_s=10**9) as s:
        for parts in rounds(total, size):
            t, c = time.perf_counter(), time.process_time()
            for rec in s.ingest_stream(((c, None) for c in parts), source="bench"):
                n += int((rec.status == 0).sum())
            spent += time.perf_counter() - t
            cpu += time.process_time() - c
    assert n == total, n
    return total / spent, cpu / total * 1e6


def bench_http(path: str, total: int, batch: int, clients: int = 4, workers: int = 1) -> float:
    from gpubill.store import Store, users
    from gpubill.store.roles import Actor
    with Store(path) as s:
        key = users.create_key(s, Actor("bench", "admin"), "bench", "writer")
    bodies = [orjson.dumps({"events": part}) for part in chunks(total, batch, [0.0])]
    proc = subprocess.Popen([sys.executable, "-m", "gpubill", "serve", "--store", path, "--port", "0",
                             "--batch-limit", str(batch), "--workers", str(workers)], stdout=subprocess.PIPE)
    url = proc.stdout.readline().decode().split()[-1]
    import httpx
    errors = []

    def worker(mine):
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}",
                                                 "Content-Type": "application/json"}, timeout=120) as c:
            for b in mine:
                r = c.post("/api/v1/events/batch", content=b)
                if r.status_code != 200:
                    errors.append(r.text[:200])
    threads = [threading.Thread(target=worker, args=(bodies[i::clients],)) for i in range(clients)]
    c0 = _tree_cpu(proc.pid)
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    spent = time.perf_counter() - t
    cpu = _tree_cpu(proc.pid) - c0
    proc.terminate()
    proc.wait()
    if errors:
        print("HTTP errors:", errors[:3], file=sys.stderr)
    return total / spent, cpu / total * 1e6


def write_jsonl(path: str, total: int, start: int = 0) -> None:
    with open(path, "wb") as f:
        for k in range(start, start + total, ROUND):
            part = generate(min(ROUND, start + total - k), start=k)
            f.write(b"\n".join(map(orjson.dumps, part)) + b"\n")


def bench_cli(path: str, jsonl: str) -> float:
    """Wall seconds of a whole `gpubill ingest FILE` process (start, imports, reading, storing)."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "gpubill", "ingest", "--store", path, jsonl],
                         capture_output=True, text=True)
    spent = time.perf_counter() - t
    if out.returncode != 0:
        print("gpubill ingest failed:", out.stderr.strip()[-300:], file=sys.stderr)
    return spent


def _tree_cpu(pid: int) -> float:
    """CPU seconds a process and its children (`serve --workers`) have used so far."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        kids = []
    return _cpu(pid) + sum(_cpu(k) for k in kids)


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


READ_PROPS = (("numeric", "duration_seconds"), ("dim", "gpu_type"))  # step 5's two property columns
READS = ("everything", "every code and subscription", "every other subscription")


def bench_read(path: str, filters: dict) -> tuple[int, float, float]:
    """(events, read seconds, property columns seconds) of one read; the store is not written."""
    from gpubill.store import Store
    with Store(path, readonly=True) as s:
        t = time.perf_counter()
        c = s.read_columns(**filters)
        base = time.perf_counter() - t
        for kind, name in READ_PROPS:
            getattr(c, kind)(name)
        return c.n, base, time.perf_counter() - t - base


def _read_filters(path: str) -> dict:
    """READS' filters: "every code and subscription" keeps every row (as `gpubill rate` reads),
    "every other subscription" part of every block."""
    from gpubill.store import Store
    with Store(path, readonly=True) as s:
        c = s.read_columns()
        codes, subs = (s.strings.decode(np.unique(a)) for a in (c.code, c.subscription))
    return dict(zip(READS, ({}, {"codes": codes, "subscriptions": subs}, {"subscriptions": subs[::2]})))


def _print_read(path: str) -> None:
    """Each read in a fresh process, so that each peak resident figure is its own."""
    with tempfile.TemporaryDirectory() as d:
        for what, filters in _read_filters(path).items():
            spec = os.path.join(d, "filters.json")
            with open(spec, "wb") as f:
                f.write(orjson.dumps({"what": what, "filters": filters}))
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--read", path, "--read-only", spec],
                                 capture_output=True, text=True, check=True)
            print(out.stdout, end="")


def _print_one_read(path: str, spec: str) -> None:
    with open(spec, "rb") as f:
        job = orjson.loads(f.read())
    n, base, props = bench_read(path, job["filters"])
    print(f"read_columns, {job['what']} ({n} events)  {n / base:>12,.0f} events/s ({base:.2f} s)"
          f"   + 2 property columns {props:.2f} s ({n / (base + props):,.0f}/s)"
          f"   peak resident {_peak_resident_kib() / 1024:,.0f} MiB")


def _peak_resident_kib() -> int:
    """This process's peak resident memory since its exec (``ru_maxrss`` would count the parent's
    from before the exec too)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def _load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def _print_cli(d: str, a, commit: int) -> None:
    """`gpubill ingest FILE` as a user runs it: a JSONL file into a fresh store, against the ceiling on
    the same events; then a one-off file of 1 000 new events into the store of step 2."""
    n = a.file_events if a.file_events is not None else min(a.events, 1_000_000)
    jsonl = os.path.join(d, "events.jsonl")
    write_jsonl(jsonl, n)
    raw, _ = bench_raw(os.path.join(d, "raw-file.db"), n, a.chunk, commit)
    spent = bench_cli(os.path.join(d, "file.db"), jsonl)
    print(f"gpubill ingest FILE         {n / spent:>12,.0f} events/s   whole process {spent:.2f} s"
          f"   {n / spent / raw:.2f} x raw executemany of the same {n} events ({raw:,.0f}/s)")
    few = os.path.join(d, "few.jsonl")
    write_jsonl(few, 1000, start=a.events)
    spent = bench_cli(os.path.join(d, "store.db"), few)
    print(f"gpubill ingest, 1 000 new events into the {a.events:,}-event store: {spent:.2f} s (whole process)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--http-events", type=int, default=None, help="default: min(events, 1 M)")
    ap.add_argument("--chunk", type=int, default=8192, help="events per chunk (validation, one INSERT)")
    ap.add_argument("--commit", type=int, default=None,
                    help="events per transaction, both sides (default: Store's group commit size)")
    ap.add_argument("--batch", type=int, default=5000, help="events per HTTP batch")
    ap.add_argument("--file-events", type=int, default=None, help="events in the JSONL file (default: min(events, 1 M))")
    ap.add_argument("--dir", default=None, help="where the store files go (default: a temp dir)")
    ap.add_argument("--read", default=None, metavar="STORE",
                    help="only measure read_columns on this existing store (e.g. DIR/store.db of a --dir run)")
    ap.add_argument("--read-only", default=None, help=argparse.SUPPRESS)  # one read (a JSON spec), in --read's child
    a = ap.parse_args()
    if a.read and a.read_only:
        _print_one_read(a.read, a.read_only)
        return
    if a.read:
        print(f"load average before: {_load()}")
        _print_read(a.read)
        return
    from gpubill.store.store import DEFAULT_COMMIT_EVENTS
    commit = a.commit or DEFAULT_COMMIT_EVENTS
    http_n = a.http_events if a.http_events is not None else min(a.events, 1_000_000)
    d = a.dir or tempfile.mkdtemp(prefix="gpubill-bench-")
    os.makedirs(d, exist_ok=True)
    try:
        print(f"{a.events} events, chunk {a.chunk}, transactions of {commit}, {os.cpu_count()} CPUs, dir {d}")
        print(f"load average before: {_load()}")
        raw, raw_cpu = bench_raw(os.path.join(d, "raw.db"), a.events, a.chunk, commit)
        print(f"raw executemany (ceiling)   {raw:>12,.0f} events/s   CPU {raw_cpu:5.2f} us/event")
        emb, emb_cpu = bench_store(os.path.join(d, "store.db"), a.events, a.chunk, commit)
        print(f"Store.ingest                {emb:>12,.0f} events/s   CPU {emb_cpu:5.2f} us/event"
              f"   {emb / raw:.2f} x ceiling")
        for workers in sorted({1, os.cpu_count()}):
            http, http_cpu = bench_http(os.path.join(d, f"http{workers}.db"), http_n, a.batch, workers=workers)
            print(f"HTTP batch, 4 clients, {workers} worker(s) {http:>9,.0f} events/s   server CPU {http_cpu:5.2f}"
                  f" us/event   ({http_n} events, batches of {a.batch})")
        _print_cli(d, a, commit)
        _print_read(os.path.join(d, "store.db"))
        print(f"load average after: {_load()}   (other processes' load lowers every figure)")
    finally:
        if a.dir is None:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
