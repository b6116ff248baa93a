"""Metric names and labels, and online accuracy derived from the summed window gauges."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from mlops_operator.runtime.server.feedback import RollingScore
from mlops_operator.runtime.server.metrics import ServerMetrics, render


def exposition(registry: CollectorRegistry) -> str:
    return render(registry).decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample by name and label set (label order differs between modes)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def has(text: str, name: str, value: float, **labels: str) -> bool:
    labels = {"model": "iris", "version": "3", **labels}
    return samples(text).get((name, frozenset(labels.items()))) == value


def test_accuracy_is_derived_from_the_window_and_only_for_classifiers() -> None:
    registry = CollectorRegistry()
    metrics = ServerMetrics("iris", "3", registry)
    text = exposition(registry)
    assert has(text, "mlops_model_ready", 0.0)
    assert "mlops_online_accuracy{" not in text

    metrics.model_loaded(regression=False)
    window = RollingScore(regression=False)
    metrics.feedback(window.add([0, 1, 1, 1], [0, 0, 1, 1]), window)
    metrics.request("v2", 200, 0.003)
    metrics.batch(5, [("0", 2), ("1", 3)])
    metrics.drift({"a": 0.5, "b": 0.1}, rows=5)
    text = exposition(registry)
    for name, value, labels in [
        ("mlops_model_ready", 1.0, {}),
        ("mlops_online_accuracy", 0.75, {}),
        ("mlops_labelled_samples", 4.0, {}),
        ("mlops_feedback_total", 4.0, {}),
        ("mlops_feedback_correct_total", 3.0, {}),
        ("mlops_online_window_true_positives", 2.0, {"class": "1"}),
        ("mlops_online_window_false_positives", 1.0, {"class": "1"}),
        ("mlops_online_window_false_negatives", 1.0, {"class": "0"}),
        ("mlops_online_window_true_positives", 1.0, {"class": "0"}),
        ("mlops_requests_total", 1.0, {"protocol": "v2", "code": "200"}),
        ("mlops_request_duration_seconds_count", 1.0, {"protocol": "v2"}),
        ("mlops_batch_size_sum", 5.0, {}),
        ("mlops_predictions_total", 3.0, {"class": "1"}),
        ("mlops_feature_drift_psi", 0.5, {"feature": "a"}),
        ("mlops_drift_psi_max", 0.5, {}),
        ("mlops_drift_window_rows", 5.0, {}),
    ]:
        assert has(text, name, value, **labels), (name, labels)
    assert "mlops_online_mae{" not in text


def test_regression_models_get_mae() -> None:
    registry = CollectorRegistry()
    metrics = ServerMetrics("diabetes", "1", registry)
    metrics.model_loaded(regression=True)
    window = RollingScore(regression=True)
    metrics.feedback(window.add([1.0, 2.0], [3.0, -2.0]), window)
    text = exposition(registry)
    diabetes = {"model": "diabetes", "version": "1"}
    assert has(text, "mlops_online_mae", 3.0, **diabetes)
    assert has(text, "mlops_feedback_absolute_error_total", 6.0, **diabetes)
    assert has(text, "mlops_online_window_squared_error", 20.0, **diabetes)
    assert has(text, "mlops_online_window_label_sum", 1.0, **diabetes)
    assert has(text, "mlops_online_window_label_squares", 13.0, **diabetes)
    assert "mlops_online_accuracy{" not in text
    assert "mlops_online_window_true_positives{" not in text
