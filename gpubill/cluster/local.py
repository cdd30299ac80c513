"""Local servers for the scale-out event store: N ClickHouse shards and one Redis, on 127.0.0.1 only.

Receives a directory (a test's temporary folder) and starts, inside it, processes of the installed
``clickhouse-server`` (18.16, Debian's package) and ``redis-server`` (7.0) on free ports. Guarantees:

- ``LocalClickHouse`` runs one clickhouse-server per shard, each with its own data folder, native (tcp)
  and http port, generated ``config.xml`` / ``users.xml`` (user ``default``, no password, small caches and
  thread pools so that several fit on a 2-core machine, logs in the shard's folder) and a
  ``<remote_servers>`` cluster (``gpubill`` by default) holding one shard per server, one replica each,
  ``internal_replication`` false: a ``Distributed(gpubill, db, table, cityHash64(sub))`` table works from
  any server. ``start()`` returns once every shard answers ``SELECT 1`` over the native protocol, or raises
  ``ServerStartError`` carrying the server's log tail.
- ``LocalRedis`` runs redis-server with ``appendonly yes`` and ``appendfsync always`` (a write Redis
  acknowledged is on disk) and no RDB snapshots; ``kill9()`` and ``restart()`` keep its folder, so the AOF
  survives.
- Every process runs in its own session (process group); stopping kills the whole group, and an atexit
  hook kills whatever a caller forgot, so no server outlives the Python process that started it
  (short of that process being killed with SIGKILL itself).

``servers_missing()`` names what is absent (binaries or Python clients), for tests to skip on.
No ``ON CLUSTER`` DDL here: it needs ZooKeeper; create a shard's local tables on each shard.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

HOST = "127.0.0.1"
CLUSTER = "gpubill"
# Where Debian puts clickhouse-server (/usr/sbin), which a non-root PATH may lack.
_EXTRA_BIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")
_LOG_TAIL_LINES = 25


class ServerStartError(RuntimeError):
    """A server did not come up: the message says which, why, and ends with its log's tail."""


def find_binary(name: str) -> str | None:
    """The path of an executable on PATH or in the sbin folders Debian installs servers to."""
    found = shutil.which(name)
    if found:
        return found
    for folder in _EXTRA_BIN_DIRS:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def servers_missing() -> str | None:
    """Why the local servers cannot run here (one line naming everything absent), or None."""
    missing = [name for name in ("clickhouse-server", "redis-server") if find_binary(name) is None]
    for module, dist in (("clickhouse_driver", "clickhouse-driver"), ("redis", "redis")):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{dist} (python)")
    if not missing:
        return None
    return ("not installed: " + ", ".join(missing)
            + " (apt-get install clickhouse-server clickhouse-client redis-server; pip install -e .)")


def free_ports(n: int) -> list[int]:
    """n distinct ports free on 127.0.0.1 now (held together while chosen, so never the same twice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _logs_tail(paths: list[Path]) -> str:
    parts = []
    for path in paths:
        tail = _tail(path)
        if tail.strip():
            parts.append(f"--- {path} (last lines) ---\n{tail}")
    return "\n".join(parts) if parts else "(its logs are empty)"


_LIVE: set[_Process] = set()


@atexit.register
def _kill_forgotten() -> None:
    for proc in list(_LIVE):
        proc.kill9()


@dataclass(eq=False)
class _Process:
    """One server process in its own session; signals go to its whole process group."""

    argv: list[str]
    cwd: Path
    output: Path  # stdout and stderr
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.output, "ab") as out:
            self.popen = subprocess.Popen(self.argv, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        _LIVE.add(self)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the group, SIGKILL if it is not gone within timeout; then reaped."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill9()

    def kill9(self) -> None:
        """SIGKILL to the group (no shutdown of any kind), then reaped."""
        if self.popen is None:
            return
        self._signal_group(signal.SIGKILL)
        self.popen.wait()
        _LIVE.discard(self)

    def rss_bytes(self) -> int | None:
        """Resident memory of the process (Linux /proc), None when not running."""
        if not self.running:
            return None
        try:
            for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None


def _wait_until(ready, proc: _Process, what: str, timeout: float, logs: list[Path]) -> None:
    """Poll ready() until it returns True; ServerStartError if proc exits or timeout passes."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        if not proc.running:
            raise ServerStartError(f"{what} exited with code {proc.returncode} while starting\n"
                                   f"{_logs_tail(logs)}")
        try:
            if ready():
                return
        except Exception as exc:  # noqa: BLE001 - any failure to answer means "not ready yet"
            last_error = exc
        if time.monotonic() > deadline:
            raise ServerStartError(f"{what} did not answer within {timeout:g} s (last error: {last_error})\n"
                                   f"{_logs_tail(logs)}")
        time.sleep(0.05)


def _accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port now."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# --- ClickHouse ------------------------------------------------------------------------------------

_USERS_XML = """<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>8000000000</max_memory_usage>
      <max_threads>2</max_threads>
      <background_pool_size>4</background_pool_size>
      <background_schedule_pool_size>4</background_schedule_pool_size>
      <use_uncompressed_cache>0</use_uncompressed_cache>
      <load_balancing>in_order</load_balancing>
      <!-- an idle connection's handler looks for shutdown every poll_interval s (10 by default):
           with 1, a shard stops in about a second even while clients hold connections -->
      <poll_interval>1</poll_interval>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries><errors>0</errors><result_rows>0</result_rows>
        <read_rows>0</read_rows><execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
"""


@dataclass(eq=False)
class Shard:
    """One clickhouse-server: a shard of the cluster (one replica)."""

    index: int
    directory: Path
    tcp_port: int
    http_port: int
    host: str = HOST
    process: _Process | None = field(default=None, repr=False)

    @property
    def address(self) -> tuple[str, int]:
        """(host, native protocol port)."""
        return (self.host, self.tcp_port)

    @property
    def config(self) -> Path:
        return self.directory / "config.xml"

    @property
    def logs(self) -> list[Path]:
        return [self.directory / "server.err.log", self.directory / "server.log", self.directory / "stdout.log"]

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running


def _clickhouse_config(shard: Shard, cluster: str, shards: list[Shard]) -> str:
    d = shard.directory
    remote = "".join(
        "<shard><internal_replication>false</internal_replication>"
        f"<replica><host>{s.host}</host><port>{s.tcp_port}</port></replica></shard>"
        for s in shards)
    data = escape(str(d / "data")) + "/"
    return f"""<?xml version="1.0"?>
<yandex>
  <logger>
    <level>information</level>
    <log>{escape(str(d / "server.log"))}</log>
    <errorlog>{escape(str(d / "server.err.log"))}</errorlog>
    <size>20M</size>
    <count>1</count>
  </logger>
  <listen_host>{shard.host}</listen_host>
  <tcp_port>{shard.tcp_port}</tcp_port>
  <http_port>{shard.http_port}</http_port>
  <path>{data}</path>
  <tmp_path>{data}tmp/</tmp_path>
  <user_files_path>{data}user_files/</user_files_path>
  <format_schema_path>{data}format_schemas/</format_schema_path>
  <users_config>{escape(str(d / "users.xml"))}</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
  <max_connections>256</max_connections>
  <max_concurrent_queries>32</max_concurrent_queries>
  <keep_alive_timeout>3</keep_alive_timeout>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <remote_servers>
    <{cluster}>{remote}</{cluster}>
  </remote_servers>
</yandex>
"""


class _Servers:
    """``with``: started on entry (stopped again if starting fails), stopped on exit (a subclass's
    ``start()`` returns itself, ``stop()`` stops whatever runs)."""

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


class LocalClickHouse(_Servers):
    """N clickhouse-server processes under ``directory`` forming the cluster ``cluster`` (one shard each).

    Use as a context manager or call ``start()`` then ``stop()`` (in a finally).
    """

    def __init__(self, directory: str | os.PathLike, shards: int = 2, cluster: str = CLUSTER,
                 timeout: float = 60.0, attempts: int = 3):
        if shards < 1:
            raise ValueError("a cluster needs at least one shard")
        self.directory = Path(directory)
        self.cluster = cluster
        self.timeout = timeout
        self.attempts = attempts
        self.n = shards
        self.shards: list[Shard] = []
        self.started_in: float | None = None  # seconds start() took, for the record

    # -- lifecycle

    def start(self) -> LocalClickHouse:
        binary = find_binary("clickhouse-server")
        if binary is None:
            raise ServerStartError(servers_missing() or "clickhouse-server is not installed")
        t0 = time.monotonic()
        for attempt in range(1, self.attempts + 1):
            ports = free_ports(2 * self.n)
            self.shards = [Shard(i, self.directory / f"shard{i}", ports[2 * i], ports[2 * i + 1])
                           for i in range(self.n)]
            try:
                for shard in self.shards:
                    self._write_config(shard)
                    self._spawn(shard, binary)
                for shard in self.shards:
                    self._wait(shard)
                break
            except ServerStartError as exc:
                self.stop()
                # Another process took a port between choosing and binding it: choose again.
                if attempt == self.attempts or "Address already in use" not in str(exc):
                    raise
                for shard in self.shards:
                    shutil.rmtree(shard.directory, ignore_errors=True)
        self.started_in = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop every shard (SIGTERM, then SIGKILL after 15 s)."""
        for shard in self.shards:
            if shard.process is not None:
                shard.process.stop()

    def stop_shard(self, i: int) -> None:
        """Shut shard i down (its port then refuses connections); start_shard(i) brings it back."""
        self.shards[i].process.stop()

    def kill9_shard(self, i: int) -> None:
        """SIGKILL shard i: no shutdown, no flush."""
        self.shards[i].process.kill9()

    def start_shard(self, i: int) -> None:
        """Start shard i again on the same ports and data folder; returns once it answers SELECT 1."""
        shard = self.shards[i]
        if shard.running:
            return
        self._spawn(shard, find_binary("clickhouse-server"))
        self._wait(shard)

    # -- addresses

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, native port) of each shard, in shard order."""
        return [s.address for s in self.shards]

    def url(self, db: str = "default") -> str:
        """The store URL of the cluster through its first server."""
        host, port = self.shards[0].address
        return f"clickhouse://{host}:{port}/{db}?cluster={self.cluster}"

    def client(self, i: int = 0, **kwargs):
        """A clickhouse_driver.Client connected to shard i (keyword arguments go to the Client)."""
        from clickhouse_driver import Client

        host, port = self.shards[i].address
        return Client(host, port=port, **kwargs)

    def rss_bytes(self, i: int) -> int | None:
        """Resident memory of shard i's server."""
        return self.shards[i].process.rss_bytes() if self.shards[i].process else None

    # -- internals

    def _write_config(self, shard: Shard) -> None:
        (shard.directory / "data").mkdir(parents=True, exist_ok=True)
        shard.config.write_text(_clickhouse_config(shard, self.cluster, self.shards))
        (shard.directory / "users.xml").write_text(_USERS_XML)

    def _spawn(self, shard: Shard, binary: str) -> None:
        shard.process = _Process([binary, f"--config-file={shard.config}"], shard.directory,
                                 shard.directory / "stdout.log")
        shard.process.start()

    def _wait(self, shard: Shard) -> None:
        def ready() -> bool:
            if not _accepts(shard.host, shard.tcp_port):  # (clickhouse_driver logs each refused connect)
                return False
            c = self.client(shard.index, connect_timeout=1, send_receive_timeout=2, sync_request_timeout=2)
            try:
                return c.execute("SELECT 1") == [(1,)]
            finally:
                c.disconnect()

        what = f"clickhouse-server shard {shard.index} ({shard.host}:{shard.tcp_port}, {shard.directory})"
        _wait_until(ready, shard.process, what, self.timeout, shard.logs)


def start_clickhouse(directory: str | os.PathLike, shards: int = 2, cluster: str = CLUSTER,
                     timeout: float = 60.0) -> LocalClickHouse:
    """Start a LocalClickHouse of ``shards`` servers; the caller stops it."""
    return LocalClickHouse(directory, shards, cluster, timeout).start()


# --- Redis -----------------------------------------------------------------------------------------


class LocalRedis(_Servers):
    """One redis-server under ``directory``, every acknowledged write fsynced to its AOF."""

    def __init__(self, directory: str | os.PathLike, timeout: float = 30.0):
        self.directory = Path(directory)
        self.timeout = timeout
        self.host = HOST
        self.port: int | None = None
        self.process: _Process | None = None
        self.started_in: float | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def logs(self) -> list[Path]:
        return [self.directory / "redis.log", self.directory / "stdout.log"]

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def client(self, **kwargs):
        """A redis.Redis on database 0 (keyword arguments go to redis.Redis)."""
        import redis

        return redis.Redis(host=self.host, port=self.port, db=0, **kwargs)

    def start(self) -> LocalRedis:
        binary = find_binary("redis-server")
        if binary is None:
            raise ServerStartError(servers_missing() or "redis-server is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        keep_port = self.port is not None  # a restart keeps its port (clients hold the URL)
        for attempt in range(1, 4):
            if not keep_port:
                self.port = free_ports(1)[0]
            self.process = _Process(self._argv(binary), self.directory, self.directory / "stdout.log")
            self.process.start()
            try:
                self._wait()
                break
            except ServerStartError as exc:
                self.process.stop()
                if keep_port or attempt == 3 or "Address already in use" not in str(exc):
                    raise
        self.started_in = time.monotonic() - t0
        return self

    def _argv(self, binary: str) -> list[str]:
        return [binary, "--bind", self.host, "--port", str(self.port), "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"), "--daemonize", "no",
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--protected-mode", "yes"]

    def _wait(self) -> None:
        def ready() -> bool:
            if not _accepts(self.host, self.port):  # (redis-py retries a refused connect, with backoff)
                return False
            c = self.client(socket_connect_timeout=1, socket_timeout=5)
            try:
                return c.ping() is True
            finally:
                c.close()

        what = f"redis-server ({self.host}:{self.port}, {self.directory})"
        _wait_until(ready, self.process, what, self.timeout, self.logs)

    def stop(self) -> None:
        """SIGTERM (Redis fsyncs and exits), SIGKILL after 15 s."""
        if self.process is not None:
            self.process.stop()

    def kill9(self) -> None:
        """SIGKILL: no shutdown; what the AOF holds is what survives."""
        if self.process is not None:
            self.process.kill9()

    def restart(self) -> None:
        """Stop (if running) and start again with the same port and folder (the AOF is replayed)."""
        self.stop()
        self.start()

    def rss_bytes(self) -> int | None:
        return self.process.rss_bytes() if self.process else None


def start_redis(directory: str | os.PathLike, timeout: float = 30.0) -> LocalRedis:
    """Start a LocalRedis; the caller stops it."""
    return LocalRedis(directory, timeout).start()
