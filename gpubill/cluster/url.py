"""The cluster event store's address: ``clickhouse://host:port/db?cluster=NAME``."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import attrs

from gpubill.store.schema import StoreError

SCHEME = "clickhouse"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")  # a database or cluster name ClickHouse takes unquoted
DEFAULT_PORT = 9000  # ClickHouse's native protocol


@attrs.frozen
class URLParts:
    host: str
    port: int
    path: str  # without its leading "/"
    options: dict  # option -> its (first) value


def url_parts(text: str, flag: str, scheme: str, default_port: int, form: str, options: tuple) -> URLParts:
    """``scheme://host[:port]/path[?option=value...]`` split and checked, or StoreError (one line naming the
    flag, what is wrong and ``form``)."""
    try:
        u = urlsplit(text)
        port = u.port or default_port
    except ValueError as e:
        raise StoreError(f"{flag} {text!r}: {e}; {form}") from None
    if u.scheme != scheme or not u.hostname:
        raise StoreError(f"{flag} {text!r}: {form}")
    query = parse_qs(u.query)
    unknown = sorted(set(query) - set(options))
    if unknown:
        raise StoreError(f"{flag} {text!r}: unknown option {unknown[0]!r}; {form}")
    return URLParts(u.hostname, port, u.path.strip("/"), {k: v[0] for k, v in query.items()})


@attrs.frozen
class EventsURL:
    host: str
    port: int
    database: str
    cluster: str

    def __str__(self) -> str:
        return f"{SCHEME}://{self.host}:{self.port}/{self.database}?cluster={self.cluster}"


def parse_events_url(text: str) -> EventsURL:
    """``clickhouse://host[:port]/db?cluster=NAME`` -> EventsURL, or StoreError (one line)."""
    form = f"expected {SCHEME}://HOST:PORT/DATABASE?cluster=NAME"
    u = url_parts(text, "--events", SCHEME, DEFAULT_PORT, form, ("cluster",))
    cluster = u.options.get("cluster", "")
    for what, name in (("database", u.path), ("cluster", cluster)):
        if not _NAME.match(name):
            raise StoreError(f"--events {text!r}: {what} {name!r} is not a plain name; {form}")
    return EventsURL(u.host, u.port, u.path, cluster)
