"""`gpubill audit verify` finds an edited, a deleted, a reordered row and a removed tail, as an attacker
with the file would leave them (triggers dropped first), and passes a clean log."""

import json
import sqlite3

import pytest

from accesskit import gpubill
from gpubill.service import access
from gpubill.service.access import Actor

ADMIN = Actor("ana", "admin")


@pytest.fixture
def db(tmp_path, store):
    """A store with eight audit entries (users and keys added, one refusal); its path."""
    access.add_user(store, Actor("local", "admin"), "ana", "admin")
    for name in ("bob", "cy", "dee"):
        access.add_user(store, ADMIN, name, "viewer")
    access.create_key(store, ADMIN, "agent", "writer")
    with pytest.raises(access.Forbidden):
        access.create_key(store, Actor("bob", "viewer"), "mine", "admin")
    access.set_role(store, ADMIN, "cy", "approver")
    access.remove_user(store, ADMIN, "dee")
    assert len(access.audit_entries(store)) == 8
    return store.path


def tamper(path, *sql):
    """Run SQL on the store as an attacker would: the append-only triggers dropped first."""
    con = sqlite3.connect(path)
    con.execute("DROP TRIGGER audit_log_no_update")
    con.execute("DROP TRIGGER audit_log_no_delete")
    for s in sql:
        con.execute(s)
    con.commit()
    con.close()


def verify(path, *extra):
    rc, out, err = gpubill("audit", "verify", "--store", path, *extra)
    return rc, out + err


def test_a_clean_log_verifies(db):
    rc, text = verify(db)
    assert rc == 0 and text.startswith("audit log ok: 8 entries, head ")


def test_the_triggers_refuse_an_edit_without_tampering(db):
    con = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("UPDATE audit_log SET actor = 'cli:x' WHERE seq = 3")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("DELETE FROM audit_log WHERE seq = 8")
    con.close()


def test_an_edited_row(db):
    tamper(db, """UPDATE audit_log SET payload = replace(payload, '"viewer"', '"admin"') WHERE seq = 3""")
    rc, text = verify(db)
    assert rc == 1
    assert text == ("gpubill: audit log broken at entry 3: its content does not match its hash "
                    "(the entry was edited)\n")


def test_an_edited_row_with_its_hash_recomputed_breaks_the_next_link(db):
    from gpubill.store.audit import entry_hash

    con = sqlite3.connect(db)
    cols = "seq, at_ms, actor, source, action, object_type, object_id, reason, payload"
    row = dict(zip(cols.split(", "), con.execute(f"SELECT {cols} FROM audit_log WHERE seq = 3").fetchone()))
    prev = con.execute("SELECT prev_hash FROM audit_log WHERE seq = 3").fetchone()[0]
    con.close()
    row["actor"] = "cli:mallory"
    new = entry_hash(bytes(prev), row)
    tamper(db, f"UPDATE audit_log SET actor = 'cli:mallory', hash = x'{new.hex()}' WHERE seq = 3")
    rc, text = verify(db)
    assert rc == 1 and "broken at entry 4: its prev_hash is not the hash of the entry before" in text


def test_a_deleted_row(db):
    tamper(db, "DELETE FROM audit_log WHERE seq = 5")
    rc, text = verify(db)
    assert rc == 1
    assert text == ("gpubill: audit log broken at entry 6: expected entry 5 here, found 6: "
                    "an entry is missing (deleted)\n")


def test_reordered_rows(db):
    """Entries 4 and 5 swap places (their seq numbers exchanged): the order is part of the chain."""
    tamper(db, "UPDATE audit_log SET seq = 100 WHERE seq = 4", "UPDATE audit_log SET seq = 4 WHERE seq = 5",
           "UPDATE audit_log SET seq = 5 WHERE seq = 100")
    rc, text = verify(db)
    assert rc == 1
    assert text == ("gpubill: audit log broken at entry 4: its prev_hash is not the hash of the entry before "
                    "(entries were reordered, or one before it was changed or removed)\n")


def test_a_removed_tail_is_found_by_a_checkpoint_note_kept_outside(db, tmp_path):
    note = tmp_path / "cp.txt"
    rc, out, err = gpubill("audit", "checkpoint", "--store", db, "-o", note)
    assert rc == 0 and out == "" and note.read_text().startswith("gpubill.audit\n8\n")
    assert verify(db, "--checkpoint", note) == (0, verify(db)[1])
    # the attacker removes the last two entries and the stored checkpoint with them
    tamper(db, "DELETE FROM audit_log WHERE seq > 6", "DELETE FROM audit_checkpoints")
    rc, text = verify(db)
    assert rc == 0 and "6 entries" in text  # a shorter chain is consistent in itself ...
    rc, text = verify(db, "--checkpoint", note)  # ... but no longer extends the note
    assert rc == 1
    assert text == "gpubill: audit log broken at entry 7: the checkpoint note covers 8 entries but the log has 6\n"


def test_a_removed_tail_is_found_by_the_stored_checkpoint(db):
    assert gpubill("audit", "checkpoint", "--store", db)[0] == 0
    tamper(db, "DELETE FROM audit_log WHERE seq = 8")
    rc, text = verify(db)
    assert rc == 1 and "a checkpoint covers 8 entries but the log has 7" in text


def test_a_note_that_is_not_a_checkpoint_is_one_line(db, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("hello\n")
    rc, text = verify(db, "--checkpoint", bad)
    assert rc == 1 and text == f"gpubill: error: {bad}: not a gpubill checkpoint note (three lines: origin, size, base64 root)\n"


def test_verify_reads_one_snapshot_while_another_process_appends(db, store):
    """A change committed while verify reads (another handle: a server) is not half seen: before the fix,
    a checkpoint of 9 entries appeared after verify had read 8 entries, a false alarm."""
    from gpubill.service.events import Store

    other = Store(db)
    appended = []

    def append_meanwhile(sql):
        if "FROM invoices" in sql and not appended:
            appended.append(access.create_key(other, ADMIN, "late", "viewer"))
            access.checkpoint_audit(other)

    store._read().set_trace_callback(append_meanwhile)
    try:
        v = access.verify_audit(store)
    finally:
        store._read().set_trace_callback(None)
        other.close()
    assert appended and (v.ok, v.size, v.problem) == (True, 8, None)
    assert access.verify_audit(store).size == 9


def test_audit_log_still_lists_an_entry_whose_payload_is_no_longer_json(db):
    """The log is what one reads to see what was tampered with: an unreadable payload is shown as it is."""
    tamper(db, "UPDATE audit_log SET payload = 'gone' WHERE seq = 2")
    rc, out, err = gpubill("audit", "log", "--store", db, "--format", "json", "--after", "1", "--limit", "1")
    assert (rc, err) == (0, "")
    assert json.loads(out)["payload"] == "gone"
    assert "broken at entry 2: its content does not match its hash" in verify(db)[1]
