"""The SQLite schema, its versioned migrations, and how a store file is opened.

``PRAGMA user_version`` holds the schema version. Opening a store applies the
migrations it lacks, in one transaction each; a store whose version is newer
than this code knows is refused (``StoreVersionError``), never modified.
``PRAGMA application_id`` marks the file as a gpubill store.

Events live in ``events``: one row per accepted event, keyed by ``id`` (the
ingestion order). The raw JSON payload is the source of truth; the canonical
fields are generated columns read from it, except ``timestamp_ms`` (normalized
to UTC epoch milliseconds) and the 128-bit dedup key ``(k1, k2)``.
``column_blocks``/``block_props`` are the columnar side store, written in the
same transaction as the rows and rebuildable from them.
"""

from __future__ import annotations

import sqlite3

APPLICATION_ID = 0x47505542  # "GPUB"


class StoreError(Exception):
    """A store that cannot be opened or used (I/O, corruption, locking)."""


class StoreVersionError(StoreError):
    """The store was written by a newer gpubill."""


MIGRATIONS: list[str] = [
    # 1: events, quarantine, conflicts, keys, columnar side store, room for invoices/audit.
    """
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        received_ms INTEGER NOT NULL,
        source TEXT NOT NULL,
        n_ingested INTEGER NOT NULL DEFAULT 0,
        n_duplicate INTEGER NOT NULL DEFAULT 0,
        n_conflict INTEGER NOT NULL DEFAULT 0,
        n_rejected INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        k1 INTEGER NOT NULL,
        k2 INTEGER NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        batch_id INTEGER NOT NULL,
        raw TEXT NOT NULL,
        transaction_id TEXT GENERATED ALWAYS AS (raw ->> '$.transaction_id') VIRTUAL,
        external_subscription_id TEXT GENERATED ALWAYS AS (raw ->> '$.external_subscription_id') VIRTUAL,
        code TEXT GENERATED ALWAYS AS (raw ->> '$.code') VIRTUAL,
        properties TEXT GENERATED ALWAYS AS (coalesce(raw -> '$.properties', '{}')) VIRTUAL,
        precise_total_amount_cents TEXT
            GENERATED ALWAYS AS (CAST(raw ->> '$.precise_total_amount_cents' AS TEXT)) VIRTUAL
    );
    CREATE UNIQUE INDEX events_key ON events (k1, k2);
    CREATE TABLE rejected (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER,
        received_ms INTEGER NOT NULL,
        source TEXT NOT NULL,
        position INTEGER,
        raw BLOB NOT NULL,
        reasons TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        resolved_event_id INTEGER
    );
    CREATE INDEX rejected_status ON rejected (status, id);
    CREATE TABLE conflicts (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER,
        received_ms INTEGER NOT NULL,
        source TEXT NOT NULL,
        event_id INTEGER NOT NULL,
        raw BLOB NOT NULL
    );
    CREATE TABLE strings (id INTEGER PRIMARY KEY, s TEXT NOT NULL UNIQUE);
    CREATE TABLE column_blocks (
        id INTEGER PRIMARY KEY,
        first_rowid INTEGER NOT NULL,
        last_rowid INTEGER NOT NULL,
        n INTEGER NOT NULL,
        min_ts INTEGER NOT NULL,
        max_ts INTEGER NOT NULL,
        rowids BLOB,
        ts BLOB NOT NULL,
        code BLOB NOT NULL,
        sub BLOB NOT NULL,
        ptac_m BLOB,
        ptac_e BLOB
    );
    CREATE INDEX column_blocks_last ON column_blocks (last_rowid);
    CREATE TABLE block_props (
        id INTEGER PRIMARY KEY,
        block_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        sid BLOB,
        m BLOB,
        e BLOB
    );
    CREATE INDEX block_props_name ON block_props (name, block_id);
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('writer', 'reader')),
        prefix TEXT NOT NULL,
        hash BLOB NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER
    );
    -- Room for the contracts work: entities, invoices (+ revisions), credit notes, audit log.
    CREATE TABLE billing_entities (id TEXT PRIMARY KEY, body TEXT NOT NULL);
    CREATE TABLE invoices (
        id TEXT PRIMARY KEY,
        entity_id TEXT REFERENCES billing_entities (id),
        external_subscription_id TEXT,
        period_from_ms INTEGER,
        period_to_ms INTEGER,
        status TEXT NOT NULL DEFAULT 'draft',
        number TEXT UNIQUE,
        body TEXT NOT NULL
    );
    CREATE TABLE invoice_revisions (
        invoice_id TEXT NOT NULL REFERENCES invoices (id),
        revision INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (invoice_id, revision)
    );
    CREATE TABLE credit_notes (
        id TEXT PRIMARY KEY,
        invoice_id TEXT NOT NULL REFERENCES invoices (id),
        created_ms INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT,
        body TEXT NOT NULL,
        prev_hash BLOB,
        hash BLOB NOT NULL
    );
    """,
    # 2: the dedup index leaves SQLite for memory (keys.py: a unique B-tree over hashed keys
    # costs a random page per insert); each column block carries its events' keys.
    """
    DROP INDEX events_key;
    ALTER TABLE column_blocks ADD COLUMN keys BLOB;
    """,
]

LATEST = len(MIGRATIONS)


def connect(path: str, *, synchronous: str = "NORMAL", timeout: float = 30.0,
            readonly: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) and migrate a store file; return the connection.

    The connection is in autocommit mode: callers issue BEGIN/COMMIT.
    ``readonly``: never create, migrate or write (an outdated store is refused).
    """
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=timeout, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = %d" % int(timeout * 1000))
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > LATEST:
            db.close()
            raise StoreVersionError(
                f"{path}: store schema version {version} is newer than this gpubill supports "
                f"({LATEST}); upgrade gpubill to open it")
        if not readonly and version == 0 and db.execute(
                "SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            db.execute("PRAGMA page_size = 16384")
        mode = db.execute("PRAGMA journal_mode").fetchone()[0] if readonly else \
            db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal" and path != ":memory:":
            raise StoreError(f"{path}: cannot switch the store to WAL mode ({mode})")
        db.execute(f"PRAGMA synchronous = {synchronous}")
        db.execute("PRAGMA cache_size = -131072")
        db.execute("PRAGMA mmap_size = 1073741824")
        db.execute("PRAGMA temp_store = MEMORY")
        if version < LATEST and readonly:
            if version == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                raise StoreError(f"{path}: not a gpubill store (empty)")
            raise StoreError(f"{path}: store schema version {version} needs migrating to {LATEST};"
                             " open it once with a writing command")
        if readonly:
            db.execute("PRAGMA query_only = ON")
        if version < LATEST:
            _migrate(db, path, version)
        else:
            app = db.execute("PRAGMA application_id").fetchone()[0]
            if app not in (0, APPLICATION_ID):
                raise StoreError(f"{path}: not a gpubill store (application_id {app:#x})")
        return db
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path}: {e}") from None


def _migrate(db: sqlite3.Connection, path: str, version: int) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated already.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and db.execute(
                "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()[0]:
            raise StoreError(f"{path}: not a gpubill store (it has tables but no schema version)")
        for v in range(version, LATEST):
            for stmt in _statements(MIGRATIONS[v]):
                db.execute(stmt)
        db.execute(f"PRAGMA user_version = {LATEST}")
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _statements(script: str):
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf.strip()
            buf = ""
    if buf.strip():
        yield buf.strip()
