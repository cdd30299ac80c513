"""Fixtures for the scale-out store's servers: real clickhouse-server and redis-server processes.

One 2-shard ClickHouse cluster and one Redis per test session (per xdist worker), in temporary
folders, stopped when the session ends. Without the servers (or their Python clients) these tests
skip, with the reason, except on CI (CI=true), where .ci/run installs them: there a missing server
fails the tests, so CI never passes by skipping them.
"""

from __future__ import annotations

import os

import pytest

from gpubill.cluster import local


def require_servers() -> None:
    """Skip (fail on CI) when clickhouse-server, redis-server or their Python clients are absent."""
    reason = local.servers_missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the cluster tests, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def cluster_servers() -> None:
    """The servers are installed (else skip, or fail on CI); starts nothing."""
    require_servers()


@pytest.fixture(scope="session")
def clickhouse_cluster(cluster_servers, tmp_path_factory):
    """A running LocalClickHouse: 2 shards, cluster "gpubill"."""
    cluster = local.LocalClickHouse(tmp_path_factory.mktemp("clickhouse"), shards=2)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_server(cluster_servers, tmp_path_factory):
    """A running LocalRedis (AOF, fsync on every write)."""
    server = local.LocalRedis(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
