"""Users and API keys under the roles: each change checked, and audited in its own transaction.

A user is a name and a role (``roles.ROLES``) kept in the store; the CLI and
the TUI act as one (``--as NAME``), an HTTP request as its API key. Adding,
re-roling or removing a user and creating or revoking a key need the
``manage`` permission (admin): ``Store.require`` checks it (a refusal is
logged as ``access.refused``), and the change and its audit entry
(``user.created``, ``user.role_changed``, ``user.removed``,
``api_key.created``, ``api_key.revoked``) commit together. A key itself never
reaches the log: only its name, role and prefix.

Bootstrap: while the store has no user, the first one may be added by anyone
(the CLI acts as the local admin then) and must be an admin; its entry says
``"bootstrap": true``. No change may leave a store that has users without an
admin (nobody could manage it any more).

A removed user keeps its row (``removed_ms``), so the log's names stay
meaningful; adding the name again brings it back with the role given.
"""

from __future__ import annotations

import attrs

from . import audit, queries
from .queries import now_ms
from .roles import ROLES, Actor

USER = "user"
API_KEY = "api_key"


@attrs.frozen
class User:
    name: str
    role: str
    created_ms: int
    removed_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.removed_ms is None


def check_user_name(name) -> str:
    """A user name: 1 to NAME_MAX printable characters (it is shown in lists and in the log)."""
    return queries.check_name(name, "user")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}"[:200])


# -- reads ------------------------------------------------------------------

def _user(db, name: str) -> User | None:
    r = db.execute("SELECT name, role, created_ms, removed_ms FROM users WHERE name = ?", (name,)).fetchone()
    return User(*r) if r else None


def _active_count(db, role: str | None = None) -> int:
    sql = "SELECT count(*) FROM users WHERE removed_ms IS NULL"
    return db.execute(sql + (" AND role = ?" if role else ""), (role,) if role else ()).fetchone()[0]


@queries._sqlite_errors
def get(store, name: str) -> User | None:
    """The user of that name (removed or not), or None."""
    return _user(store._read(), name) if queries._storable(name) else None


@queries._sqlite_errors
def has_users(store) -> bool:
    """Whether the store has an active user (else it is in single-operator mode)."""
    return _active_count(store._read()) > 0


@queries._sqlite_errors
def list_users(store, *, removed: bool = False) -> list[User]:
    """Users by name; the removed ones too when ``removed``."""
    sql = "SELECT name, role, created_ms, removed_ms FROM users"
    sql += "" if removed else " WHERE removed_ms IS NULL"
    return [User(*r) for r in store._read().execute(sql + " ORDER BY name")]


# -- changes ----------------------------------------------------------------

def add(store, actor: Actor, name: str, role: str) -> User:
    """Add a user (or bring a removed one back). ValueError: bad name or role, name in use,
    or a first user that is not an admin; ``Forbidden`` without ``manage``."""
    check_user_name(name)
    _check_role(role)
    bootstrap = not has_users(store)
    if bootstrap and role != "admin":
        raise ValueError(f"the first user of a store must be an admin (gpubill users add {name} --role admin)")
    if not bootstrap:
        store.require(actor, "manage", "user.add", USER, name)
    t = now_ms()
    with store.transaction() as db:
        if bootstrap and _active_count(db):
            raise ValueError("another process added the first user meanwhile: say who you are with --as NAME")
        old = _user(db, name)
        if old is not None and old.active:
            raise ValueError(f"a user named {name!r} already exists ({old.role})")
        db.execute("INSERT INTO users (name, role, created_ms) VALUES (?, ?, ?) ON CONFLICT (name) "
                   "DO UPDATE SET role = excluded.role, created_ms = excluded.created_ms, removed_ms = NULL",
                   (name, role, t))
        audit.append(db, actor, "user.created", USER, name,
                     {"role": role, "bootstrap": bootstrap, "readded": old is not None}, at_ms=t)
    return User(name, role, t)


def set_role(store, actor: Actor, name: str, role: str) -> User:
    """Give an active user another role. ValueError: no such user, same role, or the last admin."""
    _check_role(role)
    store.require(actor, "manage", "user.set_role", USER, name)
    t = now_ms()
    with store.transaction() as db:
        old = _active_user(db, name)
        if old.role == role:
            raise ValueError(f"{name} already has the {role} role")
        if old.role == "admin":
            _keep_an_admin(db, name)
        db.execute("UPDATE users SET role = ? WHERE name = ?", (role, name))
        audit.append(db, actor, "user.role_changed", USER, name, {"from": old.role, "to": role}, at_ms=t)
    return attrs.evolve(old, role=role)


def remove(store, actor: Actor, name: str) -> User:
    """Remove an active user (the row stays, marked removed). ValueError: no such user, or the last admin."""
    store.require(actor, "manage", "user.remove", USER, name)
    t = now_ms()
    with store.transaction() as db:
        old = _active_user(db, name)
        if old.role == "admin":
            _keep_an_admin(db, name)
        db.execute("UPDATE users SET removed_ms = ? WHERE name = ?", (t, name))
        audit.append(db, actor, "user.removed", USER, name, {"role": old.role}, at_ms=t)
    return attrs.evolve(old, removed_ms=t)


def _active_user(db, name: str) -> User:
    u = _user(db, name) if queries._storable(name) else None
    if u is None or not u.active:
        raise ValueError(f"no user named {name!r}" + (" (removed)" if u else ""))
    return u


def _keep_an_admin(db, name: str) -> None:
    if _active_count(db, "admin") <= 1:
        raise ValueError(f"{name} is the last admin: make another user an admin first")


# -- API keys -----------------------------------------------------------------

def create_key(store, actor: Actor, name: str, role: str) -> str:
    """Create an API key; returns the key itself (only its hash is stored, only its prefix logged).
    ValueError: bad name or role, or the name is taken; ``Forbidden`` without ``manage``."""
    queries.check_key_name(name)
    _check_role(role)
    store.require(actor, "manage", "api_key.create", API_KEY, name)
    key, prefix, digest = queries.new_key()
    t = now_ms()
    with store.transaction() as db:
        if db.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone():
            raise ValueError(f"an API key named {name!r} already exists")
        db.execute("INSERT INTO api_keys (name, role, prefix, hash, created_ms) VALUES (?, ?, ?, ?, ?)",
                   (name, role, prefix, digest, t))
        audit.append(db, actor, "api_key.created", API_KEY, name, {"role": role, "prefix": prefix}, at_ms=t)
    return key


def revoke_key(store, actor: Actor, name: str) -> bool:
    """Revoke an active key; False when there is none of that name."""
    store.require(actor, "manage", "api_key.revoke", API_KEY, name)
    if not queries._storable(name):
        return False
    t = now_ms()
    with store.transaction() as db:
        r = db.execute("SELECT role, prefix FROM api_keys WHERE name = ? AND revoked_ms IS NULL",
                       (name,)).fetchone()
        if r is None:
            return False
        db.execute("UPDATE api_keys SET revoked_ms = ? WHERE name = ?", (t, name))
        audit.append(db, actor, "api_key.revoked", API_KEY, name, {"role": r[0], "prefix": r[1]}, at_ms=t)
    return True
