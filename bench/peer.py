"""Benchmark: one charge, rated by gpubill and by its peers over the same rows.

    .venv/bin/python bench/peer.py                    # 10 M events, 1 000 subscriptions
    .venv/bin/python bench/peer.py --events 1000000   # a quicker run
    .venv/bin/python bench/peer.py --no-clickhouse    # gpubill, SQLite and numba only

The workload (issue 8): GPU-hours (``gpu_count * duration_seconds``), the
duration of each event rounded up to 1 second with a 60 second minimum,
grouped by gpu_type x region, for 1 000 subscriptions over one month.  It is
written as a ``.bill`` catalog (``CATALOG`` below: an entity, the metric, a
one-charge plan and one contract per subscription), checked and compiled by
gpubill's service layer as ``gpubill rate`` does.  The events are
``bench/rate_kernels.py``'s pinned data set (numpy, seed 7): 70 % ``gpu_job``
events with 0.5 to 8 GPUs and 1 ms to 10 h, the rest LLM events the charge
must skip.

Four engines rate the same rows in one run:

a. gpubill's fast engine, ``rate(specs, columns)`` warm: plan, kernels,
   decode and the priced ``RatedLine`` values (best of ``--repeat``);
b. ClickHouse SQL over a MergeTree table holding the same columns, on a real
   ``clickhouse-server`` the bench starts on 127.0.0.1 with its own
   temporary config and data directory, loads (RowBinary over HTTP), queries
   warm (best of ``--repeat``, the HTTP round trip and the result body
   included) and stops (``bench/peer_clickhouse.py``).  Skipped, with a
   message, where ``clickhouse-server`` is not installed.  To install it
   (Debian; ClickHouse 18.16; the bench only, not a project dependency)::

       apt-get update && apt-get install -y clickhouse-server clickhouse-client

c. SQLite SQL over a real SQLite file holding the same columns (the
   per-event rounding and the GROUP BY in SQL; best of ``--sqlite-repeat``);
d. a bare numba loop over gpubill's own columns, one thread: the
   memory-speed ceiling (best of ``--repeat``).

The SQL engines get the rows as typed integer columns: the same dictionary
codes gpubill reads (subscription, code, gpu_type, region), the timestamp,
milli-GPUs and milliseconds (converted once at load, not timed).  Every
engine yields, per (subscription, gpu_type, region), the exact GPU time in
GPU-milliseconds (milli-GPU x rounded seconds) and the event count; gpubill's
``units`` (GPU-hours, a Decimal) are read back as GPU-milliseconds and
checked to be exactly the engine's Decimal for that integer.  The full
result sets must agree exactly: the bench exits 1 naming the lines that
differ otherwise.

Prints one table (engine, threads, time, events/s, speed against ClickHouse)
and the load average before and after (other processes' load lowers every
figure).  It is a benchmark, not a test: nothing here asserts time;
``tests/test_bench_peer.py`` runs the agreement check on a tiny data set.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np
from numba import njit
from peer_clickhouse import ClickHouse, ClickHouseError, server_binary  # bench/ (the script's folder)
from rate_kernels import MONTH, T0, columns  # bench/: the pinned event columns

from gpubill.engine.fast.columns import InMemoryColumns

from gpubill.engine.fast.accumulate import threads as gpubill_threads
from gpubill.engine.pricing.money import ratio_to_decimal
from gpubill.engine.fast.rate import rate
from gpubill.service.rating import billed_subscriptions, load_catalog

PERIOD = "2024-06"  # rate_kernels' month: T0 .. T0 + MONTH, UTC
EVENT_CODE = "gpu_job"
GROUP_BY = ("gpu_type", "region")
GPU_MS_PER_GPU_HOUR = 3_600_000
MILLI = 3  # the SQL columns hold milli-GPUs and milliseconds: exponent -3
POW10 = np.array([1, 10, 100, 1000], np.int64)  # 10 ** (exponent + MILLI) for exponents -3 .. 0

CATALOG = """\
entity bench_cloud {
  name "Bench GPU Cloud"
  currency USD
  timezone "UTC"
}

metric gpu_hours {
  event gpu_job
  sum gpu_count * duration_seconds in GPU-hours
  per event duration_seconds up to 1 second, minimum 60 seconds
  dimension gpu_type
  dimension region
}

plan one_charge {
  currency USD
  billing monthly calendar
  charge gpu_hours 2.00 per GPU-hour {
    group by gpu_type, region
  }
}
"""

CONTRACT = """
contract bench_{i} {{
  customer "cust_{i}"
  subscription "sub_{i}"
  entity bench_cloud
  plan one_charge
  starts 2024-01-01
}}
"""

# The rows as the SQL engines hold them: name, numpy type, ClickHouse type.
TABLE = (
    ("sub", np.uint16, "UInt16"),
    ("code", np.uint16, "UInt16"),
    ("ts", np.int64, "Int64"),
    ("gpu_type", np.uint16, "UInt16"),
    ("region", np.uint16, "UInt16"),
    ("gpu_milli", np.uint32, "UInt32"),
    ("duration_ms", np.uint32, "UInt32"),
)

SQLITE_SQL = """
SELECT sub, gpu_type, region,
       sum(gpu_milli * max(60, (duration_ms + 999) / 1000)) AS gpu_ms,
       count(*) AS events
FROM events
WHERE code = :code AND ts BETWEEN :lo AND :hi
GROUP BY sub, gpu_type, region
"""

CLICKHOUSE_SQL = """
SELECT sub, gpu_type, region,
       sum(gpu_milli * greatest(60, intDiv(duration_ms + 999, 1000))) AS gpu_ms,
       count() AS events
FROM events
WHERE code = {code} AND ts BETWEEN {lo} AND {hi}
GROUP BY sub, gpu_type, region
FORMAT TabSeparated
"""


class Disagreement(Exception):
    """Two engines rated the same rows differently (or one cannot be read exactly)."""


# ------------------------------------------------------------------ workload


class Workload:
    """The catalog compiled for ``subs`` subscriptions, the event columns, and
    the same rows as typed integer columns for the SQL engines."""

    def __init__(self, events: int, subs: int, folder: Path, seed: int = 7):
        self.specs, self.lo, self.hi = compile_catalog(subs, folder)
        self.cols = columns(events, subs, np.random.default_rng(seed))
        self.n = events
        self.code = self.cols.lookup(EVENT_CODE)
        self.rows = table_rows(self.cols, self.code)

    def key(self, sub: int, gpu_type: int, region: int) -> tuple:
        s = self.cols.strings
        return (s[sub], s[gpu_type], s[region])


def compile_catalog(subs: int, folder: Path) -> tuple:
    """Write the catalog with ``subs`` contracts, check and compile it: (specs, period from, period to)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.bill").write_text(CATALOG + "".join(CONTRACT.format(i=i) for i in range(subs)))
    catalog, _ = load_catalog([str(folder)])
    billed = billed_subscriptions(catalog, PERIOD)
    periods = {(b.period.from_ms, b.period.to_ms) for b in billed}
    if periods != {(T0, T0 + MONTH - 1)}:
        raise SystemExit(f"peer: the period {PERIOD} is {periods}, the events cover {T0} .. {T0 + MONTH - 1}")
    return [b.spec for b in billed], T0, T0 + MONTH - 1


def _milli(mantissa: np.ndarray, exponent: np.ndarray, rows: np.ndarray, name: str) -> np.ndarray:
    """A (mantissa, exponent) column as integer thousandths on ``rows`` (0 elsewhere)."""
    e = exponent[rows].astype(np.int64)
    if e.size and (e.min() < -MILLI or e.max() > 0):
        raise SystemExit(f"peer: {name} has exponents {e.min()} .. {e.max()}; the SQL columns hold -3 .. 0")
    out = np.zeros(mantissa.shape[0], np.int64)
    out[rows] = mantissa[rows] * POW10[e + MILLI]
    return out


def table_rows(cols: InMemoryColumns, code: int) -> dict:
    """The SQL engines' columns (``TABLE``), each range-checked into its type."""
    rows = cols.code == code
    values = {
        "sub": cols.subscription, "code": cols.code, "ts": cols.timestamp_ms,
        "gpu_type": cols.dim("gpu_type"), "region": cols.dim("region"),
        "gpu_milli": _milli(*cols.numeric("gpu_count"), rows, "gpu_count"),
        "duration_ms": _milli(*cols.numeric("duration_seconds"), rows, "duration_seconds"),
    }
    out = {}
    for name, dtype, _ in TABLE:
        v = values[name]
        info = np.iinfo(dtype)
        if v.size and (v.min() < info.min or v.max() > info.max):
            raise SystemExit(f"peer: column {name} does not fit {np.dtype(dtype).name}")
        out[name] = v.astype(dtype)
    return out


# ------------------------------------------------------------------- engines
# Each engine: ``run()`` is the timed part; ``lines(raw)`` turns what it
# returned into {(subscription, gpu_type, region): (gpu_ms, events)}.


class Gpubill:
    name = "gpubill rate() warm"

    def __init__(self, w: Workload):
        self.w = w
        self.threads = str(gpubill_threads())

    def run(self):
        return rate(self.w.specs, self.w.cols)

    def lines(self, result) -> dict:
        if result.unrated:
            raise Disagreement(f"gpubill left {len(result.unrated)} subscriptions unrated: {result.unrated[0].reason}")
        out = {}
        for line in result.lines:
            if line.event_count == 0 and line.units == 0:
                continue  # a subscription without events: its empty line, not a group
            key = (line.subscription,) + tuple(line.group.get(k) for k in GROUP_BY)
            out[key] = (gpu_ms(line.units), line.event_count)
        return out


def gpu_ms(units: Decimal) -> int:
    """GPU-hours as gpubill prints them -> whole GPU-milliseconds, exactly or not at all."""
    with localcontext() as ctx:
        ctx.prec = 100
        k = int((units * GPU_MS_PER_GPU_HOUR).to_integral_value())
    if ratio_to_decimal(k, GPU_MS_PER_GPU_HOUR) != units:
        raise Disagreement(f"gpubill units {units} GPU-hours are not a whole number of GPU-milliseconds")
    return k


class Sqlite:
    name = "SQLite SQL"
    threads = "1"

    def __init__(self, w: Workload, path: Path, sql: str = SQLITE_SQL):
        self.w = w
        self.path = path
        self.sql = sql
        self.con = None

    def __enter__(self):
        load_sqlite(self.path, self.w.rows)
        self.con = sqlite3.connect(str(self.path))
        return self

    def __exit__(self, *exc):
        self.con.close()

    def run(self):
        return self.con.execute(self.sql, {"code": self.w.code, "lo": self.w.lo, "hi": self.w.hi}).fetchall()

    def lines(self, rows) -> dict:
        return {self.w.key(s, g, r): (ms, n) for s, g, r, ms, n in rows}


def load_sqlite(path: Path, rows: dict, chunk: int = 1_000_000) -> None:
    con = sqlite3.connect(str(path))
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    names = [name for name, _, _ in TABLE]
    con.execute(f"CREATE TABLE events ({', '.join(f'{n} INTEGER NOT NULL' for n in names)})")
    n = len(rows["sub"])
    insert = f"INSERT INTO events VALUES ({', '.join('?' * len(names))})"
    for lo in range(0, n, chunk):
        con.executemany(insert, zip(*(rows[k][lo:lo + chunk].tolist() for k in names)))
    con.commit()
    con.close()


class ClickHouseSql:
    name = "ClickHouse SQL"

    def __init__(self, w: Workload, binary: str):
        self.w = w
        self.server = ClickHouse(binary)
        self.threads = "max_threads"

    def __enter__(self):
        self.server.__enter__()
        try:
            self._load()
        except BaseException:
            self.server.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        self.server.__exit__(*exc)

    def _load(self, chunk: int = 1_000_000) -> None:
        q = self.server.query
        self.version = q("SELECT version()").decode().strip()
        self.threads = q("SELECT value FROM system.settings WHERE name = 'max_threads'").decode().strip()
        cols = ", ".join(f"{name} {ch}" for name, _, ch in TABLE)
        q(f"CREATE TABLE events ({cols}) ENGINE = MergeTree() ORDER BY (sub, ts)")
        packed = np.dtype([(name, np.dtype(t).newbyteorder("<")) for name, t, _ in TABLE])  # RowBinary layout
        n = len(self.w.rows["sub"])
        for lo in range(0, n, chunk):
            rec = np.empty(min(chunk, n - lo), packed)
            for name, _, _ in TABLE:
                rec[name] = self.w.rows[name][lo:lo + chunk]
            q("INSERT INTO events FORMAT RowBinary", rec.tobytes())
        q("OPTIMIZE TABLE events FINAL")

    def run(self):
        return self.server.query(CLICKHOUSE_SQL.format(code=self.w.code, lo=self.w.lo, hi=self.w.hi))

    def lines(self, body: bytes) -> dict:
        out = {}
        for row in body.decode().splitlines():
            s, g, r, ms, n = map(int, row.split("\t"))
            out[self.w.key(s, g, r)] = (ms, n)
        return out


class BareNumba:
    name = "bare numba loop"
    threads = "1"

    def __init__(self, w: Workload):
        self.w = w
        c = w.cols
        self.gpu_types = np.unique(c.dim("gpu_type"))
        self.regions = np.unique(c.dim("region"))
        self.n_sub = int(c.subscription.max()) + 1 if c.n else 0
        self.args = (c.subscription, c.code, c.timestamp_ms, c.dim("gpu_type"), c.dim("region"),
                     *c.numeric("gpu_count"), *c.numeric("duration_seconds"), w.code, w.lo, w.hi,
                     _index_of(self.gpu_types, len(c.strings)), _index_of(self.regions, len(c.strings)))

    def run(self):
        ng, nr = len(self.gpu_types), len(self.regions)
        acc = np.zeros(self.n_sub * ng * nr, np.int64)
        cnt = np.zeros(self.n_sub * ng * nr, np.int64)
        bad = _bare_loop(*self.args, ng, nr, acc, cnt)
        if bad >= 0:
            raise Disagreement(f"bare numba loop: row {bad} is outside what it holds "
                               "(an exponent or a missing dimension)")
        slots = np.flatnonzero(cnt)
        return slots, acc[slots], cnt[slots]

    def lines(self, raw) -> dict:
        ng, nr = len(self.gpu_types), len(self.regions)
        out = {}
        for slot, ms, n in zip(*(a.tolist() for a in raw)):
            s, rest = divmod(slot, ng * nr)
            g, r = divmod(rest, nr)
            out[self.w.key(s, int(self.gpu_types[g]), int(self.regions[r]))] = (ms, n)
        return out


def _index_of(ids: np.ndarray, size: int) -> np.ndarray:
    """string id -> position in ``ids`` (-1 elsewhere)."""
    out = np.full(max(size, 1), -1, np.int64)
    out[ids[ids >= 0]] = np.flatnonzero(ids >= 0)
    return out


@njit(cache=True, nogil=True)
def _bare_loop(sub, code, ts, gpu_type, region, gc_m, gc_e, d_m, d_e, want, lo, hi, g_of, r_of, ng, nr, acc, cnt):
    for i in range(sub.shape[0]):
        if code[i] != want or ts[i] < lo or ts[i] > hi:
            continue
        ge = gc_e[i] + MILLI
        de = d_e[i] + MILLI
        if gpu_type[i] < 0 or region[i] < 0 or ge < 0 or ge > MILLI or de < 0 or de > MILLI:
            return i
        slot = (sub[i] * ng + g_of[gpu_type[i]]) * nr + r_of[region[i]]
        ms = d_m[i] * POW10[de]
        acc[slot] += gc_m[i] * POW10[ge] * max(60, (ms + 999) // 1000)
        cnt[slot] += 1
    return -1


# ---------------------------------------------------------------- agreement


def compare(results: dict) -> None:
    """Every engine's full result set equals the first's, exactly; else ``Disagreement``
    naming up to five differing lines per engine."""
    (base_name, base), *others = results.items()
    problems = []
    for name, got in others:
        keys = sorted(set(base) | set(got), key=lambda k: tuple(str(x) for x in k))
        bad = [k for k in keys if base.get(k) != got.get(k)]
        if bad:
            shown = "; ".join(f"{k}: {base_name} {base.get(k)} vs {got.get(k)}" for k in bad[:5])
            problems.append(f"{name} differs from {base_name} on {len(bad)} of {len(keys)} lines "
                            f"(gpu_ms, events): {shown}")
    if problems:
        raise Disagreement("\n".join(problems))


def first_results(engines: list) -> dict:
    """One untimed run of each engine (warms it up), as comparable line sets."""
    return {e.name: e.lines(e.run()) for e in engines}


def check_agreement(w: Workload, db: Path) -> dict:
    """gpubill, SQLite (a new file ``db``) and the bare numba loop; raises ``Disagreement``."""
    with Sqlite(w, db) as sq:
        results = first_results([Gpubill(w), sq, BareNumba(w)])
    compare(results)
    return results


# --------------------------------------------------------------------- timing


def best_of(engine, k: int) -> float:
    times = []
    for _ in range(k):
        t = time.perf_counter()
        engine.run()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(engine, repeat: int) -> tuple[dict, float]:
    """(its lines, from a first untimed run; its best time)."""
    lines = engine.lines(engine.run())
    return lines, best_of(engine, repeat)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _clickhouse(w: Workload, repeat: int, skip: bool):
    """(name, lines, best seconds, threads) for ClickHouse, or None with the reason printed."""
    if skip:
        print("ClickHouse: skipped (--no-clickhouse)")
        return None
    binary = server_binary()
    if binary is None:
        print("ClickHouse: skipped: clickhouse-server is not installed "
              "(apt-get install -y clickhouse-server clickhouse-client)")
        return None
    t = time.perf_counter()
    with ClickHouseSql(w, binary) as ch:
        loaded = time.perf_counter() - t
        lines, best = measure(ch, repeat)
        print(f"ClickHouse {ch.version} on 127.0.0.1:{ch.server.http_port}: started and loaded in {loaded:.1f} s")
        return ch.name, lines, best, ch.threads


def print_table(n: int, rows: list) -> None:
    ch = next((t for name, _, t in rows if name.startswith("ClickHouse")), None)
    print(f"{'engine':22s} {'threads':>7s} {'time':>10s} {'events/s':>12s} {'vs ClickHouse':>14s}")
    for name, threads, t in rows:
        vs = f"{ch / t:.2f}x" if ch else "-"
        print(f"{name:22s} {threads:>7s} {t * 1e3:8.1f} ms {n / t / 1e6:8.1f} M/s {vs:>14s}")
    print("vs ClickHouse: ClickHouse's time / the engine's (above 1: faster than ClickHouse)")


def run(args, folder: Path) -> None:
    t = time.perf_counter()
    w = Workload(args.events, args.subs, folder / "catalog")
    print(f"workload: {args.events:,} events ({int((w.cols.code == w.code).sum()):,} {EVENT_CODE}), "
          f"{args.subs:,} subscriptions, period {PERIOD}; built in {time.perf_counter() - t:.1f} s")
    results, rows = {}, []

    def record(name, lines, best, threads):
        results[name] = lines
        rows.append((name, threads, best))

    gb = Gpubill(w)
    record(gb.name, *measure(gb, args.repeat), gb.threads)
    ch = _clickhouse(w, args.repeat, args.no_clickhouse)
    if ch:
        record(*ch)
    t = time.perf_counter()
    with Sqlite(w, folder / "peer.db") as sq:
        print(f"SQLite {sqlite3.sqlite_version}: loaded in {time.perf_counter() - t:.1f} s")
        record(sq.name, *measure(sq, args.sqlite_repeat), sq.threads)
    bn = BareNumba(w)
    record(bn.name, *measure(bn, args.repeat), bn.threads)
    compare(results)
    lines = next(iter(results.values()))
    print(f"agreement: {len(results)} engines, {len(lines):,} lines (subscription x gpu_type x region), "
          f"GPU-milliseconds and event counts equal on every line")
    print_table(args.events, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--subs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5, help="best of N for gpubill, ClickHouse and numba")
    ap.add_argument("--sqlite-repeat", type=int, default=2, help="best of N for SQLite")
    ap.add_argument("--no-clickhouse", action="store_true")
    args = ap.parse_args()
    print(f"load average before: {_load()} on {os.cpu_count()} CPUs")
    folder = Path(tempfile.mkdtemp(prefix="gpubill-peer-"))
    try:
        run(args, folder)
    except (Disagreement, ClickHouseError) as e:
        print(f"peer: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        print(f"load average after: {_load()}   (other processes' load lowers every figure)")


if __name__ == "__main__":
    main()
