"""Input drift: a sliding window of recent rows compared with the training distribution.

Each worker keeps the last ``window`` rows it predicted in a ring buffer and, at most every
``every_seconds``, computes each feature's population stability index: a numeric feature's
against the ``reference.json`` bins (:func:`mlops_operator.runtime.refstats.psi`), a
categorical feature's against the training shares of its categories in ``schema.json``
(:func:`mlops_operator.runtime.refstats.category_psi`). Recomputing on a clock rather than
per request keeps the cost fixed however heavy the traffic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from mlops_operator.runtime.refstats import category_psi, psi
from mlops_operator.runtime.server.protocol import Inputs

DEFAULT_WINDOW: Final = 1000
"""Rows in the drift window, per worker."""

DEFAULT_EVERY_SECONDS: Final = 5.0
"""Least time between two PSI computations."""


def as_floats(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """A column as numbers, NaN where a value is none (missing, or text that is no number:
    a category code column measured against numeric bins)."""
    try:
        return values.astype(np.float64, copy=False)
    except (TypeError, ValueError):
        out = np.full(values.shape, np.nan)
        for index, value in np.ndenumerate(values):
            try:
                out[index] = float(value)
            except (TypeError, ValueError):
                pass
        return out


class DriftWindow:
    """The last ``window`` rows of the features that have a training reference: numeric
    bins in ``reference`` (``reference.json``'s features), or category shares in
    ``categories`` (which wins for a feature in both)."""

    def __init__(
        self,
        reference: Mapping[str, Any],
        features: Sequence[str],
        *,
        categories: Mapping[str, Mapping[str, float]] | None = None,
        window: int = DEFAULT_WINDOW,
        every_seconds: float = DEFAULT_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        categories = categories or {}
        numeric = [
            (i, f)
            for i, f in enumerate(features)
            if f not in categories and isinstance(reference.get(f), dict)
        ]
        categorical = [(i, f) for i, f in enumerate(features) if f in categories]
        self.features = [f for _, f in sorted(numeric + categorical)]
        self._numeric = [f for _, f in numeric]
        self._columns = [i for i, _ in numeric]
        self._reference = [reference[f] for f in self._numeric]
        self._categorical = [f for _, f in categorical]
        self._category_columns = [i for i, _ in categorical]
        self._shares = [categories[f] for f in self._categorical]
        self._size = window
        self._buffer = np.full((window, len(numeric)), np.nan)
        self._labels = np.full((window, len(categorical)), None, dtype=object)
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

    def add(self, rows: Inputs) -> dict[str, float] | None:
        """Add predicted rows (float64, or a table of raw rows); returns fresh PSI by
        feature when it is time to recompute."""
        if not self.features:
            return None
        start = self._next
        n = self._write(self._buffer, as_floats(rows[:, self._columns]))
        if self._categorical:
            self._next = start
            self._write(self._labels, rows[:, self._category_columns])
        self._next = (start + n) % self._size if n < self._size else 0
        self._filled = min(self._size, self._filled + n)
        self._dirty = True
        return self.refresh()

    def _write(self, buffer: npt.NDArray[Any], values: npt.NDArray[Any]) -> int:
        """Write ``values`` into the ring ``buffer`` from the current position."""
        n = int(values.shape[0])
        if n >= self._size:
            buffer[:] = values[-self._size :]
        else:
            first = min(n, self._size - self._next)
            buffer[self._next : self._next + first] = values[:first]
            buffer[: n - first] = values[first:]
        return n

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
        found = {
            feature: psi(stats, window[:, j])
            for j, (feature, stats) in enumerate(zip(self._numeric, self._reference, strict=True))
        }
        labels = self._labels[: self._filled]
        for j, (feature, shares) in enumerate(zip(self._categorical, self._shares, strict=True)):
            found[feature] = category_psi(shares, labels[:, j].tolist())
        return {feature: found[feature] for feature in self.features}
