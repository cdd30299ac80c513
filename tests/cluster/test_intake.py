"""The Redis Streams intake and `gpubill ingest-worker`, against real servers.

Two `gpubill serve` processes and two ingest workers on one intake, a 2-shard ClickHouse and a Redis
(AOF, fsync always) started by the fixtures: every event the servers acknowledged is stored exactly once,
whatever is re-sent, duplicated, in conflict or invalid, and whatever is killed with SIGKILL (a worker
mid-write, a server under load, Redis itself).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from gpubill.cluster import local
from gpubill.service.events import ACCEPTED, open_event_store

ROOT = Path(__file__).resolve().parents[2]
PY = [sys.executable, "-m", "gpubill"]
TS = 1764000000  # 2025-11-24


def ev(txn: str, sub: str = "s1", n: int = 1) -> dict:
    return {"transaction_id": txn, "external_subscription_id": sub, "code": "gpu_seconds", "timestamp": TS,
            "properties": {"seconds": n}}


class Cluster:
    """One test's cluster: a fresh database, a fresh intake prefix, a control store."""

    def __init__(self, events: str, intake: str, tmp: Path):
        self.events, self.intake, self.tmp = events, intake, tmp
        self.store = str(tmp / "control.db")
        self.procs: list[subprocess.Popen] = []

    def args(self) -> list[str]:
        return ["--store", self.store, "--events", self.events, "--intake", self.intake]

    def open(self):
        return open_event_store(self.store, events=self.events, intake=self.intake)

    def gpubill(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*PY, *argv], capture_output=True, timeout=timeout, cwd=ROOT)

    def key(self) -> str:
        out = self.gpubill("keys", "create", "--name", f"w{uuid.uuid4().hex[:6]}", "--role", "writer",
                           "--store", self.store)
        assert out.returncode == 0, out.stderr
        return out.stdout.decode().strip()

    def serve(self) -> "Server":
        return Server(self).start()

    def worker(self, name: str, *extra: str) -> subprocess.Popen:
        log = open(self.tmp / f"worker-{name}.log", "ab")
        p = subprocess.Popen([*PY, "ingest-worker", *self.args(), "--name", name, "--format", "json",
                              "--lock-ttl", "2", *extra],
                             stdout=subprocess.PIPE, stderr=log, cwd=ROOT)
        log.close()
        self.procs.append(p)
        return p

    def drain(self, *extra: str) -> dict:
        out = self.gpubill("ingest-worker", *self.args(), "--drain", "--claim-after", "0.5", "--format", "json",
                           "--quiet", *extra, timeout=120)
        assert out.returncode == 0, out.stderr.decode()
        return orjson.loads(out.stdout)

    def wait_drained(self, store, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lag = store.intake.lag()
            if lag["pending"] == lag["undelivered"] == lag["events"] == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"the workers did not drain the intake: {lag}")

    def wait_workers(self, store, n: int, timeout: float = 30) -> None:
        """Until ``n`` workers have joined the consumer group (read from the stream once)."""
        r, k = store.intake.conn.redis, store.intake.keys
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if len(r.xinfo_consumers(k.stream, k.group)) >= n:
                    return
            except Exception:  # noqa: BLE001 - no group yet
                pass
            time.sleep(0.1)
        raise AssertionError(f"{n} workers did not start")

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


class Server:
    """A real `gpubill serve --events --intake` on a free port."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.proc = None
        self.url = None

    def start(self) -> "Server":
        self.proc = subprocess.Popen([*PY, "serve", *self.cluster.args(), "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.cluster.procs.append(self.proc)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read().decode()}")
        self.url = line.split()[-1]
        return self

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


@pytest.fixture
def cluster(clickhouse_cluster, redis_server, tmp_path):
    name = f"intake_{uuid.uuid4().hex[:10]}"
    c = Cluster(clickhouse_cluster.url(name), f"{redis_server.url}?prefix={name}", tmp_path)
    yield c
    c.cleanup()


def stored(store) -> list:
    return store.list_events(limit=1_000_000)


def assert_exactly_once(store, expected: set) -> None:
    """Each (subscription, transaction id) in ``expected`` stored once, nothing else; ids unique and under
    the watermark."""
    rows = stored(store)
    keys = [(r.external_subscription_id, r.transaction_id) for r in rows]
    assert len(keys) == len(set(keys)), "an event is stored twice"
    assert set(keys) == expected
    ids = [r.id for r in rows]
    assert len(ids) == len(set(ids))
    assert store.count_events() == len(expected)
    assert store.events.max_id() <= store.event_watermark()
    assert not ids or max(ids) <= store.event_watermark()


def finish(worker: subprocess.Popen) -> dict:
    """SIGTERM a worker; its summary."""
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, out
    return orjson.loads(out)


# --- in-process: the intake's answers and the worker's verdicts ----------------------------------------


def test_accepted_events_are_stored_by_a_worker_with_duplicates_conflicts_and_quarantine(cluster):
    with cluster.open() as st:
        batch = [ev(f"t{i}", f"s{i % 3}") for i in range(50)] + [ev("t1", "s1"), {"transaction_id": "bad"},
                                                                 ev("t2", "s2", n=9)]
        rec = st.ingest(batch, source="test")
        counts = rec.counts()
        assert counts["accepted"] == 52 and counts["rejected"] == 1 and counts["ingested"] == 0
        assert rec.ok is False and [r.index for r in rec.not_ok()] == [51]
        assert set(rec.event_id.tolist()) == {-1}  # the worker gives the ids
        assert st.count_events() == 0 and st.intake.lag()["events"] == 53
        summary = cluster.drain()
        assert (summary["ingested"], summary["duplicate"], summary["conflict"], summary["rejected"]) == (50, 1, 1, 1)
        assert_exactly_once(st, {(f"s{i % 3}", f"t{i}") for i in range(50)})
        (rej,) = st.list_rejected()
        assert rej.raw == b'{"transaction_id":"bad"}' and rej.reasons[0]["field"] == "external_subscription_id"
        assert len(st.list_conflicts()) == 1
        assert st.intake.lag() == {"pending": 0, "undelivered": 0, "events": 0, "oldest_age_s": 0.0}
        k = st.intake.keys
        assert st.intake.conn.redis.xinfo_consumers(k.stream, k.group) == []  # a worker that is done leaves
        # the same batch again: every event a duplicate (or the same conflict), nothing new stored
        st.ingest(batch, source="test")
        again = cluster.drain()
        assert (again["ingested"], again["duplicate"], again["conflict"]) == (0, 51, 1)
        assert st.count_events() == 50


def test_an_atomic_batch_with_an_invalid_event_queues_none_of_its_events(cluster):
    with cluster.open() as st:
        rec = st.ingest([ev("a1"), ev("a2"), {"transaction_id": "x"}], atomic=True)
        assert rec.counts()["aborted"] == 2 and rec.counts()["rejected"] == 1 and "accepted" not in rec.counts()
        assert cluster.drain()["rejected"] == 1
        assert st.count_events() == 0 and len(st.list_rejected()) == 1


def test_a_resubmitted_event_is_stored_and_its_quarantine_row_resolved(cluster, tmp_path):
    with cluster.open() as st:
        st.ingest([{**ev("r1"), "timestamp": "yesterday"}, {**ev("r2"), "timestamp": "yesterday"}])
        cluster.drain()
        rej, rej2 = st.list_rejected()
        rec = st.resubmit(rej.id, ev("r1"))
        assert int(rec.status[0]) == ACCEPTED
        fixed = tmp_path / "fixed.json"
        fixed.write_bytes(orjson.dumps(ev("r2")))
        out = cluster.gpubill("events", "resubmit", str(rej2.id), "--file", str(fixed), *cluster.args())
        assert out.returncode == 0 and out.stdout.decode().strip() == f"{rej2.id}: accepted", out.stderr
        cluster.drain()
        by_txn = {r.transaction_id: r.id for r in stored(st)}
        for q, txn in ((rej, "r1"), (rej2, "r2")):
            again = st.get_rejected(q.id)
            assert again.status == "resubmitted" and again.resolved_event_id == by_txn[txn]
        assert st.list_rejected() == []


def test_a_worker_that_died_mid_write_is_completed_with_the_same_ids(cluster):
    """A worker takes the lock, allocates ids, stores the first of two entries and dies (its lock
    expires): the next worker stores both with exactly those ids, the first one not twice."""
    from gpubill.cluster.worker import Worker, _Prepared
    from gpubill.cluster.intake import Entry

    with cluster.open() as st:
        st.ingest([ev(f"d{i}") for i in range(10)])
        st.ingest([ev(f"e{i}") for i in range(5)] + [{"transaction_id": "bad"}])
        dead = Worker(st.intake, st.events, name="dead")
        dead._group()
        entries = dead._next()
        assert len(entries) == 2
        prepared = [_Prepared([Entry.decode(i, f)]) for i, f in entries]
        token = dead._acquire()
        first = int(dead._alloc(keys=[dead.keys.lock, dead.keys.next_id, dead.keys.inflight],
                                args=[token, 16, ",".join(i.decode() for i, _ in entries), 0]))
        x = prepared[0]
        st.events.store_chunk(x.chunk, x.payload, x.rejected_raw, x.source, x.received,
                              __import__("numpy").arange(first, first + 10))
        st.intake.conn.redis.delete(dead.keys.lock)  # the dead worker's lock expires
        assert st.count_events() == 0  # stored, but not under the watermark yet
        summary = cluster.drain()  # (it merges the two entries into one chunk: the same ids all the same)
        assert summary["completed_for_dead_workers"] == 2
        assert_exactly_once(st, {("s1", f"d{i}") for i in range(10)} | {("s1", f"e{i}") for i in range(5)})
        assert sorted(r.id for r in stored(st)) == list(range(first, first + 15))
        assert [r.id for r in st.list_rejected()] == [first + 15]
        assert st.event_watermark() == first + 15


# --- the command line -------------------------------------------------------------------------------------


def test_ingest_and_status_through_the_intake_and_a_redis_kill9(cluster, tmp_path):
    """`gpubill ingest --events --intake` acknowledges once Redis has the events on disk: a kill -9 of
    Redis loses none of them; while Redis is down, ingest and status fail in one line (exit 3)."""
    redis = local.LocalRedis(tmp_path / "own-redis").start()
    try:
        cluster.intake = f"{redis.url}?prefix=k9"
        data = tmp_path / "events.jsonl"
        data.write_bytes(b"".join(orjson.dumps(ev(f"k{i}", f"s{i % 4}")) + b"\n" for i in range(3000)))
        out = cluster.gpubill("ingest", str(data), *cluster.args(), "--chunk", "1000")
        assert out.returncode == 0, out.stderr
        assert out.stdout.decode().strip().endswith("3000 accepted into the intake, 0 rejected")
        status = cluster.gpubill("status", *cluster.args(), "--format", "json")
        lag = orjson.loads(status.stdout)
        assert (lag["intake_events"], lag["intake_undelivered"], lag["events_watermark"]) == (3000, 3, 0)
        key = cluster.key()
        srv = cluster.serve()
        redis.kill9()
        with srv.client(key) as c:  # the server answers 503 while the intake is down, 202 once it is back
            r = c.post("/api/v1/events", json={"event": ev("h1")})
            assert r.status_code == 503 and r.json()["code"] == "store_unavailable"
            health = c.get("/healthz")
            assert health.status_code == 503 and "intake redis://" in health.text
            down = cluster.gpubill("ingest", str(data), *cluster.args())
            status_down = cluster.gpubill("status", *cluster.args())
            redis.start()
            assert c.post("/api/v1/events", json={"event": ev("h2")}).status_code == 202
            assert c.get("/healthz").status_code == 200
        assert down.returncode == 3
        err = down.stderr.decode().strip()
        assert len(err.splitlines()) == 1 and err.startswith("gpubill: error: intake redis://") and "Traceback" not in err
        assert status_down.returncode == 3 and len(status_down.stderr.decode().strip().splitlines()) == 1
        summary = cluster.drain()
        assert summary["ingested"] == 3001
        with cluster.open() as st:
            assert_exactly_once(st, {(f"s{i % 4}", f"k{i}") for i in range(3000)} | {("s1", "h2")})
        text = cluster.gpubill("status", *cluster.args()).stdout.decode()
        assert "events watermark: 3001" in text and "intake waiting events: 0" in text
    finally:
        redis.stop()


def test_ingest_worker_needs_a_cluster_and_an_intake(cluster):
    out = cluster.gpubill("ingest-worker", "--store", cluster.store, "--drain")
    assert out.returncode == 2 and "needs --events" in out.stderr.decode()


# --- two servers, two workers, HTTP ------------------------------------------------------------------------


def test_two_servers_and_two_workers_store_each_event_once(cluster):
    key = cluster.key()
    a, b = cluster.serve(), cluster.serve()
    w1, w2 = cluster.worker("w1"), cluster.worker("w2")
    with cluster.open() as st:
        cluster.wait_workers(st, 2)
    expected, resent = set(), 0
    with a.client(key) as ca, b.client(key) as cb:
        for k in range(30):
            events = [ev(f"b{k}-{i}", f"s{i % 5}") for i in range(100)]
            expected |= {(e["external_subscription_id"], e["transaction_id"]) for e in events}
            events += [dict(e) for e in events[:5]]  # duplicates inside the batch
            first, other = (ca, cb) if k % 2 == 0 else (cb, ca)
            r = first.post("/api/v1/events/batch", json={"events": events})
            assert r.status_code == 202, r.text
            assert {e["status"] for e in r.json()["events"]} == {"accepted"}
            if k % 3 == 0:  # the same batch re-sent to the other server
                assert other.post("/api/v1/events/batch", json={"events": events}).status_code == 202
                resent += 1
        for i in range(50, 60):  # same keys as batch 1's, other content: conflicts
            r = ca.post("/api/v1/events", json={"event": ev(f"b1-{i}", f"s{i % 5}", n=77)})
            assert r.status_code == 202 and r.json()["event"]["status"] == "accepted"
        for i in range(7):  # invalid: answered at once, quarantined by a worker
            assert cb.post("/api/v1/events", json={"event": {**ev(f"x{i}"), "code": ""}}).status_code == 422
        r = ca.post("/api/v1/events/batch", json={"events": [ev("never-1"), {**ev("never-2"), "timestamp": "not a time"}]})
        assert r.status_code == 422
        assert ca.post("/api/v1/events", content=b"{not json").status_code == 400
        with cluster.open() as st:
            cluster.wait_drained(st)
            metrics = ca.get("/metrics").text
            assert "gpubill_intake_waiting_events 0" in metrics and "gpubill_intake_pending_entries 0" in metrics
            assert 'gpubill_events_total{status="accepted"} ' in metrics
            totals = [finish(w1), finish(w2)]
            total = {k: sum(t[k] for t in totals) for k in ("ingested", "duplicate", "conflict", "rejected")}
            assert total == {"ingested": 3000, "duplicate": 30 * 5 + resent * 105, "conflict": 10, "rejected": 9}
            assert all(t["entries"] > 0 for t in totals)  # both workers took part
            assert_exactly_once(st, expected)
            assert len(st.list_rejected()) == 9 and len(st.list_conflicts()) == 10


# --- kill -9 under streaming load --------------------------------------------------------------------------


class Sender(threading.Thread):
    """Sends batches of new events; records which were acknowledged (2xx) and which were not."""

    def __init__(self, server: Server, key: str, batches: int, size: int, tag: str):
        super().__init__(daemon=True)
        self.server, self.key, self.batches, self.size, self.tag = server, key, batches, size, tag
        self.acked: list[list[dict]] = []
        self.failed: list[list[dict]] = []

    def run(self) -> None:
        with self.server.client(self.key) as c:
            for k in range(self.batches):
                events = [ev(f"{self.tag}{k}-{i}", f"s{i % 7}") for i in range(self.size)]
                try:
                    ok = c.post("/api/v1/events/batch", json={"events": events}).status_code == 202
                except httpx.HTTPError:
                    ok = False
                (self.acked if ok else self.failed).append(events)


def keys_of(batches) -> set:
    return {(e["external_subscription_id"], e["transaction_id"]) for b in batches for e in b}


def test_workers_killed_at_random_moments_lose_and_repeat_nothing(cluster):
    """Two workers, one of them killed with SIGKILL at a random moment again and again (and started again
    under its name) while a client keeps sending: most kills land inside a write (the workers are behind
    the sender), which the other worker, or the restarted one, completes with the same ids."""
    key = cluster.key()
    srv = cluster.serve()
    names = ("f1", "f2")
    workers = {n: cluster.worker(n, "--batch", "300") for n in names}
    with cluster.open() as st:
        cluster.wait_workers(st, 2)
    sender = Sender(srv, key, batches=200, size=150, tag="k")
    sender.start()
    rng = random.Random(7)
    kills = 0
    while sender.is_alive() or kills < 6:
        time.sleep(rng.uniform(0.2, 0.8))
        n = rng.choice(names)
        workers[n].kill()  # SIGKILL
        workers[n].wait()
        kills += 1
        workers[n] = cluster.worker(n, "--batch", "300")
    sender.join()
    assert not sender.failed
    with cluster.open() as st:
        cluster.wait_drained(st)
        for w in workers.values():
            w.terminate()
            w.wait()
        assert_exactly_once(st, keys_of(sender.acked))


def test_a_server_killed_under_load_loses_no_acknowledged_event_and_resends_count_once(cluster):
    key = cluster.key()
    a = cluster.serve()
    worker = cluster.worker("w")
    sender = Sender(a, key, batches=150, size=200, tag="v")
    sender.start()
    while len(sender.acked) < 5:
        time.sleep(0.01)
    a.proc.kill()  # SIGKILL, mid-stream
    a.proc.wait()
    sender.join()
    assert sender.acked and sender.failed, "the kill should fall inside the stream"
    b = cluster.serve()
    with b.client(key) as c:  # the client sends what was not acknowledged again, and a few that were
        for events in sender.failed + sender.acked[:3]:
            assert c.post("/api/v1/events/batch", json={"events": events}).status_code == 202
    with cluster.open() as st:
        cluster.wait_drained(st)
        finish(worker)
        assert_exactly_once(st, keys_of(sender.acked) | keys_of(sender.failed))


def test_entries_of_one_source_are_stored_as_one_chunk_each_event_keeping_its_own_receipt_time(cluster):
    """Three entries merged into one insert: an event repeated across them is a duplicate, each event keeps
    the time its own entry was received, and a timestamp the first entry's window refused stays refused
    although a later entry's window would take it."""
    t0 = 1_900_000_000_000
    late = {**ev("f1"), "timestamp": (t0 + 3_600_000) // 1000}  # an hour past t0, with a zero window
    with cluster.open() as st:
        st.intake.max_future_ms = 0
        assert st.ingest([ev("m1"), late], received_ms=t0).counts()["rejected"] == 1
        st.ingest([ev("m2"), ev("m1")], received_ms=t0 + 5)
        st.ingest([ev("m3"), {**late, "transaction_id": "f2"}], received_ms=t0 + 7_200_000)
        summary = cluster.drain()
        assert (summary["entries"], summary["ingested"], summary["duplicate"], summary["rejected"]) == (3, 4, 1, 1)
        got = {r.transaction_id: r.received_ms for r in stored(st)}
        assert got == {"m1": t0, "m2": t0 + 5, "m3": t0 + 7_200_000, "f2": t0 + 7_200_000}
        (rej,) = st.list_rejected()
        assert rej.received_ms == t0 and b'"f1"' in rej.raw


def test_an_entry_larger_than_a_chunk_is_cut_and_keeps_its_ids(cluster):
    with cluster.open() as st:
        batch = [ev(f"c{i}") for i in range(22)] + [ev("c3"), {"transaction_id": "bad"}, ev("c23")]
        st.ingest(batch)
        summary = cluster.drain("--batch", "10")
        assert (summary["entries"], summary["ingested"], summary["duplicate"], summary["rejected"]) == (1, 23, 1, 1)
        rows = stored(st)
        first = rows[0].id
        assert [r.transaction_id for r in rows] == [f"c{i}" for i in range(22)] + ["c23"]
        assert [r.id for r in rows] == list(range(first, first + 22)) + [first + 24]
        assert [r.id for r in st.list_rejected()] == [first + 23] and st.event_watermark() == first + 24
