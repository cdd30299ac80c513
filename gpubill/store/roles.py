"""Who may do what: the roles of users and API keys, and the one check every change passes.

Five roles. Four form a ladder for people (each may do what the one before
may): ``viewer`` reads; ``reviewer`` also refreshes drafts; ``approver`` also
finalizes, voids and issues credit notes; ``admin`` also manages users, keys
and roles, and may do anything. ``writer`` is a metering agent's key: it
reads and ingests events, and nothing else.

The check lives here, in the store, and every function that changes an
invoice, a credit note, a user or a key takes the ``Actor`` doing it and calls
``require`` first, so no entry point (CLI, HTTP, TUI) can skip it. A refusal is
``Forbidden`` (one line naming the actor, its role and the role needed), and
is written to the audit log by the caller's ``refused`` hook.
"""

from __future__ import annotations

import attrs

ROLES = ("viewer", "writer", "reviewer", "approver", "admin")

# Each permission and the roles that hold it.
_LADDER = ("viewer", "reviewer", "approver", "admin")
PERMISSIONS: dict[str, frozenset] = {
    "read": frozenset(ROLES),
    "ingest": frozenset({"writer", "admin"}),
    "refresh": frozenset(_LADDER[1:]),
    "finalize": frozenset(_LADDER[2:]),
    "void": frozenset(_LADDER[2:]),
    "credit_note": frozenset(_LADDER[2:]),
    "share": frozenset(_LADDER[2:]),  # give a customer a portal link (store/portal.py), or revoke one
    "manage": frozenset({"admin"}),
}
# ingest: a batch of events, named by its source; portal: a customer's portal link (reads one customer's data)
SOURCES = ("cli", "api", "tui", "system", "ingest", "portal")


class Forbidden(Exception):
    """An actor's role does not allow an action (one line)."""

    def __init__(self, actor: "Actor", permission: str):
        self.actor, self.permission = actor, permission
        super().__init__(f"{actor.label} ({actor.role}) may not {_VERBS[permission]}: "
                         f"that needs the {least_role(permission)} role")


_VERBS = {"read": "read this store", "ingest": "ingest events", "refresh": "refresh a draft invoice",
          "finalize": "finalize an invoice", "void": "void an invoice",
          "credit_note": "issue a credit note", "share": "share or revoke a customer's portal link",
          "manage": "manage users, keys and roles"}


def least_role(permission: str) -> str:
    """The lowest role on the ladder (or writer) that holds a permission."""
    holders = PERMISSIONS[permission]
    return next((r for r in _LADDER if r in holders), "writer")


@attrs.frozen
class Actor:
    """Who does something: a user (CLI/TUI ``--as``), an API key (HTTP), or the system."""

    name: str
    role: str = attrs.field(validator=attrs.validators.in_(ROLES))
    source: str = attrs.field(default="cli", validator=attrs.validators.in_(SOURCES))

    @property
    def label(self) -> str:
        """How the audit log names the actor: ``cli:ana``, ``api:agent-7``, ``system:clock``."""
        return f"{self.source}:{self.name}"

    def may(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]


def require(actor: Actor, permission: str) -> None:
    """Raise ``Forbidden`` unless the actor's role holds the permission."""
    if permission not in PERMISSIONS:
        raise KeyError(permission)
    if not actor.may(permission):
        raise Forbidden(actor, permission)
