"""The loop left running: three degradations in a row, each answered by exactly one
retraining whose version is promoted, with the operator killed (-9) between two of them."""

from __future__ import annotations

import os
import signal
from typing import Any

import httpx
import pytest

from tests.e2e.test_monitoring_loop import (
    address,
    infer,
    rows,
    train,
    trainingjob,
    watch_accuracy,
)

pytestmark = pytest.mark.timeout(420)


def degrade(kube: Any, namespace: str, version: int) -> None:
    """Predictions from ``version`` answered with the wrong labels: online accuracy 0."""
    batch, _ = rows(40)
    with httpx.Client(base_url=address(kube, namespace), timeout=10) as http:
        body = infer(http, batch)
        assert body["model_version"] == str(version)
        predicted = {o["name"]: o["data"] for o in body["outputs"]}["predict"]
        wrong = [
            {"id": i, "label": 1 - p}
            for i, p in zip(body["parameters"]["prediction_ids"], predicted, strict=True)
        ]
        response = http.post("/v1/models/cancer/feedback", json={"feedback": wrong})
        assert response.status_code == 200, response.text


def serving(resources: Any, version: int, what: str) -> dict[str, Any]:
    """Wait until ``version`` serves and its rollout is complete."""
    obj: dict[str, Any] = resources.wait_status(
        "inferenceservices",
        "cancer",
        lambda s: (
            s.get("currentVersion") == version
            and s.get("phase") == "Ready"
            and resources.condition(s, "Progressing").get("reason") == "RolledOut"
        ),
        what,
        timeout=180,
    )
    return obj


def test_three_degradations_in_a_row_retrain_three_times_across_a_kill(
    start_operator: Any, resources: Any, cancer_csv: str, kube: Any, namespace: str
) -> None:
    operator = start_operator()
    train(resources, "cancer-a", trainingjob(cancer_csv, 4))
    watch_accuracy(
        resources, onDegradation="Retrain", retrain={"cooldownSeconds": 0, "maxPerDay": 10}
    )
    serving(resources, 1, "to serve version 1")

    for cycle in (1, 2, 3):
        degrade(kube, namespace, cycle)
        status = serving(resources, cycle + 1, f"to promote the retraining of cycle {cycle}")
        status = status["status"]
        assert status["history"][-1]["reason"] == "Promoted"
        assert status["retraining"]["count"] == cycle
        assert "active" not in status["retraining"]  # cleared, so the next cycle can start
        if cycle == 1:  # kill -9 between two cycles; a new process takes over
            os.killpg(operator.process.pid, signal.SIGKILL)
            operator.process.wait()
            operator = start_operator()

    versions = sorted(mv["spec"]["version"] for mv in resources.list("modelversions"))
    assert versions == [1, 2, 3, 4]
    retrainings = sorted(
        tj["metadata"]["name"]
        for tj in resources.list("trainingjobs")
        if tj["metadata"]["name"].startswith("cancer-retrain-")
    )
    assert retrainings == ["cancer-retrain-1", "cancer-retrain-2", "cancer-retrain-3"]
    history = [(h["version"], h["reason"]) for h in status["history"]]
    assert history == [(1, "Initial"), (2, "Promoted"), (3, "Promoted"), (4, "Promoted")]
    for mv in resources.list("modelversions"):
        expected = ["cancer"] if mv["spec"]["version"] == 4 else []
        assert resources.wait_status(
            "modelversions",
            mv["metadata"]["name"],
            lambda s, expected=expected: s.get("servedBy", []) == expected,
            "servedBy to follow",
        )
