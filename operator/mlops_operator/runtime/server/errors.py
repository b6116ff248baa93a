"""The one error a request can be refused with, shared by every protocol module. Pure."""

from __future__ import annotations


class ProtocolError(Exception):
    """A request the server refuses: ``status`` is the HTTP status (gRPC maps it to its own
    code), ``message`` the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
