"""API keys for the events API, as the shell manages them (``gpubill keys``, ``gpubill serve``).

Receives a key's name and role from the shell. ``check_key_name`` says, before
any store is opened or created, whether a name can be stored (``ValueError``
with the reason otherwise); ``ROLES`` are the roles a key may have: a writer
posts and reads events, a reader only reads. The keys themselves live in the
store and are handled through the store handle's methods (``create_key``,
``list_keys``, ``verify_key``, ``revoke_key``; see ``service.events``); only a
SHA-256 hash of each key is kept.
"""

from __future__ import annotations

from gpubill.store.queries import ROLES, check_key_name

__all__ = ["ROLES", "check_key_name"]
