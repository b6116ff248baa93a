"""Prediction ids, the buffer of recent predictions, and the rolling feedback window: online
accuracy, per-class confusion counts (classifiers) and error sums (regressors).

A prediction id reads ``<worker>-<nonce>-<sequence>``: ``worker`` is the worker process's id
in hex, which tells any worker where to forward feedback for it (see
:mod:`mlops_operator.runtime.server.peers`); ``nonce`` is random per process, so ids stay
unique across restarts and replicas and an id from another pod is simply unknown.
"""

from __future__ import annotations

import itertools
import math
import numbers
import re
import secrets
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from typing import Any, Final

from mlops_operator.api.online import ClassCounts, ErrorSums, macro

DEFAULT_BUFFER_SIZE: Final = 100_000
"""Recent predictions kept for feedback by id, per worker."""

DEFAULT_WINDOW: Final = 1000
"""Labelled samples behind the rolling online metrics, per worker."""

MAX_ERROR: Final = 3.4e38
"""Largest absolute error one regression sample counts for (about float32's largest).
A larger one, say a label of 1e308 against a prediction of -1e308, counts as this: the
online MAE still shows the degradation, and the window's sum and the error counter stay
finite (summing infinities would freeze them at inf, or overflow ``math.fsum``). Labels count
for at most this much in the label sums likewise."""

MAX_EXTRA_CLASSES: Final = 50
"""Distinct labels, beyond the model's own classes, that get their own ``class`` series.
Labels come from clients: without a bound, a client sending random labels would create
series without end (a worker's series outlive the window)."""

OTHER_CLASS: Final = "(other)"
"""The ``class`` of the labels beyond :data:`MAX_EXTRA_CLASSES`."""

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


def class_key(value: Any) -> str:
    """A class label's key: its string form, a number by value (``1``, ``1.0`` and ``"1"``
    are class ``"1"``; ``0.5`` is ``"0.5"``), so a client sending ``"1"`` for class ``1``
    is not counted wrong."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if number.is_integer():
            return str(int(number))
        return repr(number)
    return str(value)


def labels_equal(predicted: Any, label: Any) -> bool:
    """Whether a ground-truth ``label`` is the ``predicted`` class (same :func:`class_key`)."""
    return class_key(predicted) == class_key(label)


def _clip(value: float) -> float:
    return max(-MAX_ERROR, min(MAX_ERROR, value))


class RollingScore:
    """The last ``window`` labelled samples: online accuracy and per-class confusion counts
    (classification), or absolute/squared error and label sums (regression)."""

    def __init__(
        self, *, regression: bool, window: int = DEFAULT_WINDOW, classes: Iterable[Any] = ()
    ) -> None:
        self.regression = regression
        self._size = window
        self._sum = 0.0
        # Classification: (correct, predicted key, label key); regression: (error, label).
        self._samples: deque[tuple[Any, ...]] = deque()
        self._counts: dict[str, list[int]] = {}
        self._known = {class_key(c) for c in classes}
        self._extra = 0
        self._changed: set[str] = set()
        self._errors = ErrorSums()

    @property
    def samples(self) -> int:
        """Labelled samples in the window."""
        return len(self._samples)

    @property
    def total(self) -> float:
        """Sum over the window: correct predictions, or absolute errors."""
        return self._sum

    @property
    def value(self) -> float | None:
        """Accuracy or MAE over the window; ``None`` with no samples."""
        if not self._samples:
            return None
        return self._sum / len(self._samples)

    @property
    def errors(self) -> ErrorSums:
        """The regression window's sums (all zero for a classifier)."""
        return self._errors

    def class_counts(self) -> dict[str, ClassCounts]:
        """Confusion counts of every class seen so far (zero once out of the window)."""
        return {key: ClassCounts(*map(float, c)) for key, c in self._counts.items()}

    def changed_classes(self) -> dict[str, ClassCounts]:
        """Counts of the classes changed since the previous call."""
        counts = self._counts
        changed = {k: ClassCounts(*map(float, counts[k])) for k in sorted(self._changed)}
        self._changed.clear()
        return changed

    def summary(self) -> dict[str, float | None]:
        """The window's metrics for the feedback answer: accuracy and macro precision,
        recall and F1, or MAE, RMSE and R²."""
        if self.regression:
            e = self._errors
            return {"mae": e.mae, "rmse": e.rmse, "r2": e.r2}
        counts = self.class_counts()
        return {
            "accuracy": self.value,
            "precision": macro(counts, "precision"),
            "recall": macro(counts, "recall"),
            "f1": macro(counts, "f1"),
        }

    def score(self, predicted: Any, label: Any) -> float:
        """What one labelled sample adds: 1 or 0 (correct or not), or the absolute error."""
        if self.regression:
            error = abs(float(predicted) - float(label))
            return error if error <= MAX_ERROR else MAX_ERROR
        return 1.0 if labels_equal(predicted, label) else 0.0

    def add(self, predicted: Sequence[Any], labels: Sequence[Any]) -> list[float]:
        """Score and add labelled samples; returns each sample's score."""
        scores = [self.score(p, y) for p, y in zip(predicted, labels, strict=True)]
        window = self._samples
        for s, p, y in zip(scores, predicted, labels, strict=True):
            if len(window) == self._size:
                self._forget(window.popleft())
            if self.regression:
                window.append((s, _clip(float(y))))
            else:
                sample = (s, self._key(p), self._key(y))
                self._count(sample, 1)
                window.append(sample)
            self._sum += s
        if self.regression:
            # Adding and subtracting floats drifts; exact sums per call are cheap at W samples.
            errors = [e for e, _ in window]
            ys = [y for _, y in window]
            self._sum = math.fsum(errors)
            self._errors = ErrorSums(
                n=float(len(window)),
                abs_error=self._sum,
                squared_error=math.fsum(e * e for e in errors),
                label_sum=math.fsum(ys),
                label_squares=math.fsum(y * y for y in ys),
            )
        return scores

    def _forget(self, sample: tuple[Any, ...]) -> None:
        self._sum -= sample[0]
        if not self.regression:
            self._count(sample, -1)

    def _count(self, sample: tuple[Any, ...], step: int) -> None:
        correct, predicted, label = sample
        counts = self._counts
        if correct:
            counts.setdefault(label, [0, 0, 0])[0] += step
            self._changed.add(label)
        else:
            counts.setdefault(predicted, [0, 0, 0])[1] += step
            counts.setdefault(label, [0, 0, 0])[2] += step
            self._changed.update((predicted, label))

    def _key(self, value: Any) -> str:
        key = class_key(value)
        if key in self._known:
            return key
        if self._extra >= MAX_EXTRA_CLASSES:
            return OTHER_CLASS
        self._extra += 1
        self._known.add(key)
        return key
