"""A throwaway ClickHouse server on 127.0.0.1 for bench/peer.py.

``ClickHouse()`` is a context manager: entering it writes a minimal
``config.xml`` / ``users.xml`` into a fresh temporary directory (data, logs
and temporary files all inside it), starts ``clickhouse-server`` as a child
process listening on two free ports of 127.0.0.1 only (HTTP and native),
and waits until ``/ping`` answers; leaving it stops the server (SIGTERM,
then SIGKILL after 30 s) and removes the directory.  Nothing outside the
directory is read or written: no systemd unit, no /etc/clickhouse-server,
no /var/lib/clickhouse.

Queries and inserts go through the HTTP interface (``query``), so only the
server package is needed.  Install it (Debian, as root)::

    apt-get update && apt-get install -y clickhouse-server clickhouse-client

``server_binary()`` is None where it is not installed; the bench then skips
ClickHouse with a message.  Debian's package is ClickHouse 18.16; the SQL
used by the bench stays within what that version knows.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

# Where Debian puts the server (/usr/sbin is not on every user's PATH).
SERVER_CANDIDATES = ("clickhouse-server", "/usr/sbin/clickhouse-server")
HOST = "127.0.0.1"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30

_CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{dir}/server.log</log>
    <errorlog>{dir}/server.err.log</errorlog>
  </logger>
  <listen_host>{host}</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <path>{dir}/data/</path>
  <tmp_path>{dir}/tmp/</tmp_path>
  <user_files_path>{dir}/user_files/</user_files_path>
  <format_schema_path>{dir}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <keep_alive_timeout>60</keep_alive_timeout>
</yandex>
"""

_USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>{host}</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
"""


class ClickHouseError(Exception):
    """The server could not start, or answered a request with an error."""


def server_binary() -> str | None:
    """The clickhouse-server executable, or None when it is not installed."""
    for name in SERVER_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class ClickHouse:
    """One clickhouse-server child process with its own directory."""

    def __init__(self, binary: str):
        self.binary = binary
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.http_port = 0

    def __enter__(self) -> "ClickHouse":
        self.dir = Path(tempfile.mkdtemp(prefix="gpubill-peer-clickhouse-"))
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _start(self) -> None:
        self.http_port = _free_port()
        tcp_port = _free_port()
        (self.dir / "config.xml").write_text(_CONFIG.format(dir=self.dir, host=HOST, http_port=self.http_port,
                                                            tcp_port=tcp_port))
        (self.dir / "users.xml").write_text(_USERS.format(host=HOST))
        with open(self.dir / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen([self.binary, f"--config-file={self.dir / 'config.xml'}"], cwd=self.dir,
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ClickHouseError(f"clickhouse-server exited with {self.proc.returncode}: {self._log_tail()}")
            try:
                if self._request("GET", "/ping", None) == b"Ok.\n":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise ClickHouseError(f"clickhouse-server did not answer within {START_TIMEOUT_S} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        for name in ("server.err.log", "stdout.log"):
            path = self.dir / name
            if path.exists() and path.stat().st_size:
                lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
                return lines[-1] if lines else "(empty log)"
        return "(no log)"

    def _request(self, method: str, path: str, body: bytes | None) -> bytes:
        conn = http.client.HTTPConnection(HOST, self.http_port, timeout=600)
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            first = data.decode(errors="replace").strip().splitlines()[:1]
            raise ClickHouseError(f"HTTP {resp.status}: {first[0] if first else '(no body)'}")
        return data

    def query(self, sql: str, data: bytes | None = None) -> bytes:
        """Run one statement; ``data`` is the body of an ``INSERT ... FORMAT``.
        Returns the response body (the result in the query's FORMAT)."""
        if data is None:
            return self._request("POST", "/", sql.encode())
        return self._request("POST", "/?" + urllib.parse.urlencode({"query": sql}), data)
