"""Users, roles and keys in a real store: every change checked for `manage`, audited in its transaction,
and every refusal logged."""

import pytest

from gpubill.service import access
from gpubill.service.access import AccessError, Actor, Forbidden

ADMIN = Actor("ana", "admin")
ROLES = ("viewer", "writer", "reviewer", "approver", "admin")


def entries(store, action=None):
    return access.audit_entries(store, action=action, limit=1000)


def with_users(store):
    """ana (admin, the bootstrap), and one user of every other role."""
    access.add_user(store, Actor("local", "admin"), "ana", "admin")
    for role in ROLES[:-1]:
        access.add_user(store, ADMIN, role, role)


def test_the_first_user_is_a_bootstrapped_admin(store):
    with pytest.raises(ValueError, match="the first user of a store must be an admin"):
        access.add_user(store, Actor("local", "admin"), "bob", "viewer")
    access.add_user(store, Actor("local", "admin"), "ana", "admin")
    [e] = entries(store, "user")
    assert (e.actor, e.action, e.object_id) == ("cli:local", "user.created", "ana")
    assert e.payload == {"role": "admin", "bootstrap": True, "readded": False}
    # once the store has a user, nobody may add one without manage
    with pytest.raises(Forbidden):
        access.add_user(store, Actor("local", "viewer"), "bob", "viewer")


# each manage action, run as an actor of a role: (function, its arguments after the actor)
MANAGE = {
    "user.add": lambda s, a: access.add_user(s, a, "newbie", "viewer"),
    "user.set_role": lambda s, a: access.set_role(s, a, "viewer", "reviewer"),
    "user.remove": lambda s, a: access.remove_user(s, a, "viewer"),
    "api_key.create": lambda s, a: access.create_key(s, a, "k", "writer"),
    "api_key.revoke": lambda s, a: access.revoke_key(s, a, "old"),
}
AUDITED = {"user.add": "user.created", "user.set_role": "user.role_changed", "user.remove": "user.removed",
           "api_key.create": "api_key.created", "api_key.revoke": "api_key.revoked"}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", sorted(MANAGE))
def test_every_manage_action_by_every_role(store, action, role):
    with_users(store)
    access.create_key(store, ADMIN, "old", "viewer")
    actor = Actor(role, role)
    before = len(entries(store))
    if role == "admin":
        MANAGE[action](store, actor)
        [e] = entries(store)[before:]
        assert (e.action, e.actor) == (AUDITED[action], "cli:admin")
    else:
        with pytest.raises(Forbidden, match=f"cli:{role} \\({role}\\) may not manage users, keys and roles: "
                                            "that needs the admin role"):
            MANAGE[action](store, actor)
        [e] = entries(store)[before:]
        assert (e.action, e.actor) == ("access.refused", f"cli:{role}")
        assert e.payload == {"action": action, "permission": "manage", "role": role}
    assert access.verify_audit(store).ok


def test_the_last_admin_stays(store):
    with_users(store)
    with pytest.raises(ValueError, match="ana is the last admin"):
        access.set_role(store, ADMIN, "ana", "viewer")
    with pytest.raises(ValueError, match="ana is the last admin"):
        access.remove_user(store, ADMIN, "ana")
    access.set_role(store, ADMIN, "approver", "admin")
    access.remove_user(store, ADMIN, "ana")
    assert [u.name for u in access.list_users(store) if u.role == "admin"] == ["approver"]


def test_a_removed_user_keeps_its_row_and_may_come_back(store):
    with_users(store)
    access.remove_user(store, ADMIN, "viewer")
    assert "viewer" not in [u.name for u in access.list_users(store)]
    assert [u for u in access.list_users(store, removed=True) if u.name == "viewer"][0].removed_ms
    with pytest.raises(AccessError, match="user 'viewer' was removed"):
        access.local_actor(store, "viewer")
    access.add_user(store, ADMIN, "viewer", "approver")
    assert access.local_actor(store, "viewer") == Actor("viewer", "approver")
    assert entries(store, "user")[-1].payload == {"role": "approver", "bootstrap": False, "readded": True}


def test_changes_that_change_nothing_are_refused(store):
    with_users(store)
    with pytest.raises(ValueError, match="already exists"):
        access.add_user(store, ADMIN, "viewer", "viewer")
    with pytest.raises(ValueError, match="already has the viewer role"):
        access.set_role(store, ADMIN, "viewer", "viewer")
    with pytest.raises(ValueError, match="no user named 'nobody'"):
        access.remove_user(store, ADMIN, "nobody")
    with pytest.raises(ValueError, match="a user name is 1 to 100 printable characters"):
        access.add_user(store, ADMIN, "a\nb", "viewer")
    assert not access.revoke_key(store, ADMIN, "no-such-key")


def test_who_is_acting_locally(store, monkeypatch):
    monkeypatch.delenv(access.USER_ENV, raising=False)
    assert access.local_actor(store) == Actor("local", "admin")  # single-operator mode
    assert access.local_actor(store, "ops") == Actor("ops", "admin")
    with_users(store)
    with pytest.raises(AccessError, match="this store has users: say who you are with --as NAME"):
        access.local_actor(store)
    with pytest.raises(AccessError, match="no user named 'zed'"):
        access.local_actor(store, "zed")
    assert access.local_actor(store, "reviewer", "tui") == Actor("reviewer", "reviewer", "tui")
    monkeypatch.setenv(access.USER_ENV, "approver")
    assert access.local_actor(store) == Actor("approver", "approver")


def test_a_key_acts_with_its_name_and_role_and_never_reaches_the_log(store):
    with_users(store)
    key = access.create_key(store, ADMIN, "agent-7", "writer")
    assert access.key_actor(store, key) == Actor("agent-7", "writer", "api")
    assert access.key_actor(store, key + "x") is None
    [e] = entries(store, "api_key")
    assert e.payload == {"role": "writer", "prefix": key[:8]}
    raw = store._read().execute("SELECT group_concat(payload) FROM audit_log").fetchone()[0]
    assert key not in raw and key[8:] not in raw
    with pytest.raises(ValueError, match="already exists"):
        access.create_key(store, ADMIN, "agent-7", "viewer")
    assert access.revoke_key(store, ADMIN, "agent-7")
    assert access.key_actor(store, key) is None
    assert [x.action for x in entries(store, "api_key")] == ["api_key.created", "api_key.revoked"]
