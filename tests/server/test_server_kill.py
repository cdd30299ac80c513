"""kill -9 while a client streams batches with retries: acknowledged means stored, once."""

import threading
import time

import httpx

from gpubill.store import Store

from serverkit import Server, make_key, wait_ready


def test_sigkill_loses_no_acknowledged_event_and_stores_nothing_else(tmp_path):
    store = str(tmp_path / "s.db")
    key = make_key(store, "w", "writer")
    srv = Server(store).start()
    port = srv.port
    acked: list[str] = []
    sent: set[str] = set()
    stop = threading.Event()
    n_batches = 40

    def stream():
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as c:
            for b in range(n_batches):
                batch = [{"transaction_id": f"b{b}-{i}", "external_subscription_id": f"s{i % 3}",
                          "code": "gpu_job", "timestamp": 1735689600 + i, "properties": {"gpu_count": i}}
                         for i in range(250)]
                sent.update(e["transaction_id"] for e in batch)
                while not stop.is_set():          # retry the same batch until acknowledged
                    try:
                        r = c.post("/api/v1/events/batch", json={"events": batch})
                    except httpx.HTTPError:
                        time.sleep(0.02)
                        continue
                    assert r.status_code == 200, r.text
                    acked.extend(e["transaction_id"] for e in batch)
                    break

    t = threading.Thread(target=stream)
    t.start()
    try:
        for kills in range(3):
            target = (kills + 1) * n_batches * 250 // 5
            deadline = time.monotonic() + 60
            while len(acked) < target and time.monotonic() < deadline and t.is_alive():
                time.sleep(0.005)
            srv.kill()                                   # SIGKILL, mid-stream
            srv = Server(store).start(port=port)         # same port: the client just retries
            wait_ready(srv.url)
        t.join(120)
        assert not t.is_alive()
    finally:
        stop.set()
        srv.stop()
    assert len(acked) == n_batches * 250
    with Store(store) as s:
        rows = s.list_events(limit=10**9)
        cols = s.read_columns()
    txns = [r.transaction_id for r in rows]
    assert len(txns) == len(set(txns)) == len(acked)     # every acknowledged event, exactly once
    assert set(txns) == set(acked) <= sent               # and nothing else
    assert cols.n == len(acked)                          # the columnar side agrees
