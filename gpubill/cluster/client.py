"""Connections to the cluster over ClickHouse's native protocol (clickhouse-driver).

``Cluster`` holds one client for the entry server named by the URL (reads go
through its ``Distributed`` tables, which fan out to every shard) and, on
demand, one per shard (schema, watermarks). Every failure is one line naming
the URL (``StoreError``): a shard that does not answer makes a read fail,
never come back short (``skip_unavailable_shards`` stays 0).
"""

from __future__ import annotations

import logging
import re
import threading

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from gpubill.store.schema import StoreError

from . import schema
from .url import EventsURL

# The driver logs a failed connection with its traceback; gpubill reports it as one line (StoreError): without
# a handler of its own, Python's last-resort handler would print the traceback on stderr.
logging.getLogger("clickhouse_driver").addHandler(logging.NullHandler())

CONNECT_TIMEOUT_S = 3
QUERY_SETTINGS = {
    "max_query_size": 64 << 20,     # a batch's keys go into one IN list
    "skip_unavailable_shards": 0,   # a shard down fails the read (stated, not assumed)
}
_INSERT_SETTINGS = {
    "insert_distributed_sync": 1,   # an insert returns once every shard has its rows
}


class Cluster:
    """The entry server's client and the shards it routes to; thread-safe (one lock per client)."""

    def __init__(self, url: EventsURL):
        self.url = url
        self._lock = threading.Lock()
        self._entry = shard_client(url.host, url.port)
        self._shards: list[tuple[str, int]] | None = None

    def close(self) -> None:
        self._entry.disconnect()

    def query(self, sql: str, params=None, *, columnar: bool = False, external_tables=None):
        """``external_tables``: clickhouse-driver's temporary tables sent with the query (``GLOBAL IN`` ships
        them to the shards as native blocks: no limit on their size, unlike a literal ``IN`` list)."""
        with self._lock:
            return self.run_on(self._entry, sql, params, columnar=columnar, settings=QUERY_SETTINGS,
                             external_tables=external_tables)

    def insert(self, table: str, columns: tuple, data: list) -> None:
        """Rows as columns (one list per column) into a Distributed table; returns once every shard has them."""
        sql = f"INSERT INTO {self.url.database}.{table} ({', '.join(columns)}) VALUES"
        with self._lock:
            self.run_on(self._entry, sql, data, columnar=True, settings=_INSERT_SETTINGS)

    def shards(self) -> list[tuple[str, int]]:
        """(host, port) of each shard of the URL's cluster, in shard order."""
        if self._shards is None:
            rows = self.query("SELECT host_address, port FROM system.clusters WHERE cluster = %(c)s"
                              " ORDER BY shard_num, replica_num", {"c": self.url.cluster})
            if not rows:
                raise StoreError(f"event store {self.url}: the server knows no cluster {self.url.cluster!r}"
                                 " (remote_servers in its config)")
            self._shards = [(h, int(p)) for h, p in rows]
        return self._shards

    def on_each_shard(self, sql: str, params=None, data=None) -> list:
        """Run one statement on every shard directly; their results in shard order."""
        out = []
        for host, port in self.shards():
            c = shard_client(host, port)
            try:
                out.append(self.run_on(c, sql, data if data is not None else params,
                                     columnar=data is not None, settings=_INSERT_SETTINGS))
            finally:
                c.disconnect()
        return out

    def ensure_schema(self) -> None:
        """Create the tables on every shard (idempotent); refuse a cluster written by a newer gpubill."""
        db = self.url.database
        for host, port in self.shards():
            c = shard_client(host, port)
            try:
                for ddl in schema.statements(db, self.url.cluster):
                    self.run_on(c, ddl, None, columnar=False, settings=QUERY_SETTINGS)
                found = self.run_on(c, f"SELECT max(value) FROM {db}.meta_local WHERE name = 'schema'", None,
                                  columnar=False, settings=QUERY_SETTINGS)[0][0]
                if found > schema.SCHEMA_VERSION:
                    raise StoreError(f"event store {self.url}: shard {host}:{port} has cluster schema {found};"
                                     f" this gpubill knows up to {schema.SCHEMA_VERSION} (upgrade gpubill)")
                if found < schema.SCHEMA_VERSION:
                    self.run_on(c, f"INSERT INTO {db}.meta_local (name, value) VALUES",
                              [("schema", schema.SCHEMA_VERSION)], columnar=False, settings=_INSERT_SETTINGS)
            finally:
                c.disconnect()

    def run_on(self, client: Client, sql: str, params, *, columnar: bool, settings: dict, external_tables=None):
        """One statement on ``client`` (the entry server or a shard's); a failure is one ``StoreError`` line."""
        try:
            return client.execute(sql, params, columnar=columnar, settings=settings, external_tables=external_tables)
        except (ch_errors.Error, OSError, EOFError) as e:
            client.disconnect()
            raise StoreError(f"event store {self.url}: {_one_line(e)}") from None


def external_table(name: str, structure: list, rows) -> dict:
    """Tuples as a clickhouse-driver external table of these (name, type) columns: a query names it in
    ``GLOBAL IN`` (shipped to the shards as native blocks; a literal IN list stops at 50 000 elements)."""
    names = [c for c, _ in structure]
    return {"name": name, "structure": structure, "data": [dict(zip(names, r)) for r in rows]}


def ids_table(name: str, ids) -> dict:
    """Event ids as an external table (column ``id``)."""
    return external_table(name, [("id", "Int64")], [(int(i),) for i in ids])


def shard_client(host: str, port: int) -> Client:
    return Client(host, port, connect_timeout=CONNECT_TIMEOUT_S, send_receive_timeout=600)


_ADDRESS = re.compile(r"\(([0-9A-Za-z.:\[\]-]+:[0-9]+)\)")  # "(127.0.0.1:9001)" in a connection error


def _one_line(e: BaseException) -> str:
    """A driver error as one line: ClickHouse's message without its stack trace."""
    if isinstance(e, ch_errors.ServerException):
        text = (e.message or "").split("Stack trace")[0].strip()
        first = text.splitlines()[0] if text else "server error"
        if e.code in (279, 210, 209):  # ALL_CONNECTION_TRIES_FAILED, NETWORK_ERROR, SOCKET_TIMEOUT
            where = _ADDRESS.search(e.message or "")
            shard = f"shard {where.group(1)}" if where else "a shard"
            return f"{shard} is unreachable (all connection tries failed); nothing was read short"
        return first.removeprefix("DB::Exception: ")
    if isinstance(e, (ch_errors.NetworkError, ch_errors.SocketTimeoutError, OSError, EOFError)):
        return f"unreachable: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__
