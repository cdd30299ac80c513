"""`gpubill users`, `keys` and `audit log` as real subprocesses: who acts, what each role may, exit 6."""

import json
import os
import shutil

import pytest

from accesskit import gpubill

ROLES = ("viewer", "writer", "reviewer", "approver", "admin")


@pytest.fixture(scope="module")
def users_db(tmp_path_factory):
    """A store whose users are ana (admin, the bootstrap) and one user named after each other role."""
    path = tmp_path_factory.mktemp("users") / "s.db"
    assert gpubill("users", "add", "ana", "--role", "admin", "--store", path)[0] == 0
    for role in ROLES[:-1]:
        assert gpubill("users", "add", role, "--role", role, "--as", "ana", "--store", path)[0] == 0
    return path


@pytest.fixture
def db(users_db, tmp_path):
    """A copy of users_db for one test."""
    return shutil.copy(users_db, tmp_path / "s.db")


def log(path, *args):
    rc, out, err = gpubill("audit", "log", "--store", path, "--format", "json", *args)
    assert rc == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_the_first_user_is_added_in_single_operator_mode(tmp_path):
    path = tmp_path / "s.db"
    rc, _, err = gpubill("users", "add", "bob", "--role", "viewer", "--store", path)
    assert (rc, err) == (1, "gpubill: error: the first user of a store must be an admin "
                            "(gpubill users add bob --role admin)\n")
    assert gpubill("users", "add", "ana", "--role", "admin", "--store", path)[0] == 0
    [e] = log(path)
    assert (e["actor"], e["action"], e["payload"]["bootstrap"]) == ("cli:local", "user.created", True)


@pytest.mark.parametrize("role", ROLES)
def test_keys_create_by_every_role(db, role):
    """The manage boundary through the CLI: only an admin makes a key; every refusal is exit 6 and logged."""
    user = "ana" if role == "admin" else role
    rc, out, err = gpubill("keys", "create", "--name", "k", "--role", "writer", "--as", user, "--store", db)
    if role == "admin":
        assert rc == 0 and out.startswith("gpb_")
        assert log(db, "--action", "api_key")[-1]["payload"] == {"role": "writer", "prefix": out[:8]}
        return
    assert (rc, out) == (6, "")
    assert err == (f"gpubill: error: cli:{role} ({role}) may not manage users, keys and roles: "
                   "that needs the admin role\n")
    [e] = log(db, "--action", "access.refused")
    assert (e["actor"], e["object_type"], e["object_id"]) == (f"cli:{role}", "api_key", "k")


def test_who_is_acting_must_be_said_once_the_store_has_users(db):
    env = {k: v for k, v in os.environ.items() if k != "GPUBILL_USER"}
    rc, _, err = gpubill("users", "remove", "viewer", "--store", db, env=env)
    assert (rc, err) == (6, "gpubill: error: this store has users: say who you are with --as NAME "
                            "(or $GPUBILL_USER)\n")
    rc, _, err = gpubill("users", "remove", "viewer", "--as", "zed", "--store", db, env=env)
    assert (rc, err) == (6, "gpubill: error: no user named 'zed' in this store (gpubill users list)\n")
    rc, _, err = gpubill("users", "remove", "viewer", "--store", db, env={**env, "GPUBILL_USER": "ana"})
    assert (rc, err) == (0, "removed viewer\n")
    rc, _, err = gpubill("users", "set-role", "writer", "--role", "admin", "--as", "viewer", "--store", db)
    assert (rc, err) == (6, "gpubill: error: user 'viewer' was removed from this store\n")


def test_users_list_and_set_role(db):
    assert gpubill("users", "set-role", "reviewer", "--role", "approver", "--as", "ana", "--store", db)[0] == 0
    rc, out, _ = gpubill("users", "list", "--store", db, "--format", "json")
    assert {u["name"]: u["role"] for u in map(json.loads, out.splitlines())} == {
        "ana": "admin", "viewer": "viewer", "writer": "writer", "reviewer": "approver", "approver": "approver"}
    rc, out, _ = gpubill("users", "list", "--store", db)
    assert out.splitlines()[0].split() == ["NAME", "ROLE", "CREATED", "REMOVED"] and len(out.splitlines()) == 6
    rc, _, err = gpubill("users", "set-role", "ana", "--role", "viewer", "--as", "ana", "--store", db)
    assert (rc, err) == (1, "gpubill: error: ana is the last admin: make another user an admin first\n")
    [e] = log(db, "--action", "user.role_changed")
    assert (e["actor"], e["object_id"], e["payload"]) == ("cli:ana", "reviewer", {"from": "reviewer", "to": "approver"})


def test_audit_log_filters_and_table(db):
    rc, out, _ = gpubill("audit", "log", "--store", db, "--after", "2", "--limit", "2")
    lines = out.splitlines()
    assert lines[0].split() == ["SEQ", "AT", "ACTOR", "ACTION", "OBJECT", "DETAILS"]
    assert [x.split()[0] for x in lines[1:]] == ["3", "4"]
    assert [e["object_id"] for e in log(db, "--object", "writer")] == ["writer"]
    rc, _, err = gpubill("audit", "log", "--store", db.parent / "none.db")
    assert rc == 3 and "no such store" in err
