"""Input drift: a sliding window of recent rows compared with the training distribution.

Each worker keeps the last ``window`` rows it predicted in a ring buffer and, at most every
``every_seconds``, computes each feature's population stability index against the
``reference.json`` bins (:func:`mlops_operator.runtime.refstats.psi`). Recomputing on a
clock rather than per request keeps the cost fixed however heavy the traffic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from mlops_operator.runtime.refstats import psi
from mlops_operator.runtime.server.protocol import Rows

DEFAULT_WINDOW: Final = 1000
"""Rows in the drift window, per worker."""

DEFAULT_EVERY_SECONDS: Final = 5.0
"""Least time between two PSI computations."""


class DriftWindow:
    """The last ``window`` rows of the features that have reference statistics."""

    def __init__(
        self,
        reference: Mapping[str, Any],
        features: Sequence[str],
        *,
        window: int = DEFAULT_WINDOW,
        every_seconds: float = DEFAULT_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        tracked = [(i, f) for i, f in enumerate(features) if isinstance(reference.get(f), dict)]
        self.features = [f for _, f in tracked]
        self._columns = [i for i, _ in tracked]
        self._reference = [reference[f] for f in self.features]
        self._size = window
        self._buffer = np.full((window, len(tracked)), np.nan)
        self._next = 0
        self._filled = 0
        self._every = every_seconds
        self._clock = clock
        self._last = -math.inf
        self._dirty = False

    @property
    def rows(self) -> int:
        """Rows currently in the window."""
        return self._filled

    def add(self, rows: Rows) -> dict[str, float] | None:
        """Add predicted rows; returns fresh PSI by feature when it is time to recompute."""
        if not self.features:
            return None
        values = rows[:, self._columns]
        n = values.shape[0]
        if n >= self._size:
            self._buffer[:] = values[-self._size :]
            self._next = 0
        else:
            first = min(n, self._size - self._next)
            self._buffer[self._next : self._next + first] = values[:first]
            self._buffer[: n - first] = values[first:]
            self._next = (self._next + n) % self._size
        self._filled = min(self._size, self._filled + n)
        self._dirty = True
        return self.refresh()

    def refresh(self) -> dict[str, float] | None:
        """Fresh PSI by feature when rows arrived since the last computation and it is time
        to recompute; called after each batch and periodically, so the last rows of a burst
        are counted even when no request follows them."""
        if not self._dirty:
            return None
        now = self._clock()
        if now - self._last < self._every:
            return None
        self._last = now
        self._dirty = False
        return self.psi()

    def psi(self) -> dict[str, float]:
        """PSI of each tracked feature over the rows in the window."""
        window = self._buffer[: self._filled]
        return {
            feature: psi(stats, window[:, j])
            for j, (feature, stats) in enumerate(zip(self.features, self._reference, strict=True))
        }
