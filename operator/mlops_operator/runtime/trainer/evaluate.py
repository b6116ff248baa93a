"""Measuring the fitted estimator on the held-out rows: which metrics, and their values."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from mlops_operator.api.trainingjob import Task
from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer.failure import TrainingFailure

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

CLASSIFICATION_METRICS: Final = ("accuracy", "precision", "recall", "f1", "rocAuc")
"""Metrics of a classifier, in report order; precision, recall and f1 are macro averages."""

REGRESSION_METRICS: Final = ("r2", "mae", "rmse")
"""Metrics of a regressor, in report order."""

METRICS_BY_TASK: Final[Mapping[str, tuple[str, ...]]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}


def select_metrics(task: Task, requested: Sequence[str] | None) -> tuple[str, ...]:
    """The metrics to report: ``requested`` (in the task's order), or all of the task's."""
    valid = METRICS_BY_TASK[task]
    if requested is None:
        return valid
    unknown = [name for name in requested if name not in valid]
    if unknown:
        raise TrainingFailure(
            tm.INVALID_SPEC,
            f"unknown {task} metric {unknown[0]!r} in spec.validation.metrics; "
            f"valid metrics: {', '.join(valid)}",
        )
    return tuple(name for name in valid if name in requested)


def class_scores(estimator: Any, x: pd.DataFrame, n_classes: int) -> Any:
    """What ROC AUC is computed from: ``predict_proba`` rows, or for a binary classifier
    without probabilities its ``decision_function`` values; ``None`` when it has neither."""
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(x)
    if n_classes == 2 and hasattr(estimator, "decision_function"):
        return estimator.decision_function(x)
    return None


def _roc_auc(y_true: npt.ArrayLike, scores: Any, classes: Sequence[Any]) -> float | None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(y_true)
    if scores is None or len(classes) < 2:
        return None
    scores = np.asarray(scores)
    # AUC is undefined unless every class appears among the held-out rows.
    if not all((truth == c).any() for c in classes):
        return None
    if len(classes) == 2:
        positive = scores[:, 1] if scores.ndim == 2 else scores
        return float(roc_auc_score((truth == classes[1]).astype(int), positive))
    if scores.ndim != 2:
        return None
    return float(roc_auc_score(truth, scores, multi_class="ovr", average="macro", labels=classes))


def compute_metrics(
    task: Task,
    names: Sequence[str],
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    scores: Any = None,
    classes: Sequence[Any] = (),
) -> dict[str, float]:
    """Held-out metrics, rounded to 6 digits; undefined ones are left out.

    ``scores`` are ``predict_proba`` rows (or, for a binary classifier without
    probabilities, ``decision_function`` values) in the order of ``classes``.
    """
    import numpy as np
    from sklearn import metrics as m

    values: dict[str, float | None] = {}
    for name in names:
        if name == "accuracy":
            values[name] = m.accuracy_score(y_true, y_pred)
        elif name == "precision":
            values[name] = m.precision_score(y_true, y_pred, average="macro", zero_division=0)
        elif name == "recall":
            values[name] = m.recall_score(y_true, y_pred, average="macro", zero_division=0)
        elif name == "f1":
            values[name] = m.f1_score(y_true, y_pred, average="macro", zero_division=0)
        elif name == "rocAuc":
            values[name] = _roc_auc(y_true, scores, classes)
        elif name == "r2":
            # R² of fewer than two rows is undefined (scikit-learn warns and returns NaN).
            values[name] = m.r2_score(y_true, y_pred) if np.size(y_true) >= 2 else None
        elif name == "mae":
            values[name] = m.mean_absolute_error(y_true, y_pred)
        elif name == "rmse":
            values[name] = m.root_mean_squared_error(y_true, y_pred)
        else:
            raise ValueError(f"unknown metric {name!r}")
    return {
        name: round(float(v), 6)
        for name, v in values.items()
        if v is not None and math.isfinite(float(v))
    }
