"""The local cluster harness (gpubill/cluster/local.py) against real servers.

A Distributed table over two ReplacingMergeTree shards on ClickHouse 18.16: rows land on both
shards, GROUP BY sums across them, FINAL (through the Distributed table) counts a re-sent event once,
a stopped shard makes a Distributed SELECT fail rather than answer short. Redis: an acknowledged
XADD survives kill -9. And the harness itself: a server that cannot start says why, with its log.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from gpubill.cluster import local

DB = "h1_harness"
COLUMNS = "(sub String, txn String, ver UInt64, amount Decimal(38, 12))"
SYNC = {"insert_distributed_sync": 1}
ROOT = Path(__file__).resolve().parents[2]

# 40 subscriptions x 5 events; then txn s3/t1 sent again with a newer version and another amount.
ROWS = [(f"s{s}", f"t{t}", 1, Decimal(s) + Decimal(t) / 100) for s in range(40) for t in range(5)]
RESENT = ("s3", "t1", 2, Decimal("7.250000000001"))


def expected_totals(final: bool) -> dict[str, tuple[int, Decimal]]:
    """(count, sum) per sub, computed here: with final, the resent event replaces its first version."""
    rows = {(sub, txn): (ver, amount) for sub, txn, ver, amount in ROWS}
    if final:
        rows[RESENT[:2]] = RESENT[2:]
        items = [(sub, amount) for (sub, _), (_, amount) in rows.items()]
    else:
        items = [(sub, amount) for sub, _, _, amount in ROWS + [RESENT]]
    totals: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])
    for sub, amount in items:
        totals[sub][0] += 1
        totals[sub][1] += amount
    return {sub: (n, total) for sub, (n, total) in totals.items()}


@pytest.fixture(scope="module")
def events(clickhouse_cluster):
    """DB.events on each shard (ReplacingMergeTree(ver)) and DB.events_all over them (Distributed),
    filled through the Distributed table from shard 0."""
    for i in range(len(clickhouse_cluster.shards)):
        c = clickhouse_cluster.client(i)
        c.execute(f"DROP DATABASE IF EXISTS {DB}")
        c.execute(f"CREATE DATABASE {DB}")
        c.execute(f"CREATE TABLE {DB}.events {COLUMNS} ENGINE = ReplacingMergeTree(ver) ORDER BY (sub, txn)")
        c.execute(f"CREATE TABLE {DB}.events_all {COLUMNS} "
                  f"ENGINE = Distributed(gpubill, {DB}, events, cityHash64(sub))")
    c = clickhouse_cluster.client(0)
    c.execute(f"INSERT INTO {DB}.events_all VALUES", ROWS, settings=SYNC)
    c.execute(f"INSERT INTO {DB}.events_all VALUES", [RESENT], settings=SYNC)
    return clickhouse_cluster


def totals(client, table: str, final: bool = False) -> dict[str, tuple[int, Decimal]]:
    rows = client.execute(f"SELECT sub, count(), sum(amount) FROM {DB}.{table} {'FINAL' if final else ''} "
                          "GROUP BY sub")
    return {sub: (n, total) for sub, n, total in rows}


# --- the harness ------------------------------------------------------------------------------------


def test_each_shard_is_its_own_server(clickhouse_cluster):
    addresses = clickhouse_cluster.addresses
    assert len(addresses) == 2 and len(set(addresses)) == 2
    assert all(host == "127.0.0.1" for host, _ in addresses)
    assert clickhouse_cluster.url("events") == f"clickhouse://127.0.0.1:{addresses[0][1]}/events?cluster=gpubill"
    for i, shard in enumerate(clickhouse_cluster.shards):
        assert clickhouse_cluster.client(i).execute("SELECT version()")[0][0].startswith("18.")
        with urllib.request.urlopen(f"http://127.0.0.1:{shard.http_port}/", timeout=5) as answer:
            assert answer.read() == b"Ok.\n"
    # The cluster, as each server reads it: one shard per server, in order.
    for i in range(2):
        rows = clickhouse_cluster.client(i).execute(
            "SELECT shard_num, port FROM system.clusters WHERE cluster = 'gpubill' ORDER BY shard_num")
        assert rows == [(1, addresses[0][1]), (2, addresses[1][1])]


def test_servers_missing_names_what_is_absent(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(local, "_EXTRA_BIN_DIRS", ())
    reason = local.servers_missing()
    assert reason is not None
    assert "clickhouse-server" in reason and "redis-server" in reason


@pytest.mark.parametrize("ci, outcome, rc", [("true", "1 error", 1), ("", "1 skipped", 0)])
def test_missing_servers_skip_locally_and_fail_on_ci(ci, outcome, rc):
    # The fixtures ask local.servers_missing(); make it report a missing server in a child pytest.
    code = ("import sys, pytest\n"
            "from gpubill.cluster import local\n"
            "local.servers_missing = lambda: 'not installed: redis-server'\n"
            "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-p', 'no:xdist', "
            f"'{Path(__file__)}::test_redis_aof_survives_kill9']))\n")
    env = dict(os.environ, CI=ci)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert outcome in done.stdout and done.returncode == rc, done.stdout + done.stderr
    assert ("CI must run the cluster tests" in done.stdout) == (ci == "true")


def test_a_server_that_cannot_start_says_why(cluster_servers, tmp_path, monkeypatch):
    # Its port is taken (by a socket listening here): start fails with the server's log tail,
    # and leaves no process behind.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        monkeypatch.setattr(local, "free_ports", lambda n: [busy] * n)
        cluster = local.LocalClickHouse(tmp_path, shards=1, timeout=30, attempts=1)
        with pytest.raises(local.ServerStartError) as failed:
            cluster.start()
        message = str(failed.value)
        assert "exited with code" in message and "Address already in use" in message
        assert "server.err.log" in message
        assert not cluster.shards[0].running


def test_a_taken_port_is_chosen_again(cluster_servers, tmp_path, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        real = local.free_ports
        tries = iter([[busy, busy]])
        monkeypatch.setattr(local, "free_ports", lambda n: next(tries, None) or real(n))
        with local.LocalClickHouse(tmp_path, shards=1, timeout=30, attempts=2) as cluster:
            assert cluster.addresses[0][1] != busy
            assert cluster.client(0).execute("SELECT 1") == [(1,)]
        assert not cluster.shards[0].running


# --- a Distributed table over the shards --------------------------------------------------------------


def test_rows_land_on_both_shards(events):
    counts = [events.client(i).execute(f"SELECT count() FROM {DB}.events")[0][0] for i in range(2)]
    assert all(n > 0 for n in counts)
    assert sum(counts) == len(ROWS) + 1
    # Each sub lives on exactly one shard.
    subs = [set(s for (s,) in events.client(i).execute(f"SELECT DISTINCT sub FROM {DB}.events")) for i in range(2)]
    assert not subs[0] & subs[1] and len(subs[0] | subs[1]) == 40


def test_group_by_through_the_distributed_table_sums_across_shards(events):
    for i in range(2):  # from either server
        assert totals(events.client(i), "events_all") == expected_totals(final=False)


def test_final_through_the_distributed_table_counts_a_resent_event_once(events):
    c = events.client(0)
    assert c.execute(f"SELECT count() FROM {DB}.events_all")[0][0] == len(ROWS) + 1
    assert c.execute(f"SELECT count() FROM {DB}.events_all FINAL")[0][0] == len(ROWS)
    by_sub = totals(c, "events_all", final=True)
    assert by_sub == expected_totals(final=True)
    assert by_sub["s3"][1] == sum(a for s, t, _, a in ROWS if s == "s3" and t != "t1") + RESENT[3]
    # FINAL runs on each shard: the same as adding up each shard's own FINAL (a sub is on one shard).
    per_shard: dict[str, tuple[int, Decimal]] = {}
    for i in range(2):
        per_shard.update(totals(events.client(i), "events", final=True))
    assert per_shard == by_sub


def test_a_stopped_shard_fails_a_distributed_select(events):
    from clickhouse_driver.errors import ServerException

    c = events.client(0)
    events.stop_shard(1)
    try:
        assert not events.shards[1].running
        with pytest.raises(ServerException) as failed:
            c.execute(f"SELECT count() FROM {DB}.events_all")
        assert failed.value.code == 279  # ALL_CONNECTION_TRIES_FAILED, not a short count
        with pytest.raises(ServerException):
            c.execute(f"INSERT INTO {DB}.events_all VALUES", [("s99", "t0", 1, Decimal(1))], settings=SYNC)
    finally:
        events.start_shard(1)
    assert totals(c, "events_all") == expected_totals(final=False)  # the shard came back with its data


def test_a_killed_shard_restarts_with_its_data(events):
    events.kill9_shard(0)
    assert not events.shards[0].running
    events.start_shard(0)
    assert totals(events.client(1), "events_all", final=True) == expected_totals(final=True)


# --- Redis ------------------------------------------------------------------------------------------------


def test_redis_is_configured_for_durable_acknowledgements(redis_server):
    r = redis_server.client(decode_responses=True)
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert r.config_get("appendonly") == {"appendonly": "yes"}
    assert r.config_get("appendfsync") == {"appendfsync": "always"}
    assert r.config_get("save") == {"save": ""}
    assert r.config_get("dir")["dir"] == str(redis_server.directory)


def test_redis_aof_survives_kill9(redis_server):
    first = redis_server.client(decode_responses=True)
    entry = first.xadd("h1:intake", {"sub": "s1", "amount": "1.5"})
    redis_server.kill9()
    assert not redis_server.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", redis_server.port), timeout=1).close()
    redis_server.restart()
    assert redis_server.client(decode_responses=True).xrange("h1:intake") == [
        (entry, {"sub": "s1", "amount": "1.5"})]
