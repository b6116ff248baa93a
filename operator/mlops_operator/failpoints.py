"""Failpoints: named places where the process can be made to die on purpose, so tests can
prove that a restart at that exact point converges (like etcd's gofail)."""

from __future__ import annotations

import logging
import os

ENV = "MLOPS_FAILPOINTS"
logger = logging.getLogger(__name__)


def hit(name: str) -> None:
    """Exit the process at once when ``name`` is listed in ``$MLOPS_FAILPOINTS``."""
    if name in os.environ.get(ENV, "").split(","):
        logger.error("failpoint %s: exiting the process on purpose", name)
        os._exit(137)
