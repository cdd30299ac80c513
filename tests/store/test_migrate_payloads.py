"""A store written by the previous schema (one row per event) opens, migrates in place, and
reads back the same events, quarantine, conflicts and invoices as the gpubill that wrote it.

The store and what that gpubill printed for it are in ``data/schema4`` (its README says how
they were made)."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gpubill.store import Store
from gpubill.store.schema import LATEST

DATA = Path(__file__).parent / "data" / "schema4"
ROOT = Path(__file__).parents[2]


def schema4(path: Path) -> Path:
    with gzip.open(DATA / "store.db.gz") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 4
    return path


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    path = schema4(tmp_path_factory.mktemp("schema4") / "gpubill.db")
    with Store(path):
        pass
    return path


def extra(k: int) -> list:
    """The first ``k`` events of the fixture's extra.jsonl: a duplicate, a conflict, a new event."""
    return [json.loads(line) for line in (DATA / "extra.jsonl").read_text().splitlines()[:k]]


def gpubill(*args) -> str:
    out = subprocess.run([sys.executable, "-m", "gpubill", *args], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout


def lines(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_store_is_at_the_latest_schema_with_events_in_their_blocks(migrated):
    db = sqlite3.connect(migrated)
    assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'events'").fetchone()[0] == 0
    assert db.execute("SELECT sum(n) FROM column_blocks WHERE raw IS NOT NULL").fetchone()[0] == 3001


def test_every_event_reads_back_identical_with_its_id(migrated):
    got = lines(gpubill("events", "list", "--store", str(migrated), "--limit", "100000", "--format", "json"))
    want = lines(gzip.open(DATA / "events.jsonl.gz").read().decode())
    assert len(got) == len(want) == 3001
    assert got == want


@pytest.mark.parametrize("txn, golden", [("sub_lumen_fra-00001016", "show.json"), ("migr-1", "show_migr1.json")])
def test_events_show_is_unchanged(migrated, txn, golden):
    got = gpubill("events", "show", txn, "--store", str(migrated), "--format", "json")
    assert lines(got) == lines((DATA / golden).read_text())


@pytest.mark.parametrize("what, golden", [(("rejected", "--all"), "rejected.json"), (("conflicts",), "conflicts.json")])
def test_quarantine_and_conflicts_are_unchanged(migrated, what, golden):
    got = gpubill("events", *what, "--store", str(migrated), "--format", "json")
    assert lines(got) == lines((DATA / golden).read_text())


def test_the_invoices_are_unchanged(migrated):
    got = gpubill("invoice", "--store", str(migrated), "--contracts", "examples", "--period", "2026-10",
                  "--format", "json")
    assert json.loads(got) == json.loads(gzip.open(DATA / "invoice.json.gz").read())


def test_ingesting_after_the_migration_keeps_dedup_against_migrated_events(migrated, tmp_path):
    path = tmp_path / "again.db"
    shutil.copy(migrated, path)
    with Store(path) as s:
        rec = s.ingest(extra(3))
    assert [r.status for r in rec.results()] == ["duplicate", "conflict", "duplicate"]


def test_a_store_from_schema_1_migrates_through_every_version_and_keeps_its_keys(tmp_path):
    path = schema4(tmp_path / "s.db")
    db = sqlite3.connect(path)  # back to schema 1: unique index, blocks without keys
    db.executescript("ALTER TABLE column_blocks DROP COLUMN keys;"
                     "CREATE UNIQUE INDEX events_key ON events (k1, k2); PRAGMA user_version = 1;")
    db.close()
    with Store(path) as s:
        rec = s.ingest(extra(3) + [{**extra(3)[2], "transaction_id": "migr-new"}])
        assert [r.status for r in rec.results()] == ["duplicate", "conflict", "duplicate", "ingested"]
        assert [e.id for e in s.get_events("migr-1")] == [3035]
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name IN ('events_key', 'events')").fetchone()[0] == 0


def test_events_no_block_covered_get_blocks_of_their_own_with_their_ids(tmp_path):
    path = schema4(tmp_path / "s.db")
    db = sqlite3.connect(path)
    first, n = db.execute("SELECT first_rowid, n FROM column_blocks ORDER BY id LIMIT 1").fetchone()
    db.execute("DELETE FROM block_props WHERE block_id = (SELECT min(id) FROM column_blocks)")
    db.execute("DELETE FROM column_blocks WHERE first_rowid = ?", (first,))  # as if a rebuild had skipped them
    db.commit()
    db.close()
    with Store(path) as s:
        assert s.read_columns().n == 3001
        assert s.ingest(extra(1)).result(0).status == "duplicate"
    got = lines(gpubill("events", "list", "--store", str(path), "--limit", "100000", "--format", "json"))
    assert got == lines(gzip.open(DATA / "events.jsonl.gz").read().decode())
