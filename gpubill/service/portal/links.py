"""Portal links: who may open one customer's portal, for how long; each visit logged.

Receives from `gpubill portal` a store, the contracts (a link is made only
for a customer some contract bills), the actor (``share``: approver or admin)
and an expiry (``30d``, ``12h``, ``90m``); answers the link and its URL. From
`gpubill serve`, a token to check (``check_link``) and the visits to log.
The links, their signatures and the visits are kept in the store
(gpubill/store/portal.py); the portal's pages never see another customer:
every page a link opens is read for the link's customer only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gpubill.service.rating import ServiceError, customer_of, load_catalog
from gpubill.store import portal
from gpubill.store.portal import Link, LinkUse, Visit
from gpubill.store.roles import Actor

__all__ = ["Link", "LinkUse", "Visit", "DEFAULT_EXPIRY", "MAX_EXPIRY_DAYS", "PORTAL_URL_ENV", "DEFAULT_URL",
           "expiry_ms", "known_customers", "create_links", "create_link", "revoke_link", "list_links", "link_visits",
           "check_link", "log_visit", "linked_since", "link_url", "ROOT"]

DEFAULT_EXPIRY = "30d"
MAX_EXPIRY_DAYS = 366
PORTAL_URL_ENV = "GPUBILL_PORTAL_URL"  # where customers reach `gpubill serve` (a link's base URL)
DEFAULT_URL = "http://127.0.0.1:8080"
ROOT = "/portal"  # every portal page is below ROOT/TOKEN/
_UNIT_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000}
_EXPIRY = re.compile(r"([1-9][0-9]{0,5})([dhm])")

revoke_link = portal.revoke
list_links = portal.links
link_visits = portal.visits
check_link = portal.check
log_visit = portal.log_visit


def expiry_ms(text: str) -> int:
    """``30d`` / ``12h`` / ``90m`` in milliseconds, at most MAX_EXPIRY_DAYS (ServiceError, exit 2)."""
    m = _EXPIRY.fullmatch(text.strip())
    if m is None:
        raise ServiceError(f"expiry must be a whole number of days, hours or minutes (30d, 12h, 90m), got {text!r}", 2)
    ms = int(m.group(1)) * _UNIT_MS[m.group(2)]
    if ms > MAX_EXPIRY_DAYS * _UNIT_MS["d"]:
        raise ServiceError(f"a link may last at most {MAX_EXPIRY_DAYS} days, got {text}", 2)
    return ms


def known_customers(contract_paths: Sequence[str], keys: Sequence[str]) -> list[str]:
    """The customer id each key names (a customer id, or a contract's name); ServiceError for one that none does."""
    catalog, _ = load_catalog(contract_paths)
    named: dict[str, set[str]] = {}
    for c in catalog.contracts.values():
        for key in (customer_of(c), c.name.name):
            named.setdefault(key, set()).add(customer_of(c))
    out = []
    for key in keys:
        found = named.get(key, set())
        if len(found) != 1:
            known = sorted({customer_of(c) for c in catalog.contracts.values()})
            raise ServiceError(f"no contract bills a customer {key!r} (customers: {', '.join(known[:12])})")
        out.append(next(iter(found)))
    return out


def create_links(store, contract_paths: Sequence[str], actor: Actor, customers: Sequence[str], expires_in_ms: int,
                 *, now_ms: int) -> list[tuple[Link, str]]:
    """A link to each customer's portal for ``expires_in_ms`` (the contracts loaded once): (link, token) each."""
    return [portal.create(store, actor, c, now_ms + expires_in_ms) for c in known_customers(contract_paths, customers)]


def create_link(store, contract_paths: Sequence[str], actor: Actor, customer: str, expires_in_ms: int,
                *, now_ms: int) -> tuple[Link, str]:
    """A link to ``customer``'s portal for ``expires_in_ms``: (the link, its token)."""
    return create_links(store, contract_paths, actor, [customer], expires_in_ms, now_ms=now_ms)[0]


def linked_since(store, at_ms: int, rowid: int = 0) -> tuple[list[str], int]:
    """The customers holding a link made after the one stored as ``rowid`` (0: any) that opens at ``at_ms``, the
    most recently linked first, and the rowid to look after next time."""
    links, last = portal.links_after(store, rowid)
    out: dict[str, None] = {}
    for link in reversed(links):
        if link.refusal(at_ms) is None:
            out.setdefault(link.customer)
    return list(out), last


def link_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}{ROOT}/{token}/"
