"""Online precision/recall/F1 and MAE/RMSE/R² aggregated over replicas: the pods' window
statistics summed, the ratio taken last, equal to the metric over the pooled feedback."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sklearn.metrics import (
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
)

from mlops_operator.monitoring.aggregate import aggregate
from mlops_operator.runtime.server.feedback import RollingScore
from mlops_operator.runtime.server.metrics import ServerMetrics, render


def pod(regression: bool, batches: list[tuple[list[Any], list[Any]]], window: int = 40) -> str:
    """A model server's ``/metrics`` after the feedback ``batches``."""
    registry = CollectorRegistry()
    metrics = ServerMetrics("m", "1", registry)
    metrics.model_loaded(regression=regression)
    score = RollingScore(regression=regression, window=window)
    for predicted, labels in batches:
        metrics.feedback(score.add(predicted, labels), score)
    return render(registry).decode()


def value(result: Any, metric: Any, cls: str | None = None) -> float | None:
    measurement = result.measurement(metric, cls)
    assert measurement is not None
    return measurement.value  # type: ignore[no-any-return]


def test_macro_and_per_class_metrics_over_three_replicas_equal_the_pooled_metrics() -> None:
    rng = random.Random(5)
    classes = ["cat", "dog", "owl"]
    pooled_true: list[str] = []
    pooled_pred: list[str] = []
    pods = {}
    for name, size in (("a", 70), ("b", 25), ("c", 5)):  # very unequal replicas
        labels = rng.choices(classes, k=size)
        # Never predicts "owl", which occurs.
        predicted = [
            y if y != "owl" and rng.random() < 0.6 else rng.choice(classes[:2]) for y in labels
        ]
        pods[name] = pod(False, [(predicted[:30], labels[:30]), (predicted[30:], labels[30:])])
        pooled_true += labels[-40:]  # what is left in each pod's window
        pooled_pred += predicted[-40:]
    result = aggregate(pods, "m", None)
    precision, recall, f1, _ = precision_recall_fscore_support(
        pooled_true, pooled_pred, average="macro", zero_division=0
    )
    assert value(result, "precision") == pytest.approx(precision)
    assert value(result, "recall") == pytest.approx(recall)
    assert value(result, "f1") == pytest.approx(f1)
    f1_dog = result.measurement("f1", "dog")
    assert f1_dog is not None
    expected = precision_recall_fscore_support(
        pooled_true, pooled_pred, labels=["dog"], zero_division=0
    )
    assert f1_dog.value == pytest.approx(expected[2][0])
    assert f1_dog.samples == pooled_true.count("dog")
    owl_precision = result.measurement("precision", "owl")
    assert owl_precision is not None
    assert owl_precision.value is None, "owl is never predicted"
    assert "never predicted" in owl_precision.message
    assert result.measurements["f1"] is not None
    assert result.measurements["f1"].samples == len(pooled_true)


def test_rmse_and_r2_over_two_replicas_equal_the_pooled_metrics() -> None:
    rng = random.Random(3)
    pooled_true: list[float] = []
    pooled_pred: list[float] = []
    pods = {}
    for name, (mean, size) in {"a": (10.0, 30), "b": (50.0, 12)}.items():
        labels = [rng.gauss(mean, 4.0) for _ in range(size)]
        predicted = [y + rng.gauss(0.0, 2.0) for y in labels]
        pods[name] = pod(True, [(predicted, labels)])
        pooled_true += labels
        pooled_pred += predicted
    result = aggregate(pods, "m", None)
    assert value(result, "mae") == pytest.approx(mean_absolute_error(pooled_true, pooled_pred))
    assert value(result, "rmse") == pytest.approx(
        math.sqrt(mean_squared_error(pooled_true, pooled_pred))
    )
    # Not the mean of the per-pod R² (each pod's labels vary much less than the pooled ones).
    assert value(result, "r2") == pytest.approx(r2_score(pooled_true, pooled_pred), rel=1e-9)
    r2 = result.measurements["r2"]
    assert r2 is not None and r2.samples == 42


def test_a_metric_of_the_other_task_has_no_value_and_says_why() -> None:
    classifier = aggregate({"a": pod(False, [([1, 0], [1, 1])])}, "m", None)
    rmse = classifier.measurements["rmse"]
    assert rmse is not None and rmse.value is None
    assert "not a regressor" in rmse.message
    regressor = aggregate({"a": pod(True, [([1.0, 2.0], [1.5, 2.5])])}, "m", None)
    f1 = regressor.measurement("f1", "1")
    assert f1 is not None and f1.value is None
    assert "not a classifier" in f1.message


def test_no_feedback_yet_is_no_value_for_every_online_metric() -> None:
    result = aggregate({"a": pod(False, []), "b": pod(True, [])}, "m", None)
    for metric in ("precision", "recall", "f1", "mae", "rmse", "r2"):
        measurement = result.measurement(metric, None)  # type: ignore[arg-type]
        assert measurement is not None
        assert (measurement.value, measurement.samples) == (None, 0)
        assert "no labelled feedback yet" in measurement.message
