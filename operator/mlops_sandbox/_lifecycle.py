"""The start/stop shape shared by the sandbox's servers, usable as context managers."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Managed:
    """``with X(...) as x:`` starts ``x`` and always stops it."""

    def start(self) -> None:
        """Start serving."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop and release everything; safe to call twice."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
