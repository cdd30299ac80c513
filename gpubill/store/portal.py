"""Customer portal links: signed, expiring, revocable; every visit logged.

A link is a row of ``portal_links``: a public id (12 hex digits, shown in
lists and in the audit log), the customer it shows, when it expires, who made
it and whether it was revoked. Its token is ``ID.SIGNATURE``: the signature is
HMAC-SHA256 over the link's id, customer and expiry under the store's secret
(``portal_secret``, 32 random bytes made with the first link), base64url
without padding. The token is never stored: knowing a link's id (from `gpubill
portal list` or the audit log) does not give its token, and a token cannot be
changed to another customer or a later expiry without the secret.

``check`` answers the link a token opens, or the reason it opens nothing:
``invalid`` (malformed, unknown id, wrong signature), ``expired`` or
``revoked``. Creating and revoking a link need the ``share`` permission and are
written to the audit log (``portal_link.created``, ``portal_link.revoked``)
in the same transaction. Each request made with a link (refused ones too,
when the id is known) is one row of ``portal_visits``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

import attrs

from . import audit
from .queries import _sqlite_errors, now_ms
from .roles import Actor

PORTAL_LINK = "portal_link"
VISIT_PATH_MAX = 300  # a visit's path is kept up to this many characters
_TOKEN = re.compile(r"([0-9a-f]{12})\.([A-Za-z0-9_-]{43})")
_LINK_COLUMNS = "id, customer, created_ms, expires_ms, created_by, revoked_ms, revoked_by"


@attrs.frozen
class Link:
    id: str
    customer: str
    created_ms: int
    expires_ms: int
    created_by: str  # the actor's label (cli:ana)
    revoked_ms: int | None = None
    revoked_by: str | None = None

    def refusal(self, at_ms: int) -> str | None:
        """Why the link opens nothing at ``at_ms`` ("revoked", "expired"), or None."""
        if self.revoked_ms is not None and self.revoked_ms <= at_ms:
            return "revoked"
        if at_ms >= self.expires_ms:
            return "expired"
        return None


@attrs.frozen
class Visit:
    link_id: str
    at_ms: int
    method: str
    path: str  # below the link's root: "/", "/invoices/NWG-001-001.pdf"
    status: int
    peer: str | None


@attrs.frozen
class LinkUse:
    """A link with how often and when it was last used (``portal list``)."""

    link: Link
    visits: int
    last_visit_ms: int | None


def _signature(secret: bytes, link_id: str, customer: str, expires_ms: int) -> str:
    mac = hmac.new(secret, f"gpubill-portal/1\n{link_id}\n{customer}\n{expires_ms}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def _secret(db) -> bytes | None:
    row = db.execute("SELECT secret FROM portal_secret WHERE id = 1").fetchone()
    return bytes(row[0]) if row else None


def _link(db, link_id: str) -> Link | None:
    row = db.execute(f"SELECT {_LINK_COLUMNS} FROM portal_links WHERE id = ?", (link_id,)).fetchone()
    return Link(*row) if row else None


def create(store, actor: Actor, customer: str, expires_ms: int) -> tuple[Link, str]:
    """A new link to ``customer``'s portal, valid until ``expires_ms``: (the link, its token)."""
    store.require(actor, "share", "portal_link.create", PORTAL_LINK, customer)
    t = now_ms()
    if expires_ms <= t:
        raise ValueError("a link must expire in the future")
    with store.transaction() as db:
        secret = _secret(db)
        if secret is None:
            secret = secrets.token_bytes(32)
            db.execute("INSERT INTO portal_secret (id, secret, created_ms) VALUES (1, ?, ?)", (secret, t))
        link = Link(secrets.token_hex(6), customer, t, expires_ms, actor.label)
        db.execute(f"INSERT INTO portal_links ({_LINK_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL, NULL)",
                   (link.id, customer, t, expires_ms, actor.label))
        audit.append(db, actor, "portal_link.created", PORTAL_LINK, link.id,
                     {"customer": customer, "expires_ms": expires_ms}, at_ms=t)
    return link, f"{link.id}.{_signature(secret, link.id, customer, expires_ms)}"


def revoke(store, actor: Actor, link_id: str) -> Link | None:
    """Revoke a link (None: no such link, or already revoked)."""
    store.require(actor, "share", "portal_link.revoke", PORTAL_LINK, link_id)
    t = now_ms()
    with store.transaction() as db:
        link = _link(db, link_id)
        if link is None or link.revoked_ms is not None:
            return None
        db.execute("UPDATE portal_links SET revoked_ms = ?, revoked_by = ? WHERE id = ?", (t, actor.label, link_id))
        audit.append(db, actor, "portal_link.revoked", PORTAL_LINK, link_id, {"customer": link.customer}, at_ms=t)
    return attrs.evolve(link, revoked_ms=t, revoked_by=actor.label)


@_sqlite_errors
def check(store, token: str, at_ms: int) -> tuple[Link | None, str | None]:
    """(the link, None) when ``token`` opens it at ``at_ms``; else (the link if its id is known, the reason)."""
    m = _TOKEN.fullmatch(token)
    if m is None:
        return None, "invalid"
    db = store._read()
    link, secret = _link(db, m.group(1)), _secret(db)
    if link is None or secret is None:
        return None, "invalid"
    if not hmac.compare_digest(m.group(2), _signature(secret, link.id, link.customer, link.expires_ms)):
        return None, "invalid"
    return link, link.refusal(at_ms)


def log_visit(store, visit: Visit) -> None:
    with store.transaction() as db:
        db.execute("INSERT INTO portal_visits (link_id, at_ms, method, path, status, peer) VALUES (?, ?, ?, ?, ?, ?)",
                   (visit.link_id, visit.at_ms, visit.method, visit.path[:VISIT_PATH_MAX], visit.status, visit.peer))


@_sqlite_errors
def links(store, customer: str | None = None) -> list[LinkUse]:
    """Every link (one customer's), newest first, with its visits."""
    sql = (f"SELECT {', '.join('l.' + c.strip() for c in _LINK_COLUMNS.split(','))}, count(v.id), max(v.at_ms) "
           "FROM portal_links l LEFT JOIN portal_visits v ON v.link_id = l.id")
    args: tuple = ()
    if customer is not None:
        sql, args = sql + " WHERE l.customer = ?", (customer,)
    rows = store._read().execute(sql + " GROUP BY l.id ORDER BY l.created_ms DESC, l.id", args).fetchall()
    return [LinkUse(Link(*r[:7]), r[7], r[8]) for r in rows]


@_sqlite_errors
def links_after(store, rowid: int) -> tuple[list[Link], int]:
    """The links made after the one stored as ``rowid`` (0: every link), oldest first, and the last one's rowid
    (``rowid`` when there is none): what a reader that looks again and again has not seen yet."""
    rows = store._read().execute(f"SELECT rowid, {_LINK_COLUMNS} FROM portal_links WHERE rowid > ? ORDER BY rowid",
                                 (rowid,)).fetchall()
    return [Link(*r[1:]) for r in rows], (rows[-1][0] if rows else rowid)


@_sqlite_errors
def visits(store, link_id: str | None = None, limit: int = 100) -> list[Visit]:
    """The latest visits (of one link), newest first."""
    sql = "SELECT link_id, at_ms, method, path, status, peer FROM portal_visits"
    args: tuple = ()
    if link_id is not None:
        sql, args = sql + " WHERE link_id = ?", (link_id,)
    return [Visit(*r) for r in store._read().execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))]
