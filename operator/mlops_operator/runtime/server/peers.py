"""Feedback across worker processes: each worker claims its own predictions for the others.

With ``--workers N`` the kernel hands each connection to any worker, so feedback for a
prediction often reaches a worker that did not make it. Every prediction id starts with
the id of the worker process that made it (:mod:`.feedback`), and every worker listens on
``<socket dir>/<worker>.sock``. The worker that receives feedback claims ids of other
workers from their sockets, one round trip per worker involved, and scores the labels
itself. Predictions never leave their worker otherwise, so the prediction path pays
nothing for this; only feedback does, and only for ids of other workers.

Wire format: one JSON line each way, ``{"claim": [id, ...]}`` then
``{"found": {id: prediction, ...}}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import orjson

logger = logging.getLogger(__name__)

TIMEOUT: Final = 2.0
"""Seconds to wait for another worker; a worker that is gone or stuck yields unknown ids."""

LINE_LIMIT: Final = 64 * 1024 * 1024
"""Largest message: ids of a feedback body of the largest accepted size fit many times."""

Claim = Callable[[Iterable[str]], dict[str, Any]]


def socket_path(directory: Path, worker: str) -> Path:
    """The socket of ``worker`` (hex digits only, see :func:`.feedback.worker_of`)."""
    return directory / f"{worker}.sock"


class PeerServer:
    """Answers other workers' claims with this worker's ``claim`` function."""

    def __init__(self, path: Path, claim: Claim) -> None:
        self.path = path
        self._claim = claim
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen on the socket (replacing a stale one left by a dead process)."""
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(
            self._handle, path=str(self.path), limit=LINE_LIMIT
        )

    async def close(self) -> None:
        """Stop listening and remove the socket."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = orjson.loads(await reader.readline())
            ids = [i for i in request.get("claim", []) if isinstance(i, str)]
            writer.write(orjson.dumps({"found": self._claim(ids)}) + b"\n")
            await writer.drain()
        except (OSError, ValueError, AttributeError) as exc:
            logger.warning("a feedback claim from another worker failed: %s", exc)
        finally:
            writer.close()


async def claim_from(path: Path, ids: list[str]) -> dict[str, Any]:
    """Claim ``ids`` from the worker listening on ``path``; nothing if it is not there."""
    if not path.exists():
        return {}
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_unix_connection(str(path), limit=LINE_LIMIT)
            try:
                writer.write(orjson.dumps({"claim": ids}) + b"\n")
                await writer.drain()
                reply = orjson.loads(await reader.readline())
            finally:
                writer.close()
    except (OSError, TimeoutError, ValueError) as exc:
        logger.warning("cannot claim predictions from the worker at %s: %s", path, exc)
        return {}
    found = reply.get("found") if isinstance(reply, dict) else None
    return found if isinstance(found, dict) else {}
