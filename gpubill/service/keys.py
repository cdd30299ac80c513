"""API keys for the events API, as the shell manages them (``gpubill keys``, ``gpubill serve``).

Receives a key's name and role from the shell. ``check_key_name`` says, before
any store is opened or created, whether a name can be stored (``ValueError``
with the reason otherwise); ``ROLES`` are the roles a key or a user may have
(gpubill/store/roles.py: viewer, writer, reviewer, approver, admin), and
``may(role, permission)`` says what each allows. The keys themselves live in the
store: created and revoked by an admin through ``service.access`` (audited),
listed and verified through the store handle (``list_keys``, ``verify_key``);
only a SHA-256 hash of each key is kept.
"""

from __future__ import annotations

from gpubill.store.queries import check_key_name
from gpubill.store.roles import PERMISSIONS, ROLES, Actor, Forbidden

__all__ = ["ROLES", "PERMISSIONS", "Actor", "Forbidden", "check_key_name", "may"]


def may(role: str | None, permission: str) -> bool:
    """Whether a role (None: no valid key) holds a permission."""
    return role is not None and role in PERMISSIONS[permission]
