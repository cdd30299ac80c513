"""The HTTP/1.1 connection protocol `gpubill serve` runs: uvicorn's h11 protocol with a header deadline.

uvicorn bounds the idle time between requests (`timeout_keep_alive`) but not
the time a client takes to send a request's line and headers: any byte cancels
the keep-alive timer, and nothing is armed before the first request, so a
client that sends nothing, or one header byte a second (slowloris), holds its
connection and its file descriptor forever. `with_header_deadline(seconds)`
returns the protocol class that closes such a connection: each request's
headers must be complete within `seconds` of the connection being accepted or
of the previous response being sent. Nothing is answered (like nginx's
`client_header_timeout`): no request exists to answer. Once the headers are in,
the deadline is off; the body has its own timeout (`--body-timeout`, in the app).
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: `gpubill serve --header-timeout` default, in seconds: far above a real client on any network
#: (it sends its headers in one packet), far below the time a trickling client can hold a connection.
DEFAULT_HEADER_TIMEOUT_S = 10.0


class HeaderDeadlineProtocol(H11Protocol):
    """h11 with a deadline on each request's headers (`header_timeout` seconds, set by the subclass)."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT_S
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the request's headers are in (or the connection is over)
            self._disarm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()  # the next request's headers, on a kept-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_overdue)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_overdue(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def with_header_deadline(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class for uvicorn's `http=` setting, closing connections whose headers are late."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout": seconds})
