"""Who is acting, and the changes only an admin may make: users, roles, API keys, the audit log.

Receives from the shell a name (``--as NAME``, else ``$GPUBILL_USER``) or an
API key, and answers the ``Actor`` that every checked change takes
(``gpubill/store/roles.py``):

* ``local_actor(store, name)``: a store without users is in single-operator
  mode, and whoever runs the command acts as its admin (``Actor(name or
  "local", "admin")``); once the store has users, the name is required and
  must be an active user's (``AccessError`` otherwise, one line).
* ``key_actor(store, key)``: the key's name and role, source ``api``; None
  for a missing, unknown or revoked key.

The user and key changes (``add_user``, ``set_role``, ``remove_user``,
``create_key``, ``revoke_key``) check ``manage`` in the store and write their
audit entry in the same transaction (``gpubill/store/users.py``). The audit
log is read with ``audit_entries``, checked with ``verify_audit`` and
checkpointed with ``checkpoint_audit``.
"""

from __future__ import annotations

import os

from gpubill.store import audit, queries, users
from gpubill.store.audit import Entry, Verdict, checkpoint_note
from gpubill.store.roles import ROLES, Actor, Forbidden
from gpubill.store.users import User, check_user_name

__all__ = ["Actor", "Forbidden", "ROLES", "User", "Entry", "Verdict", "AccessError", "USER_ENV",
           "local_actor", "key_actor", "check_user_name", "list_users", "add_user", "set_role",
           "remove_user", "create_key", "revoke_key", "audit_entries", "verify_audit",
           "checkpoint_audit", "checkpoint_note"]

USER_ENV = "GPUBILL_USER"

list_users = users.list_users
add_user = users.add
set_role = users.set_role
remove_user = users.remove
create_key = users.create_key
revoke_key = users.revoke_key


class AccessError(ValueError):
    """The shell could not say who is acting (one line)."""


def local_actor(store, name: str | None = None, source: str = "cli") -> Actor:
    """The actor of a local command: ``name``, else $GPUBILL_USER; the local admin in a store without users."""
    name = name or os.environ.get(USER_ENV) or None
    if not users.has_users(store):
        return Actor(name or "local", "admin", source)
    if not name:
        raise AccessError(f"this store has users: say who you are with --as NAME (or ${USER_ENV})")
    user = users.get(store, name)
    if user is None:
        raise AccessError(f"no user named {name!r} in this store (gpubill users list)")
    if not user.active:
        raise AccessError(f"user {name!r} was removed from this store")
    return Actor(name, user.role, source)


def key_actor(store, key: str) -> Actor | None:
    """The actor of an HTTP request: its key's name and role (None: no valid key)."""
    owner = queries.key_owner(store, key)
    return Actor(owner[0], owner[1], "api") if owner else None


def audit_entries(store, **filters) -> list[Entry]:
    """The audit log, oldest first (``after``, ``limit``, ``action``, ``object_id``; see store.audit.entries)."""
    return audit.entries(store._read(), **filters)


def verify_audit(store, note: str | None = None) -> Verdict:
    """Check every link of the audit log (and that it still extends ``note``, a checkpoint note)."""
    return audit.verify(store._read(), note)


def checkpoint_audit(store) -> str:
    """Record a checkpoint of the log as it is now; its C2SP note."""
    with store.transaction() as db:
        size, root = audit.checkpoint(db, queries.now_ms())
    return checkpoint_note(size, root)
