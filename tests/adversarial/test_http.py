"""The events API under hostile clients, over real HTTP to a real `gpubill serve` subprocess.

Garbage query parameters, clients that hang up or trickle their bodies, batches that mix
invalid and conflicting events, a full or read-only disk under the store, and a sweep of
malformed requests: every one is a 4xx (or a 507/503 for the disk) in Lago's envelope,
never a 5xx for bad input, never a traceback, never a partial batch.
"""

import asyncio
import ctypes
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from gpubill.store import Store

sys.path.insert(0, str(Path(__file__).parents[1] / "server"))
from serverkit import Server, client, make_key  # noqa: E402

TS = 1_735_689_600
DEADLINE_S = 30          # how long to wait for something the server does asynchronously


def ev(txn, sub="sub_1", **props):
    return {"transaction_id": txn, "external_subscription_id": sub, "code": "gpu_job",
            "timestamp": TS, "properties": props}


def stored(srv) -> tuple[int, int]:
    """(events, quarantined payloads) in the server's store."""
    with Store(srv.store) as s:
        return s.count_events(), len(s.list_rejected(status=None, limit=1_000_000))


def raw_request(port: int, data: bytes) -> bytes:
    """Send bytes, return the response's status line (the server closes or answers)."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as s:
        s.sendall(data)
        got = b""
        while b"\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    return got.split(b"\r\n", 1)[0]


def head(method: str, path: str, key: str, length: int | None = None, extra: str = "") -> bytes:
    return raw_head(method.encode(), path.encode(), b"Bearer " + key.encode(), length, extra.encode())


def raw_head(method: bytes, path: bytes, auth: bytes, length: int | None = None, extra: bytes = b"") -> bytes:
    h = method + b" " + path + b" HTTP/1.1\r\nHost: t\r\nAuthorization: " + auth + b"\r\n" + extra
    if length is not None:
        h += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % length
    return h + b"\r\n"


def metric(srv, route: str, code: int) -> int:
    text = httpx.get(srv.url + "/metrics", timeout=DEADLINE_S).text
    want = f'gpubill_http_requests_total{{route="{route}",code="{code}"}} '
    return sum(int(line.split()[-1]) for line in text.splitlines() if line.startswith(want))


def server_errors(srv) -> int:
    """How many 5xx answers the server has counted, all routes."""
    text = httpx.get(srv.url + "/metrics", timeout=DEADLINE_S).text
    return sum(int(line.split()[-1]) for line in text.splitlines()
               if line.startswith("gpubill_http_requests_total{") and 'code="5' in line)


def wait_for(predicate, what: str):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def stop_and_read_log(srv) -> str:
    srv.proc.terminate()
    try:
        _, err = srv.proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        _, err = srv.proc.communicate()
    return err.decode(errors="replace")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("adv") / "s.db")
    writer, reader = make_key(store, "w", "writer"), make_key(store, "r", "viewer")
    srv = Server(store, "--batch-limit", "500", "--max-body", "2").start()
    yield srv, writer, reader
    srv.stop()


# -- 1. query parameters ------------------------------------------------------------------------

BAD_PARAMS = [
    ("page", "100000000000000000"), ("page", "-1"), ("page", "0"), ("page", "abc"), ("page", "1e3"),
    ("page", ""), ("page", "\u0663"), ("page", "+1"), ("page", " 1"), ("page", "1_0"), ("page", "1.0"),
    ("page", "1000000001"), ("per_page", "0"), ("per_page", "1000000000"), ("per_page", "1001"),
    ("per_page", "-5"), ("per_page", "\uff11"),
    ("timestamp_from", "100000000000000000000"), ("timestamp_to", "1e300"), ("timestamp_to", "-1"),
    ("timestamp_from", "99999999999999999999"), ("timestamp_from", "253402300800"),
    ("timestamp_to", "soon"), ("timestamp_from", "2025-01-01T00:00:00"), ("timestamp_to", "nan"),
    ("timestamp_from", ""), ("timestamp_to", "x" * 10_000),
]


@pytest.mark.parametrize("name,value", BAD_PARAMS)
def test_bad_list_parameters_are_400_naming_the_parameter(served, name, value):
    srv, _, reader = served
    with client(srv, reader) as c:
        r = c.get("/api/v1/events", params={name: value})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status"] == 400 and body["error"].startswith(f"BadRequest: {name} ")
    assert list(body["error_details"]) == [name]


def test_list_parameters_at_their_limits_are_accepted(served):
    srv, writer, reader = served
    with client(srv, writer) as c:
        assert c.post("/api/v1/events", json={"event": ev("lim-1")}).status_code == 200
    with client(srv, reader) as c:
        for params in ({"page": "1000000000", "per_page": "1000"}, {"page": "0001"},
                       {"timestamp_from": "0", "timestamp_to": "253402300799.999"},
                       {"timestamp_from": "2025-01-01T00:00:00Z", "timestamp_to": "2025-01-01T00:00:00+00:00"},
                       {"timestamp_from": "2030-01-01T00:00:00Z", "timestamp_to": "2020-01-01T00:00:00Z"}):
            r = c.get("/api/v1/events", params=params)
            assert r.status_code == 200, (params, r.text)
        r = c.get("/api/v1/events", params={"timestamp_from": str(TS), "timestamp_to": str(TS)})
        assert "lim-1" in [e["transaction_id"] for e in r.json()["events"]]


# -- 2. kept-alive connections get TCP_NODELAY ---------------------------------------------------

def test_the_listening_socket_makes_asyncio_set_tcp_nodelay_on_accepted_connections():
    """The path uvicorn takes (loop.create_server(sock=...)) over serve's own listening socket."""
    from gpubill.cli.serve import listen_socket

    async def main():
        seen = asyncio.get_running_loop().create_future()

        async def accepted(reader, writer):
            s = writer.get_extra_info("socket")
            seen.set_result(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        sock = listen_socket("127.0.0.1", 0)
        server = await asyncio.start_server(accepted, sock=sock)
        _, w = await asyncio.open_connection(*sock.getsockname())
        nodelay = await asyncio.wait_for(seen, DEADLINE_S)
        w.close()
        server.close()
        await server.wait_closed()
        return nodelay

    assert asyncio.run(main()) != 0


def _pidfd_getfd(pid: int, fd: int) -> int:
    """A duplicate of another process's descriptor (Linux >= 5.6, needs ptrace rights), or -1."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        return libc.syscall(438, pidfd, fd, 0)
    finally:
        os.close(pidfd)


def _nodelay_of_peer(pid: int, peer) -> list[int]:
    """TCP_NODELAY of process pid's sockets connected to ``peer``."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                continue
        except OSError:   # closed meanwhile
            continue
        dup = _pidfd_getfd(pid, int(fd))
        if dup < 0:
            pytest.skip(f"cannot inspect the server's sockets (errno {ctypes.get_errno()})")
        with socket.socket(fileno=dup) as s:
            try:
                if s.type == socket.SOCK_STREAM and s.getpeername() == peer:
                    found.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            except OSError:   # not connected (the listening socket)
                pass
    return found


def test_the_running_server_sets_tcp_nodelay_on_a_kept_alive_connection(served):
    """Nagle on the server side + the client's delayed ACK cost ~40 ms per kept-alive request."""
    srv, _, _ = served
    if not hasattr(os, "pidfd_open"):
        pytest.skip("needs os.pidfd_open (Linux)")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=DEADLINE_S) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")   # accepted, answered, kept open
        assert conn.recv(4096).startswith(b"HTTP/1.1 200 ")
        found = _nodelay_of_peer(srv.proc.pid, conn.getsockname())
    assert len(found) == 1 and found[0] != 0


# -- 3. clients that hang up or trickle ---------------------------------------------------------

def test_a_client_hanging_up_mid_body_stores_nothing_and_logs_no_traceback(tmp_path):
    store = str(tmp_path / "s.db")
    key = make_key(store, "w", "writer")
    srv = Server(store).start()
    try:
        body = orjson.dumps({"events": [ev("gone-0"), ev("gone-1"), ev("gone-2")]})
        for path in ("/api/v1/events/batch", "/api/v1/events"):
            with socket.create_connection(("127.0.0.1", srv.port)) as s:
                s.sendall(head("POST", path, key, len(body)) + body[: len(body) // 2])
        wait_for(lambda: metric(srv, "batch", 499) == 1 and metric(srv, "create", 499) == 1,
                 "both hang-ups were handled")
        assert stored(srv) == (0, 0)
        with client(srv, key) as c:
            assert c.post("/api/v1/events/batch", content=body).status_code == 200
    finally:
        log = stop_and_read_log(srv)
    assert "Traceback" not in log and "ClientDisconnect" not in log, log


def test_a_trickled_body_blocks_no_one_and_times_out_storing_nothing(tmp_path):
    store = str(tmp_path / "s.db")
    key = make_key(store, "w", "writer")
    srv = Server(store, "--body-timeout", "1").start()
    try:
        body = orjson.dumps({"event": ev("slow-1")})
        with socket.create_connection(("127.0.0.1", srv.port), timeout=DEADLINE_S) as slow:
            slow.sendall(head("POST", "/api/v1/events", key, len(body)) + body[:5])
            with client(srv, key) as c:   # others are served while the slow body is pending
                assert c.post("/api/v1/events", json={"event": ev("fast-1")}).status_code == 200
                assert c.get("/api/v1/events/fast-1").status_code == 200
            slow.sendall(body[5:10])
            answer = b""
            while chunk := slow.recv(4096):   # the server closes the connection after its answer
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b'"status":408' in answer and b"connection: close" in answer.lower()
        with client(srv, key) as c:
            assert c.get("/api/v1/events/slow-1").status_code == 404
        assert stored(srv) == (1, 0)
    finally:
        log = stop_and_read_log(srv)
    assert "Traceback" not in log, log


# -- 5. a batch reports every event refused for a reason of its own ------------------------------

def test_a_batch_with_an_invalid_event_and_a_conflict_reports_both(served):
    srv, writer, _ = served
    with client(srv, writer) as c:
        assert c.post("/api/v1/events", json={"event": ev("cf-1", gpu_count=1)}).status_code == 200
        r = c.post("/api/v1/events/batch", json={"events": [
            ev("cf-new"), ev("cf-1", gpu_count=2), {**ev("cf-bad"), "timestamp": "soon"}]})
        assert r.status_code == 422
        assert r.json()["error_details"] == {"1": {"transaction_id": ["value_already_exist"]},
                                             "2": {"timestamp": ["invalid_format"]}}
        assert c.get("/api/v1/events/cf-new").status_code == 404


def test_a_batch_with_only_a_conflict_reports_it_and_stores_nothing(served):
    srv, writer, _ = served
    with client(srv, writer) as c:
        assert c.post("/api/v1/events", json={"event": ev("cg-1", gpu_count=1)}).status_code == 200
        r = c.post("/api/v1/events/batch", json={"events": [ev("cg-new"), ev("cg-1", gpu_count=2)]})
        assert r.status_code == 422
        assert r.json()["error_details"] == {"1": {"transaction_id": ["value_already_exist"]}}
        assert c.get("/api/v1/events/cg-new").status_code == 404


# -- 6. a full or read-only disk ------------------------------------------------------------------


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            f.write(b"\1" * (4 * 1024 * 1024))
        except OSError:
            pass
    return filler


def _post_until_refused(c, prefix: str):
    """Post 50-event batches until one is refused; return that response."""
    for b in range(200):
        batch = [ev(f"{prefix}-{b}-{i}", job_id="j" * 2000) for i in range(50)]
        r = c.post("/api/v1/events/batch", json={"events": batch})
        if r.status_code != 200:
            return r
    raise AssertionError("the disk never filled")


def test_a_full_disk_is_507_and_unhealthy_until_a_write_succeeds(tiny_disk):
    store = str(tiny_disk / "s.db")
    key = make_key(store, "w", "writer")
    srv = Server(store).start()
    try:
        with client(srv, key) as c:
            assert c.post("/api/v1/events", json={"event": ev("before")}).status_code == 200
            filler = _fill(tiny_disk)
            r = _post_until_refused(c, "full")
            assert r.status_code == 507, r.text
            assert r.json()["status"] == 507 and "full" in r.json()["error"] and "\n" not in r.text
            bad = c.post("/api/v1/events", content=b"{not json")
            assert bad.status_code == 507                      # cannot even be quarantined: retry later
            h = c.get("/healthz")
            assert h.status_code == 503 and "full" in h.json()["reason"]
            assert c.get("/api/v1/events/before").status_code == 200   # reads still work
            filler.unlink()
            assert c.post("/api/v1/events", json={"event": ev("after")}).status_code == 200
            assert c.get("/healthz").json() == {"status": "ok"}
    finally:
        log = stop_and_read_log(srv)
    assert "Traceback" not in log, log


def test_a_failing_write_is_503_and_unhealthy_until_a_write_succeeds(tmp_path):
    """Files the server may not write (RLIMIT_FSIZE 0: every write fails with EFBIG, an I/O error)."""
    store = str(tmp_path / "s.db")
    key = make_key(store, "w", "writer")
    srv = Server(store).start()
    try:
        with client(srv, key) as c:
            assert c.post("/api/v1/events", json={"event": ev("before")}).status_code == 200
            soft, hard = resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE)
            resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (0, hard))
            r = c.post("/api/v1/events/batch", json={"events": [ev("io-1"), ev("io-2")]})
            assert r.status_code == 503 and r.json()["code"] == "store_unavailable", r.text
            h = c.get("/healthz")
            assert h.status_code == 503 and h.json()["status"] == "unhealthy", h.text
            assert c.get("/api/v1/events/before").status_code == 200
            resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
            assert c.get("/healthz").status_code == 503          # until a write succeeds
            assert c.post("/api/v1/events", json={"event": ev("io-3")}).status_code == 200
            assert c.get("/healthz").json() == {"status": "ok"}
            assert c.get("/api/v1/events/io-1").status_code == 404
    finally:
        log = stop_and_read_log(srv)
    assert "Traceback" not in log and log.count("store write failed") == 1, log


# -- probes: no 5xx for any malformed request ------------------------------------------------------

NESTED = b"[" * 100_000 + b"]" * 100_000
BODIES = [b"", b"null", b"[]", b"{}", b"0", b'"x"', b'{"event": null}', b'{"events": null}',
          b'{"events": [null, 1, "x", []]}', b'{"events": {}}', NESTED,
          b'{"event": ' + NESTED + b"}", b'{"events": [' + NESTED + b"]}",
          b'{"event": {"transaction_id": "\\ud800", "code": "c", "external_subscription_id": "s"}}',
          b'{"event": {"transaction_id": "\xed\xa0\x80"}}', b"\xef\xbb\xbf{}",
          b'{"event": {"transaction_id": "t", "timestamp": 1e400}}', b"{not json", b'{"event": {}} x']


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/events/batch"])
@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_malformed_bodies_are_4xx_and_kept(served, path, content_type):
    srv, writer, _ = served
    with client(srv, writer) as c:
        for body in BODIES:
            before = stored(srv)
            r = c.post(path, content=body, headers={"content-type": content_type})
            assert r.status_code in (400, 422) and r.json()["status"] == r.status_code, (body[:60], r.text)
            after = stored(srv)
            assert after[0] == before[0] and after[1] > before[1], body[:60]   # refused, and kept


DEEP = b"[" * 1000 + b"]" * 1000     # parses (orjson allows 1024 levels), but is no event


def test_an_event_nested_a_thousand_deep_is_422_and_kept(served):
    srv, writer, _ = served
    with client(srv, writer) as c:
        for path, body in (("/api/v1/events", b'{"event": ' + DEEP + b"}"),
                           ("/api/v1/events/batch", b'{"events": [' + DEEP + b"]}")):
            before = stored(srv)
            r = c.post(path, content=body)
            assert r.status_code == 422 and r.json()["status"] == 422, r.text
            assert stored(srv)[1] == before[1] + 1


def test_wrong_methods_and_head_requests_are_never_5xx(served):
    srv, writer, _ = served
    with client(srv, writer) as c:
        for path in ("/api/v1/events", "/api/v1/events/batch", "/api/v1/events/x", "/healthz", "/metrics",
                     "/", "/api/v1", "/api/v1/events/x/y"):
            for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"):
                r = c.request(method, path)
                assert r.status_code < 500, (method, path, r.status_code)
        assert c.head("/healthz").status_code == 200 and c.head("/api/v1/events").status_code == 200


def test_hostile_paths_headers_and_keys_are_4xx(served):
    srv, writer, _ = served
    port = srv.port
    errors = server_errors(srv)
    with client(srv, writer) as c:
        assert c.get("/api/v1/events/" + "x" * 10_000).status_code == 404
        assert c.get("/api/v1/events/%ED%A0%80").status_code == 404
        assert c.get("/api/v1/events/%00").status_code == 404
        assert c.get("/api/v1/events?code=%ED%A0%80&external_subscription_id=%00"
                     ).status_code == 200
    for auth in (b"", b"Bearer", b"Bearer ", b"Basic dXNlcjpwdw==", b"Bearer gpb_" + b"x" * 10_000,
                 b"bearer  \t", b"Bearer \xff\xfe", b"Bearer \xc3\xa9", b"Bearer " + writer.encode() + b"x"):
        assert raw_request(port, raw_head(b"GET", b"/api/v1/events", auth)) == b"HTTP/1.1 401 Unauthorized", auth
    bearer = b"Bearer " + writer.encode()
    for req in (raw_head(b"GET", b"/api/v1/events/\xff\xfe", bearer),
                raw_head(b"GET", b"/api/v1/events?page=\xff", bearer),
                raw_head(b"GET", b"/api/v1/events?page=%FF", bearer),
                raw_head(b"GET", b"/api/v1/events", bearer + b"\x00"),
                raw_head(b"GET", b"/api/v1/events/" + b"y" * 100_000, bearer),
                head("POST", "/api/v1/events", writer, extra="Content-Length: -1\r\n"),
                head("POST", "/api/v1/events", writer, extra="Content-Length: 99999999999999999999999\r\n"),
                head("POST", "/api/v1/events", writer, extra="Transfer-Encoding: chunked\r\n") + b"zz\r\n"):
        status = raw_request(port, req)
        assert status.startswith(b"HTTP/1.1 4"), (req[:60], status)
    assert server_errors(srv) == errors
