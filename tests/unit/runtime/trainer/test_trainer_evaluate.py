"""Metric selection and computation."""

from __future__ import annotations

import pytest

from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer.evaluate import compute_metrics, select_metrics
from mlops_operator.runtime.trainer.failure import TrainingFailure


def test_all_metrics_of_the_task_by_default() -> None:
    assert select_metrics("classification", None) == (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "rocAuc",
    )
    assert select_metrics("regression", None) == ("r2", "mae", "rmse")


def test_requested_metrics_are_reported_in_the_task_order() -> None:
    assert select_metrics("classification", ["rocAuc", "accuracy"]) == ("accuracy", "rocAuc")


def test_an_unknown_metric_fails_listing_the_valid_ones() -> None:
    with pytest.raises(TrainingFailure) as caught:
        select_metrics("regression", ["accuracy"])
    assert caught.value.reason == tm.INVALID_SPEC
    assert caught.value.message == (
        "unknown regression metric 'accuracy' in spec.validation.metrics; "
        "valid metrics: r2, mae, rmse"
    )


def test_binary_classification_metrics_with_string_labels() -> None:
    y_true = ["no", "yes", "yes", "no"]
    y_pred = ["no", "yes", "no", "no"]
    proba = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]
    metrics = compute_metrics(
        "classification",
        select_metrics("classification", None),
        y_true,
        y_pred,
        scores=proba,
        classes=["no", "yes"],
    )
    assert metrics["accuracy"] == 0.75
    assert metrics["rocAuc"] == 1.0
    assert set(metrics) == {"accuracy", "precision", "recall", "f1", "rocAuc"}


def test_multiclass_roc_auc_is_one_vs_rest() -> None:
    proba = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]]
    metrics = compute_metrics(
        "classification", ["rocAuc"], [0, 1, 2, 0], [0, 1, 2, 0], scores=proba, classes=[0, 1, 2]
    )
    assert metrics == {"rocAuc": 1.0}


def test_roc_auc_is_left_out_when_undefined() -> None:
    one_class = compute_metrics(
        "classification", ["rocAuc"], [1, 1], [1, 1], scores=[[0.1, 0.9]] * 2, classes=[0, 1]
    )
    no_scores = compute_metrics("classification", ["rocAuc"], [0, 1], [0, 1], classes=[0, 1])
    assert one_class == {} and no_scores == {}


def test_regression_metrics_are_rounded_to_six_digits() -> None:
    metrics = compute_metrics("regression", ["r2", "mae", "rmse"], [1.0, 2.0, 3.0], [1.1, 2.0, 2.9])
    assert metrics == {"r2": 0.99, "mae": 0.066667, "rmse": 0.08165}
