"""uvicorn's httptools protocol with a deadline for request headers.

uvicorn times out idle keep-alive connections, but not a connection that is slow to send
its request: a client that opens a socket and trickles an incomplete header (slow-loris)
holds it, and a slot of ``--max-connections``, for as long as it likes. Here every request
must have sent its whole header within ``header_timeout`` seconds of its connection opening
(or of its first byte, on a kept-alive connection); else the connection is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mlops_operator.runtime.server.config import ServeConfig


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` closing connections whose request headers are late."""

    header_timeout: float | None = None
    """Seconds; read once per process from the server's configuration."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if HeaderDeadlineProtocol.header_timeout is None:
            HeaderDeadlineProtocol.header_timeout = ServeConfig.from_env().header_timeout
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._deadline is None and self.header_timeout:
            self._deadline = self.loop.call_later(self.header_timeout, self._late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection: its first request's headers are due in time."""
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        """A request starts (on a kept-alive connection, its first byte arrived)."""
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        """The headers arrived in time."""
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone; so is its deadline."""
        self._disarm()
        super().connection_lost(exc)
