"""Slowloris: a client that never completes its request headers is disconnected (`--header-timeout`).

A real `gpubill serve` subprocess on 127.0.0.1 and raw sockets: a client that sends nothing, one
that trickles a header a byte at a time, and one that does so on a kept-alive connection after a
first answered request are each closed by the server long before they would have finished, while
a client that sends its headers at once is served, on a fresh and on a kept-alive connection.
"""

from __future__ import annotations

import socket
import time

import pytest
from serverkit import Server

HEADER_TIMEOUT_S = "1"
TRICKLE_S = 0.05          # one byte per this many seconds
TRICKLE_BYTES = 600       # 30 s of trickling: far past the header timeout
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    srv = Server(str(tmp_path_factory.mktemp("hdr") / "s.db"), "--header-timeout", HEADER_TIMEOUT_S).start()
    yield srv
    srv.stop()
    assert srv.proc.returncode in (0, -15)


def _connect(srv) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=30)


def _closed_by_server(s: socket.socket) -> bool:
    """The server hung up: EOF or a reset on the next read."""
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True


def _trickle_until_closed(s: socket.socket) -> int:
    """Send a never-ending header a byte at a time; the number of bytes sent when the server hung up."""
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
    for sent in range(TRICKLE_BYTES):
        try:
            s.sendall(b"a")
        except (BrokenPipeError, ConnectionResetError):
            return sent
        time.sleep(TRICKLE_S)
    return TRICKLE_BYTES


def _answer(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_a_trickling_client_is_disconnected(served):
    with _connect(served) as s:
        assert _trickle_until_closed(s) < TRICKLE_BYTES
    with _connect(served) as s:   # the server is unharmed
        s.sendall(REQUEST)
        assert _answer(s).startswith(b"HTTP/1.1 200 ")


def test_a_client_that_sends_nothing_is_disconnected(served):
    with _connect(served) as s:
        assert _closed_by_server(s)


def test_the_deadline_starts_again_for_each_request_on_a_kept_alive_connection(served):
    with _connect(served) as s:
        for _ in range(3):   # prompt requests on one connection are all served
            s.sendall(REQUEST)
            assert _answer(s).startswith(b"HTTP/1.1 200 ")
        assert _trickle_until_closed(s) < TRICKLE_BYTES


def test_the_option_is_checked(tmp_path):
    r = Server(str(tmp_path / "s.db"), "--header-timeout", "0")
    with pytest.raises(RuntimeError, match="--header-timeout"):
        r.start()
    r.stop()
