"""The SQLite schema, its versioned migrations, and how a store file is opened.

``PRAGMA user_version`` holds the schema version. Opening a store applies the
migrations it lacks, in one transaction each; a store whose version is newer
than this code knows is refused (``StoreVersionError``), never modified.
``PRAGMA application_id`` marks the file as a gpubill store.

Opening inspects before it writes (``inspect``): the file's header is read
directly, and a SQLite file that does not say it is ours is read through a
read-only connection; a foreign, newer, damaged or truncated file is refused
before anything (WAL mode, a migration, a side file) touches it.

Events live in ``events``: one row per accepted event, keyed by ``id`` (the
ingestion order). The raw JSON payload is the source of truth; the canonical
fields are generated columns read from it, except ``timestamp_ms`` (normalized
to UTC epoch milliseconds) and the 128-bit dedup key ``(k1, k2)``.
``column_blocks``/``block_props`` are the columnar side store, written in the
same transaction as the rows and rebuildable from them.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import urllib.parse

APPLICATION_ID = 0x47505542  # "GPUB"
SQLITE_MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100
SIDE_FILES = ("-wal", "-shm", "-journal")
# SQLite's primary result codes (the low byte of an extended code).
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR = 5, 6, 8, 10
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 11, 13, 14, 26
LOW_SPACE_BYTES = 1 << 20  # an I/O error with less free space than this is a full disk


class StoreError(Exception):
    """A store that cannot be opened or used (I/O, corruption, locking)."""

    full = False  # True for StoreFull: lets callers tell a full disk without importing it


class StoreVersionError(StoreError):
    """The store was written by a newer gpubill."""


class StoreMissing(StoreError):
    """No store at the path, and the caller asked not to create one."""


class StoreFull(StoreError):
    """The disk holding the store is full: the write was rolled back, nothing of it is stored."""

    full = True


def error_from(path: str, e: BaseException) -> StoreError:
    """A sqlite3 or OS error met while opening or using the store at ``path``, as one line."""
    if isinstance(e, StoreError):
        return e
    if isinstance(e, OSError):
        if e.errno == errno.ENOSPC:
            return _full(path)
        return StoreError(f"{path}: {e.strerror or e}")
    code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
    if code == SQLITE_FULL or (code == SQLITE_IOERR and _low_space(path)):
        return _full(path)
    if code == SQLITE_READONLY:
        return StoreError(f"{path}: read-only: the store cannot be written ({e})")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return StoreError(f"{path}: store is damaged ({e})")
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return StoreError(f"{path}: store is locked by another process; gave up waiting ({e})")
    if code == SQLITE_IOERR:
        return StoreError(f"{path}: I/O error ({e})")
    if code == SQLITE_CANTOPEN:
        return StoreError(f"{path}: cannot open the store ({e})")
    return StoreError(f"{path}: {e}")


def _full(path: str) -> StoreFull:
    return StoreFull(f"{path}: disk full (the write was rolled back; free space and retry)")


def _low_space(path: str) -> bool:
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < LOW_SPACE_BYTES


def _events_into_blocks(db: sqlite3.Connection) -> None:
    from .migrate import events_into_blocks  # it encodes events: imported only when a store migrates
    events_into_blocks(db)


# Each migration is a script, or a function of the connection (in the same transaction).
MIGRATIONS: list = [
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
    # 3: the invoice lifecycle (ledger.py), the hash-chained audit log (audit.py), users and
    # roles (roles.py). Replaces migration 1's placeholders, which nothing ever wrote
    # (IF [NOT] EXISTS: a test rewinds a newer store's version to replay the migrations).
    """
    DROP TABLE IF EXISTS credit_notes;
    DROP TABLE IF EXISTS invoice_revisions;
    DROP TABLE IF EXISTS invoices;
    DROP TABLE IF EXISTS billing_entities;
    DROP TABLE IF EXISTS audit_log;
    CREATE TABLE api_keys_v3 (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'writer', 'reviewer', 'approver', 'admin')),
        prefix TEXT NOT NULL,
        hash BLOB NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER
    );
    INSERT INTO api_keys_v3 (id, name, role, prefix, hash, created_ms, revoked_ms)
        SELECT id, name, CASE role WHEN 'reader' THEN 'viewer' ELSE role END, prefix, hash, created_ms, revoked_ms
        FROM api_keys;
    DROP TABLE api_keys;
    ALTER TABLE api_keys_v3 RENAME TO api_keys;
    CREATE TABLE IF NOT EXISTS users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'writer', 'reviewer', 'approver', 'admin')),
        created_ms INTEGER NOT NULL,
        removed_ms INTEGER
    );
    CREATE TABLE IF NOT EXISTS audit_log (
        seq INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        source TEXT NOT NULL,
        action TEXT NOT NULL,
        object_type TEXT NOT NULL,
        object_id TEXT NOT NULL,
        reason TEXT,
        payload TEXT NOT NULL,
        prev_hash BLOB NOT NULL,
        hash BLOB NOT NULL UNIQUE
    );
    CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TABLE IF NOT EXISTS audit_checkpoints (
        size INTEGER PRIMARY KEY,
        root BLOB NOT NULL,
        at_ms INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS invoices (
        id TEXT PRIMARY KEY,
        entity TEXT NOT NULL,
        customer TEXT NOT NULL,
        contract TEXT NOT NULL,
        subscription TEXT NOT NULL,
        invoice_type TEXT NOT NULL,
        period_from_ms INTEGER NOT NULL,
        period_to_ms INTEGER NOT NULL,
        period_label TEXT NOT NULL,
        currency TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('draft', 'finalized', 'voided')),
        created_ms INTEGER NOT NULL,
        due_ms INTEGER NOT NULL,
        revision INTEGER NOT NULL DEFAULT 0,
        number TEXT UNIQUE,
        entity_seq INTEGER,
        customer_seq INTEGER,
        invoice_seq INTEGER,
        issuing_date TEXT,
        finalized_ms INTEGER,
        content_hash TEXT,
        audit_hash BLOB,
        watermark INTEGER,
        voided_ms INTEGER,
        void_reason TEXT,
        replaces TEXT REFERENCES invoices (id),
        body TEXT,
        UNIQUE (entity, entity_seq),
        UNIQUE (entity, customer, invoice_seq)
    );
    CREATE INDEX IF NOT EXISTS invoices_subscription ON invoices (subscription, period_from_ms);
    CREATE INDEX IF NOT EXISTS invoices_status ON invoices (status, due_ms);
    CREATE TABLE IF NOT EXISTS customer_numbers (
        entity TEXT NOT NULL,
        customer TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (entity, customer),
        UNIQUE (entity, seq)
    );
    CREATE TABLE IF NOT EXISTS invoice_revisions (
        invoice_id TEXT NOT NULL REFERENCES invoices (id),
        revision INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        contracts_digest TEXT NOT NULL,
        watermark INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (invoice_id, revision)
    );
    CREATE TRIGGER IF NOT EXISTS invoice_revisions_no_update BEFORE UPDATE ON invoice_revisions
        BEGIN SELECT RAISE(ABORT, 'invoice revisions are immutable'); END;
    CREATE TRIGGER IF NOT EXISTS invoice_revisions_no_delete BEFORE DELETE ON invoice_revisions
        BEGIN SELECT RAISE(ABORT, 'invoice revisions are immutable'); END;
    CREATE TRIGGER IF NOT EXISTS invoices_frozen BEFORE UPDATE ON invoices
        WHEN OLD.status != 'draft' AND (NEW.body IS NOT OLD.body OR NEW.content_hash IS NOT OLD.content_hash
             OR NEW.number IS NOT OLD.number OR NEW.finalized_ms IS NOT OLD.finalized_ms
             OR (OLD.status = 'voided' AND NEW.status != 'voided'))
        BEGIN SELECT RAISE(ABORT, 'a finalized invoice never changes'); END;
    CREATE TRIGGER IF NOT EXISTS invoices_no_delete BEFORE DELETE ON invoices
        WHEN OLD.status != 'draft'
        BEGIN SELECT RAISE(ABORT, 'a finalized invoice is never deleted'); END;
    CREATE TABLE IF NOT EXISTS credit_notes (
        id TEXT PRIMARY KEY,
        invoice_id TEXT NOT NULL REFERENCES invoices (id),
        seq INTEGER NOT NULL,
        number TEXT NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('credit', 'refund', 'offset')),
        currency TEXT NOT NULL,
        customer TEXT NOT NULL,
        entity TEXT NOT NULL,
        total TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        body TEXT NOT NULL,
        voided_ms INTEGER,
        UNIQUE (invoice_id, seq)
    );
    CREATE TRIGGER IF NOT EXISTS credit_notes_frozen BEFORE UPDATE ON credit_notes
        WHEN NEW.body IS NOT OLD.body OR NEW.total IS NOT OLD.total OR NEW.number IS NOT OLD.number
        BEGIN SELECT RAISE(ABORT, 'a credit note never changes'); END;
    CREATE TABLE IF NOT EXISTS credit_note_uses (
        credit_note_id TEXT NOT NULL REFERENCES credit_notes (id),
        invoice_id TEXT NOT NULL REFERENCES invoices (id),
        amount TEXT NOT NULL,
        PRIMARY KEY (credit_note_id, invoice_id)
    );
    CREATE TABLE IF NOT EXISTS alerts (
        id INTEGER PRIMARY KEY,
        subscription TEXT NOT NULL,
        contract TEXT NOT NULL,
        customer TEXT NOT NULL,
        period_from_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        threshold TEXT NOT NULL,
        currency TEXT NOT NULL,
        limit_amount TEXT NOT NULL,
        amount TEXT NOT NULL,
        fired_ms INTEGER NOT NULL,
        body TEXT NOT NULL,
        UNIQUE (subscription, period_from_ms, kind, threshold)
    );
    CREATE TABLE IF NOT EXISTS webhook_deliveries (
        id INTEGER PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        event_type TEXT NOT NULL,
        url TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_error TEXT,
        delivered_ms INTEGER
    );
    CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_attempt_ms);
    """,
    # 4: alerts (store/alerts.py): where alert webhooks go (each endpoint's signing secret is
    # read from the environment variable it names, never stored), and the last event an
    # alerts check has seen (one row).
    """
    CREATE TABLE IF NOT EXISTS webhook_endpoints (
        url TEXT PRIMARY KEY,
        secret_env TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS alert_watermark (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        event_id INTEGER NOT NULL
    );
    """,
    # 5: the events move into their column blocks (migrate.py, payloads.py): one row per chunk
    # holding the raw payloads beside the columns, instead of one B-tree row per event.
    _events_into_blocks,
    # 6: the dedup keys kept on disk as sorted runs (keys.py), so that a new process looks up a
    # few keys without loading every block's keys; a run's keys are stored in pages of 512 (keys.PAGE),
    # with a Bloom filter (10 bits per key), so that a key that is not stored reads no page.
    """
    CREATE TABLE key_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        n INTEGER NOT NULL,
        last_rowid INTEGER NOT NULL,
        first_page INTEGER NOT NULL,
        fence BLOB NOT NULL,
        bloom BLOB
    );
    CREATE TABLE key_pages (
        id INTEGER PRIMARY KEY,
        k1 BLOB NOT NULL,
        k2 BLOB NOT NULL,
        rid BLOB NOT NULL
    );
    """,
    # 7: the customer portal (portal.py): the store's signing secret (one row, made with the first
    # link), the links (revocable; the token itself is never stored) and every visit of one. And the
    # invoices by contract and by customer (a portal page, `invoices list --customer`), and a covering
    # index for what changed in them (the review and portal state: count, revisions, finalized,
    # voided), which otherwise reads every stored document.
    """
    CREATE INDEX invoices_contract ON invoices (contract, period_from_ms);
    CREATE INDEX invoices_customer ON invoices (customer, period_from_ms);
    CREATE INDEX invoices_state ON invoices (revision, finalized_ms, voided_ms);
    CREATE TABLE portal_secret (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        secret BLOB NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE portal_links (
        id TEXT PRIMARY KEY,
        customer TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        revoked_ms INTEGER,
        revoked_by TEXT
    );
    CREATE TABLE portal_visits (
        id INTEGER PRIMARY KEY,
        link_id TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        status INTEGER NOT NULL,
        peer TEXT
    );
    CREATE INDEX portal_visits_link ON portal_visits (link_id, at_ms);
    """,
]

LATEST = len(MIGRATIONS)


def connect(path: str, *, synchronous: str = "NORMAL", timeout: float = 30.0,
            readonly: bool = False, create: bool = True) -> sqlite3.Connection:
    """Open a store file for writing (creating it if ``create``) and migrate it; the connection.

    The connection is in autocommit mode: callers issue BEGIN/COMMIT.
    ``readonly``: never create, migrate or write (an outdated store is refused).
    Nothing is written before ``inspect`` has found the file to be a store, or nothing yet.
    """
    kind = inspect(path)
    if kind == "missing" and (readonly or not create):
        raise StoreMissing(f"{path}: no such store")
    if readonly:
        if kind != "store":
            raise StoreError(f"{path}: not a gpubill store yet (an empty database)")
        return reader(path, timeout=timeout, check=True)
    why = _unwritable(path)
    if why:
        raise StoreError(f"{path}: read-only: {why}")
    created = kind == "missing" and _create_file(path)
    try:
        db = _open(path, "rw", timeout)
        try:
            _prepare_for_writing(db, path, synchronous, new=kind != "store")
        except BaseException:
            db.close()
            raise
        return db
    except BaseException as e:
        if created:
            _remove_if_still_new(path)
        if isinstance(e, (sqlite3.Error, OSError)):
            raise error_from(path, e) from None
        raise


def reader(path: str, *, timeout: float = 30.0, check: bool = False) -> sqlite3.Connection:
    """A connection that only reads (``PRAGMA query_only``).

    A writable store is opened read-write (its last connection cleans up the WAL side files
    as usual); one that cannot be written (read-only file or directory, read-only media) is
    opened read-only, or as immutable when it has no WAL file (SQLite could not create one).
    ``check``: refuse a store whose schema is not this code's. On a full disk, where SQLite
    cannot create the WAL index, a store without WAL content is read as immutable too.
    """
    if not _unwritable(path):
        how = {"mode": "rw"}
    elif os.path.exists(path + "-wal"):
        how = {"mode": "ro"}
    else:
        how = {"mode": "ro", "immutable": "1"}
    try:
        return _reader(path, how, timeout, check)
    except (sqlite3.Error, OSError) as e:
        err = error_from(path, e)
        if not (err.full and _wal_is_empty(path)):
            raise err from None
    try:
        return _reader(path, {"mode": "ro", "immutable": "1"}, timeout, check)
    except (sqlite3.Error, OSError) as e:
        raise error_from(path, e) from None


def _reader(path: str, how, timeout: float, check: bool) -> sqlite3.Connection:
    db = _open(path, how, timeout)
    try:
        db.execute("PRAGMA query_only = ON")
        _tune(db, None)
        if check:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > LATEST:
                raise _newer(path, version)
            if version < LATEST:
                raise StoreError(f"{path}: store schema version {version} needs migrating to "
                                 f"{LATEST}; open it once with a writing command (gpubill ingest)")
    except BaseException:
        db.close()
        raise
    return db


def _wal_is_empty(path: str) -> bool:
    try:
        return os.path.getsize(path + "-wal") == 0
    except FileNotFoundError:
        return True
    except OSError:
        return False


def inspect(path: str) -> str:
    """What is at ``path``, found without writing anything.

    "missing" (nothing, in an existing directory), "empty" (an empty file: a new store),
    "new" (an SQLite database with no tables, no schema version and no application id: a new
    store) or "store" (a gpubill store of this or an older schema). Anything else raises a
    StoreError that says what it is: a directory, a foreign or newer file, a damaged or
    truncated store.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            what = "is not a directory" if os.path.exists(parent) else "does not exist"
            raise StoreError(f"{path}: directory {parent} {what}") from None
        return "missing"
    except NotADirectoryError:
        raise StoreError(f"{path}: {os.path.dirname(os.path.abspath(path))} is not a directory") from None
    except OSError as e:
        raise StoreError(f"{path}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{path}: is a directory, not a store file")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path}: not a regular file, so not a store")
    if st.st_size == 0:
        return "empty"
    if _open_here(st):  # a plain open and close of it would drop the locks SQLite holds on it
        return _inspect_unmarked(path)
    head = _header(path)
    app, version = _be(head, 68, signed=False), _be(head, 60, signed=True)
    if app == APPLICATION_ID:
        if version > LATEST:
            raise _newer(path, version)
        _check_length(path, head, st.st_size)
        return "store"
    if app != 0:
        raise StoreError(f"{path}: not a gpubill store (application_id {app:#x})")
    return _inspect_unmarked(path)


def _open_here(st: os.stat_result) -> bool:
    """Whether this process has the file open already (a Store, a reader, any connection).

    Closing any descriptor of a file releases every POSIX lock the process holds on it,
    SQLite's included (its "How to corrupt" §2.2): another process could then take the
    database for unused and checkpoint or delete its WAL. So a file this process holds is
    never opened by hand, only through SQLite, which defers such closes."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            other = os.stat(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


def _header(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_SIZE)
    except OSError as e:
        raise StoreError(f"{path}: {e.strerror}") from None
    if len(head) < HEADER_SIZE or not head.startswith(SQLITE_MAGIC):
        raise StoreError(f"{path}: not a gpubill store (not an SQLite database)")
    size = _be(head, 16, 2)
    page = 65536 if size == 1 else size
    if page < 512 or page & (page - 1) or head[18] not in (1, 2) or head[19] not in (1, 2):
        raise StoreError(f"{path}: store is damaged (its SQLite header is invalid)")
    return head


def _check_length(path: str, head: bytes, size: int) -> None:
    """A store file shorter than its header says, with no WAL beside it, was truncated."""
    if os.path.exists(path + "-wal") or _be(head, 24) != _be(head, 92):
        return  # the header's page count is not authoritative now
    size_field = _be(head, 16, 2)
    expected = _be(head, 28) * (65536 if size_field == 1 else size_field)
    if size < expected:
        raise StoreError(f"{path}: store is damaged: the file is truncated ({size} of {expected} bytes)")


def _inspect_unmarked(path: str) -> str:
    """An SQLite file without our application id: new (no tables, no version) or foreign."""
    how = {"mode": "ro"} if os.path.exists(path + "-wal") else {"mode": "ro", "immutable": "1"}
    try:
        db = _open(path, how, 5.0)
        try:
            app, version, tables = (db.execute(q).fetchone()[0] for q in (
                "PRAGMA application_id", "PRAGMA user_version", "SELECT count(*) FROM sqlite_master"))
        finally:
            db.close()
    except sqlite3.Error as e:
        raise error_from(path, e) from None
    if app == APPLICATION_ID:  # ours, the header not yet checkpointed from the WAL
        if version > LATEST:
            raise _newer(path, version)
        return "store"
    if app == 0 and version == 0 and tables == 0:
        return "new"
    raise StoreError(f"{path}: not a gpubill store (an SQLite database of another application)")


def _be(head: bytes, at: int, n: int = 4, signed: bool = False) -> int:
    return int.from_bytes(head[at:at + n], "big", signed=signed)


def _newer(path: str, version: int) -> StoreVersionError:
    return StoreVersionError(
        f"{path}: store schema version {version} is newer than this gpubill supports "
        f"({LATEST}); upgrade gpubill to open it")


def _unwritable(path: str) -> str | None:
    """Why a store at ``path`` could not be written (its WAL needs the directory too), or None."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return "the file is not writable"
    if not os.access(parent, os.W_OK):
        return f"the directory {parent} is not writable"
    return None


def _create_file(path: str) -> bool:
    """Create the empty store file; False if another process just did."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        return True
    except FileExistsError:
        return False


def _remove_if_still_new(path: str) -> None:
    """Remove a store file this process created and could not set up (a full disk), unless
    another process has made a store of it meanwhile."""
    try:
        if inspect(path) == "store":
            return
    except StoreError:
        return
    for p in (path, *(path + s for s in SIDE_FILES)):
        try:
            os.unlink(p)
        except OSError:
            pass


def _open(path: str, how, timeout: float) -> sqlite3.Connection:
    params = {"mode": how} if isinstance(how, str) else how
    # the path's bytes, %-escaped: any file name (?, #, %, bytes that are not UTF-8) stays itself
    uri = "file:" + urllib.parse.quote(os.fsencode(os.path.abspath(path))) + "?" + urllib.parse.urlencode(params)
    db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=timeout, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = %d" % int(timeout * 1000))
    return db


def _tune(db: sqlite3.Connection, synchronous: str | None) -> None:
    if synchronous is not None:
        db.execute(f"PRAGMA synchronous = {synchronous}")
    db.execute("PRAGMA cache_size = -131072")
    db.execute("PRAGMA mmap_size = 1073741824")
    db.execute("PRAGMA temp_store = MEMORY")


def _prepare_for_writing(db: sqlite3.Connection, path: str, synchronous: str, new: bool) -> None:
    """WAL mode, settings, migrations: on a file ``inspect`` found to be a store or a new one."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > LATEST:
        raise _newer(path, version)
    if new and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
        db.execute("PRAGMA page_size = 16384")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise StoreError(f"{path}: cannot switch the store to WAL mode ({mode})")
    _tune(db, synchronous)
    if version < LATEST:
        _migrate(db, path, version)


def _migrate(db: sqlite3.Connection, path: str, version: int) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated already.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        app = db.execute("PRAGMA application_id").fetchone()[0]
        if app not in (0, APPLICATION_ID) or (app == 0 and version != 0) or (version == 0 and db.execute(
                "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()[0]):
            raise StoreError(f"{path}: not a gpubill store (an SQLite database of another application)")
        for v in range(version, LATEST):
            step = MIGRATIONS[v]
            if callable(step):
                step(db)
                continue
            for stmt in _statements(step):
                db.execute(stmt)
        db.execute(f"PRAGMA user_version = {LATEST}")
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
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
