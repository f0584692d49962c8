"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for reading each request head.

uvicorn closes a kept-alive connection that stays idle (``timeout_keep_alive``), but nothing
bounds the time a client takes to send the request line and headers: a client that opens a
connection and sends its head a byte at a time (slow loris) holds it for as long as it likes,
and many such clients hold the server's connections and memory. This protocol gives every
request head ``header_timeout_s`` seconds, counted from the connection's opening (or, on a
kept-alive connection, from the first byte of the next request), and closes the connection when
the head is not complete by then. The body and WebSocket traffic are not affected: the timer
stops once the head is parsed.
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)


class HeaderTimeoutProtocol(H11Protocol):
    """``H11Protocol`` that closes connections whose request head takes too long."""

    header_timeout_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_header_timer()  # the first byte of the next request on this connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_header_timer()  # the head is complete (or the connection is done)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        logger.debug(
            "closing a connection from %s: no complete request head within %g s",
            self.client,
            self.header_timeout_s,
        )
        self.transport.close()


def header_timeout_protocol(timeout_s: float) -> type[HeaderTimeoutProtocol]:
    """A ``HeaderTimeoutProtocol`` class with this deadline, for ``uvicorn.run(http=...)``."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": timeout_s})
