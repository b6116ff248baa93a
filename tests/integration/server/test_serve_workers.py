"""``--workers 2``: metrics add up across workers, and feedback finds its prediction
whichever worker made it and whichever receives the feedback."""

from __future__ import annotations

import httpx
import pytest
from serving_helpers import Artifact, ServerFactory, metric

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def test_two_workers_share_metrics_and_feedback(
    start_server: ServerFactory, iris_model: Artifact
) -> None:
    server = start_server("iris", iris_model.uri, "--workers", "2", "--model-version", "1")
    url = f"{server.url}/v1/models/iris:predict"
    by_worker: dict[str, list[tuple[str, int]]] = {}
    sent = 0
    # A new connection per request lets the kernel hand each to either worker.
    while len(by_worker) < 2 or min(len(v) for v in by_worker.values()) < 5:
        assert sent < 400, f"one worker served everything: {list(by_worker)}"
        body = httpx.post(url, json={"instances": ROWS}).json()
        sent += 1
        for pid, label in zip(body["prediction_ids"], body["predictions"], strict=True):
            by_worker.setdefault(pid.split("-")[0], []).append((pid, label))

    text = httpx.get(f"{server.url}/metrics").text
    labels = {"model": "iris", "version": "1"}
    assert metric(text, "mlops_requests_total", protocol="v1", code="200", **labels) == sent
    assert metric(text, "mlops_batch_size_sum", **labels) == 3 * sent
    assert metric(text, "mlops_model_ready", **labels) == 1

    # Feedback for every prediction, one request each, so both workers receive feedback
    # for predictions of both; every second label is wrong.
    items = [item for worker in by_worker.values() for item in worker[:5]]
    for i, (pid, label) in enumerate(items):
        truth = label if i % 2 == 0 else (label + 1) % 3
        body = httpx.post(
            f"{server.url}/v1/models/iris/feedback",
            json={"feedback": [{"id": pid, "label": truth}]},
        ).json()
        assert body["accepted"] == 1, body
        assert body["unknown_ids"] == []

    text = httpx.get(f"{server.url}/metrics").text
    assert metric(text, "mlops_feedback_total", **labels) == len(items)
    assert metric(text, "mlops_feedback_correct_total", **labels) == 5
    assert metric(text, "mlops_labelled_samples", **labels) == len(items)
    assert metric(text, "mlops_online_accuracy", **labels) == pytest.approx(0.5)
