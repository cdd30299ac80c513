"""The examples' month from the cluster: the same invoices, byte for byte, as from the SQLite store.

A demo month (invoiced through the lifecycle: finalized invoices, late events,
credit notes) is moved into a real 2-shard ClickHouse with `gpubill
migrate-events`; a copy of the store file with its events deleted is the
control store. Every command then gives the same output with `--events` as
the original file does alone, which proves the events came from the cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpubill.cluster import schema
from gpubill.cluster.store import open_cluster_events
from gpubill.store import Store

ROOT = Path(__file__).resolve().parents[2]
PERIODS = ("2026-10", "2026-11")


def gpubill(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpubill", *map(str, args)], capture_output=True, cwd=ROOT,
                          env={**os.environ, "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cluster-demo") / "demo"
    r = gpubill("demo", "--contracts", "examples", "--dir", folder, "--period", "2026-11", "--events", "6000",
                "--seed", "7")
    assert r.returncode == 0, r.stderr
    return folder / "gpubill.db"


@pytest.fixture(scope="module")
def moved(demo, clickhouse_cluster, tmp_path_factory):
    """(SQLite store, control store without events, cluster URL) after `gpubill migrate-events`."""
    url = clickhouse_cluster.url("invoices_demo")
    r = gpubill("migrate-events", "--store", demo, "--events", url, "--format", "json")
    assert r.returncode == 0, r.stderr
    control = tmp_path_factory.mktemp("control") / "control.db"
    shutil.copy(demo, control)
    db = sqlite3.connect(control)
    db.execute("DELETE FROM column_blocks")
    db.commit()
    db.close()
    return demo, control, url, json.loads(r.stdout)


def test_migrate_moves_every_event_quarantine_row_and_conflict(moved):
    demo, _, url, summary = moved
    with Store(demo, readonly=True) as s:
        stats = s.stats()
        n = s.count_events()
        first_page = [(e.id, e.raw, e.received_ms) for e in s.list_events(limit=500)]
        rejected = [(r.raw, r.status, r.reasons) for r in s.list_rejected(status=None)]
    assert summary["events"] == n and summary["watermark"] == stats["events"]
    assert summary["rejected"] == len(rejected) > 0 and summary["conflicts"] == stats["conflicts"] > 0
    ev = open_cluster_events(url)
    try:
        assert ev.count_events() == n
        assert [(e.id, e.raw, e.received_ms) for e in ev.list_events(limit=500)] == first_page
        assert [(r.raw, r.status, r.reasons) for r in ev.list_rejected(status=None)] == rejected
        assert len(ev.list_conflicts()) == summary["conflicts"]
        # both shards hold events: the Distributed table spread the subscriptions
        per_shard = ev.cluster.on_each_shard(f"SELECT count() FROM {ev.db}.events_local")
        assert all(rows[0][0] > 0 for rows in per_shard)
    finally:
        ev.close()


def test_migrate_again_stores_nothing_twice(moved):
    demo, _, url, summary = moved
    r = gpubill("migrate-events", "--store", demo, "--events", url, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == summary
    ev = open_cluster_events(url)
    try:
        assert ev.count_events() == summary["events"]
        assert len(ev.list_rejected(status=None)) == summary["rejected"]
    finally:
        ev.close()


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("fmt", ("json", "csv"))
def test_invoices_are_byte_identical(moved, period, fmt):
    demo, control, url, _ = moved
    embedded = gpubill("invoice", "--store", demo, "--contracts", "examples", "--period", period, "--format", fmt)
    cluster = gpubill("invoice", "--store", control, "--events", url, "--contracts", "examples", "--period", period,
                      "--format", fmt)
    assert embedded.returncode == 0, embedded.stderr
    assert cluster.returncode == 0, cluster.stderr
    assert cluster.stdout == embedded.stdout
    # the control store alone has no events: the same command without --events bills other amounts
    alone = gpubill("invoice", "--store", control, "--contracts", "examples", "--period", period, "--format", fmt)
    assert alone.stdout != embedded.stdout


def test_rate_and_event_listings_are_identical(moved):
    demo, control, url, _ = moved
    for args in (("rate", "--contracts", "examples", "--period", "2026-11", "--format", "json"),
                 ("events", "list", "--all", "--format", "json"),
                 ("events", "rejected", "--all", "--format", "json")):
        embedded = gpubill(*args, "--store", demo)
        cluster = gpubill(*args, "--store", control, "--events", url)
        assert embedded.returncode == 0, embedded.stderr
        assert (cluster.returncode, cluster.stdout) == (0, embedded.stdout), cluster.stderr


def test_reads_are_exact_under_unmerged_duplicates(moved, clickhouse_cluster):
    """Second copies of stored events (as a re-delivered batch leaves them, with later ids) before any merge:
    every read keeps the first copy, so the invoice does not change."""
    demo, control, url, _ = moved
    before = gpubill("invoice", "--store", control, "--events", url, "--contracts", "examples", "--period",
                     "2026-11", "--format", "json")
    ev = open_cluster_events(url)
    try:
        cols = ", ".join(schema.EVENT_COLUMNS)
        rows = ev.cluster.query(f"SELECT {cols} FROM {ev.db}.events FINAL ORDER BY id LIMIT 2000", columnar=True)
        shift = 10_000_000
        rows[0] = [i + shift for i in rows[0]]
        rows[-1] = [schema.ID_VERSION - i for i in rows[0]]
        ev.cluster.insert("events", schema.EVENT_COLUMNS, rows)
        ev.advance_watermark(max(rows[0]))
        raw_count = ev.cluster.query(f"SELECT count() FROM {ev.db}.events")[0][0]
        assert raw_count >= ev.count_events() + 2000  # the copies are there, unmerged
        cols_read = ev.read_columns()
        assert not (cols_read.rowid > shift).any()
        assert len(np.unique(cols_read.rowid)) == cols_read.n
    finally:
        ev.close()
    after = gpubill("invoice", "--store", control, "--events", url, "--contracts", "examples", "--period",
                    "2026-11", "--format", "json")
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout


def test_a_shard_down_fails_reads_clearly(moved, clickhouse_cluster):
    _, control, url, _ = moved
    clickhouse_cluster.stop_shard(1)
    try:
        r = gpubill("invoice", "--store", control, "--events", url, "--contracts", "examples", "--period",
                    "2026-11", "--format", "json")
        listing = gpubill("events", "list", "--store", control, "--events", url)
    finally:
        clickhouse_cluster.start_shard(1)
    for out in (r, listing):
        err = out.stderr.decode()
        assert out.returncode == 3 and out.stdout == b""
        assert err.count("\n") == 1 and "unreachable" in err and "Traceback" not in err, err
    back = gpubill("invoice", "--store", control, "--events", url, "--contracts", "examples", "--period", "2026-11",
                   "--format", "json")
    assert back.returncode == 0, back.stderr


def test_a_malformed_events_url_is_one_line(moved):
    _, control, _, _ = moved
    for url in ("clickhouse://127.0.0.1:1/db", "http://x/db?cluster=c", "clickhouse://127.0.0.1:1/my-db?cluster=c"):
        r = gpubill("events", "list", "--store", control, "--events", url)
        assert r.returncode == 3 and r.stderr.decode().count("\n") == 1, r.stderr
        assert b"clickhouse://HOST:PORT/DATABASE?cluster=NAME" in r.stderr


def test_the_review_screens_read_the_same_from_the_cluster(moved):
    """The TUI's service layer (overview, customers, a customer's usage) over the cluster's events."""
    from gpubill.service.review import ReviewSession, customer_detail, customers, overview
    from gpubill.store.roles import Actor

    demo, control, url, _ = moved
    actor = Actor("ana", "admin")
    clock = lambda: 1_796_000_000_000  # noqa: E731  (2026-12)
    embedded = ReviewSession(str(demo), [str(ROOT / "examples")], actor, now_ms=clock, period="2026-11")
    cluster = ReviewSession(str(control), [str(ROOT / "examples")], actor, now_ms=clock, period="2026-11",
                            events=url)
    try:
        assert overview(cluster) == overview(embedded)
        rows = customers(embedded)
        assert customers(cluster) == rows and rows
        busiest = max(rows, key=lambda r: r.events).who.subscription
        assert customer_detail(cluster, busiest) == customer_detail(embedded, busiest)
    finally:
        embedded.close()
        cluster.close()


def test_refresh_and_finalize_through_the_cluster_match_the_file(moved, tmp_path):
    """The lifecycle (drafts with their event watermarks, late events settled) on copies of both stores."""
    demo, control, url, _ = moved
    a, b = tmp_path / "embedded.db", tmp_path / "control.db"
    shutil.copy(demo, a)
    shutil.copy(control, b)
    for args in (("invoices", "refresh", "--contracts", "examples", "--period", "2026-11"),
                 ("invoices", "finalize", "--contracts", "examples", "--due", "--yes"),
                 ("invoices", "list", "--format", "json")):
        embedded = gpubill(*args, "--store", a)
        cluster = gpubill(*args, "--store", b, "--events", url)
        assert embedded.returncode == 0, embedded.stderr
        assert (cluster.returncode, cluster.stdout) == (0, embedded.stdout), cluster.stderr
    marks = [sqlite3.connect(p).execute("SELECT group_concat(watermark) FROM invoices ORDER BY id").fetchone()
             for p in (a, b)]
    assert marks[0] == marks[1]


def test_show_and_the_http_lookup_find_an_event_by_transaction_id(moved):
    demo, control, url, _ = moved
    with Store(demo, readonly=True) as s:
        some = s.list_events(limit=3, offset=100)
    for e in some:
        embedded = gpubill("events", "show", e.transaction_id, "--store", demo, "--format", "json")
        cluster = gpubill("events", "show", e.transaction_id, "--store", control, "--events", url, "--format", "json")
        assert embedded.returncode == 0 and b'"id":' in embedded.stdout, embedded.stderr
        assert (cluster.returncode, cluster.stdout) == (0, embedded.stdout), cluster.stderr
    missing = gpubill("events", "show", "no-such-transaction", "--store", control, "--events", url)
    assert missing.returncode == 1 and missing.stderr.count(b"\n") == 1


def test_the_portal_reads_the_same_from_the_cluster(moved):
    """The customer portal's data (usage by GPU type, region and day, standing, invoices, a line down to its
    events) over the cluster's events equals the file's."""
    from gpubill.service.events import open_event_store
    from gpubill.service.portal.view import Portal

    demo, control, url, _ = moved
    clock = lambda: 1_796_000_000_000  # noqa: E731  (2026-12)
    contracts = [str(ROOT / "examples")]
    with open_event_store(str(demo), readonly=True, create=False) as a, \
            open_event_store(str(control), readonly=True, create=False, events=url) as b:
        embedded, cluster = Portal(a, contracts, now_ms=clock), Portal(b, contracts, now_ms=clock)
        try:
            for customer in ("meridian-bank", "helix-labs", "lumen-bio"):
                month = embedded.usage(customer, "2026-11")
                assert month.subscriptions[0].events > 0
                assert_same_usage(cluster.usage(customer, "2026-11"), month)
                assert_same_usage(cluster.usage(customer), embedded.usage(customer))
                assert cluster.standing(customer) == embedded.standing(customer)
                listing = embedded.invoices(customer)
                assert cluster.invoices(customer) == listing
                ref = listing.invoices[-1].id
                usage = next(i for i, f in enumerate(embedded.invoice(customer, ref).lines) if f.kind == "usage")
                assert cluster.line(customer, ref, usage) == embedded.line(customer, ref, usage)
        finally:
            embedded.close()
            cluster.close()


def assert_same_usage(got, want) -> None:
    """Equal usage: amounts, lines and counts exactly; GPU-hours (floats for the chart, summed from each store's
    own decimal form of the same values) to 1e-9 of each other."""
    import attrs

    assert len(got.subscriptions) == len(want.subscriptions)
    for g, w in zip(got.subscriptions, want.subscriptions):
        assert attrs.evolve(g, by_gpu_type=(), by_region=(), daily=None) == \
            attrs.evolve(w, by_gpu_type=(), by_region=(), daily=None)
        for rows_g, rows_w in ((g.by_gpu_type, w.by_gpu_type), (g.by_region, w.by_region)):
            assert [attrs.evolve(r, gpu_hours=0.0) for r in rows_g] == [attrs.evolve(r, gpu_hours=0.0) for r in rows_w]
            assert [r.gpu_hours for r in rows_g] == pytest.approx([r.gpu_hours for r in rows_w], rel=1e-9)
        assert (g.daily.days, g.daily.events) == (w.daily.days, w.daily.events)
        assert list(g.daily.series) == list(w.daily.series)
        assert g.daily.totals == pytest.approx(w.daily.totals, rel=1e-9)
        for k in w.daily.series:
            assert g.daily.series[k] == pytest.approx(w.daily.series[k], rel=1e-9)
