"""`gpubill serve --workers N`: N processes on one port and one store; dedup stays exact across them."""

import os
import signal
import threading
import time

import httpx

from gpubill.store import Store

from serverkit import Server, make_key

TS = 1_735_689_600


def event(txn: str, gpu_count: int = 1) -> dict:
    return {"transaction_id": txn, "external_subscription_id": f"s{len(txn) % 3}", "code": "gpu_job",
            "timestamp": TS, "properties": {"gpu_count": gpu_count}}


def workers_of(srv: Server) -> list[int]:
    with open(f"/proc/{srv.proc.pid}/task/{srv.proc.pid}/children") as f:
        return [int(p) for p in f.read().split()]


def concurrently(*jobs) -> None:
    threads = [threading.Thread(target=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def post(srv: Server, key: str, path: str, body: dict) -> httpx.Response:
    """On a fresh connection each time, so that every worker gets requests."""
    return httpx.post(srv.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_two_workers_store_resent_and_overlapping_batches_once_and_refuse_conflicts(tmp_path):
    store = str(tmp_path / "s.db")
    key = make_key(store, "w", "writer")
    srv = Server(store, "--workers", "2").start()
    batches = [[event(f"t{b * 20 + i}") for i in range(20)] for b in range(8)]
    # each batch as it is, and one overlapping its neighbour by half, sent by four clients at once
    overlapping = [batches[b][10:] + batches[(b + 1) % 8][:10] for b in range(8)]
    answers: list[int] = []
    won: dict = {}
    lost: dict = {}

    def sender(order):
        for body in order:
            answers.append(post(srv, key, "/api/v1/events/batch", {"events": body}).status_code)

    def rival(gpu_count: int):  # the same transaction ids with other content, from two clients at once
        for k in range(10):
            r = post(srv, key, "/api/v1/events", {"event": event(f"c{k}", gpu_count)})
            if r.status_code == 200:
                won.setdefault(k, []).append(gpu_count)
            else:
                assert r.status_code == 422 and r.json()["error_details"] == {"transaction_id": ["value_already_exist"]}
                lost.setdefault(k, []).append(gpu_count)
    try:
        assert len(workers_of(srv)) == 2
        concurrently(lambda: sender(batches + overlapping), lambda: sender(overlapping[::-1] + batches),
                     lambda: sender(batches[::-1]), lambda: sender(overlapping), lambda: rival(1), lambda: rival(2))
        for b in batches:  # every one again: duplicates, a success
            assert post(srv, key, "/api/v1/events/batch", {"events": b}).status_code == 200
    finally:
        srv.stop()
    assert answers == [200] * len(answers) and len(answers) == 48
    assert all(len(won[k]) == 1 and len(lost[k]) == 1 for k in range(10))
    with Store(store) as s:
        stored = s.list_events(limit=10_000)
        assert sorted(r.transaction_id for r in stored) == sorted([f"t{i}" for i in range(160)]
                                                                  + [f"c{k}" for k in range(10)])
        assert {r.transaction_id: r.properties["gpu_count"] for r in stored if r.transaction_id[0] == "c"} == \
            {f"c{k}": won[k][0] for k in range(10)}
        assert s.stats()["conflicts"] == 10
    assert not os.path.exists(f"/proc/{srv.proc.pid}")


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    store = str(tmp_path / "s.db")
    make_key(store, "w", "writer")
    srv = Server(store, "--workers", "2").start()
    workers = workers_of(srv)
    try:
        assert httpx.get(srv.url + "/healthz", timeout=10).status_code == 200
        srv.kill()
        deadline = time.monotonic() + 20
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers)
    finally:
        srv.stop()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (an orphaned worker is reaped by init once it exits)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
