"""The online-metrics contract between the model server and the monitor: the names of the
window series the server exports, and the ratios computed from their sums.

The server exports sufficient statistics of its rolling feedback window, never per-pod
ratios: per-class true positive, false positive and false negative counts for classifiers;
the sample count and the sums of absolute errors, squared errors, labels and squared labels
for regressors. Sums add up across workers and replicas, so a ratio computed from the pooled
sums is the metric over the pooled samples, exactly.

Undefined ratios follow scikit-learn where it has a rule and say so otherwise:

- per class, precision of a class never predicted (``tp + fp == 0``), recall of a class
  never labelled (``tp + fn == 0``) and F1 of a class absent from the window are ``None``;
- macro averages run over the classes present in the window (labelled or predicted, as
  scikit-learn's ``labels=None``), an undefined per-class term counting as 0 (scikit-learn's
  ``zero_division=0``): a class the model stopped predicting pulls macro precision down;
- R² of fewer than two samples, or of labels that are all equal, is ``None`` (scikit-learn
  ``force_finite=False`` answers NaN there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

LABELLED: Final = "mlops_labelled_samples"
"""Labelled samples in the windows (every task)."""
CORRECT: Final = "mlops_online_window_correct"
"""Correct predictions in the windows (classification)."""
TRUE_POSITIVES: Final = "mlops_online_window_true_positives"
"""Per ``class``: labelled samples of the class predicted as the class."""
FALSE_POSITIVES: Final = "mlops_online_window_false_positives"
"""Per ``class``: samples predicted as the class whose label is another class."""
FALSE_NEGATIVES: Final = "mlops_online_window_false_negatives"
"""Per ``class``: labelled samples of the class predicted as another class."""
ABS_ERROR: Final = "mlops_online_window_abs_error"
"""Sum of absolute errors (regression)."""
SQUARED_ERROR: Final = "mlops_online_window_squared_error"
"""Sum of squared errors (regression)."""
LABEL_SUM: Final = "mlops_online_window_label_sum"
"""Sum of the labels (regression)."""
LABEL_SQUARES: Final = "mlops_online_window_label_squares"
"""Sum of the squared labels (regression)."""

ClassMetric = Literal["precision", "recall", "f1"]


@dataclass(frozen=True)
class ClassCounts:
    """One class's confusion counts over a window (or summed over windows)."""

    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0

    def __add__(self, other: ClassCounts) -> ClassCounts:
        return ClassCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def present(self) -> bool:
        """Whether the class was labelled or predicted at all."""
        return self.tp + self.fp + self.fn > 0

    @property
    def support(self) -> float:
        """Labelled samples of the class."""
        return self.tp + self.fn

    @property
    def predicted(self) -> float:
        """Samples predicted as the class."""
        return self.tp + self.fp

    def value(self, metric: ClassMetric) -> float | None:
        """Precision, recall or F1 of the class; ``None`` where undefined."""
        if metric == "precision":
            return self.tp / self.predicted if self.predicted > 0 else None
        if metric == "recall":
            return self.tp / self.support if self.support > 0 else None
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator > 0 else None

    def samples(self, metric: ClassMetric) -> float:
        """The samples behind :meth:`value`: predictions of the class for precision, its
        labelled samples (its support) for recall and F1."""
        return self.predicted if metric == "precision" else self.support


def macro(counts: Mapping[str, ClassCounts], metric: ClassMetric) -> float | None:
    """The unweighted mean of ``metric`` over the classes present; ``None`` with none."""
    present = [c for c in counts.values() if c.present]
    if not present:
        return None
    return math.fsum(c.value(metric) or 0.0 for c in present) / len(present)


@dataclass(frozen=True)
class ErrorSums:
    """A regression window's sufficient statistics (or their sums over windows)."""

    n: float = 0.0
    abs_error: float = 0.0
    squared_error: float = 0.0
    label_sum: float = 0.0
    label_squares: float = 0.0

    def __add__(self, other: ErrorSums) -> ErrorSums:
        return ErrorSums(
            self.n + other.n,
            self.abs_error + other.abs_error,
            self.squared_error + other.squared_error,
            self.label_sum + other.label_sum,
            self.label_squares + other.label_squares,
        )

    @property
    def mae(self) -> float | None:
        """Mean absolute error."""
        return self.abs_error / self.n if self.n > 0 else None

    @property
    def rmse(self) -> float | None:
        """Root mean squared error."""
        return math.sqrt(self.squared_error / self.n) if self.n > 0 else None

    @property
    def r2(self) -> float | None:
        """Coefficient of determination, 1 - SS_res / SS_tot; ``None`` when undefined."""
        if self.n < 2:
            return None
        total = self.label_squares - self.label_sum * self.label_sum / self.n
        # The subtraction cancels: a spread within rounding of the squares is no spread.
        if total <= 1e-12 * self.label_squares:
            return None
        return 1.0 - self.squared_error / total
