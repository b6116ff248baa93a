"""Prediction ids, the buffer of recent predictions, and rolling online accuracy (or MAE).

A prediction id reads ``<worker>-<nonce>-<sequence>``: ``worker`` is the worker process's id
in hex, which tells any worker where to forward feedback for it (see
:mod:`mlops_operator.runtime.server.peers`); ``nonce`` is random per process, so ids stay
unique across restarts and replicas and an id from another pod is simply unknown.
"""

from __future__ import annotations

import itertools
import math
import re
import secrets
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from typing import Any, Final

DEFAULT_BUFFER_SIZE: Final = 100_000
"""Recent predictions kept for feedback by id, per worker."""

DEFAULT_WINDOW: Final = 1000
"""Labelled samples behind the rolling online accuracy (or MAE), per worker."""

MAX_ERROR: Final = 3.4e38
"""Largest absolute error one regression sample counts for (about float32's largest).
A larger one, say a label of 1e308 against a prediction of -1e308, counts as this: the
online MAE still shows the degradation, and the window's sum and the error counter stay
finite (summing infinities would freeze them at inf, or overflow ``math.fsum``)."""

_WORKER: Final = re.compile(r"^([0-9a-f]{1,8})-")


class PredictionIds:
    """Generates prediction ids for one worker process."""

    def __init__(self, worker: int) -> None:
        self.worker = f"{worker:x}"
        self._prefix = f"{self.worker}-{secrets.token_hex(4)}-"
        self._sequence = itertools.count()

    def next(self, count: int) -> list[str]:
        """``count`` fresh ids."""
        prefix, sequence = self._prefix, self._sequence
        return [f"{prefix}{next(sequence):x}" for _ in range(count)]


def worker_of(prediction_id: str) -> str | None:
    """The worker part of a prediction id made by :class:`PredictionIds`, else ``None``.

    Ids come from clients, and the worker part ends up in a socket path: only hex digits
    pass.
    """
    match = _WORKER.match(prediction_id)
    return match.group(1) if match else None


class PredictionBuffer:
    """The last ``size`` predictions by id; each can be claimed by feedback once."""

    def __init__(self, size: int = DEFAULT_BUFFER_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[str, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, ids: Sequence[str], predictions: Sequence[Any]) -> None:
        """Remember predictions, forgetting the oldest beyond the size."""
        items = self._items
        items.update(zip(ids, predictions, strict=True))
        while len(items) > self._size:
            items.popitem(last=False)

    def claim(self, ids: Iterable[str]) -> dict[str, Any]:
        """Remove and return the known predictions among ``ids``.

        Claiming removes: a second label for the same prediction would count it twice.
        """
        found: dict[str, Any] = {}
        for pid in ids:
            if pid in self._items:
                found[pid] = self._items.pop(pid)
        return found


def labels_equal(predicted: Any, label: Any) -> bool:
    """Whether a ground-truth ``label`` is the ``predicted`` class.

    Numbers compare by value (``1`` and ``1.0`` are the same class); anything else by its
    string form, so a client sending ``"1"`` for class ``1`` is not counted wrong.
    """
    if _is_number(predicted) and _is_number(label):
        return float(predicted) == float(label)
    return str(predicted) == str(label)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class RollingScore:
    """Online accuracy (classification) or mean absolute error (regression) over the last
    ``window`` labelled samples."""

    def __init__(self, *, regression: bool, window: int = DEFAULT_WINDOW) -> None:
        self.regression = regression
        self._window: deque[float] = deque(maxlen=window)
        self._sum = 0.0

    @property
    def samples(self) -> int:
        """Labelled samples in the window."""
        return len(self._window)

    @property
    def total(self) -> float:
        """Sum over the window: correct predictions, or absolute errors."""
        return self._sum

    @property
    def value(self) -> float | None:
        """Accuracy or MAE over the window; ``None`` with no samples."""
        if not self._window:
            return None
        return self._sum / len(self._window)

    def score(self, predicted: Any, label: Any) -> float:
        """What one labelled sample adds: 1 or 0 (correct or not), or the absolute error."""
        if self.regression:
            error = abs(float(predicted) - float(label))
            return error if error <= MAX_ERROR else MAX_ERROR
        return 1.0 if labels_equal(predicted, label) else 0.0

    def add(self, predicted: Sequence[Any], labels: Sequence[Any]) -> list[float]:
        """Score and add labelled samples; returns each sample's score."""
        scores = [self.score(p, y) for p, y in zip(predicted, labels, strict=True)]
        for s in scores:
            if len(self._window) == self._window.maxlen:
                self._sum -= self._window[0]
            self._window.append(s)
            self._sum += s
        if self.regression:
            # Adding and subtracting floats drifts; one exact sum per call is cheap at W samples.
            self._sum = math.fsum(self._window)
        return scores
