"""The cluster event store's address: ``clickhouse://host:port/db?cluster=NAME``."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import attrs

SCHEME = "clickhouse"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")  # a database or cluster name ClickHouse takes unquoted
DEFAULT_PORT = 9000  # ClickHouse's native protocol


class EventsURLError(ValueError):
    """A malformed ``--events`` address (one line: what is wrong and the form expected)."""


@attrs.frozen
class EventsURL:
    host: str
    port: int
    database: str
    cluster: str

    def __str__(self) -> str:
        return f"{SCHEME}://{self.host}:{self.port}/{self.database}?cluster={self.cluster}"


def parse_events_url(text: str) -> EventsURL:
    """``clickhouse://host[:port]/db?cluster=NAME`` -> EventsURL, or EventsURLError."""
    form = f"expected {SCHEME}://HOST:PORT/DATABASE?cluster=NAME"
    try:
        u = urlsplit(text)
        port = u.port or DEFAULT_PORT
    except ValueError as e:
        raise EventsURLError(f"--events {text!r}: {e}; {form}") from None
    if u.scheme != SCHEME or not u.hostname:
        raise EventsURLError(f"--events {text!r}: {form}")
    db = u.path.lstrip("/")
    query = parse_qs(u.query)
    cluster = (query.get("cluster") or [""])[0]
    for what, name in (("database", db), ("cluster", cluster)):
        if not _NAME.match(name):
            raise EventsURLError(f"--events {text!r}: {what} {name!r} is not a plain name; {form}")
    unknown = sorted(set(query) - {"cluster"})
    if unknown:
        raise EventsURLError(f"--events {text!r}: unknown option {unknown[0]!r}; {form}")
    return EventsURL(u.hostname, port, db, cluster)
