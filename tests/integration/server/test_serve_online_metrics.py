"""Online per-class counts over real HTTP: a string-class model with two workers exports
confusion counts whose sums give scikit-learn's precision, recall and F1 of all feedback."""

from __future__ import annotations

import random

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import Artifact, ServerFactory
from sklearn.metrics import precision_recall_fscore_support

from mlops_operator.api.online import ClassCounts, macro


def counts_by_class(text: str) -> dict[str, ClassCounts]:
    """The window's confusion counts by class, summed over the series (as PromQL sum by)."""
    fields = {
        "mlops_online_window_true_positives": 0,
        "mlops_online_window_false_positives": 1,
        "mlops_online_window_false_negatives": 2,
    }
    found: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in fields and s.labels.get("model") == "species":
                found.setdefault(s.labels["class"], [0.0, 0.0, 0.0])[fields[s.name]] += s.value
    return {cls: ClassCounts(*c) for cls, c in found.items()}


def test_string_class_feedback_over_two_workers_sums_to_sklearns_metrics(
    start_server: ServerFactory, species_model: Artifact
) -> None:
    from sklearn.datasets import load_iris

    server = start_server("species", species_model.uri, "--workers", "2")
    iris = load_iris()
    rng = random.Random(4)
    truth: list[str] = []
    predicted: list[str] = []
    answers = []
    for _ in range(12):  # a new connection each: either worker may answer
        picks = rng.sample(range(150), 8)
        rows = [iris.data[i].tolist() for i in picks]
        # Wrong labels for some rows: "virginica" where the truth is "versicolor".
        labels = [
            "virginica"
            if iris.target[i] == 1 and rng.random() < 0.5
            else iris.target_names[iris.target[i]]
            for i in picks
        ]
        body = httpx.post(
            f"{server.url}/v1/models/species/feedback", json={"instances": rows, "labels": labels}
        )
        assert body.status_code == 200, body.text
        answers.append(body.json())
        guess = httpx.post(
            f"{server.url}/v1/models/species:predict", json={"instances": rows}
        ).json()["predictions"]
        truth += labels
        predicted += guess
    assert all({"precision", "recall", "f1", "accuracy"} <= set(a) for a in answers)

    counts = counts_by_class(httpx.get(f"{server.url}/metrics").text)
    assert set(counts) <= {"setosa", "versicolor", "virginica"}
    for average, metric in zip((0, 1, 2), ("precision", "recall", "f1"), strict=True):
        expected = precision_recall_fscore_support(
            truth, predicted, average="macro", zero_division=0
        )[average]
        assert macro(counts, metric) == pytest.approx(expected)  # type: ignore[arg-type]
    assert sum(c.support for c in counts.values()) == len(truth) == 96
